/*
** The value codec's encoder: Lua values to bytes.
** The format is described in include/atl_codec.h.
*/
#define codec_encode_c

#include <stdlib.h>
#include <string.h>

#include "codec_private.h"


/*
** {======================================================================
** Encoding
** =======================================================================
*/

static void put (Enc *e, const void *p, size_t n) {
  if (atl_buffer_append(e->out, p, n) != ATL_OK)
    atl_codec_nomem(e->L);
}


static void putbyte (Enc *e, int b) {
  unsigned char c = (unsigned char)b;
  put(e, &c, 1);
}


static void enc_value (Enc *e, int idx);


/* Write record 'k' of the name cache (a NAMED value). */
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
  lua_Integer k = atl_codec_findnamed(e, idx);
  if (k == 0)
    return 0;
  putnamed(e, k);
  return 1;
}


/*
** If the table or function at 'idx' was already written, write a REF to it
** and return 1. The first object written is a root value, so it is known
** by its stack index 'obj0'; the table at slot 'objs' (object -> id) is
** created only for a second one, which most small values never have.
*/
static int enc_ref (Enc *e, int idx) {
  lua_State *L = e->L;
  unsigned char b[1 + ATL_CODEC_MAXVARINT];
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
  b[0] = ATL_T_REF;
  put(e, b, 1 + (size_t)atl_codec_putvarint(b + 1, (uint64_t)(e->nextid - id)));
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
    atl_codec_toodeep(e);
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
  putbyte(e, ATL_T_TABLE);
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
  putbyte(e, ATL_T_END);
  s->kind = SEG_META;
  if (lua_getmetatable(L, idx)) {
    enc_value(e, lua_gettop(L));
    lua_pop(L, 1);
  }
  else
    putbyte(e, ATL_T_NIL);
  e->nseg--;
  e->depth--;
}


/* 'lua_dump' writer: appends to the output buffer. */
static int writer (lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return atl_buffer_append((atl_Buffer *)ud, p, n) != ATL_OK;
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
  unsigned char b[ATL_CODEC_MAXVARINT];
  int n, st;
  lua_pushvalue(L, idx);
  st = lua_dump(L, writer, out, 0);
  lua_pop(L, 1);
  if (st != 0)
    atl_codec_nomem(L);
  len = out->len - start;
  n = atl_codec_putvarint(b, len);
  put(e, b, (size_t)n);  /* make room */
  memmove(out->data + start + n, out->data + start, len);
  memcpy(out->data + start, b, (size_t)n);
  atl_codec_put64(b, atl_codec_checksum(out->data + start + n, len));
  put(e, b, 8);
}


static void enc_function (Enc *e, int idx) {
  lua_State *L = e->L;
  lua_Integer myid;
  unsigned char b[1 + 2 * ATL_CODEC_MAXVARINT];
  int nups, i;
  Seg *s;
  if (enc_ref(e, idx) || enc_named(e, idx))
    return;
  if (lua_iscfunction(L, idx)) {
    if (!e->rebuilt) {  /* maybe added to a module since the cache was built */
      atl_codec_loadcache(e, LC_REBUILD);
      if (enc_named(e, idx))
        return;
    }
    atl_codec_refuseother(e, idx);
  }
  if (e->flags & ATL_CODEC_NOFUNCTIONS)
    atl_codec_refuse(e, idx, "functions cannot be copied here (results and "
                     "values sent back from a child process)",
                     "return plain data instead");
  enter(e);
  myid = e->nextid;
  newid(e, idx);
  putbyte(e, ATL_T_FUNCTION);
  enc_bytecode(e, idx);
  nups = atl_codec_nupvalues(L, idx);
  put(e, b, (size_t)atl_codec_putvarint(b, (uint64_t)nups));
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
      k = atl_codec_findnamed(e, v);
    if (k != 0) {  /* named: a value, never a join (see the top) */
      putbyte(e, ATL_UP_VALUE);
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
          b[n++] = ATL_UP_SHARED;
          n += atl_codec_putvarint(b + n, (uint64_t)(myid - other));
        }
        else {  /* nested in an earlier upvalue of this function */
          b[n++] = ATL_UP_SHAREDFWD;
          n += atl_codec_putvarint(b + n, (uint64_t)(other - myid));
        }
        n += atl_codec_putvarint(b + n, (uint64_t)(u % 256));
        put(e, b, (size_t)n);
      }
      else {
        lua_pushlightuserdata(L, uid);
        lua_pushinteger(L, myid * 256 + i);
        lua_rawset(L, e->upids);
        putbyte(e, ATL_UP_VALUE);
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
    atl_codec_refuseother(e, idx);
  if (e->flags & ATL_CODEC_NOHANDLES)
    atl_codec_refuse(e, idx,
                     "atasker handles cannot be copied to another process",
           "pass plain values instead");
  if (h->obj == NULL)
    atl_codec_refuse(e, idx, "the handle is already released",
                     "pass a live handle");
  b[0] = ATL_T_HANDLE;
  b[1] = (unsigned char)h->kind;
  atl_codec_put64(b + 2, (uint64_t)(uintptr_t)h->obj);
  put(e, b, 10);
  if (atl_buffer_add_handle(e->out, h->obj) != ATL_OK)
    atl_codec_nomem(e->L);
}


