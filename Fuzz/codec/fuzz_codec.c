/*
** libFuzzer target: the C value codec (Sources/CLuaShim/codec_*.c).
**
** Each input is a codec buffer. It is decoded into a real shim state
** (atl_state_open: the standard libraries, 'atasker', the name cache) as a
** process-pool child decodes a buffer from its parent: the k-th HANDLE tag
** stands for the k-th of NFAKE host objects of this file, whatever pointer
** the bytes hold. Then:
**   - a buffer that the plain fast path accepts (atl_codec_peek_plain)
**     decodes to the same value through the full decoder;
**   - what decoded is encoded again (atl_codec_encode), which must succeed
**     unless the value holds something that cannot be copied (a userdata
**     reached by name), and decoded again, which must succeed with the same
**     values (compared structurally: types, integer/float, float bits,
**     bytes, tables entry by entry with their metatables, sharing and
**     cycles as a one-to-one map of objects, functions by their dumped
**     bytecode and their upvalues with the sharing of upvalue cells);
**   - the plain encoder (atl_codec_encode_plain), when it takes the values,
**     writes the same bytes as the general one, and values without tables
**     or functions encode to the same bytes twice (the format is canonical
**     there);
**   - after a full collection every host object is released as often as it
**     was retained.
** A mismatch aborts with a message, which libFuzzer reports as a crash.
**
** Limits of the comparison: a table key that is itself a table or function
** and is not reached elsewhere is compared by count only (matching keys of
** two graphs in general is not worth it here).
**
** With ATL_FUZZ_SEED_DIR set, the target writes its seed corpus there (the
** encodings of the values in 'seeds' below) and exits.
*/
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim_private.h"

#define NFAKE 8

typedef struct Fake {
  long refs;
  int id;
} Fake;

static Fake fakes[NFAKE];
static void *fakeptrs[NFAKE];
static long baseline[NFAKE];
static lua_State *L;

static void fail (const char *what) {
  fprintf(stderr, "fuzz_codec: %s\n", what);
  abort();
}

static Fake *fakeof (void *obj) {
  Fake *f = (Fake *)obj;
  if (f < fakes || f >= fakes + NFAKE)
    fail("a host callback got a pointer that is not a host object");
  return f;
}

static void retain (void *obj) { fakeof(obj)->refs++; }

static void release (void *obj) {
  Fake *f = fakeof(obj);
  if (--f->refs < 0)
    fail("a host object released more often than retained");
}

/* Every host call fails cleanly: a finalizer may reach one by name. */
static int hostcall (atl_Call *call) {
  static const char msg[] = "no host in the fuzz target";
  call->error = (char *)malloc(sizeof(msg));
  if (call->error != NULL)
    memcpy(call->error, msg, sizeof(msg));
  return ATL_ERRRUN;
}


/*
** {======================================================================
** Structural comparison of the values at 'a' and 'b'
** =======================================================================
*/

/* Stack slots of the maps: object of the first set -> object of the second,
** the reverse, and the same for upvalue cells (light userdata keys). */
static int map, rmap, upmap, rupmap;

typedef struct Dump {
  unsigned char *p;
  size_t n, cap;
} Dump;

static int dumpwriter (lua_State *l, const void *p, size_t n, void *ud) {
  Dump *d = (Dump *)ud;
  (void)l;
  if (d->n + n > d->cap) {
    size_t cap = (d->cap == 0) ? 256 : d->cap;
    unsigned char *q;
    while (cap < d->n + n) cap *= 2;
    q = (unsigned char *)realloc(d->p, cap);
    if (q == NULL) return 1;
    d->p = q;
    d->cap = cap;
  }
  memcpy(d->p + d->n, p, n);
  d->n += n;
  return 0;
}

static int samebytecode (int a, int b) {
  Dump da = {0}, db = {0};
  int same;
  lua_pushvalue(L, a);
  if (lua_dump(L, dumpwriter, &da, 0) != 0) fail("out of memory");
  lua_pop(L, 1);
  lua_pushvalue(L, b);
  if (lua_dump(L, dumpwriter, &db, 0) != 0) fail("out of memory");
  lua_pop(L, 1);
  same = da.n == db.n && memcmp(da.p, db.p, da.n) == 0;
  free(da.p);
  free(db.p);
  return same;
}

static int isobject (int t) {
  return t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA;
}

static int same (int a, int b);

