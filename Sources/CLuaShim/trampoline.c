/*
** trampoline.c: host handles and the one trampoline through which Lua calls
** the host. The host's callback never sees a 'lua_State': it gets encoded
** arguments and returns encoded results or an error message, and only after
** it has returned does C push the results or raise the error.
*/
#define atl_trampoline_c

#include <stdlib.h>
#include <string.h>

#include "shim_private.h"

atl_HostCallbacks atl_host;
char atl_exit_sentinel;

void atl_set_host_callbacks(const atl_HostCallbacks *cb) {
  atl_host = *cb;
}

/* {======================================================================
** Handles
** ======================================================================= */

static const char *const tnames[] = {
  "atasker.Handle", "atasker.Supervisor", "atasker.Task",
  "atasker.TaskFunction", "atasker.Shared", "atasker.HostFunction",
  "atasker.Worker", "atasker.Locker", "atasker.Aloop",
  "atasker.AsyncJobScheduler", "atasker.AsyncJob"
};

const char *atl_handle_tname(int kind) {
  return (kind >= 1 && kind <= ATL_H_MAX) ? tnames[kind] : tnames[0];
}

atl_Handle *atl_handle_test(lua_State *L, int idx) {
  atl_Handle *h;
  int ish;
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
    return NULL;
  ish = (lua_rawgetp(L, -1, &atl_host) == LUA_TBOOLEAN);
  lua_pop(L, 2);  /* marker and metatable; plain values, no '__close' */
  if (!ish) return NULL;
  h = (atl_Handle *)lua_touserdata(L, idx);
  return h;
}

/* Check that argument 'arg' is a live handle of 'kind'. */
static atl_Handle *checkhandle(lua_State *L, int arg, int kind) {
  const void *mt = atl_statedata(L)->handle_mt[kind];
  atl_Handle *h = (atl_Handle *)lua_touserdata(L, arg);
  /* the common case without the registry's lookup by name that
  ** 'luaL_checkudata' makes: the metatable that this state made */
  if (h != NULL && mt != NULL && lua_getmetatable(L, arg)) {
    int same = lua_topointer(L, -1) == mt;
    lua_pop(L, 1);
    if (same) {
      if (h->obj == NULL)
        luaL_error(L, "attempt to use a released %s", atl_handle_tname(kind));
      return h;
    }
  }
  h = (atl_Handle *)luaL_checkudata(L, arg, atl_handle_tname(kind));
  if (h->obj == NULL)
    luaL_error(L, "attempt to use a released %s", atl_handle_tname(kind));
  return h;
}

static int handle_gc(lua_State *L) {
  atl_Handle *h = (atl_Handle *)lua_touserdata(L, 1);
  if (h != NULL && h->obj != NULL) {
    void *o = h->obj;
    h->obj = NULL;
    atl_host.release(o);
  }
  return 0;
}

static int handle_tostring(lua_State *L) {
  atl_Handle *h = atl_handle_test(L, 1);
  if (h == NULL || h->obj == NULL) {
    lua_pushstring(L, "atasker handle (released)");
    return 1;
  }
  lua_settop(L, 1);
  return atl_host_call(L, ATL_FN_TOSTRING, h->kind, h->obj, 2);
}

/*
** 'create_async_job{target=, args=, ...}': the options but 'target' and
** 'args' travel on their own, then the target and its arguments together,
** so that a table they share is one in the job's state: to the host go
** the options, 'target', 'args[1]', 'args[2]', ...
*/
static int create_job(lua_State *L, int fn, int kind, atl_Handle *h) {
  int n = 0, i;
  if (!lua_istable(L, 2))  /* the host refuses it with its own words */
    return atl_host_call(L, fn, kind, h->obj, 2);
  lua_settop(L, 2);
  lua_newtable(L);  /* 3: the other options */
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (strcmp(k, "target") == 0 || strcmp(k, "args") == 0) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, 3);
  }
  lua_getfield(L, 2, "target");
  if (lua_getfield(L, 2, "args") == LUA_TTABLE) {
    n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n, "too many job arguments");
    for (i = 1; i <= n; i++) lua_geti(L, 5, i);
    lua_remove(L, 5);
  }
  else if (!lua_isnil(L, -1)) {  /* not a list: the host says so */
    lua_pushboolean(L, 1);
    lua_setfield(L, 3, "args");
    lua_pop(L, 1);
  }
  else lua_pop(L, 1);
  return atl_host_call_flags(L, fn, kind, h->obj, 3, ATL_CODEC_FIRSTALONE);
}

/*
** A method: upvalue 1 is the function id, upvalue 2 the kind of 'self'.
** Arguments after 'self' go to the host.
*/
/* Whether the value at 'idx' is a number, a boolean or a string of at most
** ATL_SCALAR_MAXSTR bytes; if so it is read into 'v'. */
static int toscalar(lua_State *L, int idx, atl_Scalar *v) {
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        v->type = ATL_T_INT;
        v->bits = (uint64_t)lua_tointeger(L, idx);
      }
      else {
        lua_Number d = lua_tonumber(L, idx);
        v->type = ATL_T_FLOAT;
        memcpy(&v->bits, &d, sizeof v->bits);
      }
      return 1;
    case LUA_TBOOLEAN:
      v->type = lua_toboolean(L, idx) ? ATL_T_TRUE : ATL_T_FALSE;
      return 1;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (len > ATL_SCALAR_MAXSTR) return 0;
      v->type = ATL_T_STRING;
      v->len = len;
      memcpy(v->s, s, len);
      return 1;
    }
    default:
      return 0;
  }
}

