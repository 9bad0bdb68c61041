/*
** The value codec: copies Lua values between states, to the host and to
** other processes.
**
** Format (version 1). All multi-byte numbers are little-endian.
**
**   buffer   = 'A' 'L' 0x01 varint(count) value*count   (no trailing bytes)
**   varint   = unsigned LEB128, at most 10 bytes, no bits beyond 64
**   value    = NIL | FALSE | TRUE
**            | INT    int64 (8 bytes)
**            | FLOAT  double bits (8 bytes)     (math.type survives)
**            | STRING varint(len) bytes          (binary-safe)
**            | TABLE  (key value)* END value     (the last value is the
**                                                 metatable, NIL if none)
**            | REF    varint(distance)           (an earlier table/function)
**            | FUNCTION varint(len) bytecode checksum(8) varint(nups) upval*
**            | NAMED  varint(len) module varint(len) field
**            | HANDLE kind(1) pointer(8)
**   upval    = 0x00 value                        (the upvalue's own value)
**            | 0x01 varint(distance) varint(index)   (shared upvalue of an
**                                                 earlier function)
**            | 0x02 varint(distance) varint(index)   (shared upvalue of a
**                                                 later function, nested in
**                                                 an earlier upvalue)
**
** Tables and functions get object ids 0, 1, 2, ... in order of first
** appearance (a TABLE or FUNCTION tag takes the next id before its contents
** are written). A REF gives 'next_id - id', a distance back, so cycles and
** shared references survive and a self-contained span (one function with
** all it refers to) can be cut out and decoded on its own: ids inside it
** stay relative. Table contents use raw access; the metatable is set after
** the table is filled with 'rawset'.
**
** A function travels as its bytecode ('lua_dump' with debug info, so that
** tracebacks keep 'file:line'), guarded by an FNV-1a 64 checksum that is
** checked before 'lua_load' (corrupted bytecode can crash Lua 5.4.4). Each
** upvalue either carries its value or, when 'lua_upvalueid' shows that it is
** shared with an upvalue of a function written before it in the buffer,
** the distance to that function's id and the upvalue index; decoding joins
** them with 'lua_upvaluejoin'. That function usually came first (0x01, a
** distance back), but it may be one nested in an earlier upvalue of this
** very function, so with a higher id (0x02, a distance forward): a task
** that calls a local helper, where both use 'x' and the helper is met
** first. Either way it is decoded completely before the join. A recursive local function is a REF to
** itself.
**
** NAMED values are those reachable from 'package.loaded': a module (its
** field is empty) or a table or function stored under a string key of a
** module. Decoding takes 'package.loaded[module]' (or 'require(module)')
** and then the field. So a function's '_ENV' upvalue that is '_G' binds to
** the destination's globals.
**
** An upvalue whose value is NAMED is always written as 0x00 NAMED, never
** as a shared upvalue, even when an earlier function of the buffer has the
** same upvalue: the name gives the same object in the destination anyway.
** So every closure of one chunk (all share the chunk's '_ENV') decodes on
** its own, and two values encoded together stay separable ('fn' and a
** 'callback' of its options). The one consequence: two closures that share
** an upvalue holding a module no longer share the cell after the move;
** assigning a new value to it in one is not seen by the other. (Decoding
** with ATL_CODEC_JOINENV joins the '_ENV' ones into one cell regardless.)
**
** The named values are cached per state (see "Values that travel by
** name"). A value found in the cache is checked to be still in its place,
** so a module or field that was replaced or removed is never named. A
** module required after the cache was built is seen by the first encoding
** call that meets a function (a module of plain data, without functions,
** may travel by value until then). A table or Lua function added to a
** module table already loaded may be missed, and then travels by value,
** until something rebuilds the cache.
**
** HANDLE carries a host object of kind ATL_H_*; the encoding buffer retains
** it, decoding pushes a new handle (which retains it again).
**
** Anything else (other userdata, light userdata, threads, C functions that
** no module holds) is refused with an error naming its path and type.
** Nesting deeper than ATL_CODEC_MAXDEPTH tables/functions is refused both
** ways. Decoding checks every byte it reads and never trusts the input.
*/
#define codec_c

#include <stdlib.h>
#include <string.h>

#include "shim_private.h"


/* Tags. */
#define T_NIL       0
#define T_FALSE     1
#define T_TRUE      2
#define T_INT       3
#define T_FLOAT     4
#define T_STRING    5
#define T_TABLE     6
#define T_REF       7
#define T_FUNCTION  8
#define T_NAMED     9
#define T_HANDLE    10
#define T_END       11

#define UP_VALUE    0
#define UP_SHARED   1
#define UP_SHAREDFWD 2

#define VERSION     1
#define MAXVARINT   10

#define NOMEMMSG    "not enough memory"

#if defined(__GNUC__)
#define l_noret  static __attribute__((noreturn)) void
#else
#define l_noret  static void
#endif

#define ALLOWED \
  "only nil, booleans, numbers, strings, tables, Lua functions, modules " \
  "and atasker handles can be copied"


/* FNV-1a, 64 bits, of 'n' bytes at 'p'. */
static uint64_t checksum (const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}


/* Write 'v' as a varint at 'b' (room for MAXVARINT bytes); its length. */
static int putvarint (unsigned char *b, uint64_t v) {
  int n = 0;
  while (v >= 0x80) {
    b[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  b[n++] = (unsigned char)v;
  return n;
}


static void put64 (unsigned char *b, uint64_t v) {
  int i;
  for (i = 0; i < 8; i++) {
    b[i] = (unsigned char)v;
    v >>= 8;
  }
}


static uint64_t get64 (const unsigned char *b) {
  uint64_t v = 0;
  int i;
  for (i = 7; i >= 0; i--)
    v = (v << 8) | b[i];
  return v;
}


/*
** {======================================================================
** Encoding
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


l_noret nomem (lua_State *L) {
  lua_pushliteral(L, NOMEMMSG);
  lua_error(L);
  abort();  /* not reached */
}


static void put (Enc *e, const void *p, size_t n) {
  if (atl_buffer_append(e->out, p, n) != ATL_OK)
    nomem(e->L);
}


static void putbyte (Enc *e, int b) {
  unsigned char c = (unsigned char)b;
  put(e, &c, 1);
}


static int isletter (char c) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}


/* Is 's' a name that can follow a dot ('t.name')? */
static int isname (const char *s, size_t l) {
  size_t i;
  if (l == 0 || l > 40 || !isletter(s[0]))
    return 0;
  for (i = 1; i < l; i++) {
    if (!isletter(s[i]) && !(s[i] >= '0' && s[i] <= '9'))
      return 0;
  }
  return 1;
}


/*
** Push a description of a key used as an index: "[1]", ".name", "[\"odd
** key\"]", "[true]", "[<table>]".
*/
static void pushkeytext (lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx))
        lua_pushfstring(L, "[%I]", (LUAI_UACINT)lua_tointeger(L, idx));
      else
        lua_pushfstring(L, "[%f]", (LUAI_UACNUMBER)lua_tonumber(L, idx));
      break;
    case LUA_TSTRING: {
      size_t l;
      const char *s = lua_tolstring(L, idx, &l);
      if (isname(s, l))
        lua_pushfstring(L, ".%s", s);
      else if (l <= 40 && strlen(s) == l)
        lua_pushfstring(L, "[\"%s\"]", s);
      else
        lua_pushliteral(L, "[<string>]");
      break;
    }
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, idx) ? "[true]" : "[false]");
      break;
    default:
      lua_pushfstring(L, "[<%s>]", luaL_typename(L, idx));
      break;
  }
}


