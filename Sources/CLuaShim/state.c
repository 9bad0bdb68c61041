/*
** state.c: opening and closing states, the allocator, and the process-wide
** standard library calls ('print' writes whole lines under one lock;
** 'os.exit' asks the host for a graceful stop).
*/
#define atl_state_c

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim_private.h"

atl_StateData *atl_statedata(lua_State *L) {
  return *(atl_StateData **)lua_getextraspace(L);
}

/* {======================================================================
** Small blocks (see 'atl_Small'). A block is ours when it lies in one of
** the state's pages (at most ATL_SMALL_PAGES of them, so the test is a
** short scan, and none for a block larger than ATL_SMALL_MAX, which Lua's
** 'osize' tells); anything else came from malloc. Freed blocks go to the free
** list of their class; pages are freed with the state.
** ======================================================================= */

static int isours(const atl_Small *sm, const void *p, size_t osize) {
  int i;
  if (osize > ATL_SMALL_MAX) return 0;  /* no small block is larger */
  for (i = sm->npages - 1; i >= 0; i--) {  /* young objects die first */
    if ((uintptr_t)p - (uintptr_t)sm->pages[i] < ATL_SMALL_PAGE) return 1;
  }
  return 0;
}

/* A block of class 'c' (c * 8 bytes), or NULL when the pages are used up
** (the caller then uses malloc). Inlined: it is the allocator's common
** case. */
static inline __attribute__((always_inline))
void *smallalloc(atl_Small *sm, size_t c) {
  size_t size = c * 8;
  void *p = sm->free[c - 1];
  if (p != NULL) {
    sm->free[c - 1] = *(void **)p;
    return p;
  }
  if ((size_t)(sm->end - sm->bump) < size) {
    char *page;
    size_t rest = (size_t)(sm->end - sm->bump) / 8;
    if (sm->npages == ATL_SMALL_PAGES ||
        (page = (char *)malloc(ATL_SMALL_PAGE)) == NULL)
      return NULL;
    if (rest > 0) {  /* the old page's rest: a free block of its class */
      *(void **)sm->bump = sm->free[rest - 1];
      sm->free[rest - 1] = sm->bump;
    }
    sm->pages[sm->npages++] = page;
    sm->bump = page;
    sm->end = page + ATL_SMALL_PAGE;
  }
  p = sm->bump;
  sm->bump += size;
  return p;
}

static void smallfree(atl_Small *sm, void *p, size_t osize) {
  size_t c = (osize + 7) / 8;
  *(void **)p = sm->free[c - 1];
  sm->free[c - 1] = p;
}

static void freepages(atl_Small *sm) {
  int i;
  for (i = 0; i < sm->npages; i++) free(sm->pages[i]);
  sm->npages = 0;
}

/* }====================================================================== */

/*
** The allocator counts allocations; with a limit set (tests), it fails the
** allocation whose number equals the limit and every one after it (Lua
** retries a failed allocation after an emergency collection, so failing
** only one would be silently recovered). Lua never asks a shrinking
** reallocation to fail: a shrinking block stays where it is. Small blocks
** come from the state's pages (above).
**
** It counts the bytes that Lua holds ('osize' and 'nsize' as Lua gives
** them, so the count is what 'collectgarbage("count")' says) and refuses a
** growth that would take them past 'mem_limit': Lua then collects garbage
** and tries once more, and raises "not enough memory" if it still does not
** fit. The state is used by one thread at a time, so the counters are plain
** fields, stored with relaxed atomic stores (plain stores) for reports.
*/
static void setlive(atl_StateData *d, size_t live) {
  __atomic_store_n(&d->mem_live, live, __ATOMIC_RELAXED);
  if (live > d->mem_peak) __atomic_store_n(&d->mem_peak, live, __ATOMIC_RELAXED);
}

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  atl_StateData *d = (atl_StateData *)ud;
  atl_Small *sm = &d->small;
  void *p;
  int ours = ptr != NULL && isours(sm, ptr, osize);
  size_t old = ptr != NULL ? osize : 0;  /* else 'osize' is a type tag */
  size_t live;
  if (nsize == 0) {
    if (ours) smallfree(sm, ptr, osize);
    else free(ptr);
    __atomic_store_n(&d->mem_live, d->mem_live - old, __ATOMIC_RELAXED);
    return NULL;
  }
  if (ptr != NULL && nsize <= osize) {  /* shrinking: never fails */
    __atomic_store_n(&d->mem_live, d->mem_live - (osize - nsize),
                     __ATOMIC_RELAXED);
    return ours ? ptr : realloc(ptr, nsize);
  }
  d->alloc_count++;
  if (d->alloc_limit > 0 && d->alloc_count >= d->alloc_limit)
    return NULL;
  live = d->mem_live + (nsize - old);  /* no overflow: Lua's sizes are
                                          below its MAX_SIZE */
  if (live > d->mem_limit || atl_fault())
    return NULL;
  if (ptr != NULL && !ours && nsize > ATL_SMALL_MAX) {
    p = realloc(ptr, nsize);
    if (p != NULL) setlive(d, live);
    return p;
  }
  p = NULL;
  if (nsize <= ATL_SMALL_MAX) p = smallalloc(sm, (nsize + 7) / 8);
  if (p == NULL) p = malloc(nsize);
  if (p == NULL) return NULL;
  if (ptr != NULL) {
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    if (ours) smallfree(sm, ptr, osize);
    else free(ptr);
  }
  setlive(d, live);
  return p;
}

