/*
** module_atasker.c: the 'atasker' module that every state gets (also as
** the global 'atasker'). Most functions are thin: they check their
** arguments here, at the caller's line, and hand the rest to the host
** through the trampoline.
*/
#define atl_module_atasker_c

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "shim_private.h"

/* Encode the value at 'idx' alone, so that a refusal names it as 'what'
** ("upvalue 'fh' of task function") rather than as an argument. */
static void probe(lua_State *L, int idx, const char *what) {
  atl_Buffer b = {0};
  char *err = NULL;
  if (atl_codec_encode(L, idx, 1, what, 0, &b, &err) != ATL_OK)
    atl_raise_owned_where(L, err);
  atl_buffer_free(&b);
}

/* The same, with 'prefix' ("background_worker 'w': ") before the refusal. */
static void probe_in(lua_State *L, int idx, const char *what,
                     const char *prefix) {
  atl_Buffer b = {0};
  char *err = NULL;
  if (atl_codec_encode(L, idx, 1, what, 0, &b, &err) != ATL_OK) {
    size_t n = strlen(prefix), m = err != NULL ? strlen(err) : 0;
    char *msg = atl_fault() ? NULL : (char *)malloc(n + m + 1);
    if (msg != NULL) {
      memcpy(msg, prefix, n);
      if (err != NULL) memcpy(msg + n, err, m);
      msg[n + m] = '\0';
    }
    free(err);
    atl_raise_owned_where(L, msg);
  }
  atl_buffer_free(&b);
}

/*
** 'background_task(fn, opts)'. To the host go three values, each encoded
** on its own: the function, the callback, and the other options. A task
** that runs on the pool threads of this process runs its callback in the
** same state right after it, so its callback travels with the function in
** one value, {fn, callback} ('true' stands in the callback's place): a
** local they share is one cell there too. An mp or aloop task runs in
** another state than its callback, which then gets a copy of its own.
*/
static int l_background_task(lua_State *L) {
  static const char *const alone[] = {"task function", "callback",
                                      "background_task options"};
  static const char *const together[] = {"task function and callback",
                                         "callback",
                                         "background_task options"};
  int elsewhere;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  probe(L, 1, "task function");
  lua_pushvalue(L, 1);  /* 3: the function, or {fn, callback} */
  lua_pushnil(L);       /* 4: the callback, 'true', or nil */
  lua_newtable(L);      /* 5: the options but 'callback' */
  if (lua_istable(L, 2)) {
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING &&
          strcmp(lua_tostring(L, -2), "callback") == 0) {
        lua_replace(L, 4);
        continue;
      }
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, 5);
    }
  }
  if (!lua_isfunction(L, 4))  /* none, or not a function: the host says */
    return atl_host_call_labelled(L, ATL_FN_BACKGROUND_TASK, 0, NULL, 3,
                                  alone, 3);
  probe(L, 4, "callback");
  lua_getfield(L, 5, "mp");
  elsewhere = lua_toboolean(L, -1);
  lua_getfield(L, 5, "loop");
  elsewhere = elsewhere || lua_toboolean(L, -1);
  lua_pop(L, 2);
  if (elsewhere)
    return atl_host_call_labelled(L, ATL_FN_BACKGROUND_TASK, 0, NULL, 3,
                                  alone, 3);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 4);
  lua_rawseti(L, -2, 2);
  lua_replace(L, 3);
  lua_pushboolean(L, 1);
  lua_replace(L, 4);
  return atl_host_call_labelled(L, ATL_FN_BACKGROUND_TASK, 0, NULL, 3,
                                together, 3);
}

static int l_background_worker(lua_State *L);

/*
** The function that 'background_worker{...}' returns for options without
** an executor (atasker's decorator with arguments): called with the
** executor, it makes the worker from a copy of the options plus 'fn'.
** Upvalue 1 is the kind (as for 'background_worker'), upvalue 2 the
** options.
*/
static int l_worker_decorator(lua_State *L) {
  if (!lua_isfunction(L, 1))
    return luaL_error(L, "background_worker{...}(fn): fn must be a function "
                      "(the worker's executor), got %s", luaL_typename(L, 1));
  lua_settop(L, 1);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, lua_upvalueindex(2)) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, 2);
  }
  lua_pushvalue(L, 1);
  lua_setfield(L, 2, "fn");
  lua_replace(L, 1);
  return l_background_worker(L);  /* same upvalue 1: the kind */
}