static int handle_method(lua_State *L) {
  int fn = (int)lua_tointeger(L, lua_upvalueindex(1));
  int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
  atl_Handle *h = checkhandle(L, 1, kind);
  if (fn == ATL_FN_WORKER_PUT && lua_gettop(L) == 2 && atl_host.put != NULL) {
    /* the hot call of a queue: a scalar item goes to the host as it is,
    ** with no buffer and no call record */
    atl_Scalar v;
    if (toscalar(L, 2, &v) && atl_host.put(atl_statedata(L)->host, h->obj, &v))
      return 0;
  }
  if (fn == ATL_FN_SUP_CREATE_ASYNC_JOB || fn == ATL_FN_SCHED_CREATE_JOB)
    return create_job(L, fn, kind, h);
  return atl_host_call(L, fn, kind, h->obj, 2);
}

/* '__index': methods first (upvalue 1: the methods made so far, the ids
** of the properties that the shim knows, and false for other names known
** not to be methods; or false before the first), then the host (upvalue 2:
** the id of the host's index function, 0 for none). */
static int pushmethod(lua_State *L, int kind, const char *name);
static int propertyid(int kind, const char *name);
static int host_call_field(lua_State *L, int fn, int kind, void *self,
                           int first, int field);

static int handle_index(lua_State *L) {
  int fn = (int)lua_tointeger(L, lua_upvalueindex(2));
  atl_Handle *h = (atl_Handle *)lua_touserdata(L, 1);
  int field = 0;
  lua_settop(L, 2);
  if (lua_type(L, 2) == LUA_TSTRING) {
    int known = LUA_TNIL;
    if (lua_istable(L, lua_upvalueindex(1))) {
      lua_pushvalue(L, 2);
      known = lua_rawget(L, lua_upvalueindex(1));
      if (known == LUA_TNUMBER) field = (int)lua_tointeger(L, -1);
      else if (known != LUA_TNIL && known != LUA_TBOOLEAN) return 1;
      lua_pop(L, 1);
    }
    /* each method is made when it is first read, and kept, so that it
    ** stays the same function: a state that reads only properties of a
    ** handle, or calls one of its methods, does not pay for the others;
    ** a property's name is remembered as not a method (with its id when
    ** the shim knows it, so that the host need not compare names), so that
    ** reading it at every run ('kw._worker.executions') goes straight to
    ** the host */
    if (known == LUA_TNIL && h != NULL) {
      int found = pushmethod(L, h->kind, lua_tostring(L, 2));
      if (!found && fn == 0) return 0;  /* no properties: nothing to remember */
      if (!lua_istable(L, lua_upvalueindex(1))) {
        lua_newtable(L);
        lua_replace(L, lua_upvalueindex(1));
      }
      if (!found) field = propertyid(h->kind, lua_tostring(L, 2));
      lua_pushvalue(L, 2);
      if (found) lua_pushvalue(L, -2);
      else if (field != 0) lua_pushinteger(L, field);
      else lua_pushboolean(L, 0);
      lua_rawset(L, lua_upvalueindex(1));
      if (found) return 1;
    }
  }
  if (fn == 0 || h == NULL || h->obj == NULL) return 0;
  return host_call_field(L, fn, h->kind, h->obj, 2, field);
}

static int handle_newindex(lua_State *L) {
  int fn = (int)lua_tointeger(L, lua_upvalueindex(1));
  atl_Handle *h = (atl_Handle *)lua_touserdata(L, 1);
  if (fn == 0 || h == NULL)
    return luaL_error(L, "cannot assign to a field of %s",
                      luaL_typename(L, 1));
  if (h->obj == NULL)
    return luaL_error(L, "attempt to use a released %s",
                      atl_handle_tname(h->kind));
  return atl_host_call(L, fn, h->kind, h->obj, 2);
}

static int host_call_blank(lua_State *L, int fn, int kind, void *self,
                           int first, int blank);
static atl_Handle *pushblank(lua_State *L, int kind);

/* '__call': upvalue 1 is the function id; all arguments but 'self'. A
** starter's call returns a task: its userdata is made before the call,
** below the arguments, and the host's handle goes into it (see
** 'host_call_blank'). */
static int handle_call(lua_State *L) {
  int fn = (int)lua_tointeger(L, lua_upvalueindex(1));
  int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
  atl_Handle *h = checkhandle(L, 1, kind);
  if (fn == ATL_FN_SPAWN) {
    pushblank(L, ATL_H_TASK);
    lua_insert(L, 2);
    return host_call_blank(L, fn, kind, h->obj, 3, 2);
  }
  return atl_host_call(L, fn, kind, h->obj, 2);
}

