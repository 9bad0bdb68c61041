/*
** worker.c: running a worker's executions in the worker's own state. The
** executor, its 'kw' table and its 'on_error' are decoded once per start
** and kept in the registry; each execution calls the executor with the same
** 'kw' table (its '_task_id' updated).
*/
#define atl_worker_c

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shim_private.h"

static const char fn_key = 'f';       /* registry: the executor */
static const char place_key = 'l';    /* registry: its 'file:line' */
static const char kw_key = 'k';       /* registry: the kw table */
static const char onerror_key = 'o';  /* registry: on_error, or absent */
static const char extra_key = 'x';    /* registry: on_error_kwargs, or nil */
static const char run_key = 'r';      /* registry: 'run_p' with the executor,
                                      ** kw and the place as upvalues */

static int run_p(lua_State *L);

typedef struct SetupParams {
  const atl_Buffer *fn, *kw, *onerror;
} SetupParams;

/* Build the 'kw' table from the values of the keywords buffer: the start
** arguments (a table, or nil), 'o', the worker handle and the name. */
static void buildkw(lua_State *L, const atl_Buffer *b) {
  int envup = 0, base = lua_gettop(L);
  int n = atl_codec_decode_raw(L, b, 0, &envup);
  if (n != 4)
    luaL_error(L, "worker arguments: the buffer holds %d values, not 4", n);
  if (!lua_istable(L, base + 1)) {
    lua_newtable(L);
    lua_replace(L, base + 1);
  }
  lua_pushvalue(L, base + 2);
  lua_setfield(L, base + 1, "o");
  lua_pushvalue(L, base + 3);
  lua_setfield(L, base + 1, "_worker");
  lua_pushvalue(L, base + 4);
  lua_setfield(L, base + 1, "_name");
  lua_settop(L, base + 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kw_key);
}

/*
** The collector of a worker's state starts a cycle when the heap has grown
** by a fifth since the last one, not (Lua's default pause of 200) once it
** has doubled: thousands of small long-lived states each holding up to
** twice their live data cost more RSS than the extra cycles cost time (an
** executor that makes garbage: 35 KB per worker at 200, 25 KB at 120). The
** step multiplier and step size stay Lua's.
*/
#define ATL_WORKER_GCPAUSE 120

static int setup_p(lua_State *L) {
  SetupParams *p = (SetupParams *)lua_touserdata(L, 1);
  int envup = 0, bundled;
  /* the executor, or {executor, on_error} when they travel together */
  if (atl_codec_decode_raw(L, p->fn, 0, &envup) != 1)
    luaL_error(L, "worker executor: the buffer holds no function");
  bundled = lua_gettop(L);
  if (lua_istable(L, bundled)) {
    lua_rawgeti(L, bundled, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &fn_key);
  }
  else if (lua_isfunction(L, bundled)) {
    lua_pushvalue(L, bundled);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &fn_key);
  }
  else
    luaL_error(L, "worker executor: the buffer holds no function");
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &fn_key) != LUA_TFUNCTION)
    luaL_error(L, "worker executor: the buffer holds no function");
  lua_pop(L, 1);
  {  /* the place, made once: an execution only copies it */
    char place[256];  /* hook.c keeps up to 256 bytes */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &fn_key);
    atl_funcplace(L, -1, place, sizeof place);
    lua_pop(L, 1);
    lua_pushstring(L, place);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &place_key);
  }
  buildkw(L, p->kw);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &onerror_key);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &extra_key);
  if (p->onerror != NULL && p->onerror->len > 0) {
    int n = atl_codec_decode_raw(L, p->onerror, 0, &envup);
    if (n >= 1 && lua_isboolean(L, -n) && lua_istable(L, bundled)) {
      lua_rawgeti(L, bundled, 2);  /* it came with the executor */
      lua_replace(L, -n - 1);
    }
    if (n < 1 || n > 2 || lua_type(L, -n) != LUA_TFUNCTION ||
        (n == 2 && !lua_istable(L, -1) && !lua_isnil(L, -1)))
      luaL_error(L, "worker on_error: the buffer holds no function");
    if (n == 2) lua_rawsetp(L, LUA_REGISTRYINDEX, &extra_key);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &onerror_key);
  }
  /* an execution's own function, with what it reads as upvalues: no
  ** registry lookup per execution */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &fn_key);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kw_key);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &place_key);
  lua_pushcclosure(L, run_p, 3);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &run_key);
  /* only now: while the heap grows from nothing to the state's size, a
  ** short pause would run a cycle for every fifth of growth */
  lua_gc(L, LUA_GCINC, ATL_WORKER_GCPAUSE, 0, 0);
  return 0;
}