/*
** 'background_worker(fn)' and 'background_worker{fn=, ...}'; the named
** constructors pass the kind that they stand for as upvalue 1 (nil for
** 'background_worker', which chooses by the parameters). The executor is
** copied alone first, so that a refusal names the worker.
*/
static int l_background_worker(lua_State *L) {
  const char *labels[7] = {"the worker kind", NULL, "o", "on_error",
                           "on_error_kwargs", "process_result",
                           "background_worker options"};
  char exlabel[160], bothlabel[160], prefix[140];
  const char *name;
  lua_settop(L, 1);
  if (lua_isfunction(L, 1)) {
    lua_createtable(L, 0, 1);
    lua_insert(L, 1);
    lua_setfield(L, 1, "fn");
  }
  luaL_argexpected(L, lua_istable(L, 1), 1, "function or table");
  if (lua_getfield(L, 1, "fn") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_getfield(L, 1, "run");
  }
  if (lua_isnil(L, 2) && lua_isnone(L, lua_upvalueindex(2))) {
    /* 'background_worker{...}(fn)': the executor comes next */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, l_worker_decorator, 2);
    return 1;
  }
  name = (lua_getfield(L, 1, "name") == LUA_TSTRING) ?
             lua_tostring(L, -1) : NULL;
  if (!lua_isfunction(L, 2))
    return luaL_error(L, "background_worker%s%s%s: the executor (fn= or "
                      "run=) must be a function, got %s",
                      name ? " '" : "", name ? name : "", name ? "'" : "",
                      luaL_typename(L, 2));
  snprintf(exlabel, sizeof exlabel, "the executor of worker%s%.100s%s",
           name ? " '" : "", name ? name : "", name ? "'" : "");
  snprintf(bothlabel, sizeof bothlabel,
           "the executor and on_error of worker%s%.100s%s",
           name ? " '" : "", name ? name : "", name ? "'" : "");
  snprintf(prefix, sizeof prefix, "background_worker%s%.100s%s: ",
           name ? " '" : "", name ? name : "", name ? "'" : "");
  probe(L, 2, exlabel);
  if (lua_getfield(L, 1, "on_error") == LUA_TFUNCTION)
    probe_in(L, -1, "on_error", prefix);
  if (lua_getfield(L, 1, "process_result") == LUA_TFUNCTION)
    probe_in(L, -1, "process_result", prefix);
  if (lua_getfield(L, 1, "o") != LUA_TNIL)
    probe_in(L, -1, "o", prefix);
  if (lua_getfield(L, 1, "on_error_kwargs") != LUA_TNIL)
    probe_in(L, -1, "on_error_kwargs", prefix);
  lua_settop(L, 2);
  /* to the host: kind, fn, o, on_error, on_error_kwargs, process_result,
  ** and the other options in a table of their own, each encoded on its own
  ** (two of them that share a local get a copy each). An 'on_error' of a
  ** worker whose executor runs in this process travels with 'fn' in one
  ** value, {fn, on_error}, so that a local they share is one cell in the
  ** worker's state too; 'true' stands in its place. */
  lua_pushvalue(L, lua_upvalueindex(1));  /* the kind, or nil */
  lua_getfield(L, 1, "mp");
  lua_getfield(L, 1, "on_error");
  if (lua_isfunction(L, -1) && !lua_toboolean(L, -2)) {
    labels[1] = bothlabel;
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, 1);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 2);  /* kind, mp, {fn, on_error} */
    lua_remove(L, -2);
    lua_getfield(L, 1, "o");
    lua_pushboolean(L, 1);
  }
  else {
    lua_pop(L, 2);
    lua_pushvalue(L, 2);
    lua_getfield(L, 1, "o");
    lua_getfield(L, 1, "on_error");
  }
  lua_getfield(L, 1, "on_error_kwargs");
  lua_getfield(L, 1, "process_result");
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (strcmp(k, "fn") == 0 || strcmp(k, "run") == 0 || strcmp(k, "o") == 0 ||
        strcmp(k, "on_error") == 0 || strcmp(k, "on_error_kwargs") == 0 ||
        strcmp(k, "process_result") == 0) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  if (labels[1] == NULL) labels[1] = exlabel;
  return atl_host_call_labelled(L, ATL_FN_BACKGROUND_WORKER, 0, NULL, 3,
                                labels, 7);
}

/* The 'n' results of 'wait_completed' above 'base': one, or for a table
** of tasks the list of their results in the order of the tasks, which the
** host sends as one value (a list of a million results is one table, never
** a million values on the stack). */
static int waitresults(lua_State *L, int islist, int base, int n) {
  (void)islist;
  (void)base;
  return n > 0 ? 1 : 0;
}

