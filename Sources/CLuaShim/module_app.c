/*
** module_app.c: Lua modules written in Lua that the embedding app (or a
** library such as ATaskerJobs) registered with 'LuaHost.register(module:
** source:)'. Each one is a loader in 'package.preload' of every state, so
** 'require' finds it by name and values that name it travel by name. The
** sources belong to the host, which outlives its states; they are loaded in
** text mode like every chunk.
**
** Module "host" (the Swift functions that the app registered) is a loader
** there too: a state builds its table of handles only when its code first
** requires it, so a worker that never calls the host pays nothing for it.
*/
#define atl_module_app_c

#include "shim_private.h"

/* The loader of app module number 'upvalue 2' of the table at 'upvalue 1'. */
static int load_app_module(lua_State *L) {
  const atl_LuaModules *m =
      (const atl_LuaModules *)lua_touserdata(L, lua_upvalueindex(1));
  int i = (int)lua_tointeger(L, lua_upvalueindex(2));
  const char *name = m->names[i];
  lua_pushfstring(L, "=%s", name);
  if (luaL_loadbufferx(L, m->sources[i], m->lengths[i], lua_tostring(L, -1),
                       "t") != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
  return 1;
}

/* The loader of module "host": a table of the host functions' handles. */
static int load_host(lua_State *L) {
  const atl_HostFunctions *f = atl_statedata(L)->host_functions;
  int i, n = f == NULL ? 0 : f->n;
  lua_createtable(L, 0, n);
  for (i = 0; i < n; i++) {
    atl_handle_push(L, f->objs[i], ATL_H_HOSTFN);
    lua_setfield(L, -2, f->names[i]);
  }
  return 1;
}

void atl_preload_app_modules(lua_State *L) {
  const atl_LuaModules *m = atl_statedata(L)->lua_modules;
  int i;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, load_host);
  lua_setfield(L, -2, "host");
  for (i = 0; m != NULL && i < m->n; i++) {
    lua_pushlightuserdata(L, (void *)m);
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_app_module, 2);
    lua_setfield(L, -2, m->names[i]);
  }
  lua_pop(L, 1);
}
