#ifndef clua_shim_h
#define clua_shim_h
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#endif