static int l_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "atasker-lua: unprotected Lua error (a bug): %s\n",
          msg ? msg : "?");
  fflush(stderr);
  abort();
  return 0;
}

/* {======================================================================
** Output
** ======================================================================= */

static pthread_mutex_t output_lock = PTHREAD_MUTEX_INITIALIZER;

void atl_output_lock(void) { pthread_mutex_lock(&output_lock); }
void atl_output_unlock(void) { pthread_mutex_unlock(&output_lock); }

void atl_output_flush(void) {
  pthread_mutex_lock(&output_lock);
  fflush(stdout);
  pthread_mutex_unlock(&output_lock);
}

/* 'print' builds the whole line first, then writes it under the lock, so
** the lines of two threads never interleave; it flushes as Lua's own
** 'print' does, so a line reaches a pipe or a log at once (a long-running
** program, a process-pool child whose task has not ended yet). */
static int l_print(lua_State *L) {
  int n = lua_gettop(L);
  int i;
  size_t len;
  const char *s;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  s = lua_tolstring(L, -1, &len);
  pthread_mutex_lock(&output_lock);
  fwrite(s, 1, len, stdout);
  fflush(stdout);
  pthread_mutex_unlock(&output_lock);
  return 0;
}

/* 'os.exit([code])': the host decides (a graceful stop of the program with
** that code, or an error in an embedding app that does not allow it). */
static int l_exit(lua_State *L) {
  lua_Integer code;
  if (lua_isboolean(L, 1))
    code = lua_toboolean(L, 1) ? 0 : 1;
  else
    code = luaL_optinteger(L, 1, 0);
  lua_settop(L, 0);
  lua_pushinteger(L, code);
  return atl_host_call(L, ATL_FN_EXIT, 0, NULL, 1);
}

/* 'pcall' and 'xpcall' that let 'os.exit' through: the exit unwinds as an
** error holding the exit sentinel, and a protected call that caught it
** raises it again, so 'pcall(os.exit, 3)' ends the program (or the child)
** as 'os.exit(3)' does. The continuations keep them yieldable. Upvalue 1 of
** 'l_pcall' is Lua's own 'pcall'. */
static int pcall_cont(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_gettop(L) >= 2 && !lua_toboolean(L, 1) && atl_isexit(L, 2)) {
    lua_pushvalue(L, 2);
    return atl_raise_unhandled(L);
  }
  return lua_gettop(L);
}

static int l_pcall(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, pcall_cont);
  return pcall_cont(L, LUA_OK, 0);
}

/*
** 'xpcall(f, msgh, ...)', ours rather than a wrapper of Lua's: the message
** handler stays in slot 2 of this function's frame for the whole call, so
** that an error that must not run it (a cancel, 'os.exit') can put
** 'atl_sameerror' in its place first ('atl_skiphandlers'). That matters
** because an error raised by a hook calls the handler with hooks off: a
** handler that loops could never be cancelled. After the call, the stack
** is 'f, msgh, true' and the results, or the error object on top.
*/
static int xpcall_cont(lua_State *L, int status, lua_KContext ctx) {
  if (status != LUA_OK && status != LUA_YIELD) {
    if (atl_isexit(L, -1)) return atl_raise_unhandled(L);  /* it goes on */
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;  /* false, error */
  }
  return lua_gettop(L) - (int)ctx;  /* true, results */
}

int atl_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);  /* f, msgh, true, f, args... */
  return xpcall_cont(L, lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_cont),
                     2);
}