typedef struct MethodDef { const char *name; int fn; } MethodDef;

static const MethodDef supervisor_methods[] = {
  {"set_thread_pool", ATL_FN_SUP_SET_THREAD_POOL},
  {"set_mp_pool", ATL_FN_SUP_SET_MP_POOL},
  {"create_mp_pool", ATL_FN_SUP_SET_MP_POOL},
  {"info", ATL_FN_SUP_INFO},
  {"get_info", ATL_FN_SUP_INFO},
  {"get_task", ATL_FN_SUP_GET_TASK},
  {"stop", ATL_FN_SUP_STOP},
  {"block", ATL_FN_SUP_BLOCK},
  {"create_aloop", ATL_FN_SUP_CREATE_ALOOP},
  {"get_aloop", ATL_FN_SUP_GET_ALOOP},
  {"set_default_aloop", ATL_FN_SUP_SET_DEFAULT_ALOOP},
  {"start_aloop", ATL_FN_SUP_START_ALOOP},
  {"stop_aloop", ATL_FN_SUP_STOP_ALOOP},
  {"create_async_job_scheduler", ATL_FN_SUP_CREATE_SCHEDULER},
  {"create_async_job", ATL_FN_SUP_CREATE_ASYNC_JOB},
  {"cancel_async_job", ATL_FN_SUP_CANCEL_ASYNC_JOB},
  {NULL, 0}
};

static const MethodDef aloop_methods[] = {
  {"start", ATL_FN_ALOOP_START},
  {"stop", ATL_FN_ALOOP_STOP},
  {"is_active", ATL_FN_ALOOP_IS_ACTIVE},
  {NULL, 0}
};

static const MethodDef sched_methods[] = {
  {"create_job", ATL_FN_SCHED_CREATE_JOB},
  {"cancel_job", ATL_FN_SCHED_CANCEL_JOB},
  {NULL, 0}
};

static const MethodDef job_methods[] = {
  {"cancel", ATL_FN_JOB_CANCEL},
  {NULL, 0}
};

static const MethodDef shared_methods[] = {
  {"get", ATL_FN_SHARED_GET},
  {"set", ATL_FN_SHARED_SET},
  {"incr", ATL_FN_SHARED_INCR},
  {"cas", ATL_FN_SHARED_CAS},
  {"keys", ATL_FN_SHARED_KEYS},
  {NULL, 0}
};

static const MethodDef worker_methods[] = {
  {"start", ATL_FN_WORKER_START},
  {"stop", ATL_FN_WORKER_STOP},
  {"restart", ATL_FN_WORKER_RESTART},
  {"is_active", ATL_FN_WORKER_IS_ACTIVE},
  {"is_started", ATL_FN_WORKER_IS_STARTED},
  {"is_stopped", ATL_FN_WORKER_IS_STOPPED},
  {"put", ATL_FN_WORKER_PUT},
  {"put_threadsafe", ATL_FN_WORKER_PUT},
  {"trigger", ATL_FN_WORKER_TRIGGER},
  {"trigger_threadsafe", ATL_FN_WORKER_TRIGGER},
  {NULL, 0}
};

static const MethodDef lock_methods[] = {
  {"acquire", ATL_FN_LOCK_ACQUIRE},
  {"release", ATL_FN_LOCK_RELEASE},
  {NULL, 0}
};

static const MethodDef no_methods[] = {{NULL, 0}};

/* Properties that the shim knows by name (see 'atl_Call.field'). */
static const MethodDef worker_props[] = {
  {"name", ATL_P_WORKER_NAME},
  {"kind", ATL_P_WORKER_KIND},
  {"state", ATL_P_WORKER_STATE},
  {"priority", ATL_P_WORKER_PRIORITY},
  {"executions", ATL_P_WORKER_EXECUTIONS},
  {"errors", ATL_P_WORKER_ERRORS},
  {"skipped", ATL_P_WORKER_SKIPPED},
  {"queue_depth", ATL_P_WORKER_QUEUE_DEPTH},
  {NULL, 0}
};

/* The id of property 'name' of handles of 'kind', or 0 when the shim does
** not know it (the host then looks the name up itself). */
static int propertyid(int kind, const char *name) {
  const MethodDef *p;
  if (kind != ATL_H_WORKER) return 0;
  for (p = worker_props; p->name != NULL; p++)
    if (strcmp(p->name, name) == 0) return p->fn;
  return 0;
}

