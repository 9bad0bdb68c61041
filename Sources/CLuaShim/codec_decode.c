/*
** The value codec's decoder: bytes to Lua values. It never trusts its
** input: every byte is checked before it is used.
** The format is described in include/atl_codec.h.
*/
#define codec_decode_c

#include <stdlib.h>
#include <string.h>

#include "codec_private.h"


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
  for (i = 0; i < ATL_CODEC_MAXVARINT; i++) {
    unsigned int c;
    need(d, 1, what);
    c = *d->p;
    if (i == ATL_CODEC_MAXVARINT - 1 && c > 1)
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
    if (*d->p == ATL_T_END) {
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
  if (kind == ATL_UP_VALUE) {
    int named = (d->p < d->end && *d->p == ATL_T_NAMED);
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
  else if (kind == ATL_UP_SHARED || kind == ATL_UP_SHAREDFWD) {
    uint64_t dist = getvarint(d, "upvalue reference");
    uint64_t n = getvarint(d, "upvalue index");
    int g;
    if (kind == ATL_UP_SHARED ? dist > (uint64_t)myid
                          : dist == 0 || dist >= (uint64_t)(d->nextid - myid))
      corrupted(d, "shared upvalue of an unknown function");
    if (kind == ATL_UP_SHAREDFWD)
      dist = (uint64_t)(-(lua_Integer)dist);  /* the id below is myid + dist */
    lua_rawgeti(L, d->objs, myid - (lua_Integer)dist + 1);
    g = lua_gettop(L);
    if (lua_type(L, g) != LUA_TFUNCTION)
      corrupted(d, "shared upvalue of something not a function");
    if (n < 1 || n > ATL_CODEC_MAXUPVALUES || (dist == 0 && n >= (uint64_t)i)
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
  if (atl_codec_get64(d->p) != atl_codec_checksum(code, len)) {
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
  if (nups != (uint64_t)atl_codec_nupvalues(L, f))
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
  obj = (void *)(uintptr_t)atl_codec_get64(d->p + 1);
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
    case ATL_T_NIL:
      lua_pushnil(L);
      break;
    case ATL_T_FALSE:
      lua_pushboolean(L, 0);
      break;
    case ATL_T_TRUE:
      lua_pushboolean(L, 1);
      break;
    case ATL_T_INT:
      need(d, 8, "integer");
      lua_pushinteger(L, (lua_Integer)atl_codec_get64(d->p));
      d->p += 8;
      break;
    case ATL_T_FLOAT: {
      uint64_t bits;
      lua_Number n;
      need(d, 8, "float");
      bits = atl_codec_get64(d->p);
      memcpy(&n, &bits, 8);
      lua_pushnumber(L, n);
      d->p += 8;
      break;
    }
    case ATL_T_STRING: {
      size_t l = getlen(d, "string");
      lua_pushlstring(L, (const char *)d->p, l);
      d->p += l;
      break;
    }
    case ATL_T_TABLE:
      dec_table(d);
      break;
    case ATL_T_REF:
      dec_getobj(d, getvarint(d, "reference"));
      break;
    case ATL_T_FUNCTION:
      dec_function(d);
      break;
    case ATL_T_NAMED:
      dec_named(d);
      break;
    case ATL_T_HANDLE:
      dec_handle(d);
      break;
    default:
      d->p--;
      corrupted(d, (tag == ATL_T_END) ? "unexpected end of table"
                                    : "unknown tag");
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
  if (b->len < 5 || b->nhandles != 0 || p[0] != ATL_CODEC_MAGIC0
      || p[1] != ATL_CODEC_MAGIC1
      || p[2] != ATL_CODEC_VERSION || p[3] != 1)
    return 0;
  p += 4;
  v->type = *p++;
  switch (v->type) {
    case ATL_T_NIL: case ATL_T_FALSE: case ATL_T_TRUE:
      return p == end;
    case ATL_T_INT: case ATL_T_FLOAT:
      if (end - p != 8) return 0;
      v->bits = atl_codec_get64(p);
      return 1;
    case ATL_T_STRING:
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
    case ATL_T_NIL: lua_pushnil(L); break;
    case ATL_T_FALSE: lua_pushboolean(L, 0); break;
    case ATL_T_TRUE: lua_pushboolean(L, 1); break;
    case ATL_T_INT: lua_pushinteger(L, (lua_Integer)v->bits); break;
    case ATL_T_FLOAT: {
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
  if (d.p[0] != ATL_CODEC_MAGIC0 || d.p[1] != ATL_CODEC_MAGIC1)
    corrupted(&d, "not an atasker-lua buffer");
  if (d.p[2] != ATL_CODEC_VERSION) {
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
    *err = atl_codec_nomemcopy();
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
  st = atl_codec_errstatus(L, st);
  *err = atl_codec_errcopy(L);
  lua_settop(L, top);
  return st;
}

/* }====================================================================== */