/* After the aloop resumed a 'wait_completed' of async code. */
static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  int base = lua_gettop(L) - 1;  /* below the finished call */
  int n = atl_host_resumed(L);
  (void)status;
  return waitresults(L, (int)ctx, base, n);
}

/* 'wait_completed(task | {tasks...}, [timeout])': one result, or a list of
** results in the order of the tasks. In async code it yields to the aloop
** until the tasks are done. */
static int l_wait_completed(lua_State *L) {
  int islist, base;
  luaL_checkany(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checknumber(L, 2);
  lua_settop(L, 2);
  islist = lua_istable(L, 1);
  if (!islist && atl_handle_test(L, 1) == NULL)
    luaL_typeerror(L, 1, "atasker.Task or table of tasks");
  if (atl_async_mustyield(L, "atasker.wait_completed"))
    return atl_host_yield(L, ATL_FN_WAIT_COMPLETED, 0, NULL, 1,
                          (lua_KContext)islist, wait_k);
  base = lua_gettop(L);
  if (islist) {
    /* a list of task handles goes as their objects, with no encoding */
    size_t n;
    void **objs = atl_handle_objects(L, 1, ATL_H_TASK, &n);
    if (objs != NULL) {
      lua_insert(L, 1);  /* the array, below the list and the timeout */
      return waitresults(L, islist, base,
                         atl_host_call_objs(L, ATL_FN_WAIT_COMPLETED, objs,
                                            n, 3));
    }
  }
  return waitresults(L, islist, base,
                     atl_host_call(L, ATL_FN_WAIT_COMPLETED, 0, NULL, 1));
}

/* After the aloop resumed an 'atasker.sleep' of async code. */
static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return atl_host_resumed(L);
}

/* 'sleep(seconds)': yields to the aloop in async code, sleeps elsewhere. */
static int l_sleep(lua_State *L) {
  luaL_checknumber(L, 1);
  lua_settop(L, 1);
  if (atl_async_mustyield(L, "atasker.sleep"))
    return atl_host_yield(L, ATL_FN_SLEEP, 0, NULL, 1, 0, sleep_k);
  return atl_host_call(L, ATL_FN_SLEEP, 0, NULL, 1);
}

static double clocknow(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int l_monotonic(lua_State *L) {
  lua_pushnumber(L, clocknow(CLOCK_MONOTONIC));
  return 1;
}

static int l_time(lua_State *L) {
  lua_pushnumber(L, clocknow(CLOCK_REALTIME));
  return 1;
}

/* The id of the process that runs this code (a process-pool child has its
** own), as Python's 'os.getpid'. */
static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* Registry key of the state's shared-table handles, by name. */
static const char shared_key = 's';

/* 'atasker.shared(name)': the same handle for the same name in a state, so
** an executor that asks for its table at every run makes no garbage (a
** handle has a finalizer, and lives through one more collection). */
static int l_shared(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &shared_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &shared_key);
  }
  lua_pushvalue(L, 1);
  if (lua_rawget(L, 2) != LUA_TNIL) return 1;
  lua_settop(L, 2);
  lua_pushvalue(L, 1);  /* the one argument of the host call */
  if (atl_host_call(L, ATL_FN_SHARED, 0, NULL, 3) != 1)
    return luaL_error(L, "atasker.shared: no table from the host");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, 2);
  return 1;
}

static int l_set_debug(lua_State *L) {
  lua_settop(L, 1);
  lua_pushboolean(L, lua_isnone(L, 1) || lua_toboolean(L, 1));
  lua_replace(L, 1);
  return atl_host_call(L, ATL_FN_SET_DEBUG, 0, NULL, 1);
}

/* 'log.<level>(...)': the arguments joined by spaces; upvalue 1 is the
** level name. */
static int l_log(lua_State *L) {
  int n = lua_gettop(L), i;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, ' ');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, -2);  /* level, message */
  return atl_host_call(L, ATL_FN_LOG, 0, NULL, lua_gettop(L) - 1);
}

/* {======================================================================
** atasker.g: a table of values for this state only (atasker's thread-local
** LocalProxy); upvalue 1 is the storage.
** ======================================================================= */