/*
** 'lock:call(raise, fn, ...)': runs 'fn(...)' holding the lock and returns
** its results; the lock is released whatever 'fn' does. When the lock is not
** acquired within the locker's timeout, its critical handler runs, and then
** the call raises (with 'raise') or returns nothing (as atasker's decorator).
*/
static int lock_call(lua_State *L) {
  atl_Handle *h = checkhandle(L, 1, ATL_H_LOCK);
  void *obj = h->obj;
  int raise = lua_toboolean(L, 2);
  int base, st, ok;
  luaL_checktype(L, 3, LUA_TFUNCTION);
  base = lua_gettop(L);
  atl_host_call(L, ATL_FN_LOCK_ACQUIRE, ATL_H_LOCK, obj, base + 1);
  ok = lua_toboolean(L, -1);
  lua_settop(L, base);
  if (!ok) {
    atl_host_call(L, ATL_FN_LOCK_CRITICAL, ATL_H_LOCK, obj, base + 1);
    lua_settop(L, base);
    if (raise) {
      lua_pushliteral(L, "mod");
      atl_host_call(L, ATL_FN_LOCK_INDEX, ATL_H_LOCK, obj, base + 1);
      return luaL_error(L, "Locker '%s': locking broken (the lock was not "
                        "acquired in time)", lua_tostring(L, -1));
    }
    return 0;
  }
  st = lua_pcall(L, base - 3, LUA_MULTRET, 0);  /* fn and its arguments */
  atl_host_call(L, ATL_FN_LOCK_RELEASE, ATL_H_LOCK, obj, lua_gettop(L) + 1);
  if (st != LUA_OK) return lua_error(L);
  return lua_gettop(L) - 2;
}

/* 'lock:with(fn, ...)': 'lock:call(true, fn, ...)'. */
static int lock_with(lua_State *L) {
  checkhandle(L, 1, ATL_H_LOCK);
  lua_pushboolean(L, 1);
  lua_insert(L, 2);
  return lock_call(L);
}

/* 'lock:wrap(fn)': a Lua function (copyable) from module "atasker.extra". */
static int lock_wrap(lua_State *L) {
  checkhandle(L, 1, ATL_H_LOCK);
  lua_settop(L, 2);
  luaL_requiref(L, "atasker.extra", atl_open_extra, 0);
  lua_getfield(L, -1, "wrap");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

/*
** 'aloop:background_task(fn, ...)' and 'aloop:run(fn, ...)': the function
** is copied alone first, so that a refusal names it. 'run' waits for the
** result: in async code it yields to the aloop meanwhile.
*/
static atl_Handle *aloop_checkfn(lua_State *L) {
  atl_Handle *h = checkhandle(L, 1, ATL_H_ALOOP);
  atl_Buffer probe = {0};
  char *err = NULL;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (atl_codec_encode(L, 2, 1, "task function", 0, &probe, &err) != ATL_OK)
    atl_raise_owned_where(L, err);
  atl_buffer_free(&probe);
  return h;
}

/* The function and its arguments travel together, as one buffer that the
** task's state decodes: what they share stays shared ('a:run(f, t, t)',
** or 'f' with an upvalue 't' called with 't'). */
static int aloop_background_task(lua_State *L) {
  atl_Handle *h = aloop_checkfn(L);
  return atl_host_call(L, ATL_FN_ALOOP_BACKGROUND_TASK, ATL_H_ALOOP, h->obj,
                       2);
}

static int aloop_run_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return atl_host_resumed(L) > 0 ? 1 : 0;
}

static int aloop_run(lua_State *L) {
  atl_Handle *h = aloop_checkfn(L);
  if (atl_async_mustyield(L, "aloop:run"))
    return atl_host_yield(L, ATL_FN_ALOOP_RUN, ATL_H_ALOOP, h->obj, 2, 0,
                          aloop_run_k);
  return atl_host_call(L, ATL_FN_ALOOP_RUN, ATL_H_ALOOP, h->obj, 2) > 0 ? 1
                                                                        : 0;
}

/* Per kind: methods, host '__index' and '__newindex' ids, '__call' id. */
typedef struct KindDef {
  const MethodDef *methods;
  int index, newindex, call;
} KindDef;

static const KindDef kinds[ATL_H_MAX + 1] = {
  {no_methods, 0, 0, 0},
  {supervisor_methods, ATL_FN_SUP_INDEX, ATL_FN_SUP_NEWINDEX, 0},
  {no_methods, ATL_FN_TASK_INDEX, 0, 0},
  {no_methods, 0, 0, ATL_FN_SPAWN},
  {shared_methods, 0, 0, 0},
  {no_methods, 0, 0, ATL_FN_HOSTFN_CALL},
  {worker_methods, ATL_FN_WORKER_INDEX, 0, 0},
  {lock_methods, ATL_FN_LOCK_INDEX, ATL_FN_LOCK_NEWINDEX, 0},
  {aloop_methods, ATL_FN_ALOOP_INDEX, 0, 0},
  {sched_methods, ATL_FN_SCHED_INDEX, 0, 0},
  {job_methods, ATL_FN_JOB_INDEX, 0, 0},
};

/* Methods of some kinds that are C functions of their own. */
typedef struct CMethodDef {
  int kind;
  const char *name;
  lua_CFunction f;
} CMethodDef;

static const CMethodDef c_methods[] = {
  {ATL_H_LOCK, "call", lock_call},
  {ATL_H_LOCK, "with", lock_with},
  {ATL_H_LOCK, "wrap", lock_wrap},
  {ATL_H_ALOOP, "background_task", aloop_background_task},
  {ATL_H_ALOOP, "run", aloop_run},
  {0, NULL, NULL}
};