/*
** Push the path of the value being encoded, built from the segments (only
** on error paths, so that success costs nothing).
*/
static void pushpath (Enc *e) {
  lua_State *L = e->L;
  const char *what = (e->what != NULL) ? e->what : "value";
  int wrapped = 0;  /* path is a phrase ("upvalue 'x' of f")? */
  int i;
  luaL_checkstack(L, 4, NULL);
  if (e->root < e->nlabels && e->labels[e->root] != NULL)
    lua_pushstring(L, e->labels[e->root]);
  else if (e->nlabels > 0)  /* the values after the labelled ones */
    lua_pushfstring(L, "%s[%d]", what, e->root - e->nlabels + 1);
  else if (e->nvalues == 1)
    lua_pushstring(L, what);
  else
    lua_pushfstring(L, "%s[%d]", what, e->root + 1);
  for (i = 0; i < e->nseg; i++) {
    Seg *s = &e->seg[i];
    switch (s->kind) {
      case SEG_FIELD:
        if (wrapped) {
          lua_pushfstring(L, "(%s)", lua_tostring(L, -1));
          lua_remove(L, -2);
          wrapped = 0;
        }
        pushkeytext(L, s->idx);
        lua_concat(L, 2);
        break;
      case SEG_KEY:
        lua_pushfstring(L, "key of %s", lua_tostring(L, -1));
        lua_remove(L, -2);
        wrapped = 1;
        break;
      case SEG_UPVAL: {
        const char *name = lua_getupvalue(L, s->idx, s->n);
        if (name != NULL)
          lua_pop(L, 1);
        if (name != NULL && *name != '\0')
          lua_pushfstring(L, "upvalue '%s' of %s", name, lua_tostring(L, -1));
        else
          lua_pushfstring(L, "upvalue #%d of %s", s->n, lua_tostring(L, -1));
        lua_remove(L, -2);
        wrapped = 1;
        break;
      }
      default:  /* SEG_META */
        lua_pushfstring(L, "metatable of %s", lua_tostring(L, -1));
        lua_remove(L, -2);
        wrapped = 1;
        break;
    }
  }
}


/* Push the type of the value at 'idx' with its article: "a FILE* userdata". */
static void pushtypetext (lua_State *L, int idx) {
  const char *name = NULL;
  int t = lua_type(L, idx);
  if (t == LUA_TUSERDATA && luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
    if (lua_type(L, -1) == LUA_TSTRING)
      name = lua_tostring(L, -1);
    lua_pop(L, 1);  /* the string stays alive in the metatable */
  }
  if (name != NULL)
    lua_pushfstring(L, "%s %s userdata",
                    strchr("aeiouAEIOU", name[0]) ? "an" : "a", name);
  else if (t == LUA_TTHREAD)
    lua_pushliteral(L, "a thread (coroutine)");
  else if (t == LUA_TLIGHTUSERDATA)
    lua_pushliteral(L, "a light userdata");
  else if (t == LUA_TFUNCTION && lua_iscfunction(L, idx))
    lua_pushliteral(L, "a C function that no loaded module holds");
  else
    lua_pushfstring(L, "a %s", luaL_typename(L, idx));
}


/*
** Raise "cannot copy <path> (<type>): <why>; <advice>" for the value at
** 'idx'. 'why' NULL means the standard list of what can be copied.
*/
l_noret refuse (Enc *e, int idx, const char *why, const char *advice) {
  lua_State *L = e->L;
  luaL_checkstack(L, 6, NULL);
  pushpath(e);
  pushtypetext(L, idx);
  lua_pushfstring(L, "cannot copy %s (%s): %s; %s", lua_tostring(L, -2),
                  lua_tostring(L, -1), (why != NULL) ? why : ALLOWED, advice);
  lua_error(L);
  abort();  /* not reached */
}


l_noret refuseother (Enc *e, int idx) {
  lua_State *L = e->L;
  const char *advice;
  switch (lua_type(L, idx)) {
    case LUA_TTHREAD:
      advice = "create the coroutine inside the worker instead";
      break;
    case LUA_TFUNCTION:
      advice = "put the function in a module ('package.loaded') so that it "
               "travels by name, or wrap it in a Lua function";
      break;
    case LUA_TUSERDATA:
      if (luaL_testudata(L, idx, LUA_FILEHANDLE) != NULL) {
        advice = "open the file inside the worker instead";
        break;
      }
      /* FALLTHROUGH */
    default:
      advice = "create it inside the worker instead, or pass plain data";
      break;
  }
  refuse(e, idx, NULL, advice);
}


l_noret toodeep (Enc *e) {
  lua_State *L = e->L;
  pushpath(e);
  lua_pushfstring(L, "value nested deeper than %d levels at %s",
                  ATL_CODEC_MAXDEPTH, lua_tostring(L, -1));
  lua_error(L);
  abort();  /* not reached */
}


static void enc_value (Enc *e, int idx);


/*
** {------------------------------------------------------------------
** Values that travel by name
**
** A value is named when it is a module ('package.loaded[k]' with a
** string 'k') or a table or function stored under a string key of a
** module table; from '_G' only C functions are taken, so the main
** script's own global functions and tables are copied, not named
** (its globals are not visible in other states). Modules come first,
** then the fields of the standard libraries, then those of other
** modules, and the first match wins: 'string' stays 'string', not
** '_G.string'.
**
** Walking all of them (some 170 values) costs microseconds, so each
** state keeps a cache, built on first use: a full userdata 'NameCache'
** in the registry under the address of 'cachekey', with user values
**   1: 'names', a table with weak keys: named value -> record 'k';
**   2: 'recs', an array: 'recs[3k-2]' the value written as NAMED (its
**      bytes), 'recs[3k-1]' the table that holds it ('package.loaded'
**      for a module, else the module table) and 'recs[3k]' its key there;
**   3: 'keep', the keys and values of 'package.loaded' when it was built,
**      which keeps them alive, so that their addresses identify them.
** Its C part holds the address of 'package.loaded' and the addresses of
** the keys and values of its entries, in traversal order.
**
** A value found in the cache is checked against the table that holds it
** ('holder[key]' is still the value; two lookups), so a module or a field
** that was replaced or removed is never named: a mismatch rebuilds the
** cache. A value missing from the cache may be new: walking
** 'package.loaded' and comparing it with the C part finds new modules, but
** costs tens of ns an entry, more than encoding a small table. So an
** encoding call walks it once, when it first meets a function (which costs
** microseconds to copy anyway, and which a module table copied by mistake
** would contain); if the walk finds a change after the call had already
** looked up a table, the call starts over with the new cache. Hence a
** module required since the last walk is named by any call that also
** meets a function (as a module table does); a module made of plain data
** only may be copied by value until some call walks again. A table or Lua
** function added to a module table already loaded is missed, and travels
** by value, until something else rebuilds the cache; a C function that
** the cache does not know forces a rebuild before it is refused.
** -------------------------------------------------------------------
*/

static const char *const stdmods[] = {
  "_G", "string", "table", "math", "io", "os", "coroutine", "utf8",
  "debug", "package", NULL
};

static char cachekey;  /* its address is the registry key */

typedef struct NameCache {
  const void *loaded;  /* address of 'package.loaded' (NULL: none) */
  int n;               /* number of its entries (-1: never valid) */
  const void *fp[1];   /* 2 * 'n' addresses: key, value, key, value, ... */
} NameCache;