static void exit_uncatchable(lua_State *L) {
  lua_pushglobaltable(L);
  lua_getfield(L, -1, "pcall");
  lua_pushcclosure(L, l_pcall, 1);
  lua_setfield(L, -2, "pcall");
  lua_pushcfunction(L, atl_xpcall);
  lua_setfield(L, -2, "xpcall");
  lua_pop(L, 1);
}

/* }====================================================================== */

/* Prepend 'dir' (a ';'-separated template list) to package[field]. */
static void prependpath(lua_State *L, const char *field, const char *dirs) {
  if (dirs == NULL || *dirs == '\0') return;
  lua_getfield(L, -1, field);
  lua_pushfstring(L, "%s;%s", dirs, lua_tostring(L, -1));
  lua_setfield(L, -3, field);
  lua_pop(L, 1);
}

/* {======================================================================
** Lazy libraries. The main state opens every standard library; the states
** of workers and pool threads open only the base library and 'string'
** (strings need its metatable for arithmetic coercion), and load the
** others ('package', 'atasker' ...) on first use: through the globals
** table's '__index' ('require' loads 'package'), through 'require', and
** when a value that travels by name is decoded. A worker state is then
** about a third of the size.
** ======================================================================= */

/* 'package', with the host's folders in front of its paths. */
static int open_package(lua_State *L);

/* 'os' with the process-wide 'exit'. */
static int open_os(lua_State *L) {
  luaopen_os(L);
  lua_pushcfunction(L, l_exit);
  lua_setfield(L, -2, "exit");
  return 1;
}

/* 'coroutine' with the resume and wrap that track the running coroutine. */
static int open_coroutine(lua_State *L) {
  luaopen_coroutine(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, LUA_COLIBNAME);  /* so that the wrapping finds it */
  lua_pop(L, 1);
  atl_open_coroutine(L);
  return 1;
}

static const luaL_Reg lazylibs[] = {
  {LUA_LOADLIBNAME, open_package},
  {LUA_COLIBNAME, open_coroutine},
  {LUA_TABLIBNAME, luaopen_table},
  {LUA_IOLIBNAME, luaopen_io},
  {LUA_OSLIBNAME, open_os},
  {LUA_MATHLIBNAME, luaopen_math},
  {LUA_UTF8LIBNAME, luaopen_utf8},
  {LUA_DBLIBNAME, luaopen_debug},
  {"atasker", atl_open_atasker},
  {NULL, NULL}
};

/* 'package', with the host's folders in front of its paths, and the lazy
** libraries and "atasker.extra" in 'package.preload' (for 'require'). */
static int open_package(lua_State *L) {
  atl_StateData *d = atl_statedata(L);
  const luaL_Reg *lib;
  luaopen_package(L);
  atl_loadtext_package(L, -1);
  prependpath(L, "path", d->package_path);
  prependpath(L, "cpath", d->package_cpath);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (lib = lazylibs; lib->name != NULL; lib++) {
    lua_pushcfunction(L, lib->func);
    lua_setfield(L, -2, lib->name);
  }
  lua_pushcfunction(L, atl_open_extra);
  lua_setfield(L, -2, "atasker.extra");
  lua_pop(L, 1);
  atl_preload_app_modules(L);
  return 1;
}

/* Load lazy library 'name' (once) as a global and a loaded module, and push
** it; returns 0 (pushing nothing) when 'name' is not one. */
int atl_state_loadlazy(lua_State *L, const char *name) {
  const luaL_Reg *lib;
  for (lib = lazylibs; lib->name != NULL; lib++) {
    if (strcmp(lib->name, name) == 0) {
      luaL_requiref(L, lib->name, lib->func, 1);
      return 1;
    }
  }
  return 0;
}

/* '__index' of the globals table: the lazy libraries by name. */
static int lazy_global(lua_State *L) {
  const char *name = lua_tostring(L, 2);
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  if (strcmp(name, "require") == 0) {  /* a function of 'package' */
    atl_state_loadlazy(L, LUA_LOADLIBNAME);
    lua_pop(L, 1);
    lua_rawget(L, 1);
    return 1;
  }
  return atl_state_loadlazy(L, name);
}

static void openlazy(lua_State *L) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  lua_pop(L, 1);
  atl_loadtext_base(L);
  exit_uncatchable(L);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  lua_pop(L, 1);
  lua_pushglobaltable(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, lazy_global);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

/* }====================================================================== */