int atl_worker_setup(lua_State *L, const atl_Buffer *fn, const atl_Buffer *kw,
                     const atl_Buffer *onerror, char **err) {
  SetupParams p;
  p.fn = fn;
  p.kw = kw;
  p.onerror = onerror;
  return atl_protect(L, setup_p, &p, ATL_ERRRUN, err);
}

typedef struct RunParams {
  const atl_Buffer *item;
  long long taskid;
  int stop, handled, status;
  char *err;
} RunParams;

/* Split "msg\nstack traceback:\n..." at the top into the message and the
** traceback; leaves 'message, traceback' (traceback may be nil). */
static void splittraceback(lua_State *L) {
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  const char *t = (s != NULL) ? strstr(s, "\nstack traceback:") : NULL;
  if (t == NULL) {
    lua_pushnil(L);
    return;
  }
  lua_pushlstring(L, s, (size_t)(t - s));
  lua_pushstring(L, t + 1);
  lua_remove(L, -3);
}

/* The error object of the execution that failed, when it was not a string
** or a number (a table, say): 'on_error' gets the value itself. */
static const char errobj_key = 'o';

/* The message handler of executions: keeps an error object that is not a
** string for 'on_error', then makes the message with its traceback. */
static int worker_msghandler(lua_State *L) {
  int t = lua_type(L, 1);
  if (t != LUA_TSTRING && t != LUA_TNUMBER && !atl_isexit(L, 1)) {
    lua_pushvalue(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &errobj_key);
  }
  return atl_msghandler(L);
}

/* Call 'on_error(kw)' with 'kw.error' (the error object itself when it is
** not a string, else the message) and 'kw.traceback'; the error is on the
** top. Returns 1 when there was a handler. When the handler raises, the
** error raised names it and keeps the error it handled. */
static int callonerror(lua_State *L, int msgh) {
  int kw, original;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &onerror_key) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushvalue(L, -2);
  original = lua_gettop(L);  /* the message with its traceback, for later */
  lua_insert(L, -3);         /* original, error, on_error */
  lua_insert(L, -2);         /* original, on_error, error */
  splittraceback(L);  /* original, on_error, message, traceback */
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &errobj_key) != LUA_TNIL) {
    lua_replace(L, -3);  /* the object in place of its message */
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &errobj_key);
  }
  else
    lua_pop(L, 1);
  original = lua_absindex(L, -4);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kw_key);
  kw = lua_gettop(L);
  lua_createtable(L, 0, 8);  /* a copy of kw for the handler */
  lua_pushnil(L);
  while (lua_next(L, kw) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &extra_key) == LUA_TTABLE) {
    int extra = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, extra) != 0) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -5);
    }
  }
  lua_pop(L, 1);
  lua_pushvalue(L, kw - 2);
  lua_setfield(L, -2, "error");
  lua_pushvalue(L, kw - 1);
  lua_setfield(L, -2, "traceback");
  lua_replace(L, kw - 2);  /* on_error, kwcopy, traceback, kw */
  lua_settop(L, kw - 2);
  if (lua_pcall(L, 1, 0, msgh) != LUA_OK) {
    const char *own = lua_tostring(L, -1);
    lua_pushfstring(L, "on_error failed: %s\nwhile it handled: %s",
                    own != NULL ? own : "(an error object that is not a string)",
                    lua_tostring(L, original));
    lua_error(L);
  }
  lua_settop(L, original - 1);
  return 1;
}

