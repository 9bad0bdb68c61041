/*
** The value codec's values that travel by name: the per-state cache of
** modules and of their fields.
** The format is described in include/atl_codec.h.
*/
#define codec_names_c

#include <stdlib.h>
#include <string.h>

#include "codec_private.h"


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
  unsigned char b[1 + ATL_CODEC_MAXVARINT];
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
  b[0] = ATL_T_NAMED;
  luaL_addlstring(&lb, (const char *)b,
                  1 + (size_t)atl_codec_putvarint(b + 1, l));
  luaL_addlstring(&lb, s, l);
  if (isfield) {
    s = lua_tolstring(L, key, &l);
    luaL_addlstring(&lb, (const char *)b, (size_t)atl_codec_putvarint(b, l));
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


/*
** Put the 'names' and 'recs' tables of the name cache in the encoder's
** slots; 'how' is one of LC_*. A cache rebuilt after this call has looked
** up some value makes the call start over (see 'atl_codec_encode_raw').
*/
void atl_codec_loadcache (Enc *e, int how) {
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
lua_Integer atl_codec_findnamed (Enc *e, int idx) {
  lua_State *L = e->L;
  lua_Integer k;
  if (lua_isnil(L, e->names))
    atl_codec_loadcache(e, (lua_type(L, idx) == LUA_TFUNCTION) ? LC_CHECK
                                                                : LC_TRUST);
  else if (!e->checked && lua_type(L, idx) == LUA_TFUNCTION)
    atl_codec_loadcache(e, LC_CHECK);
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
    atl_codec_loadcache(e, LC_REBUILD);
  }
  e->looked = 1;
  return k;
}


/* Write record 'k' (a NAMED value). */
/* }------------------------------------------------------------------ */
