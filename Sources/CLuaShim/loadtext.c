/*
** Text only: in every state, user code loads source text, never bytecode,
** unless the host allows it. Lua 5.4 does not verify bytecode, so one
** changed byte of a dumped chunk can crash the whole process. So 'load',
** 'loadfile', 'dofile' and the searcher that 'require' uses for Lua files
** load in mode "t"; a binary chunk is refused with an error that says why
** and what to do. The host's own function transfers (codec_decode.c) load
** bytecode that it checksummed itself, and are not affected.
*/
#include <string.h>

#include "shim_private.h"

#define BYTECODE_HINT                                                        \
  "binary chunks are not loaded (Lua 5.4 does not verify bytecode, and a "   \
  "corrupted chunk can crash the process): load the source text instead, " \
  "or allow trusted bytecode (atasker-lua --allow-bytecode, "              \
  "LuaHost.Configuration.allowsBytecode)"

/* Whether argument 'i' is a string that starts like a binary chunk. */
static int isbinary(lua_State *L, int i) {
  size_t len;
  const char *s;
  if (lua_type(L, i) != LUA_TSTRING) return 0;
  s = lua_tolstring(L, i, &len);
  return len > 0 && s[0] == LUA_SIGNATURE[0];
}

/* The mode that argument 'i' asks for, made text only: "t", or an error
** for "b". */
static void textmode(lua_State *L, int i, const char *fname) {
  const char *mode = luaL_optstring(L, i, "bt");
  if (strchr(mode, 't') == NULL)
    luaL_error(L, "%s: mode '%s' asks for bytecode; " BYTECODE_HINT, fname,
               mode);
  lua_pushliteral(L, "t");
  lua_replace(L, i);
}

/* 'load(chunk [, chunkname [, mode [, env]]])': upvalue 1 is the original. */
static int l_load(lua_State *L) {
  int n = lua_gettop(L);
  if (n < 3) lua_settop(L, 3);
  if (isbinary(L, 1)) {
    luaL_pushfail(L);
    lua_pushliteral(L, "load: " BYTECODE_HINT);
    return 2;
  }
  textmode(L, 3, "load");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* 'loadfile([filename [, mode [, env]]])': upvalue 1 is the original. */
static int l_loadfile(lua_State *L) {
  int n = lua_gettop(L);
  if (n < 2) lua_settop(L, 2);
  textmode(L, 2, "loadfile");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static int dofilecont(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L) - 1;
}

/* 'dofile([filename])', in text mode; yields across as the original does. */
static int l_dofile(lua_State *L) {
  const char *fname = luaL_optstring(L, 1, NULL);
  lua_settop(L, 1);
  if (luaL_loadfilex(L, fname, "t") != LUA_OK) return lua_error(L);
  lua_callk(L, 0, LUA_MULTRET, 0, dofilecont);
  return dofilecont(L, 0, 0);
}

void atl_loadtext_base(lua_State *L) {
  if (atl_statedata(L)->allow_bytecode) return;
  lua_pushglobaltable(L);
  lua_getfield(L, -1, "load");
  lua_pushcclosure(L, l_load, 1);
  lua_setfield(L, -2, "load");
  lua_getfield(L, -1, "loadfile");
  lua_pushcclosure(L, l_loadfile, 1);
  lua_setfield(L, -2, "loadfile");
  lua_pushcfunction(L, l_dofile);
  lua_setfield(L, -2, "dofile");
  lua_pop(L, 1);
}

/* The searcher of Lua files: 'package.searchpath' on 'package.path', then
** the file in text mode. Upvalue 1 is the 'package' table. */
static int searcher_text(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *filename;
  lua_getfield(L, lua_upvalueindex(1), "path");
  if (lua_type(L, -1) != LUA_TSTRING)
    return luaL_error(L, "'package.path' must be a string");
  lua_getfield(L, lua_upvalueindex(1), "searchpath");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -3);
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2)) return 1; /* the list of files tried */
  lua_pop(L, 1);
  filename = lua_tostring(L, -1);
  if (luaL_loadfilex(L, filename, "t") != LUA_OK)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                      name, filename, lua_tostring(L, -1));
  lua_pushvalue(L, -2); /* the file name: the loader's second argument */
  return 2;
}

void atl_loadtext_package(lua_State *L, int pkg) {
  if (atl_statedata(L)->allow_bytecode) return;
  pkg = lua_absindex(L, pkg);
  lua_getfield(L, pkg, "searchers");
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushvalue(L, pkg);
    lua_pushcclosure(L, searcher_text, 1);
    lua_rawseti(L, -2, 2); /* in place of the searcher of Lua files */
  }
  lua_pop(L, 1);
}