/* 'a' and 'b' are new to the maps: pair them, then compare contents. */
static int samecontents (int a, int b) {
  int t = lua_type(L, a);
  if (!lua_checkstack(L, 16)) fail("stack overflow in the comparison");
  lua_pushvalue(L, a); lua_pushvalue(L, b); lua_rawset(L, map);
  lua_pushvalue(L, b); lua_pushvalue(L, a); lua_rawset(L, rmap);
  if (t == LUA_TTABLE) {
    lua_Integer na = 0, nb = 0, objkeys = 0;
    int ma = lua_getmetatable(L, a), mb = lua_getmetatable(L, b);
    int ok;
    if (ma != mb) return 0;
    if (ma) {
      ok = same(lua_gettop(L) - 1, lua_gettop(L));
      lua_pop(L, 2);
      if (!ok) return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, b)) { nb++; lua_pop(L, 1); }
    lua_pushnil(L);
    while (lua_next(L, a)) {
      int k = lua_gettop(L) - 1, v = lua_gettop(L);
      na++;
      if (isobject(lua_type(L, k))) {
        lua_pushvalue(L, k);
        if (lua_rawget(L, map) == LUA_TNIL) {  /* not reached elsewhere */
          lua_pop(L, 1);
          objkeys++;
          lua_pop(L, 1);
          continue;
        }
      }
      else
        lua_pushvalue(L, k);
      if (lua_rawget(L, b) == LUA_TNIL || !same(v, lua_gettop(L))) {
        lua_pop(L, 3);
        return 0;
      }
      lua_pop(L, 2);
    }
    (void)objkeys;
    return na == nb;
  }
  if (t == LUA_TFUNCTION) {
    int i;
    if (lua_iscfunction(L, a) || lua_iscfunction(L, b))
      return 0;  /* a C function travels by name: the very same one */
    if (!samebytecode(a, b)) return 0;
    for (i = 1; ; i++) {
      const char *na = lua_getupvalue(L, a, i);
      const char *nb = lua_getupvalue(L, b, i);
      int ok;
      if (na == NULL || nb == NULL) {
        lua_pop(L, (na != NULL) + (nb != NULL));
        return na == NULL && nb == NULL;
      }
      lua_pushlightuserdata(L, lua_upvalueid(L, a, i));
      if (lua_rawget(L, upmap) != LUA_TNIL) {  /* a cell seen before */
        ok = lua_touserdata(L, -1) == lua_upvalueid(L, b, i);
        lua_pop(L, 3);
        if (!ok) return 0;
        continue;
      }
      lua_pop(L, 1);
      lua_pushlightuserdata(L, lua_upvalueid(L, b, i));
      if (lua_rawget(L, rupmap) != LUA_TNIL) {  /* b's cell is a's other */
        lua_pop(L, 3);
        return 0;
      }
      lua_pop(L, 1);
      lua_pushlightuserdata(L, lua_upvalueid(L, a, i));
      lua_pushlightuserdata(L, lua_upvalueid(L, b, i));
      lua_rawset(L, upmap);
      lua_pushlightuserdata(L, lua_upvalueid(L, b, i));
      lua_pushlightuserdata(L, lua_upvalueid(L, a, i));
      lua_rawset(L, rupmap);
      ok = same(lua_gettop(L) - 1, lua_gettop(L));
      lua_pop(L, 2);
      if (!ok) return 0;
    }
  }
  {  /* userdata: handles of the same object and kind */
    atl_Handle *ha = atl_handle_test(L, a), *hb = atl_handle_test(L, b);
    return ha != NULL && hb != NULL && ha->obj == hb->obj
           && ha->kind == hb->kind;
  }
}