/* [-0, +(0|1), m] Push a new function for method 'name' of handles of
** 'kind' and return 1, or push nothing and return 0 when there is no such
** method. */
static int pushmethod(lua_State *L, int kind, const char *name) {
  const KindDef *k = &kinds[kind >= 1 && kind <= ATL_H_MAX ? kind : 0];
  const MethodDef *m;
  const CMethodDef *c;
  for (m = k->methods; m->name != NULL; m++) {
    if (strcmp(m->name, name) == 0) {
      lua_pushinteger(L, m->fn);
      lua_pushinteger(L, kind);
      lua_pushcclosure(L, handle_method, 2);
      return 1;
    }
  }
  for (c = c_methods; c->name != NULL; c++) {
    if (c->kind == kind && strcmp(c->name, name) == 0) {
      lua_pushcfunction(L, c->f);
      return 1;
    }
  }
  return 0;
}

static int handle_eq(lua_State *L);

/* [-0, +1, m] Push the metatable of handles of 'kind', creating it once. */
static void pushmetatable(lua_State *L, int kind) {
  const KindDef *k = &kinds[kind];
  int made = luaL_newmetatable(L, atl_handle_tname(kind));
  atl_statedata(L)->handle_mt[kind] = lua_topointer(L, -1);
  if (!made)
    return;  /* already made */
  lua_pushboolean(L, 1);
  lua_rawsetp(L, -2, &atl_host);  /* marker: this is a handle metatable */
  lua_pushinteger(L, kind);
  lua_setfield(L, -2, "__atl_kind");
  lua_pushcfunction(L, handle_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, handle_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, handle_eq);
  lua_setfield(L, -2, "__eq");
  lua_pushboolean(L, 0);  /* the methods, made one by one on first use */
  lua_pushinteger(L, k->index);
  lua_pushcclosure(L, handle_index, 2);
  lua_setfield(L, -2, "__index");
  lua_pushinteger(L, k->newindex);
  lua_pushcclosure(L, handle_newindex, 1);
  lua_setfield(L, -2, "__newindex");
  if (k->call != 0) {
    lua_pushinteger(L, k->call);
    lua_pushinteger(L, kind);
    lua_pushcclosure(L, handle_call, 2);
    lua_setfield(L, -2, "__call");
  }
}

/* '__eq': two handles are equal when they hold the same host object, so
** 's:get_task(id) == t' holds for the same task (Lua asks only for two
** userdata that are not the same one). */
static int handle_eq(lua_State *L) {
  atl_Handle *a = atl_handle_test(L, 1);
  atl_Handle *b = atl_handle_test(L, 2);
  lua_pushboolean(L, a != NULL && b != NULL && a->obj != NULL &&
                         a->obj == b->obj && a->kind == b->kind);
  return 1;
}

/* [-0, +1, m] A handle of 'kind' that names nothing yet (its '__gc' does
** nothing until 'obj' is set). */
static atl_Handle *pushblank(lua_State *L, int kind) {
  atl_Handle *h = (atl_Handle *)lua_newuserdatauv(L, sizeof(atl_Handle), 0);
  h->obj = NULL;
  h->kind = kind;
  pushmetatable(L, kind);
  lua_setmetatable(L, -2);
  return h;
}

void atl_handle_push(lua_State *L, void *obj, int kind) {
  atl_Handle *h;
  if (kind < 1 || kind > ATL_H_MAX)
    luaL_error(L, "unknown handle kind %d", kind);
  h = (atl_Handle *)lua_newuserdatauv(L, sizeof(atl_Handle), 0);
  h->obj = NULL;
  h->kind = kind;
  pushmetatable(L, kind);
  lua_setmetatable(L, -2);
  atl_host.retain(obj);  /* only once the userdata exists: '__gc' releases */
  h->obj = obj;
}

/* }====================================================================== */

/* {======================================================================
** The trampoline
** ======================================================================= */

static int pushmsg_p(lua_State *L) {
  lua_pushstring(L, (const char *)lua_touserdata(L, 1));
  return 1;
}

/* [-0, +1, m] Push 'msg' (malloc'd) and free it. Pushing it may run out of
** memory: that error is raised once 'msg' is freed, so it never leaks. */
static void pushowned(lua_State *L, char *msg) {
  int st;
  if (!lua_checkstack(L, 2)) {
    free(msg);
    luaL_error(L, "not enough memory");
  }
  lua_pushcfunction(L, pushmsg_p);
  lua_pushlightuserdata(L, msg);
  st = lua_pcall(L, 1, 1, 0);
  free(msg);
  if (st != LUA_OK) lua_error(L);
}

int atl_raise_owned(lua_State *L, char *msg) {
  if (msg == NULL) return luaL_error(L, "not enough memory");
  pushowned(L, msg);
  return lua_error(L);
}

int atl_raise_owned_where(lua_State *L, char *msg) {
  if (msg == NULL) return luaL_error(L, "not enough memory");
  pushowned(L, msg);
  luaL_where(L, 1);  /* 'msg' is freed: this may raise */
  lua_insert(L, -2);
  lua_concat(L, 2);
  return lua_error(L);
}