#define UV_NAMES  1
#define UV_RECS   2
#define UV_KEEP   3


/* Is 'package.loaded' at 'loaded' the one cache 'c' was built from? */
static int samemodules (lua_State *L, const NameCache *c, int loaded) {
  int i = 0;
  if (c->n < 0 || lua_topointer(L, loaded) != c->loaded)
    return 0;
  if (!lua_istable(L, loaded))
    return 1;
  lua_pushnil(L);
  while (lua_next(L, loaded)) {
    if (i >= c->n || lua_topointer(L, -2) != c->fp[2 * i]
                  || lua_topointer(L, -1) != c->fp[2 * i + 1]) {
      lua_pop(L, 2);
      return 0;
    }
    i++;
    lua_pop(L, 1);
  }
  return i == c->n;
}


/*
** Record the value at 'v' as named 'mod' (a string at stack index 'mod')
** and, if 'isfield', field 'key' (a string at 'key'); 'holder[key]' is the
** value. An earlier record of the same value wins. 'names' and 'recs' are
** at 'nc' and 'nc + 1'; '*k' counts the records.
*/
static void addname (lua_State *L, int nc, int *k, int v, int mod,
                     int holder, int key, int isfield) {
  unsigned char b[1 + MAXVARINT];
  luaL_Buffer lb;
  const char *s;
  size_t l;
  lua_pushvalue(L, v);
  if (lua_rawget(L, nc) != LUA_TNIL) {  /* an earlier name wins */
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  (*k)++;
  luaL_buffinit(L, &lb);
  s = lua_tolstring(L, mod, &l);
  b[0] = T_NAMED;
  luaL_addlstring(&lb, (const char *)b, 1 + (size_t)putvarint(b + 1, l));
  luaL_addlstring(&lb, s, l);
  if (isfield) {
    s = lua_tolstring(L, key, &l);
    luaL_addlstring(&lb, (const char *)b, (size_t)putvarint(b, l));
    luaL_addlstring(&lb, s, l);
  }
  else
    luaL_addchar(&lb, 0);
  luaL_pushresult(&lb);
  lua_rawseti(L, nc + 1, 3 * (lua_Integer)*k - 2);
  lua_pushvalue(L, holder);
  lua_rawseti(L, nc + 1, 3 * (lua_Integer)*k - 1);
  lua_pushvalue(L, key);
  lua_rawseti(L, nc + 1, 3 * (lua_Integer)*k);
  lua_pushvalue(L, v);
  lua_pushinteger(L, *k);
  lua_rawset(L, nc);
}


/*
** Record the named fields of the module table at 'mod' (its name at
** 'mod - 1'): tables and functions under string keys ('_G': C functions).
*/
static void addfields (lua_State *L, int nc, int *k, int mod) {
  int isG = (strcmp(lua_tostring(L, mod - 1), "_G") == 0);
  lua_pushnil(L);
  while (lua_next(L, mod)) {
    int t = lua_type(L, -1);
    if (lua_type(L, -2) == LUA_TSTRING
        && (isG ? (t == LUA_TFUNCTION && lua_iscfunction(L, -1))
                : (t == LUA_TTABLE || t == LUA_TFUNCTION)))
      addname(L, nc, k, lua_gettop(L), mod - 1, mod, lua_gettop(L) - 1, 1);
    lua_pop(L, 1);
  }
}


static int isstdmod (const char *name) {
  int i;
  for (i = 0; stdmods[i] != NULL; i++)
    if (strcmp(name, stdmods[i]) == 0)
      return 1;
  return 0;
}


/*
** Build the cache of named values, store it in the registry and push it.
** Raises only on memory errors, leaving the previous cache in place.
*/
static void buildcache (lua_State *L) {
  NameCache *c;
  int loaded, nc, keep, n = 0, k = 0, i;
  luaL_checkstack(L, 16, NULL);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  loaded = lua_gettop(L);
  if (lua_istable(L, loaded)) {
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
      n++;
      lua_pop(L, 1);
    }
  }
  c = (NameCache *)lua_newuserdatauv(L, sizeof(NameCache)
                                        + 2 * (size_t)n * sizeof(void *), 3);
  c->loaded = lua_topointer(L, loaded);
  c->n = 0;
  lua_createtable(L, 0, 64);  /* names */
  nc = lua_gettop(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, nc);
  lua_createtable(L, 192, 0);  /* recs, at 'nc + 1' */
  lua_createtable(L, 2 * n, 0);  /* keep */
  keep = lua_gettop(L);
  if (lua_istable(L, loaded)) {
    lua_pushnil(L);  /* the modules */
    while (lua_next(L, loaded)) {
      int t = lua_type(L, -1);
      if (c->n == n) {  /* grew meanwhile (a finalizer?) */
        c->n = -1;  /* never valid: rebuilt next time */
        lua_pop(L, 2);
        break;
      }
      c->fp[2 * c->n] = lua_topointer(L, -2);
      c->fp[2 * c->n + 1] = lua_topointer(L, -1);
      c->n++;
      lua_pushvalue(L, -2);
      lua_rawseti(L, keep, 2 * (lua_Integer)c->n - 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, keep, 2 * (lua_Integer)c->n);
      if (lua_type(L, -2) == LUA_TSTRING
          && (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA))
        addname(L, nc, &k, lua_gettop(L), lua_gettop(L) - 1, loaded,
                lua_gettop(L) - 1, 0);
      lua_pop(L, 1);
    }
    for (i = 0; stdmods[i] != NULL; i++) {  /* fields of the standard ones */
      lua_pushstring(L, stdmods[i]);
      lua_pushvalue(L, -1);
      if (lua_rawget(L, loaded) == LUA_TTABLE)
        addfields(L, nc, &k, lua_gettop(L));
      lua_pop(L, 2);
    }
    lua_pushnil(L);  /* fields of the other modules */
    while (lua_next(L, loaded)) {
      if (lua_type(L, -1) == LUA_TTABLE && lua_type(L, -2) == LUA_TSTRING
          && !isstdmod(lua_tostring(L, -2)))
        addfields(L, nc, &k, lua_gettop(L));
      lua_pop(L, 1);
    }
  }
  lua_setiuservalue(L, nc - 1, UV_KEEP);
  lua_setiuservalue(L, nc - 1, UV_RECS);
  lua_setiuservalue(L, nc - 1, UV_NAMES);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cachekey);
  lua_remove(L, loaded);
}


/* [-0, +0, m] Drop the name cache of 'L': a module table got a new field
** (the lazy fields of 'atasker'), so the next encoding rebuilds it. */
void atl_codec_forget_names (lua_State *L) {
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cachekey);
}


#define LC_TRUST     0   /* use the cache as it is, if there is one */
#define LC_CHECK     1   /* compare it with 'package.loaded' first */
#define LC_REBUILD   2   /* rebuild it */

