/*
** task.c: running background tasks in the Lua state of a pool thread.
** Functions are decoded once per state and kept in a bounded LRU cache;
** each run gets a fresh '_ENV' whose '__index' is the state's globals, so
** the globals that a task writes are gone after it.
*/
#define atl_task_c

#include <stdlib.h>
#include <string.h>

#include "shim_private.h"

#define FNCACHE_MAX 256

static const char fncache_key = 'c';  /* registry: fnid -> entry */
static const char envmt_key = 'e';    /* registry: {__index = _G} */

/* Entry fields (array part of the entry table). */
#define E_FN     1
#define E_ENVFN  2  /* function that owns the joined '_ENV' cell, or nil */
#define E_ENVUP  3
#define E_TICK   4
#define E_PLACE  5  /* + member: the 'file:line' of the function run */

typedef struct TaskParams {
  uint64_t fnid;
  const atl_Buffer *fn;
  int member;
  const atl_Buffer *args;
  atl_Buffer *out;
  int status;
  char *err;
} TaskParams;

/* [-0, +1, m] Push the cache table, creating it once. */
static void pushcache(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &fncache_key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 16);
  lua_pushinteger(L, 0);
  lua_rawseti(L, -2, 0);  /* cache[0]: number of entries */
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &fncache_key);
}

/* Drop the least recently used entry of the cache at 'c'. */
static void evict(lua_State *L, int c) {
  lua_Integer oldest = -1, tick;
  int found = 0;
  lua_pushnil(L);  /* slot for the oldest key */
  lua_pushnil(L);
  while (lua_next(L, c) != 0) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_rawgeti(L, -1, E_TICK);
      tick = lua_tointeger(L, -1);
      lua_pop(L, 1);
      if (!found || tick < oldest) {
        oldest = tick;
        found = 1;
        lua_pushvalue(L, -2);
        lua_replace(L, -4);
      }
    }
    lua_pop(L, 1);
  }
  if (found) {
    lua_pushnil(L);
    lua_rawset(L, c);  /* cache[oldestkey] = nil */
    lua_rawgeti(L, c, 0);
    lua_pushinteger(L, lua_tointeger(L, -1) - 1);
    lua_rawseti(L, c, 0);
    lua_pop(L, 1);
  }
  else lua_pop(L, 1);
}

/* [-0, +1, e] Push the cache entry of the task function, loading it on a
** miss. */
static void getentry(lua_State *L, TaskParams *p) {
  atl_StateData *d = atl_statedata(L);
  int c, n, envup = 0, top;
  pushcache(L);
  c = lua_gettop(L);
  if (lua_rawgeti(L, c, (lua_Integer)p->fnid) != LUA_TTABLE) {
    lua_pop(L, 1);
    top = lua_gettop(L);
    n = atl_codec_decode_raw(L, p->fn, ATL_CODEC_JOINENV, &envup);
    if (envup > 0) n--;  /* the count includes the function owning '_ENV' */
    if (n != 1 || lua_type(L, top + 1) !=
                      (p->member == 0 ? LUA_TFUNCTION : LUA_TTABLE))
      luaL_error(L, "task function buffer holds no function");
    lua_createtable(L, 4, 0);
    lua_pushvalue(L, top + 1);
    lua_rawseti(L, -2, E_FN);
    if (envup > 0) {
      lua_pushvalue(L, top + 2);
      lua_rawseti(L, -2, E_ENVFN);
      lua_pushinteger(L, envup);
      lua_rawseti(L, -2, E_ENVUP);
    }
    lua_rawgeti(L, c, 0);
    if (lua_tointeger(L, -1) >= FNCACHE_MAX) evict(L, c);
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, c, (lua_Integer)p->fnid);
    lua_rawgeti(L, c, 0);
    lua_pushinteger(L, lua_tointeger(L, -1) + 1);
    lua_rawseti(L, c, 0);
    lua_pop(L, 1);
    lua_replace(L, top + 1);  /* entry over the function */
    lua_settop(L, top + 1);
  }
  lua_pushinteger(L, (lua_Integer)++d->task_tick);
  lua_rawseti(L, -2, E_TICK);
  lua_remove(L, c);
}

