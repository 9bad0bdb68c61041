/*
** The value codec's wire primitives: numbers, checksum, and what the
** encoder and the decoder share (errors of their protected calls).
** The format is described in include/atl_codec.h.
*/
#define codec_wire_c

#include <stdlib.h>
#include <string.h>

#include "codec_private.h"


/* FNV-1a, 64 bits, of 'n' bytes at 'p'. */
uint64_t atl_codec_checksum (const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}


/* Write 'v' as a varint at 'b' (room for ATL_CODEC_MAXVARINT bytes); its
** length. */
int atl_codec_putvarint (unsigned char *b, uint64_t v) {
  int n = 0;
  while (v >= 0x80) {
    b[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  b[n++] = (unsigned char)v;
  return n;
}


void atl_codec_put64 (unsigned char *b, uint64_t v) {
  int i;
  for (i = 0; i < 8; i++) {
    b[i] = (unsigned char)v;
    v >>= 8;
  }
}


uint64_t atl_codec_get64 (const unsigned char *b) {
  uint64_t v = 0;
  int i;
  for (i = 7; i >= 0; i--)
    v = (v << 8) | b[i];
  return v;
}


/* Raise the memory error (its message is what 'errstatus' knows). */
atl_noret atl_codec_nomem (lua_State *L) {
  lua_pushliteral(L, NOMEMMSG);
  lua_error(L);
  abort();  /* not reached */
}


/* Number of upvalues of the function at 'idx'. */
int atl_codec_nupvalues (lua_State *L, int idx) {
  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  return ar.nups;
}


/* A malloc'd copy of the error at the top (never converts: no raising). */
char *atl_codec_errcopy (lua_State *L) {
  const char *msg = "unknown error (error object is not a string)";
  size_t l;
  char *s;
  if (lua_type(L, -1) == LUA_TSTRING)
    msg = lua_tolstring(L, -1, &l);
  l = strlen(msg);
  s = atl_fault() ? NULL : (char *)malloc(l + 1);
  if (s != NULL)
    memcpy(s, msg, l + 1);
  return s;
}


/* Map a 'lua_pcall' status and its error to a codec status. */
int atl_codec_errstatus (lua_State *L, int st) {
  if (st == LUA_ERRMEM)
    return ATL_ERRMEM;
  if (lua_type(L, -1) == LUA_TSTRING
      && strcmp(lua_tostring(L, -1), NOMEMMSG) == 0)
    return ATL_ERRMEM;
  return ATL_ERRCODEC;
}


char *atl_codec_nomemcopy (void) {
  char *s = (char *)malloc(sizeof(NOMEMMSG));
  if (s != NULL)
    memcpy(s, NOMEMMSG, sizeof(NOMEMMSG));
  return s;
}