static int same (int a, int b) {
  int t = lua_type(L, a);
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (t != lua_type(L, b)) return 0;
  switch (t) {
    case LUA_TNIL: return 1;
    case LUA_TBOOLEAN: return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TNUMBER: {
      if (lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
      if (lua_isinteger(L, a)) return lua_tointeger(L, a) == lua_tointeger(L, b);
      else {
        lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
        return memcmp(&x, &y, sizeof(x)) == 0;
      }
    }
    case LUA_TSTRING: return lua_rawequal(L, a, b);
    case LUA_TLIGHTUSERDATA: return lua_rawequal(L, a, b);
    default: break;
  }
  if (lua_rawequal(L, a, b))
    return 1;  /* one object of the state: a value that travels by name */
  luaL_checkstack(L, 4, NULL);
  lua_pushvalue(L, a);
  if (lua_rawget(L, map) != LUA_TNIL) {  /* paired before */
    int ok = lua_rawequal(L, -1, b);
    lua_pop(L, 1);
    return ok;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, b);
  if (lua_rawget(L, rmap) != LUA_TNIL) {  /* 'b' is paired with another */
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  return samecontents(a, b);
}

/* }====================================================================== */


static void openstate (void) {
  atl_HostCallbacks cb;
  atl_StateOptions opts;
  char *err = NULL;
  int i;
  memset(&cb, 0, sizeof(cb));
  cb.retain = retain;
  cb.release = release;
  cb.call = hostcall;
  atl_set_host_callbacks(&cb);
  for (i = 0; i < NFAKE; i++) {
    fakes[i].id = i;
    fakeptrs[i] = &fakes[i];
  }
  memset(&opts, 0, sizeof(opts));
  opts.supervisor = &fakes[0];
  opts.is_child = 1;
  L = atl_state_open(&opts, &err);
  if (L == NULL) {
    fprintf(stderr, "fuzz_codec: cannot open a state: %s\n", err ? err : "?");
    exit(1);
  }
  /* 'require' of a name from the input finds no file and no C library */
  if (luaL_dostring(L, "package.path = '' package.cpath = ''") != LUA_OK)
    fail(lua_tostring(L, -1));
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  for (i = 0; i < NFAKE; i++)
    baseline[i] = fakes[i].refs;
}


/*
** {======================================================================
** Seeds: valid encodings of varied values
** =======================================================================
*/

static const char *const seeds[] = {
  "nil", "true", "false", "0", "-1", "42", "math.maxinteger",
  "math.mininteger", "0.5", "-0.0", "1/0", "-1/0", "0/0", "1e300",
  "5e-324", "2^53", "''", "'hello'", "'\\0\\1\\255'", "string.rep('x', 200)",
  "1, 'two', 3.0, nil, false",
  "table.unpack((function() local t = {} for i = 1, 40 do t[i] = i * 3 end "
  "return t end)())",
  "{}", "{1, 2, 3}", "{a = 1, b = {c = 'd'}, [1.5] = true, [-2] = false}",
  "{[2^53] = 1, [-0.0] = 'z', [math.huge] = 'inf'}",
  "(function() local t = {} for i = 1, 30 do t = {t} end return t end)()",
  "(function() local t = {} t.self = t return t end)()",
  "(function() local s = {1} return {s, s, {s}} end)()",
  "(function() local a, b = {}, {} a.b = b b.a = a return a, b end)()",
  "setmetatable({1}, {__index = {x = 1}})",
  "(function() local m = {} return setmetatable({}, m), setmetatable({}, m) "
  "end)()",
  "{[{1}] = 2, [{}] = {}}",
  "function(a) return a + 1 end",
  "(function() local n = 5 return function() return n end end)()",
  "(function() local n = 0 local function inc() n = n + 1 return n end "
  "local function get() return n end return {inc = inc, get = get} end)()",
  "(function() local function f(n) if n <= 0 then return 0 end "
  "return f(n - 1) end return f end)()",
  "(function() local x = 1 local function helper() return x end "
  "return function() return helper() + x end end)()",
  "(function() local a, b, c, d = 1, 'b', {3}, 2.5 return function() "
  "return a, b, c, d end end)()",
  "(function() local t = {} local function f() return t end t.f = f "
  "return t end)()",
  "function() return print, string.format end",
  "string.format", "math", "{f = string.rep, m = math, s = string}",
  "utf8.char", "table",
  "handle(2, 1)", "{handle(4, 2), handle(4, 2)}", "handle(6, 3), handle(7, 4)",
  "{w = handle(6, 5), list = {handle(2, 6), handle(2, 7)}}",
  "(function() local h = handle(4, 1) return function() return h end end)()",
  NULL
};

static int l_handle (lua_State *l) {
  int kind = (int)luaL_checkinteger(l, 1);
  int i = (int)luaL_checkinteger(l, 2);
  luaL_argcheck(l, i >= 0 && i < NFAKE, 2, "no such host object");
  atl_handle_push(l, &fakes[i], kind);
  return 1;
}

static void writeseed (const char *dir, int k, const char *tag,
                       const atl_Buffer *b) {
  char path[4096];
  FILE *f;
  snprintf(path, sizeof(path), "%s/seed-%02d%s", dir, k, tag);
  f = fopen(path, "wb");
  if (f == NULL || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
    fprintf(stderr, "fuzz_codec: cannot write %s: %s\n", path,
            strerror(errno));
    exit(1);
  }
}

static void writeseeds (const char *dir) {
  int k;
  lua_register(L, "handle", l_handle);
  for (k = 0; seeds[k] != NULL; k++) {
    static const int flags[] = {0, ATL_CODEC_SEPARATE, ATL_CODEC_FIRSTALONE};
    static const char *const tags[] = {"", "-separate", "-firstalone"};
    int f, n;
    lua_settop(L, 0);
    lua_pushfstring(L, "return %s", seeds[k]);
    if (luaL_loadstring(L, lua_tostring(L, -1)) != LUA_OK
        || lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
      fprintf(stderr, "fuzz_codec: seed %d: %s\n", k, lua_tostring(L, -1));
      exit(1);
    }
    n = lua_gettop(L) - 1;
    for (f = 0; f < 3; f++) {
      atl_Buffer b = {0};
      char *err = NULL;
      if (f > 0 && n < 2) continue;
      if (atl_codec_encode(L, 2, n, "seed", flags[f], &b, &err) != ATL_OK) {
        fprintf(stderr, "fuzz_codec: seed %d: %s\n", k, err);
        exit(1);
      }
      writeseed(dir, k, tags[f], &b);
      atl_buffer_free(&b);
    }
  }
  lua_settop(L, 0);
}

/* }====================================================================== */


int LLVMFuzzerInitialize (int *argc, char ***argv) {
  const char *dir = getenv("ATL_FUZZ_SEED_DIR");
  (void)argc;
  (void)argv;
  openstate();
  if (dir != NULL) {
    writeseeds(dir);
    atl_state_close(L);
    exit(0);
  }
  return 0;
}


int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  atl_Buffer x, x0, y = {0}, z = {0}, p = {0};
  atl_PlainValue pv;
  char *err = NULL;
  int n = 0, m = 0, st, i, plain, scalars = 1;
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTOP);  /* no weak entry is cleared while comparing */
  memset(&x, 0, sizeof(x));
  x.data = (unsigned char *)data;
  x.len = x.cap = size;
  x.handles = fakeptrs;
  x.nhandles = x.handlescap = NFAKE;
  x0 = x;
  x0.handles = NULL;
  x0.nhandles = x0.handlescap = 0;
  plain = atl_codec_peek_plain(&x0, &pv);
  lua_newtable(L); map = lua_gettop(L);
  lua_newtable(L); rmap = lua_gettop(L);
  lua_newtable(L); upmap = lua_gettop(L);
  lua_newtable(L); rupmap = lua_gettop(L);
  st = atl_codec_decode(L, &x, 0, &n, &err);
  if (st != ATL_OK) {
    if (plain) fail("a buffer that peek_plain reads does not decode");
    if (err == NULL) fail("a decoding error without a message");
    free(err);
    goto done;
  }
  if (plain) {
    if (n != 1) fail("peek_plain read one value of a buffer of several");
    atl_codec_push_plain(L, &pv);
    if (!same(rupmap + 1, -1)) fail("peek_plain and decode disagree");
    lua_pop(L, 1);
  }
  for (i = 0; i < n; i++) {
    int t = lua_type(L, rupmap + 1 + i);
    if (t == LUA_TTABLE || t == LUA_TFUNCTION) scalars = 0;
  }
  st = atl_codec_encode(L, rupmap + 1, n, "value", 0, &y, &err);
  if (st != ATL_OK) {  /* a userdata or a thread reached by name */
    if (err == NULL) fail("an encoding error without a message");
    free(err);
    goto done;
  }
  if (atl_codec_encode_plain(L, rupmap + 1, n, &p) == ATL_OK
      && (p.len != y.len || memcmp(p.data, y.data, y.len) != 0))
    fail("the plain encoder and the general one write different bytes");
  atl_buffer_free(&p);
  st = atl_codec_decode(L, &y, 0, &m, &err);
  if (st != ATL_OK) {
    fprintf(stderr, "fuzz_codec: decoding what was encoded fails: %s\n", err);
    abort();
  }
  if (m != n) fail("decoding what was encoded gives another count");
  for (i = 0; i < n; i++)
    if (!same(rupmap + 1 + i, rupmap + 1 + n + i))
      fail("decode(encode(decode(x))) differs from decode(x)");
  if (scalars) {
    st = atl_codec_encode(L, rupmap + 1 + n, n, "value", 0, &z, &err);
    if (st != ATL_OK) fail("encoding decoded values again fails");
    if (z.len != y.len || memcmp(z.data, y.data, y.len) != 0)
      fail("values without tables encode to other bytes the second time");
  }
done:
  atl_buffer_free(&y);
  atl_buffer_free(&z);
  lua_settop(L, 0);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCCOLLECT);
  for (i = 1; i < NFAKE; i++)
    if (fakes[i].refs != baseline[i])
      fail("a host object is retained more often than released");
  return 0;
}