int atl_worker_pushcall(lua_State *L, const atl_Buffer *item,
                        long long taskid) {
  int nargs = 0, envup = 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &fn_key);
  if (item != NULL) {
    nargs = atl_codec_decode_raw(L, item, 0, &envup);
    if (nargs != 1) luaL_error(L, "a queue item buffer holds %d values", nargs);
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kw_key);
  lua_pushinteger(L, (lua_Integer)taskid);
  lua_setfield(L, -2, "_task_id");
  return nargs + 1;
}

int atl_worker_handleerror(lua_State *L, int msgh) {
  return callonerror(L, msgh);
}

static int runitem(lua_State *L, RunParams *p, int msgh);

typedef struct BatchParams {
  const atl_Buffer *items;  /* NULL: executions without an item, 'fn(kw)' */
  int n, i;             /* the items, and the one that runs now */
  long long taskid;     /* of item 0 */
  double deadline;
  int handled, stop, status;
  char *err;
} BatchParams;

static double coarse(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The executions of 'b' in turn, in one protected call; upvalues: the
** executor, kw, the executor's place. An execution's own error goes to
** 'on_error' here; an error that escapes (an 'on_error' that raised,
** memory) ends the call, with 'b->i' at the execution it came from. The
** registry's error object is nil here ('atl_worker_run_batch' clears it
** after a run that failed). */
static int run_p(lua_State *L) {
  BatchParams *b = (BatchParams *)lua_touserdata(L, 1);
  int msgh;
  lua_pushcfunction(L, worker_msghandler);
  msgh = lua_gettop(L);
  atl_exec_setplacestr(lua_tostring(L, lua_upvalueindex(3)));
  while (b->i < b->n) {
    RunParams p;
    memset(&p, 0, sizeof p);
    p.item = (b->items != NULL) ? &b->items[b->i] : NULL;
    p.taskid = b->taskid + b->i;
    runitem(L, &p, msgh);
    lua_settop(L, msgh);
    b->i++;
    if (p.handled) b->handled++;
    if (p.status != ATL_OK) {
      b->status = p.status;
      b->err = p.err;
      return 0;
    }
    if (p.stop) {
      b->stop = 1;
      return 0;
    }
    if (b->i < b->n && coarse() > b->deadline) return 0;
  }
  return 0;
}

/* One item: 'fn(item, kw)' (or 'fn(kw)') with 'msgh' as its message
** handler; an error goes to 'on_error'. Upvalues as 'run_p'. */
static int runitem(lua_State *L, RunParams *p, int msgh) {
  int nargs = 0, st, envup = 0;
  lua_pushvalue(L, lua_upvalueindex(1));
  if (p->item != NULL) {
    atl_PlainValue v;
    if (atl_codec_peek_plain(p->item, &v)) {  /* the common item: a number */
      atl_codec_push_plain(L, &v);
      nargs = 1;
    }
    else {
      nargs = atl_codec_decode_raw(L, p->item, 0, &envup);
      if (nargs != 1)
        luaL_error(L, "a queue item buffer holds %d values", nargs);
    }
  }
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushinteger(L, (lua_Integer)p->taskid);
  lua_setfield(L, -2, "_task_id");
  nargs++;
  st = lua_pcall(L, nargs, 1, msgh);
  if (st != LUA_OK) {
    if (atl_isexit(L, -1)) {
      p->status = ATL_EXIT;
      return 0;
    }
    if (atl_exec_cancelling()) {  /* no 'on_error': it is not the code's */
      p->status = ATL_ERRCANCEL;
      p->err = atl_strdup_top(L, -1);
      return 0;
    }
    if (st == LUA_ERRMEM) {
      /* Lua calls no message handler for a memory error, so nothing says
      ** where it ran out: name the executor. Its garbage is collected
      ** first, so that 'on_error' can run. */
      const char *place;
      lua_pop(L, 1);
      lua_gc(L, LUA_GCCOLLECT);
      lua_rawgetp(L, LUA_REGISTRYINDEX, &place_key);
      place = lua_tostring(L, -1);
      lua_pushfstring(L, "%s: not enough memory in the executor defined here "
                      "(Lua does not tell the line where it ran out)",
                      place != NULL ? place : "?");
      lua_remove(L, -2);
    }
    if (callonerror(L, msgh)) {
      p->handled = 1;
      return 0;
    }
    p->status = (st == LUA_ERRMEM) ? ATL_ERRMEM : ATL_ERRRUN;
    p->err = atl_strdup_top(L, -1);
    return 0;
  }
  p->stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
  return 0;
}