/*
** Put the 'names' and 'recs' tables of the name cache in the encoder's
** slots; 'how' is one of LC_*. A cache rebuilt after this call has looked
** up some value makes the call start over (see 'atl_codec_encode_raw').
*/
static void loadcache (Enc *e, int how) {
  lua_State *L = e->L;
  NameCache *c;
  luaL_checkstack(L, 4, NULL);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &cachekey);
  c = (NameCache *)lua_touserdata(L, -1);
  if (how == LC_CHECK && c != NULL) {
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (!samemodules(L, c, lua_gettop(L)))
      how = LC_REBUILD;
    lua_pop(L, 1);
  }
  if (how == LC_REBUILD || c == NULL) {
    lua_pop(L, 1);
    buildcache(L);
    e->rebuilt = 1;
    if (e->looked)
      e->restart = 1;
  }
  if (how != LC_TRUST || c == NULL)
    e->checked = 1;
  lua_getiuservalue(L, -1, UV_NAMES);
  lua_replace(L, e->names);
  lua_getiuservalue(L, -1, UV_RECS);
  lua_replace(L, e->recs);
  lua_pop(L, 1);
}


/* Is record 'k' still true: is 'holder[key]' still the value at 'idx'? */
static int stillnamed (Enc *e, int idx, lua_Integer k) {
  lua_State *L = e->L;
  int ok;
  if (lua_rawgeti(L, e->recs, 3 * k - 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_rawgeti(L, e->recs, 3 * k);
  lua_rawget(L, -2);
  ok = lua_rawequal(L, -1, idx);
  lua_pop(L, 2);
  return ok;
}


/*
** The record of the table or function at 'idx' if it travels by name,
** else 0. The first function met checks the cache (see above).
*/
static lua_Integer findnamed (Enc *e, int idx) {
  lua_State *L = e->L;
  lua_Integer k;
  if (lua_isnil(L, e->names))
    loadcache(e, (lua_type(L, idx) == LUA_TFUNCTION) ? LC_CHECK : LC_TRUST);
  else if (!e->checked && lua_type(L, idx) == LUA_TFUNCTION)
    loadcache(e, LC_CHECK);
  for (;;) {
    lua_pushvalue(L, idx);
    lua_rawget(L, e->names);
    k = lua_tointeger(L, -1);  /* 0 when absent */
    lua_pop(L, 1);
    if (k == 0 || stillnamed(e, idx, k))
      break;
    if (e->rebuilt) {  /* (cannot happen: a fresh cache is exact) */
      k = 0;
      break;
    }
    loadcache(e, LC_REBUILD);
  }
  e->looked = 1;
  return k;
}


/* Write record 'k' (a NAMED value). */
static void putnamed (Enc *e, lua_Integer k) {
  size_t l;
  const char *s;
  lua_rawgeti(e->L, e->recs, 3 * k - 2);
  s = lua_tolstring(e->L, -1, &l);
  put(e, s, l);
  lua_pop(e->L, 1);
}


/*
** If the value at 'idx' is a module or a field of one, write it as NAMED
** and return 1.
*/
static int enc_named (Enc *e, int idx) {
  lua_Integer k = findnamed(e, idx);
  if (k == 0)
    return 0;
  putnamed(e, k);
  return 1;
}

/* }------------------------------------------------------------------ */


/*
** If the table or function at 'idx' was already written, write a REF to it
** and return 1. The first object written is a root value, so it is known
** by its stack index 'obj0'; the table at slot 'objs' (object -> id) is
** created only for a second one, which most small values never have.
*/
static int enc_ref (Enc *e, int idx) {
  lua_State *L = e->L;
  unsigned char b[1 + MAXVARINT];
  lua_Integer id;
  if (e->nextid == 0)
    return 0;
  if (lua_isnil(L, e->objs)) {  /* only object 0 so far */
    if (!lua_rawequal(L, idx, e->obj0))
      return 0;
    id = 0;
  }
  else {
    lua_pushvalue(L, idx);
    if (lua_rawget(L, e->objs) == LUA_TNIL) {
      lua_pop(L, 1);
      return 0;
    }
    id = lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  b[0] = T_REF;
  put(e, b, 1 + (size_t)putvarint(b + 1, (uint64_t)(e->nextid - id)));
  return 1;
}


/* Give the table or function at 'idx' the next id. */
static void newid (Enc *e, int idx) {
  lua_State *L = e->L;
  if (e->nextid == 0) {
    e->obj0 = idx;
    e->nextid++;
    return;
  }
  if (lua_isnil(L, e->objs)) {
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, e->obj0);
    lua_pushinteger(L, 0);
    lua_rawset(L, -3);
    lua_replace(L, e->objs);
  }
  lua_pushvalue(L, idx);
  lua_pushinteger(L, e->nextid++);
  lua_rawset(L, e->objs);
}


static void enter (Enc *e) {
  if (e->depth >= ATL_CODEC_MAXDEPTH)
    toodeep(e);
  e->depth++;
  luaL_checkstack(e->L, 12, "value nested too deeply");
}


static void enc_table (Enc *e, int idx) {
  lua_State *L = e->L;
  Seg *s;
  if (enc_ref(e, idx) || enc_named(e, idx))
    return;
  enter(e);
  newid(e, idx);
  putbyte(e, T_TABLE);
  s = &e->seg[e->nseg++];
  s->idx = lua_gettop(L) + 1;  /* where 'lua_next' leaves the key */
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    s->kind = SEG_KEY;
    enc_value(e, s->idx);
    s->kind = SEG_FIELD;
    enc_value(e, s->idx + 1);
    lua_pop(L, 1);
  }
  putbyte(e, T_END);
  s->kind = SEG_META;
  if (lua_getmetatable(L, idx)) {
    enc_value(e, lua_gettop(L));
    lua_pop(L, 1);
  }
  else
    putbyte(e, T_NIL);
  e->nseg--;
  e->depth--;
}


/* 'lua_dump' writer: appends to the output buffer. */
static int writer (lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return atl_buffer_append((atl_Buffer *)ud, p, n) != ATL_OK;
}


/* Number of upvalues of the function at 'idx'. */
static int nupvalues (lua_State *L, int idx) {
  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  return ar.nups;
}


/*
** Write the bytecode of the Lua function at 'idx' as varint(len), bytes,
** checksum: dump straight into the output, then slide the bytes up to make
** room for the length.
*/
static void enc_bytecode (Enc *e, int idx) {
  lua_State *L = e->L;
  atl_Buffer *out = e->out;
  size_t start = out->len, len;
  unsigned char b[MAXVARINT];
  int n, st;
  lua_pushvalue(L, idx);
  st = lua_dump(L, writer, out, 0);
  lua_pop(L, 1);
  if (st != 0)
    nomem(L);
  len = out->len - start;
  n = putvarint(b, len);
  put(e, b, (size_t)n);  /* make room */
  memmove(out->data + start + n, out->data + start, len);
  memcpy(out->data + start, b, (size_t)n);
  put64(b, checksum(out->data + start + n, len));
  put(e, b, 8);
}


static void enc_function (Enc *e, int idx) {
  lua_State *L = e->L;
  lua_Integer myid;
  unsigned char b[1 + 2 * MAXVARINT];
  int nups, i;
  Seg *s;
  if (enc_ref(e, idx) || enc_named(e, idx))
    return;
  if (lua_iscfunction(L, idx)) {
    if (!e->rebuilt) {  /* maybe added to a module since the cache was built */
      loadcache(e, LC_REBUILD);
      if (enc_named(e, idx))
        return;
    }
    refuseother(e, idx);
  }
  if (e->flags & ATL_CODEC_NOFUNCTIONS)
    refuse(e, idx, "functions cannot be copied here (results and values "
           "sent back from a child process)", "return plain data instead");
  enter(e);
  myid = e->nextid;
  newid(e, idx);
  putbyte(e, T_FUNCTION);
  enc_bytecode(e, idx);
  nups = nupvalues(L, idx);
  put(e, b, (size_t)putvarint(b, (uint64_t)nups));
  s = &e->seg[e->nseg++];
  s->kind = SEG_UPVAL;
  s->idx = idx;
  for (i = 1; i <= nups; i++) {
    void *uid = lua_upvalueid(L, idx, i);
    int v, t;
    lua_Integer k = 0;
    s->n = i;
    lua_getupvalue(L, idx, i);
    v = lua_gettop(L);
    t = lua_type(L, v);
    if (t == LUA_TTABLE || t == LUA_TFUNCTION)
      k = findnamed(e, v);
    if (k != 0) {  /* named: a value, never a join (see the top) */
      putbyte(e, UP_VALUE);
      putnamed(e, k);
    }
    else {
      if (lua_isnil(L, e->upids)) {
        lua_createtable(L, 0, 4);
        lua_replace(L, e->upids);
      }
      lua_pushlightuserdata(L, uid);
      if (lua_rawget(L, e->upids) != LUA_TNIL) {  /* shared? */
        lua_Integer u = lua_tointeger(L, -1);
        lua_Integer other = u / 256;  /* the function that has it first */
        int n = 0;
        if (other <= myid) {
          b[n++] = UP_SHARED;
          n += putvarint(b + n, (uint64_t)(myid - other));
        }
        else {  /* nested in an earlier upvalue of this function */
          b[n++] = UP_SHAREDFWD;
          n += putvarint(b + n, (uint64_t)(other - myid));
        }
        n += putvarint(b + n, (uint64_t)(u % 256));
        put(e, b, (size_t)n);
      }
      else {
        lua_pushlightuserdata(L, uid);
        lua_pushinteger(L, myid * 256 + i);
        lua_rawset(L, e->upids);
        putbyte(e, UP_VALUE);
        enc_value(e, v);
      }
      lua_pop(L, 1);  /* the 'upids' entry */
    }
    lua_pop(L, 1);  /* the upvalue */
  }
  e->nseg--;
  e->depth--;
}


static void enc_userdata (Enc *e, int idx) {
  atl_Handle *h = atl_handle_test(e->L, idx);
  unsigned char b[10];
  if (h == NULL)
    refuseother(e, idx);
  if (e->flags & ATL_CODEC_NOHANDLES)
    refuse(e, idx, "atasker handles cannot be copied to another process",
           "pass plain values instead");
  if (h->obj == NULL)
    refuse(e, idx, "the handle is already released", "pass a live handle");
  b[0] = T_HANDLE;
  b[1] = (unsigned char)h->kind;
  put64(b + 2, (uint64_t)(uintptr_t)h->obj);
  put(e, b, 10);
  if (atl_buffer_add_handle(e->out, h->obj) != ATL_OK)
    nomem(e->L);
}


/*
** Write the encoding of the nil, boolean, number or string at 'idx' into
** 'b' (at least SCALARMAX bytes) and return its length; a string's bytes
** follow it ('*s', '*l' are set to them, and stay NULL / 0 otherwise).
** Raises nothing: 'lua_tolstring' converts nothing for a string.
*/
#define SCALARMAX (1 + MAXVARINT > 9 ? 1 + MAXVARINT : 9)

static size_t enc_scalar (lua_State *L, int idx, unsigned char *b,
                          const char **s, size_t *l) {
  *s = NULL;
  *l = 0;
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
      b[0] = lua_toboolean(L, idx) ? T_TRUE : T_FALSE;
      return 1;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        b[0] = T_INT;
        put64(b + 1, (uint64_t)lua_tointeger(L, idx));
      }
      else {
        lua_Number d = lua_tonumber(L, idx);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        b[0] = T_FLOAT;
        put64(b + 1, bits);
      }
      return 9;
    case LUA_TSTRING:
      *s = lua_tolstring(L, idx, l);
      b[0] = T_STRING;
      return 1 + (size_t)putvarint(b + 1, *l);
    default:
      b[0] = T_NIL;
      return 1;
  }
}


