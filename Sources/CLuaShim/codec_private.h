/*
** Private declarations of the value codec, shared by its files (as Lua's
** ldump.c and lundump.c share lundump.h):
**   codec_wire.c    numbers, checksum, errors of the protected calls;
**   codec_refuse.c  the path and the type of a value that is refused;
**   codec_names.c   the per-state cache of values that travel by name;
**   codec_encode.c  Lua values to bytes;
**   codec_decode.c  bytes to Lua values.
** The format and its constants are in include/atl_codec.h. Functions here
** may raise unless marked '-'.
*/
#ifndef codec_private_h
#define codec_private_h

#include "shim_private.h"


#if defined(__GNUC__)
#define atl_noret  __attribute__((noreturn)) void
#else
#define atl_noret  void
#endif
#define l_noret  static atl_noret

#define NOMEMMSG    "not enough memory"


/*
** {======================================================================
** Wire primitives (codec_wire.c)
** =======================================================================
*/

/* [-0, +0, -] FNV-1a, 64 bits, of 'n' bytes at 'p'. */
uint64_t atl_codec_checksum (const unsigned char *p, size_t n);
/* [-0, +0, -] Write 'v' as a varint at 'b' (room for ATL_CODEC_MAXVARINT
** bytes); returns its length. */
int atl_codec_putvarint (unsigned char *b, uint64_t v);
/* [-0, +0, -] Little-endian 64-bit numbers. */
void atl_codec_put64 (unsigned char *b, uint64_t v);
uint64_t atl_codec_get64 (const unsigned char *b);

/* [-0, +0, m] Raise the memory error of the codec. */
atl_noret atl_codec_nomem (lua_State *L);
/* [-0, +0, -] Number of upvalues of the function at 'idx'. */
int atl_codec_nupvalues (lua_State *L, int idx);

/* What the protected entry points pass to the function they call. */
typedef struct Params {
  int n;
  const char *const *labels;
  int nlabels;
  const char *what;
  int flags;
  atl_Buffer *out;
  const atl_Buffer *buf;
} Params;

/* [-0, +0, -] A malloc'd copy of the error at the top. */
char *atl_codec_errcopy (lua_State *L);
/* [-0, +0, -] Map a 'lua_pcall' status and its error to a codec status. */
int atl_codec_errstatus (lua_State *L, int st);
/* [-0, +0, -] A malloc'd copy of the memory error message. */
char *atl_codec_nomemcopy (void);

/* }====================================================================== */


/*
** {======================================================================
** The encoder's state, shared with the refusals and the name cache
** =======================================================================
*/

/* Path segments, kept so that an error can name the offending value. */
#define SEG_FIELD   0   /* value under the key at stack index 'idx' */
#define SEG_KEY     1   /* the key at stack index 'idx' itself */
#define SEG_UPVAL   2   /* upvalue 'n' of the function at stack index 'idx' */
#define SEG_META    3   /* the metatable */

typedef struct Seg {
  int kind;
  int idx;
  int n;
} Seg;

typedef struct Enc {
  lua_State *L;
  atl_Buffer *out;
  int flags;
  int depth;
  lua_Integer nextid;
  int objs;       /* stack slot: object -> id (nil until needed) */
  int obj0;       /* stack index of the object with id 0 */
  int names;      /* stack slot: 'names' of the name cache (nil: not yet) */
  int recs;       /* stack slot: 'recs' of the name cache */
  int upids;      /* stack slot: upvalue id -> fnid * 256 + index */
  int checked;    /* the name cache was checked or built in this pass */
  int rebuilt;    /* the name cache was rebuilt in this pass */
  int looked;     /* a value was looked up in the name cache */
  int restart;    /* the cache changed after a look-up: start over */
  const char *what;
  const char *const *labels;  /* names of the first 'nlabels' values */
  int nlabels;
  int nvalues;
  int root;       /* index of the value being encoded, from 0 */
  int nseg;
  Seg seg[ATL_CODEC_MAXDEPTH + 4];
} Enc;


/* Refusals (codec_refuse.c): raise "cannot copy <path> (<type>): <why>;
** <advice>" for the value at 'idx' ('why' NULL: the standard list of what
** can be copied); the same with the advice for its type; or the error for
** nesting deeper than ATL_CODEC_MAXDEPTH. */
atl_noret atl_codec_refuse (Enc *e, int idx, const char *why,
                            const char *advice);
atl_noret atl_codec_refuseother (Enc *e, int idx);
atl_noret atl_codec_toodeep (Enc *e);

/* The name cache (codec_names.c). */
#define LC_TRUST     0   /* use the cache as it is, if there is one */
#define LC_CHECK     1   /* compare it with 'package.loaded' first */
#define LC_REBUILD   2   /* rebuild it */

/* Put the 'names' and 'recs' tables of the name cache in the encoder's
** slots; 'how' is one of LC_*. */
void atl_codec_loadcache (Enc *e, int how);
/* The record of the table or function at 'idx' if it travels by name,
** else 0. */
lua_Integer atl_codec_findnamed (Enc *e, int idx);

/* }====================================================================== */

#endif
