/*
** The value codec's refusals: the path of the value that cannot be
** copied ('args[2].conn', "upvalue 'fh' of task function"), its type,
** and what to do instead.
** The format is described in include/atl_codec.h.
*/
#define codec_refuse_c

#include <stdlib.h>
#include <string.h>

#include "codec_private.h"


#define ALLOWED \
  "only nil, booleans, numbers, strings, tables, Lua functions, modules " \
  "and atasker handles can be copied"


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
atl_noret atl_codec_refuse (Enc *e, int idx, const char *why,
                            const char *advice) {
  lua_State *L = e->L;
  luaL_checkstack(L, 6, NULL);
  pushpath(e);
  pushtypetext(L, idx);
  lua_pushfstring(L, "cannot copy %s (%s): %s; %s", lua_tostring(L, -2),
                  lua_tostring(L, -1), (why != NULL) ? why : ALLOWED, advice);
  lua_error(L);
  abort();  /* not reached */
}


atl_noret atl_codec_refuseother (Enc *e, int idx) {
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
  atl_codec_refuse(e, idx, NULL, advice);
}


atl_noret atl_codec_toodeep (Enc *e) {
  lua_State *L = e->L;
  pushpath(e);
  lua_pushfstring(L, "value nested deeper than %d levels at %s",
                  ATL_CODEC_MAXDEPTH, lua_tostring(L, -1));
  lua_error(L);
  abort();  /* not reached */
}