/* The key of method 'g:name(key, ...)': argument 2, after 'g' itself;
** nil and NaN are refused, naming the method. */
static void g_checkkey(lua_State *L, const char *name) {
  if (!lua_istable(L, 1))
    luaL_error(L, "atasker.g:%s: call it with ':' (atasker.g:%s(key, ...))",
               name, name);
  if (lua_isnoneornil(L, 2))
    luaL_error(L, "atasker.g:%s(key): the key is missing (nil)", name);
  if (lua_type(L, 2) == LUA_TNUMBER && lua_tonumber(L, 2) != lua_tonumber(L, 2))
    luaL_error(L, "atasker.g:%s(key): the key is NaN", name);
}

static int g_get(lua_State *L) {
  g_checkkey(L, "get");
  lua_settop(L, 3);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) == LUA_TNIL) lua_pushvalue(L, 3);
  return 1;
}

static int g_set(lua_State *L) {
  g_checkkey(L, "set");
  lua_settop(L, 3);
  lua_rawset(L, lua_upvalueindex(1));
  return 0;
}

static int g_has(lua_State *L) {
  g_checkkey(L, "has");
  lua_settop(L, 2);
  lua_pushboolean(L, lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL);
  return 1;
}

static int g_clear(lua_State *L) {
  g_checkkey(L, "clear");
  lua_settop(L, 2);
  lua_pushnil(L);
  lua_rawset(L, lua_upvalueindex(1));
  return 0;
}

static void makeg(lua_State *L) {
  static const luaL_Reg gfuncs[] = {
    {"get", g_get}, {"set", g_set}, {"has", g_has}, {"clear", g_clear},
    {NULL, NULL}
  };
  lua_createtable(L, 0, 4);
  lua_newtable(L);  /* storage */
  luaL_setfuncs(L, gfuncs, 1);
}

/* }====================================================================== */