/* Also 'atl_worker_run', as one execution without an item (items NULL). */
int atl_worker_run_batch(lua_State *L, const atl_Buffer *items, int n,
                         long long taskid, double budget, int *ran,
                         int *handled, int *stop, char **err, int *exitcode) {
  atl_ExecFrame frame;
  BatchParams b;
  int st;
  memset(&b, 0, sizeof b);
  b.items = items;
  b.n = n;
  b.taskid = taskid;
  b.deadline = coarse() + budget;
  *ran = 0;
  *handled = 0;
  *stop = 0;
  *err = NULL;
  atl_exec_begin(L, &frame);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &run_key) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    atl_exec_end(L, &frame);
    *err = strdup("the worker's state was not set up");
    return ATL_ERRRUN;
  }
  lua_pushlightuserdata(L, &b);
  st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK) {  /* execution b.i: its on_error raised, or memory */
    b.status = atl_isexit(L, -1) ? ATL_EXIT
             : (st == LUA_ERRMEM) ? ATL_ERRMEM
             : atl_exec_cancelling() ? ATL_ERRCANCEL : ATL_ERRRUN;
    if (b.status != ATL_EXIT) b.err = atl_strdup_top(L, -1);
    lua_pop(L, 1);
    b.i++;
  }
  if (st != LUA_OK || b.status != ATL_OK || b.handled > 0) {
    /* the error object, if one was kept, is not the next execution's (a
    ** raw set of nil allocates nothing, so this cannot raise) */
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &errobj_key);
  }
  atl_exec_end(L, &frame);
  if (b.status == ATL_EXIT && exitcode != NULL)
    *exitcode = atl_statedata(L)->exitcode;
  *ran = b.i;
  *handled = b.handled;
  *stop = b.stop;
  *err = b.err;
  return b.status;
}

int atl_worker_run(lua_State *L, const atl_Buffer *item, long long taskid,
                   int *stop, int *handled, char **err, int *exitcode) {
  int ran;
  return atl_worker_run_batch(L, item, 1, taskid, 0, &ran, handled, stop, err,
                              exitcode);
}

/* {======================================================================
** Workers whose executor runs in a process-pool child ('mp = true'): the
** parent's worker state keeps 'kw' and 'on_error' (and 'process_result' as
** its executor) and sends a copy of 'kw' with each execution.
** ======================================================================= */

typedef struct KwParams {
  long long taskid;
  atl_Buffer *out;
} KwParams;

static int kwargs_p(lua_State *L) {
  KwParams *p = (KwParams *)lua_touserdata(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kw_key);
  lua_pushinteger(L, (lua_Integer)p->taskid);
  lua_setfield(L, -2, "_task_id");
  atl_codec_encode_raw(L, lua_gettop(L), 1, "kw", 0, p->out);
  return 0;
}

int atl_worker_kwargs(lua_State *L, long long taskid, atl_Buffer *out,
                      char **err) {
  KwParams p;
  int st;
  p.taskid = taskid;
  p.out = out;
  st = atl_protect(L, kwargs_p, &p, ATL_ERRCODEC, err);
  if (st != ATL_OK) atl_buffer_free(out);
  return st;
}

typedef struct FailParams {
  const char *message;
  int handled;
} FailParams;

static int onerror_p(lua_State *L) {
  FailParams *p = (FailParams *)lua_touserdata(L, 1);
  int msgh;
  lua_pushcfunction(L, atl_msghandler);
  msgh = lua_gettop(L);
  lua_pushstring(L, p->message);
  p->handled = callonerror(L, msgh);
  return 0;
}

int atl_worker_onerror(lua_State *L, const char *message, int *handled,
                       char **err) {
  FailParams p;
  int st;
  p.message = message;
  p.handled = 0;
  st = atl_protect(L, onerror_p, &p, ATL_ERRRUN, err);
  *handled = p.handled;
  return st;
}

/* }====================================================================== */