/*
** Write the encoding of the nil, boolean, number or string at 'idx' into
** 'b' (at least SCALARMAX bytes) and return its length; a string's bytes
** follow it ('*s', '*l' are set to them, and stay NULL / 0 otherwise).
** Raises nothing: 'lua_tolstring' converts nothing for a string.
*/
#define SCALARMAX (1 + ATL_CODEC_MAXVARINT > 9 ? 1 + ATL_CODEC_MAXVARINT : 9)

static size_t enc_scalar (lua_State *L, int idx, unsigned char *b,
                          const char **s, size_t *l) {
  *s = NULL;
  *l = 0;
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
      b[0] = lua_toboolean(L, idx) ? ATL_T_TRUE : ATL_T_FALSE;
      return 1;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        b[0] = ATL_T_INT;
        atl_codec_put64(b + 1, (uint64_t)lua_tointeger(L, idx));
      }
      else {
        lua_Number d = lua_tonumber(L, idx);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        b[0] = ATL_T_FLOAT;
        atl_codec_put64(b + 1, bits);
      }
      return 9;
    case LUA_TSTRING:
      *s = lua_tolstring(L, idx, l);
      b[0] = ATL_T_STRING;
      return 1 + (size_t)atl_codec_putvarint(b + 1, *l);
    default:
      b[0] = ATL_T_NIL;
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
      atl_codec_refuseother(e, idx);
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
  unsigned char b[3 + ATL_CODEC_MAXVARINT];
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
  b[0] = ATL_CODEC_MAGIC0;
  b[1] = ATL_CODEC_MAGIC1;
  b[2] = ATL_CODEC_VERSION;
  for (pass = 0; ; pass++) {
    lua_settop(L, base);
    lua_settop(L, base + 4);  /* the slots, nil */
    e.depth = 0;
    e.nextid = 0;
    e.obj0 = 0;
    e.nseg = 0;
    e.checked = e.rebuilt = (pass > 0);  /* a restart follows a rebuild */
    e.looked = e.restart = 0;
    put(&e, b, 3 + (size_t)atl_codec_putvarint(b + 3, (uint64_t)n));
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
  unsigned char b[3 + ATL_CODEC_MAXVARINT > SCALARMAX ? 3 + ATL_CODEC_MAXVARINT
                                                    : SCALARMAX];
  int i;
  for (i = 0; i < n; i++) {
    int t = lua_type(L, first + i);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER
        && t != LUA_TSTRING)
      return ATL_ERRCODEC;
  }
  b[0] = ATL_CODEC_MAGIC0;
  b[1] = ATL_CODEC_MAGIC1;
  b[2] = ATL_CODEC_VERSION;
  if (atl_buffer_append(out, b,
                        3 + (size_t)atl_codec_putvarint(b + 3, (uint64_t)n))
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
    *err = atl_codec_nomemcopy();
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
  st = atl_codec_errstatus(L, st);
  *err = atl_codec_errcopy(L);
  lua_pop(L, 1);
  atl_buffer_free(out);
  return st;
}