/* Encode the value at absolute index 'idx'. */
static void enc_value (Enc *e, int idx) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: case LUA_TBOOLEAN: case LUA_TNUMBER: case LUA_TSTRING: {
      unsigned char b[SCALARMAX];
      const char *s;
      size_t l;
      put(e, b, enc_scalar(L, idx, b, &s, &l));
      if (s != NULL) put(e, s, l);
      break;
    }
    case LUA_TTABLE:
      enc_table(e, idx);
      break;
    case LUA_TFUNCTION:
      enc_function(e, idx);
      break;
    case LUA_TUSERDATA:
      enc_userdata(e, idx);
      break;
    default:  /* light userdata, thread */
      refuseother(e, idx);
  }
}


/* Undo a pass: drop the bytes after 'len' and the handles after 'nh'. */
static void dropoutput (atl_Buffer *out, size_t len, size_t nh) {
  while (out->nhandles > nh) {
    void *obj = out->handles[--out->nhandles];
    if (atl_host.release != NULL)
      atl_host.release(obj);
  }
  out->len = len;
}


/*
** Encode the 'n' values from 'first' into 'out'. Four stack slots above
** the values hold the (lazily created) maps; they are removed at the end.
** A second pass runs when the name cache changed under the first one.
*/
void atl_codec_encode_raw (lua_State *L, int first, int n, const char *what,
                           int flags, atl_Buffer *out) {
  atl_codec_encode_labelled(L, first, n, NULL, 0, what, flags, out);
}


/*
** The same, where an error names value 'i' by 'labels[i]' for 'i' below
** 'nlabels' ("the task function", "callback") and the values after them
** as 'what[1]', 'what[2]', ...
*/
void atl_codec_encode_labelled (lua_State *L, int first, int n,
                                const char *const *labels, int nlabels,
                                const char *what, int flags,
                                atl_Buffer *out) {
  Enc e;
  unsigned char b[3 + MAXVARINT];
  size_t len0 = out->len, nh0 = out->nhandles;
  int base, pass, i;
  first = lua_absindex(L, first);
  luaL_checkstack(L, 8, NULL);
  base = lua_gettop(L);
  e.L = L;
  e.out = out;
  e.flags = flags;
  e.objs = base + 1;
  e.names = base + 2;
  e.recs = base + 3;
  e.upids = base + 4;
  e.what = what;
  e.labels = labels;
  e.nlabels = (labels != NULL) ? nlabels : 0;
  e.nvalues = n;
  b[0] = 'A';
  b[1] = 'L';
  b[2] = VERSION;
  for (pass = 0; ; pass++) {
    lua_settop(L, base);
    lua_settop(L, base + 4);  /* the slots, nil */
    e.depth = 0;
    e.nextid = 0;
    e.obj0 = 0;
    e.nseg = 0;
    e.checked = e.rebuilt = (pass > 0);  /* a restart follows a rebuild */
    e.looked = e.restart = 0;
    put(&e, b, 3 + (size_t)putvarint(b + 3, (uint64_t)n));
    for (i = 0; i < n; i++) {
      e.root = i;
      if ((i > 0 && (flags & ATL_CODEC_SEPARATE)) ||
          (i == 1 && (flags & ATL_CODEC_FIRSTALONE))) {
        /* forget the objects of the values before: distances are relative,
        ** so ids may start again from 0 */
        lua_pushnil(L);
        lua_replace(L, e.objs);
        lua_pushnil(L);
        lua_replace(L, e.upids);
        e.nextid = 0;
        e.obj0 = 0;
      }
      enc_value(&e, first + i);
    }
    if (!e.restart || pass > 0)
      break;
    dropoutput(out, len0, nh0);
  }
  lua_settop(L, base);
}