/* 'FunctionCollection{...}' and 'TaskCollection{...}': from module
** "atasker.extra" (upvalue 1 is the constructor's name). */
static int l_collection(lua_State *L) {
  lua_settop(L, 1);
  luaL_requiref(L, "atasker.extra", atl_open_extra, 0);
  lua_getfield(L, -1, lua_tostring(L, lua_upvalueindex(1)));
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

/* 'Locker{mod=, timeout=, relative=}'. */
static int l_locker(lua_State *L) {
  lua_settop(L, 1);
  if (!lua_isnil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  return atl_host_call(L, ATL_FN_LOCKER_NEW, 0, NULL, 1);
}

static const luaL_Reg funcs[] = {
  {"background_task", l_background_task},
  {"wait_completed", l_wait_completed},
  {"sleep", l_sleep},
  {"monotonic", l_monotonic},
  {"time", l_time},
  {"getpid", l_getpid},
  {"shared", l_shared},
  {"set_debug", l_set_debug},
  {"Locker", l_locker},
  {NULL, NULL}
};

static const char *const levels[] = {
  "debug", "info", "warning", "error", "critical", NULL
};

/* {======================================================================
** Fields made on first use. A worker state that only calls
** 'atasker.shared' should not pay for the other functions, the
** supervisor's handle, the logging table, the constructors and 'g': the
** module's metatable makes them when they are first read. The main state
** has 'funcs' and the constants from the start.
** ======================================================================= */

static const struct {
  const char *name;
  lua_Integer value;
} priorities[] = {
  {"TASK_CRITICAL", 0}, {"TASK_HIGH", 50}, {"TASK_NORMAL", 100},
  {"TASK_LOW", 200}, {NULL, 0}
};

#define ATL_VERSION "atasker-lua 0.1.0"

static const char *const ctors[][2] = {
  {"background_worker", NULL}, {"BackgroundWorker", "plain"},
  {"BackgroundQueueWorker", "queue"}, {"BackgroundEventWorker", "event"},
  {"BackgroundIntervalWorker", "interval"},
  {"BackgroundAsyncWorker", "async"}, {NULL, NULL}
};

/* Push the value of lazy field 'k' of the module at 'm'; 0 if none. */
static int makefield(lua_State *L, int m, const char *k) {
  int i;
  for (i = 0; funcs[i].name != NULL; i++) {
    if (strcmp(k, funcs[i].name) == 0) {
      lua_pushcfunction(L, funcs[i].func);
      return 1;
    }
  }
  for (i = 0; priorities[i].name != NULL; i++) {
    if (strcmp(k, priorities[i].name) == 0) {
      lua_pushinteger(L, priorities[i].value);
      return 1;
    }
  }
  if (strcmp(k, "is_main") == 0) {
    lua_pushboolean(L, atl_statedata(L)->is_main);
    return 1;
  }
  if (strcmp(k, "_VERSION") == 0) {
    lua_pushliteral(L, ATL_VERSION);
    return 1;
  }
  if (strcmp(k, "supervisor") == 0) {
    atl_StateData *d = atl_statedata(L);
    if (d->supervisor == NULL) return 0;
    atl_handle_push(L, d->supervisor, ATL_H_SUPERVISOR);
    return 1;
  }
  if (strcmp(k, "log") == 0) {
    lua_createtable(L, 0, 6);
    for (i = 0; levels[i] != NULL; i++) {
      lua_pushstring(L, levels[i]);
      lua_pushcclosure(L, l_log, 1);
      lua_setfield(L, -2, levels[i]);
    }
    lua_getfield(L, -1, "warning");
    lua_setfield(L, -2, "warn");
    return 1;
  }
  if (strcmp(k, "g") == 0) {
    makeg(L);
    return 1;
  }
  if (strcmp(k, "Error") == 0) {
    atl_push_errormt(L);
    return 1;
  }
  if (strcmp(k, "FunctionCollection") == 0 ||
      strcmp(k, "TaskCollection") == 0) {
    lua_pushstring(L, k);
    lua_pushcclosure(L, l_collection, 1);
    return 1;
  }
  for (i = 0; ctors[i][0] != NULL; i++) {
    if (strcmp(k, ctors[i][0]) == 0) {
      if (ctors[i][1] != NULL) lua_pushstring(L, ctors[i][1]);
      else lua_pushnil(L);
      lua_pushcclosure(L, l_background_worker, 1);
      return 1;
    }
  }
  (void)m;
  return 0;
}

/* '__tostring' of an 'atasker.Error': its message. */
static int error_tostring(lua_State *L) {
  if (lua_istable(L, 1) && lua_getfield(L, 1, "message") == LUA_TSTRING)
    return 1;
  lua_pushliteral(L, "atasker.Error");
  return 1;
}

/* '__concat': the message takes the error's place ("wrapped: " .. e). */
static int error_concat(lua_State *L) {
  int i;
  for (i = 1; i <= 2; i++) {
    if (luaL_getmetafield(L, i, "__name") != LUA_TNIL) {
      int ours = lua_type(L, -1) == LUA_TSTRING &&
                 strcmp(lua_tostring(L, -1), "atasker.Error") == 0;
      lua_pop(L, 1);
      if (ours) {
        lua_getfield(L, i, "message");
        lua_replace(L, i);
      }
    }
  }
  lua_settop(L, 2);
  lua_concat(L, 2);
  return 1;
}

/* '__index' for a name that the error lacks: string methods work on the
** message ('e:match(p)', 'e:find(s)'). Upvalue 1: the string library. */
static int error_method_call(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "message");
  lua_replace(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static int error_index(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_STRLIBNAME) != LUA_TTABLE ||
      lua_type(L, 2) != LUA_TSTRING || lua_getfield(L, -1, lua_tostring(L, 2))
      != LUA_TFUNCTION)
    return 0;
  lua_pushcclosure(L, error_method_call, 1);
  return 1;
}

void atl_push_errormt(lua_State *L) {
  if (luaL_newmetatable(L, "atasker.Error")) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, error_concat);
    lua_setfield(L, -2, "__concat");
    lua_pushcfunction(L, error_index);
    lua_setfield(L, -2, "__index");
  }
}

/* '__index' of the module: make a lazy field once and keep it. */
static int module_index(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  if (lua_type(L, 2) != LUA_TSTRING || !makefield(L, 1, k)) return 0;
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  atl_codec_forget_names(L);  /* the new field travels by name */
  return 1;
}

/* }====================================================================== */

int atl_open_atasker(lua_State *L) {
  atl_StateData *d = atl_statedata(L);
  int i;
  if (d->is_main) {
    luaL_newlib(L, funcs);
    for (i = 0; priorities[i].name != NULL; i++) {
      lua_pushinteger(L, priorities[i].value);
      lua_setfield(L, -2, priorities[i].name);
    }
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "is_main");
    lua_pushliteral(L, ATL_VERSION);
    lua_setfield(L, -2, "_VERSION");
  }
  else lua_newtable(L);  /* every field is made on first use */
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, module_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  /* "atasker.extra" can be required by name too (values copied by name);
  ** other states put it in 'package.preload' when 'package' loads */
  if (d->is_main) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, atl_open_extra);
    lua_setfield(L, -2, "atasker.extra");
    lua_pop(L, 1);
  }
  return 1;
}
