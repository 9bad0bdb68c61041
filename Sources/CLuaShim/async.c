/*
** async.c: coroutines that an aloop resumes (async workers and aloop
** tasks). A state keeps its coroutines in a registry table, by reference.
** A step starts or resumes one of them with 'lua_resume', entered from C
** (never from Swift), and returns how it ended: returned, failed, or
** suspended, with the host call that it waits for. Host calls that would
** block yield with a tag (trampoline.c) and our 'coroutine.resume' and
** 'coroutine.wrap' pass such yields up (hook.c), so that a yield deep in
** the user's own coroutines still reaches the aloop. Preparing a step and
** reading its results run in protected mode; the resume itself is
** protected by Lua.
*/
#define atl_async_c

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim_private.h"

static const char cos_key = 'a';    /* registry: ref -> coroutine */

enum { BEGIN_WORKER, BEGIN_TASK, RESUME };

typedef struct StepParams {
  int mode;
  int ref;
  const atl_Buffer *item;      /* BEGIN_WORKER */
  long long taskid;
  const atl_Buffer *fn;        /* BEGIN_TASK */
  const atl_Buffer *args;
  atl_PendingCall *call;       /* RESUME: the finished call, or NULL */
  int cancel;                  /* RESUME: cancel instead */
  lua_State *co;               /* set by 'prepare_p' */
  int narg;
  int resumed;                 /* 'lua_resume' was called */
  int rst, nres;               /* what 'lua_resume' returned */
  int cancelled;               /* the execution was being cancelled */
  atl_AsyncStep *out;
} StepParams;

/* [-0, +1, m] Push the table of coroutines, creating it once. */
static void pushcos(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cos_key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cos_key);
}

/* {======================================================================
** Coroutines by reference
** ======================================================================= */

typedef struct RefParams {
  int ref;
} RefParams;

static int new_p(lua_State *L) {
  RefParams *p = (RefParams *)lua_touserdata(L, 1);
  pushcos(L);
  lua_newthread(L);
  p->ref = luaL_ref(L, -2);
  return 0;
}

int atl_async_new(lua_State *L, int *ref, char **err) {
  RefParams p;
  int st;
  p.ref = LUA_NOREF;
  st = atl_protect(L, new_p, &p, ATL_ERRMEM, err);
  *ref = p.ref;
  return st;
}

static int free_p(lua_State *L) {
  RefParams *p = (RefParams *)lua_touserdata(L, 1);
  pushcos(L);
  luaL_unref(L, -1, p->ref);
  return 0;
}

void atl_async_free(lua_State *L, int ref) {
  RefParams p;
  char *err = NULL;
  p.ref = ref;
  atl_protect(L, free_p, &p, ATL_ERRMEM, &err);
  free(err);
}