/* [-0, +0, e] Give the entry on the top a fresh '_ENV'. */
void atl_push_freshenv(lua_State *L) {
  lua_createtable(L, 0, 0);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &envmt_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &envmt_key);
  }
  lua_setmetatable(L, -2);
}

static void freshenv(lua_State *L) {
  int envup;
  if (lua_rawgeti(L, -1, E_ENVFN) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  lua_rawgeti(L, -2, E_ENVUP);
  envup = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  atl_push_freshenv(L);
  lua_setupvalue(L, -2, envup);
  lua_pop(L, 1);  /* the env function */
}

static int runtask_p(lua_State *L) {
  TaskParams *p = (TaskParams *)lua_touserdata(L, 1);
  int msgh, nargs = 0, st, envup, entry;
  lua_pushcfunction(L, atl_msghandler);
  msgh = lua_gettop(L);
  getentry(L, p);
  freshenv(L);
  entry = lua_gettop(L);
  lua_rawgeti(L, entry, E_FN);
  if (p->member > 0) {
    if (lua_rawgeti(L, -1, p->member) != LUA_TFUNCTION)
      luaL_error(L, "task function buffer holds no function");
    lua_remove(L, -2);  /* the table of functions */
  }
  /* the place of the function, found once and kept in its entry: a task
  ** announces it at every run */
  if (lua_rawgeti(L, entry, E_PLACE + p->member) != LUA_TSTRING) {
    char place[256];
    lua_pop(L, 1);
    atl_funcplace(L, -1, place, sizeof place);
    lua_pushstring(L, place);
    lua_pushvalue(L, -1);
    lua_rawseti(L, entry, E_PLACE + p->member);
  }
  atl_exec_setplacestr(lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_remove(L, entry);
  if (p->args != NULL && p->args->len > 0)
    nargs = atl_codec_decode_raw(L, p->args, 0, &envup);
  st = lua_pcall(L, nargs, 1, msgh);
  if (st != LUA_OK) {
    if (atl_isexit(L, -1)) p->status = ATL_EXIT;
    else {
      p->status = (st == LUA_ERRMEM) ? ATL_ERRMEM
                : atl_exec_cancelling() ? ATL_ERRCANCEL : ATL_ERRRUN;
      p->err = atl_strdup_top(L, -1);
    }
    return 0;
  }
  if (p->out != NULL && !lua_isnil(L, -1)) {  /* nil: no bytes at all */
    /* a child's result goes to its parent: no bytecode, no handles */
    int flags = atl_statedata(L)->is_child
                ? ATL_CODEC_NOFUNCTIONS | ATL_CODEC_NOHANDLES : 0;
    /* nil, a boolean, a number or a string: straight, without the codec's
       protected call */
    int st = atl_codec_encode_plain(L, -1, 1, p->out);
    if (st == ATL_ERRMEM) luaL_error(L, "not enough memory");  /* in runtask_p's pcall */
    if (st != ATL_OK)
      p->status = atl_codec_encode(L, -1, 1, "result", flags, p->out, &p->err);
  }
  return 0;
}

int atl_run_task(lua_State *L, uint64_t fnid, const atl_Buffer *fn,
                 int member, const atl_Buffer *args, atl_Buffer *out,
                 char **err, int *exitcode) {
  TaskParams p;
  atl_ExecFrame frame;
  int st;
  memset(&p, 0, sizeof p);
  p.fnid = fnid;
  p.fn = fn;
  p.member = member;
  p.args = args;
  p.out = out;
  atl_exec_begin(L, &frame);
  lua_pushcfunction(L, runtask_p);
  lua_pushlightuserdata(L, &p);
  st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK) {  /* decoding failed, or out of memory */
    p.status = (st == LUA_ERRMEM) ? ATL_ERRMEM
             : atl_exec_cancelling() ? ATL_ERRCANCEL : ATL_ERRRUN;
    free(p.err);
    p.err = atl_strdup_top(L, -1);
    lua_pop(L, 1);
  }
  atl_exec_end(L, &frame);
  if (p.status == ATL_EXIT && exitcode != NULL)
    *exitcode = atl_statedata(L)->exitcode;
  *err = p.err;
  return p.status;
}