/* }====================================================================== */


/*
** Encode the 'n' values from 'first' into 'out' when every one of them is
** nil, a boolean, a number or a string: the same bytes as
** 'atl_codec_encode_raw', without a protected call, since nothing here can
** raise (no table walk, no name cache, no allocation by Lua). Returns
** ATL_OK; ATL_ERRCODEC, having written nothing, when some value is of
** another type (the caller then encodes them all the usual way); or
** ATL_ERRMEM (the caller frees 'out').
*/
int atl_codec_encode_plain (lua_State *L, int first, int n,
                            atl_Buffer *out) {
  unsigned char b[3 + MAXVARINT > SCALARMAX ? 3 + MAXVARINT : SCALARMAX];
  int i;
  for (i = 0; i < n; i++) {
    int t = lua_type(L, first + i);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER
        && t != LUA_TSTRING)
      return ATL_ERRCODEC;
  }
  b[0] = 'A';
  b[1] = 'L';
  b[2] = VERSION;
  if (atl_buffer_append(out, b, 3 + (size_t)putvarint(b + 3, (uint64_t)n))
      != ATL_OK)
    return ATL_ERRMEM;
  for (i = 0; i < n; i++) {
    const char *s;
    size_t l;
    size_t len = enc_scalar(L, first + i, b, &s, &l);
    if (atl_buffer_append(out, b, len) != ATL_OK
        || (s != NULL && atl_buffer_append(out, s, l) != ATL_OK))
      return ATL_ERRMEM;
  }
  return ATL_OK;
}


/*
** {======================================================================
** Decoding
** =======================================================================
*/

typedef struct Dec {
  lua_State *L;
  const unsigned char *start, *p, *end;
  int flags;
  int depth;
  lua_Integer nextid;
  int objs;           /* stack slot: id + 1 -> object (nil until needed) */
  lua_Integer envfn;  /* id of the function owning the '_ENV' cell, or -1 */
  int envup;
  int namedg;         /* the last NAMED value was "_G" itself */
  void *const *handles;  /* the host objects that the buffer holds, one */
  size_t nhandles;       /* per HANDLE tag, in the order of the tags */
  size_t nexthandle;
} Dec;


l_noret corrupted (Dec *d, const char *what) {
  luaL_error(d->L, "corrupted buffer: %s at byte %d", what,
             (int)(d->p - d->start));
  abort();  /* not reached */
}


l_noret truncated (Dec *d, const char *what) {
  luaL_error(d->L, "truncated buffer: %s at byte %d", what,
             (int)(d->p - d->start));
  abort();  /* not reached */
}


static void need (Dec *d, size_t n, const char *what) {
  if ((size_t)(d->end - d->p) < n)
    truncated(d, what);
}


static int getbyte (Dec *d, const char *what) {
  need(d, 1, what);
  return *d->p++;
}


static uint64_t getvarint (Dec *d, const char *what) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < MAXVARINT; i++) {
    unsigned int c;
    need(d, 1, what);
    c = *d->p;
    if (i == MAXVARINT - 1 && c > 1)
      corrupted(d, "varint overflow");
    d->p++;
    v |= (uint64_t)(c & 0x7f) << (7 * i);
    if (!(c & 0x80))
      return v;
  }
  d->p--;
  corrupted(d, "varint too long");
}


/* A varint length that must fit in the remaining bytes. */
static size_t getlen (Dec *d, const char *what) {
  uint64_t l = getvarint(d, what);
  if (l > (uint64_t)(d->end - d->p))
    truncated(d, what);
  return (size_t)l;
}


static void dec_value (Dec *d);


static void dec_enter (Dec *d) {
  if (d->depth >= ATL_CODEC_MAXDEPTH)
    luaL_error(d->L, "corrupted buffer: value nested deeper than %d levels "
               "at byte %d", ATL_CODEC_MAXDEPTH, (int)(d->p - d->start));
  d->depth++;
  luaL_checkstack(d->L, 8, "value nested too deeply");
}


/* Give the object on the top the next id. */
static void dec_newid (Dec *d) {
  lua_State *L = d->L;
  if (lua_isnil(L, d->objs)) {
    lua_createtable(L, 4, 0);
    lua_replace(L, d->objs);
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, d->objs, d->nextid + 1);
  d->nextid++;
}


/* Push the object 'dist' ids back from the next id. */
static void dec_getobj (Dec *d, uint64_t dist) {
  if (dist == 0 || dist > (uint64_t)d->nextid)
    corrupted(d, "reference to an unknown object");
  lua_rawgeti(d->L, d->objs, d->nextid - (lua_Integer)dist + 1);
}


static void dec_table (Dec *d) {
  lua_State *L = d->L;
  int t;
  dec_enter(d);
  lua_newtable(L);
  t = lua_gettop(L);
  dec_newid(d);
  for (;;) {
    need(d, 1, "table entry");
    if (*d->p == T_END) {
      d->p++;
      break;
    }
    dec_value(d);  /* key */
    if (lua_isnil(L, -1))
      corrupted(d, "nil table key");
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number k = lua_tonumber(L, -1);
      if (k != k)
        corrupted(d, "NaN table key");
    }
    dec_value(d);  /* value */
    lua_rawset(L, t);
  }
  dec_value(d);  /* metatable */
  if (lua_istable(L, -1))
    lua_setmetatable(L, t);
  else if (lua_isnil(L, -1))
    lua_pop(L, 1);
  else
    corrupted(d, "metatable is not a table");
  d->depth--;
}


typedef struct Reader {
  const char *p;
  size_t n;
} Reader;

static const char *reader (lua_State *L, void *ud, size_t *size) {
  Reader *r = (Reader *)ud;
  (void)L;
  if (r->n == 0)
    return NULL;
  *size = r->n;
  r->n = 0;
  return r->p;
}


/* Is upvalue 'n' of the function at 'f' called '_ENV'? */
static int isenv (lua_State *L, int f, int n) {
  const char *name = lua_getupvalue(L, f, n);
  if (name == NULL)
    return 0;
  lua_pop(L, 1);
  return strcmp(name, "_ENV") == 0;
}


static void dec_upvalue (Dec *d, int f, lua_Integer myid, int i) {
  lua_State *L = d->L;
  int kind = getbyte(d, "upvalue");
  if (kind == UP_VALUE) {
    int named = (d->p < d->end && *d->p == T_NAMED);
    d->namedg = 0;
    dec_value(d);
    if ((d->flags & ATL_CODEC_JOINENV) && named && d->namedg
        && isenv(L, f, i)) {
      if (d->envfn < 0) {  /* the first one is the cell */
        d->envfn = myid;
        d->envup = i;
        lua_setupvalue(L, f, i);
      }
      else {
        lua_pop(L, 1);
        lua_rawgeti(L, d->objs, d->envfn + 1);
        lua_upvaluejoin(L, f, i, lua_gettop(L), d->envup);
        lua_pop(L, 1);
      }
    }
    else
      lua_setupvalue(L, f, i);
  }
  else if (kind == UP_SHARED || kind == UP_SHAREDFWD) {
    uint64_t dist = getvarint(d, "upvalue reference");
    uint64_t n = getvarint(d, "upvalue index");
    int g;
    if (kind == UP_SHARED ? dist > (uint64_t)myid
                          : dist == 0 || dist >= (uint64_t)(d->nextid - myid))
      corrupted(d, "shared upvalue of an unknown function");
    if (kind == UP_SHAREDFWD)
      dist = (uint64_t)(-(lua_Integer)dist);  /* the id below is myid + dist */
    lua_rawgeti(L, d->objs, myid - (lua_Integer)dist + 1);
    g = lua_gettop(L);
    if (lua_type(L, g) != LUA_TFUNCTION)
      corrupted(d, "shared upvalue of something not a function");
    if (n < 1 || n > 255 || (dist == 0 && n >= (uint64_t)i)
        || lua_getupvalue(L, g, (int)n) == NULL)
      corrupted(d, "bad shared upvalue index");
    lua_pop(L, 1);
    lua_upvaluejoin(L, f, i, g, (int)n);
    lua_pop(L, 1);
  }
  else {
    d->p--;
    corrupted(d, "bad upvalue kind");
  }
}