static int collect_p(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

void atl_async_collect(lua_State *L) {
  char *err = NULL;
  atl_protect(L, collect_p, NULL, ATL_ERRMEM, &err);
  free(err);
}

/* }====================================================================== */


/* {======================================================================
** Steps
** ======================================================================= */

/* [-0, +0, e] Give the function below 'n' values on the top a fresh
** '_ENV' (the upvalue 'envup' of function 'envfn' at 'idx'), whose
** '__index' is the state's globals, as a pool task gets. */
static void freshenv(lua_State *L, int idx, int envup) {
  atl_push_freshenv(L);
  lua_setupvalue(L, idx, envup);
}

/* Push what the coroutine starts or goes on with onto 'L', then move it to
** the coroutine: its function and arguments, or the finished call. */
static int prepare_p(lua_State *L) {
  StepParams *p = (StepParams *)lua_touserdata(L, 1);
  int base, envup = 0, n;
  pushcos(L);
  if (lua_rawgeti(L, -1, p->ref) != LUA_TTHREAD)
    return luaL_error(L, "async coroutine %d is gone", p->ref);
  p->co = lua_tothread(L, -1);  /* anchored in the table of coroutines */
  lua_settop(L, 1);
  base = lua_gettop(L);
  switch (p->mode) {
    case BEGIN_WORKER:
      p->narg = atl_worker_pushcall(L, p->item, p->taskid);
      break;
    case BEGIN_TASK:
      n = atl_codec_decode_raw(L, p->fn, ATL_CODEC_JOINENV, &envup);
      if (envup > 0) {
        freshenv(L, lua_gettop(L), envup);  /* on the owner, on the top */
        lua_pop(L, 1);  /* the function that owns the joined '_ENV' */
        n--;
      }
      /* the function, and maybe its arguments after it in one buffer */
      if (n < 1 || lua_type(L, base + 1) != LUA_TFUNCTION)
        return luaL_error(L, "async task buffer holds no function");
      p->narg = n - 1;
      if (p->args != NULL && p->args->len > 0)
        p->narg += atl_codec_decode_raw(L, p->args, 0, &envup);
      break;
    default:
      if (p->cancel) lua_pushlightuserdata(L, &atl_async_cancel);
      else if (p->call != NULL) lua_pushlightuserdata(L, p->call);
      p->narg = lua_gettop(L) - base;
      break;
  }
  n = lua_gettop(L) - base;
  if (!lua_checkstack(p->co, n + LUA_MINSTACK))
    return luaL_error(L, "not enough memory");
  if (p->mode != RESUME) lua_settop(p->co, 0);  /* a finished coroutine */
  lua_xmove(L, p->co, n);
  return 0;
}

/* The error of the coroutine, with its traceback (taken from the
** coroutine's stack, which a failed resume leaves as it was), on the top
** of 'L'. A non-string error becomes a readable message. */
static void pusherror(lua_State *L, lua_State *co, int nomem) {
  const char *msg;
  size_t len = 0;
  lua_xmove(co, L, 1);
  if (nomem) {  /* Lua adds no place to a memory error: the first Lua frame */
    lua_Debug ar;
    int level;
    for (level = 0; lua_getstack(co, level, &ar); level++) {
      if (lua_getinfo(co, "Sl", &ar) && ar.currentline > 0) {
        lua_pushfstring(L, "%s:%d: not enough memory", ar.short_src,
                        ar.currentline);
        lua_replace(L, -2);
        break;
      }
    }
  }
  msg = lua_tolstring(L, -1, &len);
  if (msg != NULL && strlen(msg) != len) {  /* a NUL in it: keep all */
    lua_pushvalue(L, -1);
    lua_pushliteral(L, "\n");
    luaL_traceback(L, co, NULL, 0);
    lua_concat(L, 3);
    return;
  }
  if (msg == NULL) {
    if (luaL_callmeta(L, -1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, -1));
  }
  luaL_traceback(L, co, msg, 0);
}

/* The message of a coroutine that ran out of memory: "file:line: not
** enough memory" (its first Lua frame: Lua adds no place to a memory
** error) and a traceback, written into 'buf' without allocating: until the
** coroutine is reset its stack holds what filled the memory, and under a
** memory limit there may be no room for one more string. */
#define MEMMSG 1024
static void memmessage(lua_State *co, char *buf, size_t size) {
  lua_Debug ar;
  int level, frames = 0;
  size_t n = 0;
  const char *head = NULL;
  buf[0] = '\0';
  for (level = 0; lua_getstack(co, level, &ar) && frames < 12; level++) {
    int w;
    if (!lua_getinfo(co, "Sln", &ar) || ar.currentline <= 0) continue;
    if (head == NULL) {
      head = "stack traceback:";
      w = snprintf(buf, size, "%s:%d: not enough memory\n%s", ar.short_src,
                   ar.currentline, head);
    }
    else w = 0;
    if (w < 0) break;
    n += (size_t)w < size - n ? (size_t)w : size - n - 1;
    if (ar.name != NULL)
      w = snprintf(buf + n, size - n, "\n\t%s:%d: in function '%s'",
                   ar.short_src, ar.currentline, ar.name);
    else
      w = snprintf(buf + n, size - n, "\n\t%s:%d: in function <%s:%d>",
                   ar.short_src, ar.currentline, ar.short_src,
                   ar.linedefined);
    if (w < 0) break;
    n += (size_t)w < size - n ? (size_t)w : size - n - 1;
    frames++;
  }
  if (head == NULL) snprintf(buf, size, "not enough memory");
}

/* [-0, +0, m] Close the dead coroutine of 'p' and put a new one in its place
** for the next execution. An error raised out of a hook (a cancel, or a
** memory error while taking a traceback) leaves Lua's 'allowhook' of that
** thread cleared, and nothing sets it again: no hook would ever run in it,
** so its next execution could never be cancelled nor reported. 'p->co'
** becomes the new one: the old one is no longer referenced (it may be
** collected at once), and a failure after this point (an 'on_error' that
** raises) resets 'p->co' in 'step'. */
static void renew(lua_State *L, StepParams *p) {
  lua_resetthread(p->co);
  pushcos(L);
  p->co = lua_newthread(L);
  lua_rawseti(L, -2, p->ref);
  lua_pop(L, 1);
}

/* Read what the resume ended with. */
static int finish_p(lua_State *L) {
  StepParams *p = (StepParams *)lua_touserdata(L, 1);
  atl_AsyncStep *out = p->out;
  lua_State *co = p->co;
  if (p->rst == LUA_YIELD) {
    out->status = ATL_YIELD;
    if (atl_async_ishostyield(co, p->nres))
      out->call = (atl_PendingCall *)lua_touserdata(co, -1);
    lua_pop(co, p->nres);  /* a plain yield's values are dropped */
    return 0;
  }
  if (p->rst == LUA_OK) {
    out->status = ATL_OK;
    if (p->taskid < 0) {  /* a task: its first result */
      if (p->nres > 0) {
        lua_settop(co, lua_gettop(co) - p->nres + 1);  /* the first result on top */
        lua_xmove(co, L, 1);
        lua_settop(co, 0);
        atl_codec_encode_raw(L, lua_gettop(L), 1, "result", 0, &out->result);
      }
    }
    else {
      out->stop = p->nres > 0 && lua_isboolean(co, -p->nres) &&
                  !lua_toboolean(co, -p->nres);
    }
    lua_settop(co, 0);
    return 0;
  }
  /* an error: the coroutine is dead; a new one runs the next execution */
  if (atl_isexit(co, -1)) {
    out->status = ATL_EXIT;
    renew(L, p);
    return 0;
  }
  if (p->rst == LUA_ERRMEM && !p->cancelled) {
    /* out of memory: the message is taken without allocating, then the
    ** failed execution's stack goes and its garbage is collected, so that
    ** 'on_error' gets its turn with room to run */
    char msg[MEMMSG];
    memmessage(co, msg, sizeof msg);
    renew(L, p);
    lua_gc(L, LUA_GCCOLLECT);
    lua_pushstring(L, msg);
  }
  else {
    pusherror(L, co, p->rst == LUA_ERRMEM);
    renew(L, p);
  }
  if (p->cancelled) out->status = ATL_ERRCANCEL;
  else {
    /* out of memory too: the message names the line, and 'on_error'
    ** gets its turn once the failed execution's garbage is collected */
    out->status = (p->rst == LUA_ERRMEM) ? ATL_ERRMEM : ATL_ERRRUN;
    if (p->taskid >= 0) {  /* a worker: its on_error, if any */
      int msgh;
      lua_pushcfunction(L, atl_msghandler);
      lua_insert(L, -2);  /* msgh, error */
      msgh = lua_gettop(L) - 1;
      if (atl_worker_handleerror(L, msgh)) {
        out->status = ATL_OK;
        out->handled = 1;
        return 0;
      }
    }
  }
  out->err = atl_strdup_top(L, -1);
  return 0;
}

/* One step, in protected mode: prepare, resume (as an execution that a
** canceller can reach: nothing between 'atl_exec_begin' and
** 'atl_exec_end' can raise), and read the outcome. */
static int step_p(lua_State *L) {
  StepParams *p = (StepParams *)lua_touserdata(L, 1);
  atl_StateData *d = atl_statedata(L);
  atl_ExecFrame frame;
  prepare_p(L);
  lua_settop(L, 1);
  d->async_depth++;
  atl_exec_begin(p->co, &frame);
  if (p->cancel) atl_exec_cancel_now(p->co);
  p->rst = lua_resume(p->co, L, p->narg, &p->nres);
  p->cancelled = atl_exec_cancelling();
  atl_exec_end(p->co, &frame);
  d->async_depth--;
  p->resumed = 1;
  return finish_p(L);
}

static int step(lua_State *L, StepParams *p) {
  atl_StateData *d = atl_statedata(L);
  atl_AsyncStep *out = p->out;
  char *err = NULL;
  int st;
  out->status = ATL_OK;
  out->call = NULL;
  out->stop = 0;
  out->handled = 0;
  out->err = NULL;
  out->exitcode = 0;
  st = atl_protect(L, step_p, p, ATL_ERRRUN, &err);
  if (st != ATL_OK) {  /* preparing failed, or memory ran out reading */
    free(out->err);
    atl_buffer_free(&out->result);
    if (out->status == ATL_YIELD && out->call != NULL) {
      atl_async_call_free(out->call);
      out->call = NULL;
    }
    /* the execution is over: its coroutine must not hold its stack (what
    ** it was given, where it stopped) until the next one begins; a failed
    ** resume is not read either: close it, ready for the next */
    if (p->co != NULL) lua_resetthread(p->co);
    out->status = st;
    out->err = err;
  }
  if (out->status == ATL_EXIT) out->exitcode = d->exitcode;
  return out->status;
}

int atl_async_begin_worker(lua_State *L, int ref, const atl_Buffer *item,
                           long long taskid, atl_AsyncStep *out) {
  StepParams p;
  memset(&p, 0, sizeof p);
  p.mode = BEGIN_WORKER;
  p.ref = ref;
  p.item = item;
  p.taskid = taskid < 0 ? 0 : taskid;
  p.out = out;
  return step(L, &p);
}

int atl_async_begin_task(lua_State *L, int ref, const atl_Buffer *fn,
                         const atl_Buffer *args, atl_AsyncStep *out) {
  StepParams p;
  memset(&p, 0, sizeof p);
  p.mode = BEGIN_TASK;
  p.ref = ref;
  p.fn = fn;
  p.args = args;
  p.taskid = -1;
  p.out = out;
  return step(L, &p);
}

int atl_async_resume(lua_State *L, int ref, int isworker,
                     atl_PendingCall *call, int cancel, atl_AsyncStep *out) {
  StepParams p;
  memset(&p, 0, sizeof p);
  p.mode = RESUME;
  p.ref = ref;
  p.call = call;
  p.cancel = cancel;
  p.taskid = isworker ? 0 : -1;
  p.out = out;
  if (cancel && call != NULL) {  /* the call is not delivered */
    atl_async_call_free(call);
    p.call = NULL;
  }
  return step(L, &p);
}

/* }====================================================================== */