/* A NUL byte of the message becomes the two characters '\0', so that the
** C string keeps all of it (the host reads it up to its end). */
char *atl_strdup_top(lua_State *L, int idx) {
  const char *s = NULL;
  size_t l = 0, i, nul = 0;
  char *r, *p;
  if (lua_type(L, idx) == LUA_TSTRING)  /* no conversion: never raises */
    s = lua_tolstring(L, idx, &l);
  if (atl_fault()) return NULL;
  if (s == NULL) return strdup("(error object is not a string)");
  for (i = 0; i < l; i++) nul += (s[i] == '\0');
  if (nul == 0) return strdup(s);
  r = p = (char *)malloc(l + nul + 1);
  if (r == NULL) return NULL;
  for (i = 0; i < l; i++) {
    if (s[i] == '\0') {
      *p++ = '\\';
      *p++ = '0';
    }
    else *p++ = s[i];
  }
  *p = '\0';
  return r;
}

/*
** Spare buffers: a host call takes its argument and result buffers from
** the state's spares and gives them back emptied, so that the common call
** mallocs no buffer. A buffer that the host moved out (a task's arguments)
** is simply not given back; a call made while another is decoding its
** results (a finalizer) finds fewer spares and mallocs its own.
*/
static void takebuffer(atl_StateData *d, atl_Buffer *b) {
  if (d->nspare > 0) *b = d->spare[--d->nspare];
}

/* Empty 'b' (releasing its host objects) and keep it as a spare when
** there is room and it is not large; else free it. 'b' ends zeroed. */
static void givebuffer(atl_StateData *d, atl_Buffer *b) {
  size_t i;
  if (b->data == NULL || d->nspare >= ATL_NSPARE || b->cap > ATL_SPAREMAX) {
    atl_buffer_free(b);
    return;
  }
  for (i = 0; i < b->nhandles && atl_host.release != NULL; i++)
    atl_host.release(b->handles[i]);
  b->nhandles = 0;
  b->len = 0;
  d->spare[d->nspare++] = *b;
  memset(b, 0, sizeof *b);
}

void atl_host_freespare(atl_StateData *d) {
  while (d->nspare > 0)
    atl_buffer_free(&d->spare[--d->nspare]);
}

/* Encode the arguments from 'first' to the top into 'args' and fill 'c'
** (zeroed by the caller) for a call of 'fn' on 'self'; raises when an
** argument cannot be copied. */
static void preparecall(lua_State *L, atl_Call *c, atl_Buffer *args, int fn,
                        int kind, void *self, int first,
                        const char *const *labels, int nlabels,
                        int flags) {
  char *err = NULL;
  int n = lua_gettop(L) - first + 1;
  if (n < 0) n = 0;
  if (n > 0) {
    /* plain arguments (the common call: a key, a number) need no protected
    ** call; paths name each other argument: 'args[2].conn', 'args[1].x' */
    int st;
    takebuffer(atl_statedata(L), args);
    st = atl_codec_encode_plain(L, first, n, args);
    if (st == ATL_ERRMEM) {
      atl_buffer_free(args);
      luaL_error(L, "not enough memory");
    }
    else if (st != ATL_OK) {
      st = atl_codec_encode_names(L, first, n, labels, nlabels,
                                  n == 1 && labels == NULL ? "args[1]"
                                                           : "args",
                                  flags, args, &err);
      if (st != ATL_OK) atl_raise_owned_where(L, err);
    }
  }
  c->host = atl_statedata(L)->host;
  c->fn = fn;
  c->kind = kind;
  c->self = self;
  c->args = args->data;
  c->argslen = args->len;
  c->argsbuf = args;
  c->nargs = n;
  c->where = "";
}

/* Push the results of finished call 'c' (whose callback returned 'st') and
** return their count, or raise its error; frees what 'c' holds. */
/* Raise the error table that the host encoded in 'c->result': the caller's
** place goes before its message, and it gets the metatable 'atasker.Error'
** (whose '__tostring' gives the message). */
static int raisevalue(lua_State *L, atl_Call *c) {
  char *err = NULL;
  int nres = 0;
  int st = atl_codec_decode(L, &c->result, 0, &nres, &err);
  givebuffer(atl_statedata(L), &c->result);
  if (st != ATL_OK) {
    free(c->error);
    return atl_raise_owned_where(L, err);
  }
  free(c->error);
  if (nres != 1 || !lua_istable(L, -1)) {
    lua_settop(L, lua_gettop(L) - nres);
    return luaL_error(L, "host call failed");
  }
  luaL_where(L, 1);
  lua_getfield(L, -2, "message");
  lua_concat(L, 2);
  lua_setfield(L, -2, "message");
  /* 'atasker.Error' of the module, so that the error travels to other
  ** states with its metatable (by name) */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);  /* e, loaded */
  lua_getfield(L, -1, "atasker");                         /* e, loaded, m */
  if (lua_istable(L, -1)) lua_getfield(L, -1, "Error");
  else lua_pushnil(L);                                    /* e, loaded, m, mt */
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    atl_push_errormt(L);
  }
  lua_replace(L, -3);  /* e, mt, m */
  lua_pop(L, 1);
  lua_setmetatable(L, -2);
  return lua_error(L);
}