static void dec_function (Dec *d) {
  lua_State *L = d->L;
  const unsigned char *code;
  size_t len;
  uint64_t nups;
  lua_Integer myid;
  Reader r;
  int f, i, st;
  if (d->flags & ATL_CODEC_NOFUNCTIONS) {
    d->p--;
    corrupted(d, "a function where functions are not accepted");
  }
  dec_enter(d);
  len = getlen(d, "function bytecode");
  code = d->p;
  d->p += len;
  need(d, 8, "function checksum");
  if (get64(d->p) != checksum(code, len)) {
    d->p = code;
    corrupted(d, "function bytecode fails its checksum");
  }
  d->p += 8;
  r.p = (const char *)code;
  r.n = len;
  st = lua_load(L, reader, &r, "=(codec)", "b");
  if (st != LUA_OK) {
    if (st == LUA_ERRMEM)
      lua_error(L);
    d->p = code;
    luaL_error(L, "corrupted buffer: bad function bytecode at byte %d (%s)",
               (int)(d->p - d->start), lua_tostring(L, -1));
  }
  f = lua_gettop(L);
  myid = d->nextid;
  dec_newid(d);
  nups = getvarint(d, "upvalue count");
  if (nups != (uint64_t)nupvalues(L, f))
    corrupted(d, "upvalue count does not match the function");
  for (i = 1; i <= (int)nups; i++)
    dec_upvalue(d, f, myid, i);
  d->depth--;
}


/*
** NAMED: push 'package.loaded[module]' (or 'require(module)') and then its
** field, if any. Errors of 'require' propagate.
*/
static void dec_named (Dec *d) {
  lua_State *L = d->L;
  const char *mod, *field;
  size_t lmod, lfield;
  int top = lua_gettop(L);
  lmod = getlen(d, "module name");
  mod = (const char *)d->p;
  d->p += lmod;
  lfield = getlen(d, "field name");
  field = (const char *)d->p;
  d->p += lfield;
  if (lmod == 0 || memchr(mod, 0, lmod) || memchr(field, 0, lfield))
    corrupted(d, "bad module name");
  d->namedg = (lmod == 2 && memcmp(mod, "_G", 2) == 0 && lfield == 0);
  luaL_checkstack(L, 6, NULL);
  lua_pushlstring(L, mod, lmod);           /* top + 1 */
  lua_pushlstring(L, field, lfield);       /* top + 2 */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, top + 1);
  if (!lua_istable(L, -2) || lua_rawget(L, -2) == LUA_TNIL) {
    lua_pop(L, 1);
    /* a library that the state loads on first use needs no 'package' */
    if (!atl_state_loadlazy(L, lua_tostring(L, top + 1))) {
      if (lua_getglobal(L, "require") != LUA_TFUNCTION)
        luaL_error(L, "cannot load module '%s': no function 'require'",
                   lua_tostring(L, top + 1));
      lua_pushvalue(L, top + 1);
      lua_call(L, 1, 1);
    }
  }
  if (lfield > 0) {  /* '__index' may make a field on first use (atasker) */
    lua_pushvalue(L, top + 2);
    if (!lua_istable(L, -2) || lua_gettable(L, -2) == LUA_TNIL)
      luaL_error(L, "cannot copy '%s.%s': module '%s' has no field '%s'",
                 lua_tostring(L, top + 1), lua_tostring(L, top + 2),
                 lua_tostring(L, top + 1), lua_tostring(L, top + 2));
  }
  else if (lua_isnil(L, -1))
    luaL_error(L, "cannot copy module '%s': it is nil here",
               lua_tostring(L, top + 1));
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}


static void dec_handle (Dec *d) {
  int kind;
  void *obj;
  if (d->flags & ATL_CODEC_NOHANDLES) {
    d->p--;
    corrupted(d, "an atasker handle where handles are not accepted");
  }
  need(d, 9, "handle");
  kind = d->p[0];
  obj = (void *)(uintptr_t)get64(d->p + 1);
  if (kind < 1 || kind > ATL_H_MAX || obj == NULL)
    corrupted(d, "bad handle");
  /* a pointer is trusted only if the buffer holds a reference on it: the
  ** encoders add one per HANDLE tag, in the order of the tags. In a
  ** process-pool child, a buffer from the parent names the parent's
  ** objects; the child holds its own object for each, in the same order. */
  if (d->nexthandle >= d->nhandles)
    corrupted(d, "a handle that this buffer does not hold");
  if (atl_statedata(d->L)->is_child)
    obj = d->handles[d->nexthandle];
  else if (d->handles[d->nexthandle] != obj)
    corrupted(d, "a handle that this buffer does not hold");
  d->nexthandle++;
  d->p += 9;
  atl_handle_push(d->L, obj, kind);
}


/* Decode one value and push it. */
static void dec_value (Dec *d) {
  lua_State *L = d->L;
  int tag = getbyte(d, "value");
  switch (tag) {
    case T_NIL:
      lua_pushnil(L);
      break;
    case T_FALSE:
      lua_pushboolean(L, 0);
      break;
    case T_TRUE:
      lua_pushboolean(L, 1);
      break;
    case T_INT:
      need(d, 8, "integer");
      lua_pushinteger(L, (lua_Integer)get64(d->p));
      d->p += 8;
      break;
    case T_FLOAT: {
      uint64_t bits;
      lua_Number n;
      need(d, 8, "float");
      bits = get64(d->p);
      memcpy(&n, &bits, 8);
      lua_pushnumber(L, n);
      d->p += 8;
      break;
    }
    case T_STRING: {
      size_t l = getlen(d, "string");
      lua_pushlstring(L, (const char *)d->p, l);
      d->p += l;
      break;
    }
    case T_TABLE:
      dec_table(d);
      break;
    case T_REF:
      dec_getobj(d, getvarint(d, "reference"));
      break;
    case T_FUNCTION:
      dec_function(d);
      break;
    case T_NAMED:
      dec_named(d);
      break;
    case T_HANDLE:
      dec_handle(d);
      break;
    default:
      d->p--;
      corrupted(d, (tag == T_END) ? "unexpected end of table" : "unknown tag");
  }
}


