/*
** call.c: running chunks from the host in protected mode (as lua.c's
** 'pmain' and 'docall' do), with a message handler that adds a traceback.
*/
#define atl_call_c

#include <stdlib.h>
#include <string.h>

#include "shim_private.h"

/*
** Message handler: a non-string error object becomes a readable message
** (through '__tostring' when it has one); the exit sentinel of 'os.exit'
** passes untouched; strings get a traceback.
*/
int atl_msghandler(lua_State *L) {
  size_t len = 0;
  const char *msg = lua_tolstring(L, 1, &len);
  if (atl_isexit(L, 1)) return 1;
  if (msg != NULL && strlen(msg) != len) {  /* a NUL in it: keep all */
    lua_pushliteral(L, "\n");
    luaL_traceback(L, L, NULL, 1);
    lua_concat(L, 3);
    return 1;
  }
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Map a status of 'lua_load' or 'lua_pcall' to ours. */
static int mapstatus(int st) {
  switch (st) {
    case LUA_OK: return ATL_OK;
    case LUA_ERRSYNTAX: return ATL_ERRSYNTAX;
    case LUA_ERRMEM: return ATL_ERRMEM;
    case LUA_ERRFILE: return ATL_ERRFILE;
    default: return ATL_ERRRUN;
  }
}

typedef struct RunParams {
  const char *path;      /* a file, or NULL for 'code' */
  const char *code;
  size_t len;
  const char *name;
  atl_Buffer *out;       /* results, or NULL */
  int status;
  char *err;
} RunParams;

/* Record the error on the top of the stack in 'p'. */
static void seterror(lua_State *L, RunParams *p, int st) {
  if (atl_isexit(L, -1)) {
    p->status = ATL_EXIT;
    return;
  }
  p->status = mapstatus(st);
  p->err = atl_strdup_top(L, -1);
}

static int run_p(lua_State *L) {
  RunParams *p = (RunParams *)lua_touserdata(L, 1);
  int base, st, n;
  lua_pushcfunction(L, atl_msghandler);
  base = lua_gettop(L);
  if (p->path != NULL)
    st = luaL_loadfilex(L, p->path, "t");
  else
    st = luaL_loadbufferx(L, p->code, p->len, p->name, "t");
  if (st != LUA_OK) {
    seterror(L, p, st);
    return 0;
  }
  st = lua_pcall(L, 0, p->out != NULL ? LUA_MULTRET : 0, base);
  if (st != LUA_OK) {
    seterror(L, p, st);
    return 0;
  }
  n = lua_gettop(L) - base;
  if (p->out != NULL && n > 0)
    p->status = atl_codec_encode(L, base + 1, n, "results", 0, p->out,
                                 &p->err);
  return 0;
}

static int run(lua_State *L, RunParams *p, char **err, int *exitcode) {
  int st;
  p->status = ATL_OK;
  p->err = NULL;
  lua_pushcfunction(L, run_p);
  lua_pushlightuserdata(L, p);
  st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK) {  /* out of memory before or after the chunk ran */
    p->status = mapstatus(st);
    free(p->err);
    p->err = atl_strdup_top(L, -1);
    lua_pop(L, 1);  /* a string: popping runs no '__close' */
  }
  if (p->status == ATL_EXIT && exitcode != NULL)
    *exitcode = atl_statedata(L)->exitcode;
  *err = p->err;
  return p->status;
}

int atl_run_file(lua_State *L, const char *path, char **err, int *exitcode) {
  RunParams p;
  memset(&p, 0, sizeof p);
  p.path = path;
  return run(L, &p, err, exitcode);
}

int atl_run_string(lua_State *L, const char *code, size_t len,
                   const char *name, atl_Buffer *out, char **err,
                   int *exitcode) {
  RunParams p;
  memset(&p, 0, sizeof p);
  p.code = code;
  p.len = len;
  p.name = name;
  p.out = out;
  return run(L, &p, err, exitcode);
}

typedef struct ProbeParams {
  const atl_Buffer *buf;
  int flags;
} ProbeParams;

/* Decode and let the values go with this frame. */
static int probe_p(lua_State *L) {
  ProbeParams *p = (ProbeParams *)lua_touserdata(L, 1);
  int envup = 0;
  atl_codec_decode_raw(L, p->buf, p->flags, &envup);
  return 0;
}

int atl_codec_probe(lua_State *L, const atl_Buffer *b, int flags,
                    char **err) {
  ProbeParams p;
  p.buf = b;
  p.flags = flags;
  return atl_protect(L, probe_p, &p, ATL_ERRCODEC, err);
}

int atl_protect(lua_State *L, lua_CFunction f, void *ud, int failstatus,
                char **err) {
  int st;
  *err = NULL;
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, ud);
  st = lua_pcall(L, 1, 0, 0);
  if (st == LUA_OK) return ATL_OK;
  *err = atl_strdup_top(L, -1);
  lua_pop(L, 1);  /* the error object: popping it runs no '__close' */
  return st == LUA_ERRMEM ? ATL_ERRMEM : failstatus;
}