static int finishcall(lua_State *L, atl_Call *c, int st) {
  char *err = NULL;
  int nres = 0;
  if (st == ATL_EXIT) {
    atl_buffer_free(&c->result);
    free(c->error);
    atl_statedata(L)->exitcode = c->exitcode;
    lua_pushlightuserdata(L, &atl_exit_sentinel);
    return atl_raise_unhandled(L);  /* no message handler sees it */
  }
  if (st != ATL_OK) {
    if (c->error_value && c->result.len > 0) return raisevalue(L, c);
    givebuffer(atl_statedata(L), &c->result);
    if (c->error == NULL) return luaL_error(L, "host call failed");
    if (c->error_raw) return atl_raise_owned(L, c->error);
    return atl_raise_owned_where(L, c->error);
  }
  free(c->error);
  if (c->result.len > 0) {
    atl_PlainValue v;
    if (atl_codec_peek_plain(&c->result, &v) && lua_checkstack(L, 1)) {
      /* one plain value (the common result) needs no protected call; the
      ** buffer goes back first, since pushing a string can raise */
      givebuffer(atl_statedata(L), &c->result);
      atl_codec_push_plain(L, &v);
      return 1;
    }
    st = atl_codec_decode(L, &c->result, 0, &nres, &err);
    givebuffer(atl_statedata(L), &c->result);
    if (st != ATL_OK) return atl_raise_owned_where(L, err);
  }
  else givebuffer(atl_statedata(L), &c->result);
  return nres;
}

static int host_call_full(lua_State *L, int fn, int kind, void *self,
                          int first, int field, const char *const *labels,
                          int nlabels, int flags) {
  atl_Call c;
  atl_Buffer args;
  int st;
  memset(&c, 0, sizeof c);
  memset(&args, 0, sizeof args);
  preparecall(L, &c, &args, fn, kind, self, first, labels, nlabels, flags);
  c.field = field;
  takebuffer(atl_statedata(L), &c.result);
  st = atl_host.call(&c);
  givebuffer(atl_statedata(L), &args);  /* empty if the host moved it out */
  return finishcall(L, &c, st);
}

static int host_call_field(lua_State *L, int fn, int kind, void *self,
                           int first, int field) {
  return host_call_full(L, fn, kind, self, first, field, NULL, 0, 0);
}

/* Whether 'b' holds one handle of 'kind' and nothing else, and the
** reference on it; its object then goes to '*obj'. */
static int onehandle(const atl_Buffer *b, int kind, void **obj) {
  const unsigned char *p = b->data;
  void *o;
  if (b->len != 14 || b->nhandles != 1 || p[0] != ATL_CODEC_MAGIC0 ||
      p[1] != ATL_CODEC_MAGIC1 || p[2] != ATL_CODEC_VERSION || p[3] != 1 ||
      p[4] != ATL_T_HANDLE || p[5] != kind)
    return 0;
  {  /* the pointer, little-endian (the codec's) */
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = (v << 8) | p[6 + i];
    o = (void *)(uintptr_t)v;
  }
  if (o == NULL || b->handles[0] != o) return 0;
  *obj = o;
  return 1;
}

/* A call whose result is a handle of the kind of the blank userdata at
** 'blank' (made before the call, so that nothing allocates once the
** result holds a reference): the handle goes into it with no decoding.
** Any other result (an error) goes the common way. */
static int host_call_blank(lua_State *L, int fn, int kind, void *self,
                           int first, int blank) {
  atl_Call c;
  atl_Buffer args;
  atl_Handle *h = (atl_Handle *)lua_touserdata(L, blank);
  void *obj;
  int st;
  memset(&c, 0, sizeof c);
  memset(&args, 0, sizeof args);
  preparecall(L, &c, &args, fn, kind, self, first, NULL, 0, 0);
  takebuffer(atl_statedata(L), &c.result);
  st = atl_host.call(&c);
  givebuffer(atl_statedata(L), &args);
  if (st == ATL_OK && !atl_statedata(L)->is_child &&
      onehandle(&c.result, h->kind, &obj)) {
    free(c.error);
    h->obj = obj;
    c.result.nhandles = 0;  /* the buffer's reference is now the userdata's */
    givebuffer(atl_statedata(L), &c.result);
    lua_pushvalue(L, blank);
    return 1;
  }
  return finishcall(L, &c, st);
}

int atl_host_call(lua_State *L, int fn, int kind, void *self, int first) {
  return host_call_field(L, fn, kind, self, first, 0);
}

int atl_host_call_labelled(lua_State *L, int fn, int kind, void *self,
                           int first, const char *const *labels,
                           int nlabels) {
  return host_call_full(L, fn, kind, self, first, 0, labels, nlabels,
                        ATL_CODEC_SEPARATE);
}