/*
** Read 'b' into 'v' when it holds exactly one value that is nil, a boolean,
** a number or a string of at most ATL_CODEC_PLAINSTR bytes, and no host
** object; returns 1 then, else 0. Touches no Lua state: the caller may let
** go of 'b' before it pushes 'v' (pushing a string can raise).
*/
int atl_codec_peek_plain (const atl_Buffer *b, atl_PlainValue *v) {
  const unsigned char *p = b->data, *end = b->data + b->len;
  size_t l;
  if (b->len < 5 || b->nhandles != 0 || p[0] != 'A' || p[1] != 'L'
      || p[2] != VERSION || p[3] != 1)
    return 0;
  p += 4;
  v->type = *p++;
  switch (v->type) {
    case T_NIL: case T_FALSE: case T_TRUE:
      return p == end;
    case T_INT: case T_FLOAT:
      if (end - p != 8) return 0;
      v->bits = get64(p);
      return 1;
    case T_STRING:
      if (p == end || (*p & 0x80) != 0) return 0;  /* one-byte length */
      l = *p++;
      if (l > ATL_CODEC_PLAINSTR || (size_t)(end - p) != l) return 0;
      memcpy(v->s, p, l);
      v->len = l;
      return 1;
    default:
      return 0;
  }
}


/* [-0, +1, m] Push the value that 'atl_codec_peek_plain' read. Only a
** string allocates: a memory error then raises in the Lua function that
** pushes it (the trampoline), as any push there would. */
void atl_codec_push_plain (lua_State *L, const atl_PlainValue *v) {
  switch (v->type) {
    case T_NIL: lua_pushnil(L); break;
    case T_FALSE: lua_pushboolean(L, 0); break;
    case T_TRUE: lua_pushboolean(L, 1); break;
    case T_INT: lua_pushinteger(L, (lua_Integer)v->bits); break;
    case T_FLOAT: {
      lua_Number d;
      memcpy(&d, &v->bits, 8);
      lua_pushnumber(L, d);
      break;
    }
    default: lua_pushlstring(L, v->s, v->len); break;
  }
}


/*
** Decode all the values of 'data' and push them. A nil placeholder below
** them holds the object table while decoding; it is removed at the end.
*/
int atl_codec_decode_raw (lua_State *L, const atl_Buffer *b, int flags,
                          int *envup) {
  Dec d;
  uint64_t count;
  int base, i;
  d.L = L;
  d.start = d.p = b->data;
  d.end = b->data + b->len;
  d.handles = (void *const *)b->handles;
  d.nhandles = b->nhandles;
  d.nexthandle = 0;
  d.flags = flags;
  d.depth = 0;
  d.nextid = 0;
  d.envfn = -1;
  d.envup = 0;
  d.namedg = 0;
  if (envup != NULL)
    *envup = 0;
  need(&d, 3, "header");
  if (d.p[0] != 'A' || d.p[1] != 'L')
    corrupted(&d, "not an atasker-lua buffer");
  if (d.p[2] != VERSION) {
    d.p += 2;
    corrupted(&d, "unsupported format version");
  }
  d.p += 3;
  count = getvarint(&d, "value count");
  if (count > (uint64_t)(d.end - d.p))
    truncated(&d, "fewer values than declared");
  if (count > 1000000)
    corrupted(&d, "too many values");
  luaL_checkstack(L, (int)count + 4, "too many values to decode");
  lua_pushnil(L);
  base = lua_gettop(L);
  d.objs = base;
  for (i = 0; i < (int)count; i++)
    dec_value(&d);
  if (d.p != d.end)
    corrupted(&d, "trailing bytes after the last value");
  if (d.envfn >= 0) {
    lua_rawgeti(L, d.objs, d.envfn + 1);
    if (envup != NULL)
      *envup = d.envup;
    count++;
  }
  lua_remove(L, base);
  return (int)count;
}

/* }====================================================================== */


/*
** {======================================================================
** Protected entry points
** =======================================================================
*/

typedef struct Params {
  int n;
  const char *const *labels;
  int nlabels;
  const char *what;
  int flags;
  atl_Buffer *out;
  const atl_Buffer *buf;
} Params;


/* A malloc'd copy of the error at the top (never converts: no raising). */
static char *errcopy (lua_State *L) {
  const char *msg = "unknown error (error object is not a string)";
  size_t l;
  char *s;
  if (lua_type(L, -1) == LUA_TSTRING)
    msg = lua_tolstring(L, -1, &l);
  l = strlen(msg);
  s = (char *)malloc(l + 1);
  if (s != NULL)
    memcpy(s, msg, l + 1);
  return s;
}


/* Map a 'lua_pcall' status and its error to a codec status. */
static int errstatus (lua_State *L, int st) {
  if (st == LUA_ERRMEM)
    return ATL_ERRMEM;
  if (lua_type(L, -1) == LUA_TSTRING
      && strcmp(lua_tostring(L, -1), NOMEMMSG) == 0)
    return ATL_ERRMEM;
  return ATL_ERRCODEC;
}


static char *nomemcopy (void) {
  char *s = (char *)malloc(sizeof(NOMEMMSG));
  if (s != NULL)
    memcpy(s, NOMEMMSG, sizeof(NOMEMMSG));
  return s;
}


/* Stack: params (light userdata), then the 'n' values to encode. */
static int pencode (lua_State *L) {
  Params *p = (Params *)lua_touserdata(L, 1);
  atl_codec_encode_labelled(L, 2, p->n, p->labels, p->nlabels, p->what,
                            p->flags, p->out);
  return 0;
}


int atl_codec_encode (lua_State *L, int first, int n, const char *what,
                      int flags, atl_Buffer *out, char **err) {
  return atl_codec_encode_names(L, first, n, NULL, 0, what, flags, out, err);
}


int atl_codec_encode_names (lua_State *L, int first, int n,
                            const char *const *labels, int nlabels,
                            const char *what, int flags, atl_Buffer *out,
                            char **err) {
  Params p;
  int i, st;
  *err = NULL;
  first = lua_absindex(L, first);
  if (n < 0 || !lua_checkstack(L, n + 2)) {
    *err = nomemcopy();
    return ATL_ERRMEM;
  }
  p.n = n;
  p.labels = labels;
  p.nlabels = nlabels;
  p.what = what;
  p.flags = flags;
  p.out = out;
  lua_pushcfunction(L, pencode);
  lua_pushlightuserdata(L, &p);
  for (i = 0; i < n; i++)
    lua_pushvalue(L, first + i);
  st = lua_pcall(L, n + 1, 0, 0);
  if (st == LUA_OK)
    return ATL_OK;
  st = errstatus(L, st);
  *err = errcopy(L);
  lua_pop(L, 1);
  atl_buffer_free(out);
  return st;
}


/* Stack: params (light userdata). Leaves the decoded values. */
static int pdecode (lua_State *L) {
  Params *p = (Params *)lua_touserdata(L, 1);
  int envup;
  lua_pop(L, 1);
  return atl_codec_decode_raw(L, p->buf, p->flags, &envup);
}


int atl_codec_decode (lua_State *L, const atl_Buffer *b, int flags,
                      int *nout, char **err) {
  Params p;
  int top = lua_gettop(L), st;
  *err = NULL;
  *nout = 0;
  if (!lua_checkstack(L, 2)) {
    *err = nomemcopy();
    return ATL_ERRMEM;
  }
  p.buf = b;
  p.flags = flags;
  lua_pushcfunction(L, pdecode);
  lua_pushlightuserdata(L, &p);
  st = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (st == LUA_OK) {
    *nout = lua_gettop(L) - top;
    return ATL_OK;
  }
  st = errstatus(L, st);
  *err = errcopy(L);
  lua_settop(L, top);
  return st;
}

/* }====================================================================== */