static int open_p(lua_State *L) {
  const atl_StateOptions *o =
      (const atl_StateOptions *)lua_touserdata(L, 1);
  if (o->is_main) {
    luaL_openlibs(L);
    atl_loadtext_base(L);
    exit_uncatchable(L);
    lua_getglobal(L, LUA_LOADLIBNAME);
    atl_loadtext_package(L, -1);
    lua_pop(L, 1);
    atl_open_coroutine(L);
    lua_getglobal(L, "os");
    lua_pushcfunction(L, l_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
  }
  else openlazy(L);
  lua_pushcfunction(L, l_print);
  lua_setglobal(L, "print");
  if (o->is_main) {  /* other states prepend them when 'package' loads */
    lua_getglobal(L, "package");
    prependpath(L, "path", o->package_path);
    prependpath(L, "cpath", o->package_cpath);
    lua_pop(L, 1);
    atl_preload_app_modules(L);
  }
  if (o->is_main) {
    luaL_requiref(L, "atasker", atl_open_atasker, 1);
    lua_pop(L, 1);
  }
  return 0;
}

/* The message of a state that could not open: 'msg' (malloc'd, or NULL
** when there was no memory for it), and the limit when there is one. */
static char *openerror(const atl_StateOptions *opts, char *msg) {
  char *full;
  size_t n;
  if (opts->memory_limit == 0 || msg == NULL) return msg;
  n = strlen(msg) + 128;
  full = (char *)malloc(n);
  if (full == NULL) return msg;
  snprintf(full, n, "%s (the memory limit is %zu bytes: it must leave room "
           "for the state itself, about 10 KB, and what it runs)", msg,
           opts->memory_limit);
  free(msg);
  return full;
}

lua_State *atl_state_open(const atl_StateOptions *opts, char **err) {
  atl_StateData *d = atl_fault() ? NULL
      : (atl_StateData *)calloc(1, sizeof(atl_StateData));
  lua_State *L;
  int st;
  if (d == NULL) {
    *err = strdup("not enough memory");
    return NULL;
  }
  if ((opts->package_path != NULL &&
       (d->package_path = strdup(opts->package_path)) == NULL) ||
      (opts->package_cpath != NULL &&
       (d->package_cpath = strdup(opts->package_cpath)) == NULL)) {
    free(d->package_path);
    free(d);
    *err = strdup("not enough memory");
    return NULL;
  }
  d->host = opts->host;
  d->supervisor = opts->supervisor;
  d->is_main = opts->is_main;
  d->is_child = opts->is_child;
  d->alloc_limit = opts->alloc_limit;
  d->allow_bytecode = opts->allow_bytecode;
  d->mem_limit = opts->memory_limit == 0 ? (size_t)-1 : opts->memory_limit;
  d->lua_modules = opts->lua_modules;
  d->host_functions = opts->host_functions;
  L = lua_newstate(l_alloc, d);
  if (L == NULL) {
    freepages(&d->small);
    free(d->package_path);
    free(d->package_cpath);
    free(d);
    *err = openerror(opts, strdup("not enough memory"));
    return NULL;
  }
  *(atl_StateData **)lua_getextraspace(L) = d;
  lua_atpanic(L, l_panic);
  lua_pushcfunction(L, open_p);
  lua_pushlightuserdata(L, (void *)opts);
  st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK) {
    *err = openerror(opts, atl_strdup_top(L, -1));
    lua_close(L);
    freepages(&d->small);
    free(d->package_path);
    free(d->package_cpath);
    free(d);
    return NULL;
  }
  atl_registry_add(d, opts->label);
  return L;
}

void atl_state_close(lua_State *L) {
  atl_StateData *d;
  if (L == NULL) return;
  d = atl_statedata(L);
  lua_close(L);
  atl_registry_remove(d);
  atl_host_freespare(d);
  freepages(&d->small);
  free(d->package_path);
  free(d->package_cpath);
  free(d);
}

long atl_state_alloc_count(lua_State *L) {
  return atl_statedata(L)->alloc_count;
}

static int setargs_p(lua_State *L) {
  const char *const *argv = (const char *const *)lua_touserdata(L, 1);
  int argc = (int)lua_tointeger(L, 2);
  int i;
  lua_createtable(L, argc, 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");
  return 0;
}

int atl_state_set_args(lua_State *L, const char *const *argv, int argc,
                       char **err) {
  int st;
  lua_pushcfunction(L, setargs_p);
  lua_pushlightuserdata(L, (void *)argv);
  lua_pushinteger(L, argc);
  st = lua_pcall(L, 2, 0, 0);
  if (st != LUA_OK) {
    *err = atl_strdup_top(L, -1);
    lua_settop(L, 0);
    return ATL_ERRMEM;
  }
  return ATL_OK;
}