int atl_host_call_objs(lua_State *L, int fn, void *const *objs, size_t n,
                       int first) {
  atl_Call c;
  atl_Buffer args;
  int st;
  memset(&c, 0, sizeof c);
  memset(&args, 0, sizeof args);
  preparecall(L, &c, &args, fn, 0, NULL, first, NULL, 0, 0);
  c.objs = objs;
  c.nobjs = n;
  takebuffer(atl_statedata(L), &c.result);
  st = atl_host.call(&c);
  givebuffer(atl_statedata(L), &args);
  return finishcall(L, &c, st);
}

void **atl_handle_objects(lua_State *L, int t, int kind, size_t *n) {
  const void *mt = atl_statedata(L)->handle_mt[kind];
  lua_Unsigned len = lua_rawlen(L, t), i;
  void **objs;
  if (mt == NULL || len == 0 || len > ((size_t)-1) / sizeof(void *))
    return NULL;
  objs = (void **)lua_newuserdatauv(L, (size_t)len * sizeof(void *), 0);
  for (i = 1; i <= len; i++) {
    atl_Handle *h;
    int same = 0;
    lua_rawgeti(L, t, (lua_Integer)i);
    h = (atl_Handle *)lua_touserdata(L, -1);
    if (h != NULL && lua_getmetatable(L, -1)) {
      same = lua_topointer(L, -1) == mt;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!same || h->obj == NULL) {
      lua_pop(L, 1);  /* the array */
      return NULL;
    }
    objs[i - 1] = h->obj;
  }
  *n = (size_t)len;
  return objs;
}

int atl_host_call_flags(lua_State *L, int fn, int kind, void *self,
                        int first, int flags) {
  return host_call_full(L, fn, kind, self, first, 0, NULL, 0, flags);
}

/* }====================================================================== */


/* {======================================================================
** Host yields: the calls that async code makes without blocking
** ======================================================================= */

char atl_async_tag;     /* first value of a host yield */
char atl_async_cancel;  /* resume value: the pending call was cancelled */

int atl_async_ishostyield(lua_State *L, int n) {
  return n == 2 && lua_touserdata(L, -2) == (void *)&atl_async_tag;
}

int atl_async_mustyield(lua_State *L, const char *what) {
  atl_StateData *d = atl_statedata(L);
  if (d->async_depth <= 0) return 0;
  if (d->nonpass > 0 || !lua_isyieldable(L))
    return luaL_error(L, "%s cannot yield to the aloop here: it is called "
                      "inside a C function that cannot yield (a 'table.sort' "
                      "comparator, a metamethod called from C such as "
                      "'__tostring', '__gc', or 'lock:with'); call it "
                      "outside that function", what);
  return 1;
}

int atl_host_yield(lua_State *L, int fn, int kind, void *self, int first,
                   lua_KContext ctx, lua_KFunction k) {
  atl_PendingCall *p = atl_fault() ? NULL
      : (atl_PendingCall *)calloc(1, sizeof *p);
  if (p == NULL) return luaL_error(L, "not enough memory");
  {
    char *err = NULL;
    int n = lua_gettop(L) - first + 1;
    if (n < 0) n = 0;
    if (n > 0 && atl_codec_encode(L, first, n, n == 1 ? "args[1]" : "args",
                                  0, &p->args, &err) != ATL_OK) {
      free(p);  /* an argument that cannot be copied: nothing to wait for */
      return atl_raise_owned_where(L, err);
    }
    p->call.host = atl_statedata(L)->host;
    p->call.fn = fn;
    p->call.kind = kind;
    p->call.self = self;
    p->call.args = p->args.data;
    p->call.argslen = p->args.len;
    p->call.argsbuf = &p->args;
    p->call.nargs = n;
    p->call.where = "";
  }
  lua_pushlightuserdata(L, &atl_async_tag);
  lua_pushlightuserdata(L, p);
  return lua_yieldk(L, 2, ctx, k);
}

int atl_host_resumed(lua_State *L) {
  /* only C code makes light userdata: Lua code that resumes a waiting
  ** coroutine by hand cannot pass anything taken for a call */
  void *v = lua_islightuserdata(L, -1) ? lua_touserdata(L, -1) : NULL;
  atl_PendingCall *p;
  atl_Call c;
  int st;
  lua_pop(L, 1);  /* a light userdata (or what someone resumed us with) */
  if (v == (void *)&atl_async_cancel) {
    atl_exec_pushcancel(L);
    return atl_raise_unhandled(L);
  }
  if (v == NULL)
    return luaL_error(L, "a coroutine waiting for the aloop was resumed by "
                      "something else");
  p = (atl_PendingCall *)v;
  c = p->call;
  st = p->status;
  atl_buffer_free(&p->args);
  free(p);
  return finishcall(L, &c, st);
}

void atl_async_call_free(atl_PendingCall *p) {
  if (p == NULL) return;
  atl_buffer_free(&p->args);
  atl_buffer_free(&p->call.result);
  free(p->call.error);
  free(p);
}
/* }====================================================================== */
