/*
** hook.c: cancelling running Lua code, and taking tracebacks of it, from
** another thread.
**
** Only the thread that owns a state touches it. Each thread that runs Lua
** executions has a slot: the execution that runs now (an id), the coroutine
** that runs now (kept up to date by our 'coroutine.resume' and
** 'coroutine.wrap'), and the place and traceback last known. A canceller
** finds the slot by execution id and sends its thread a real-time signal
** carrying the id and the request; the handler makes one Lua call,
** 'lua_sethook' (safe in a signal handler, as lua.c's 'laction' relies on),
** and only when the id is still the one running, so that a late signal
** never touches the next execution. The hook then runs on the owning
** thread: it records the traceback, or raises the cancel error, again at
** every event in a Lua function until the execution is back in the host.
** No hook is set in normal operation.
*/
#define _GNU_SOURCE
#define atl_hook_c

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shim_private.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ATL_TSAN 1
#endif
#endif
#ifndef ATL_TSAN
#define ATL_TSAN 0
#endif
#if ATL_TSAN
#define ATL_NO_SANITIZE __attribute__((disable_sanitizer_instrumentation))
#else
#define ATL_NO_SANITIZE
#endif

#define HOOKMASK (LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT)

#define WHATMAX  96
#define WHEREMAX 256

typedef struct Slot {
  /* read by the signal handler and by other threads */
  _Atomic uint64_t id;             /* the execution running now, or 0 */
  _Atomic uint64_t nextid;         /* announced by 'atl_exec_next' */
  _Atomic(lua_State *) co;         /* the coroutine running now */
  atomic_int pending;              /* requests not yet served by the hook */
  _Atomic uint64_t earlyid;        /* a request for 'nextid' before begin */
  atomic_int earlywhat;
  /* owner only */
  int cancelling;                  /* the hook raises at every event */
  lua_State *L;                    /* main thread of the running state */
  char nextwhat[WHATMAX];
  _Atomic(void *) nexthost;        /* the host of the announced execution */
  _Atomic(void *) host;            /* the host of the running execution */
  /* set under 'reglock' */
  int inuse;
  pthread_t thread;
  struct Slot *next;               /* list of all slots (never freed) */
  /* under 'lock': read by other threads */
  pthread_mutex_t lock;
  pthread_cond_t cond;             /* a traceback was taken */
  char what[WHATMAX];              /* "worker 'w'", "task 7" */
  char where[WHEREMAX];            /* last known 'file:line' */
  char *trace;                     /* last traceback taken (malloc'd) */
  uint64_t traceid;                /* the execution it belongs to */
  double started;                  /* when the running execution began */
} Slot;

static pthread_mutex_t reglock = PTHREAD_MUTEX_INITIALIZER;
static Slot *allslots = NULL;  /* under 'reglock' */
static _Atomic uint64_t lastid = 0;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t slotkey;
static int signo = 0;

static __thread Slot *myslot __attribute__((tls_model("initial-exec")));


/* {======================================================================
** Slots
** ======================================================================= */

/* Thread exit: give the slot back (no execution runs on it any more). */
static void releaseslot(void *p) {
  Slot *s = (Slot *)p;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  pthread_sigmask(SIG_BLOCK, &set, NULL);  /* no handler after this */
  myslot = NULL;
  pthread_mutex_lock(&reglock);
  atomic_store(&s->id, 0);
  atomic_store(&s->nextid, 0);
  s->inuse = 0;
  pthread_mutex_unlock(&reglock);
}

static void onsignal(int sig, siginfo_t *si, void *uc);

#if ATL_TSAN
/*
** Under ThreadSanitizer a signal handler installed through its 'sigaction'
** runs only when the thread next enters an instrumented function, and a
** loop inside liblua (which is not instrumented) never does: a cancel would
** never arrive. So the handler goes to libc's own 'sigaction', and the
** kernel runs it at once. It is built without instrumentation: it must not
** enter the sanitizer's runtime, which the signal may have interrupted.
*/
#include <dlfcn.h>
typedef int (*SigactionFn)(int, const struct sigaction *, struct sigaction *);
static void installhandler(int sig, const struct sigaction *sa) {
  void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  SigactionFn real = libc != NULL ? (SigactionFn)dlsym(libc, "sigaction") : NULL;
  if (real == NULL || real(sig, sa, NULL) != 0) sigaction(sig, sa, NULL);
}
#else
static void installhandler(int sig, const struct sigaction *sa) {
  sigaction(sig, sa, NULL);
}
#endif

static void installonce(void) {
  struct sigaction sa;
  signo = SIGRTMIN + ATL_EXEC_SIGNAL;
  pthread_key_create(&slotkey, releaseslot);
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = onsignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  installhandler(signo, &sa);
}

/* The calling thread's slot, taken from the free ones or made once. NULL
** only when out of memory. */
static Slot *getslot(void) {
  Slot *s = myslot;
  if (s != NULL) return s;
  pthread_once(&once, installonce);
  pthread_mutex_lock(&reglock);
  for (s = allslots; s != NULL && s->inuse; s = s->next) { }
  if (s == NULL && (s = (Slot *)calloc(1, sizeof(Slot))) != NULL) {
    pthread_condattr_t ca;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->next = allslots;
    allslots = s;
  }
  if (s != NULL) {
    s->inuse = 1;
    s->thread = pthread_self();
  }
  pthread_mutex_unlock(&reglock);
  if (s != NULL) {
    sigset_t set;
    pthread_setspecific(slotkey, s);
    myslot = s;
    /* threads made by a thread that blocks every signal (a Dispatch
    ** worker, say) inherit its mask: let ours through */
    sigemptyset(&set);
    sigaddset(&set, signo);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  }
  return s;
}

/* The slot in use whose execution (running, or announced when 'ornext')
** is 'id'. Call with 'reglock' held. */
static Slot *findslot(uint64_t id, int ornext) {
  Slot *s;
  for (s = allslots; s != NULL; s = s->next) {
    if (!s->inuse) continue;
    if (atomic_load(&s->id) == id) return s;
    if (ornext && atomic_load(&s->nextid) == id) return s;
  }
  return NULL;
}

/* }====================================================================== */


/* {======================================================================
** The hook and the signal handler
** ======================================================================= */

/* Record in 's->where' the 'file:line' of the innermost Lua function. */
static void noteplace(lua_State *L, Slot *s) {
  lua_Debug ar;
  int level;
  for (level = 0; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0) {
      pthread_mutex_lock(&s->lock);
      snprintf(s->where, sizeof s->where, "%s:%d", ar.short_src,
               ar.currentline);
      pthread_mutex_unlock(&s->lock);
      return;
    }
  }
}

/* The message handler that 'atl_skiphandlers' puts in place. */
static int sameerror(lua_State *L) {
  lua_settop(L, 1);
  return 1;
}

void atl_skiphandlers(lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 0; lua_getstack(L, level, &ar); level++) {
    int ours;
    lua_getinfo(L, "f", &ar);
    ours = lua_tocfunction(L, -1) == atl_xpcall;
    lua_pop(L, 1);
    if (ours) {
      lua_pushcfunction(L, sameerror);
      if (lua_setlocal(L, &ar, 2) == NULL) lua_pop(L, 1);
    }
  }
}

int atl_raise_unhandled(lua_State *L) {
  atl_skiphandlers(L);
  return lua_error(L);
}

static void hookf(lua_State *L, lua_Debug *ar);

static void arm(lua_State *L) {
  if (L != NULL) lua_sethook(L, hookf, HOOKMASK, 1);
}

/*
** Runs on the owning thread, at the events of a coroutine that a request
** armed. A traceback request records the traceback; a cancel request makes
** every later event in a Lua function raise the cancel error, until the
** execution is back in the host ('atl_exec_end'). Events in C functions
** never raise: one of them is the message handler of the error itself.
*/
static void hookf(lua_State *L, lua_Debug *ar) {
  Slot *s = myslot;
  int req;
  if (s == NULL || atomic_load(&s->id) == 0) {  /* a hook left over */
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  req = atomic_exchange(&s->pending, 0);
  if (req & ATL_EXEC_CANCEL) s->cancelling = 1;
  if (req != 0) noteplace(L, s);
  if (req & ATL_EXEC_TRACE) {
    size_t len;
    const char *tb;
    char *copy;
    luaL_traceback(L, L, NULL, 0);
    tb = lua_tolstring(L, -1, &len);
    copy = (char *)malloc(len + 1);
    if (copy != NULL) memcpy(copy, tb, len + 1);
    lua_pop(L, 1);
    pthread_mutex_lock(&s->lock);
    free(s->trace);
    s->trace = copy;
    s->traceid = atomic_load(&s->id);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
  }
  if (s->cancelling) {
    char msg[WHATMAX + WHEREMAX + 16];
    lua_getinfo(L, "S", ar);
    if (*ar->what == 'C') return;  /* in a C function: not here */
    pthread_mutex_lock(&s->lock);
    snprintf(msg, sizeof msg, "%s cancelled at %s", s->what, s->where);
    pthread_mutex_unlock(&s->lock);
    /* pushed after the unlock: a memory error must not leave it held */
    lua_pushstring(L, msg);
    atl_raise_unhandled(L);  /* raised in a hook: no handler may run */
  }
  /* served: take the hook off, unless a request came meanwhile */
  lua_sethook(L, NULL, 0, 0);
  if (atomic_load(&s->pending) != 0) {
    arm(L);
    arm(atomic_load(&s->co));
  }
}

/*
** The signal handler: its one Lua call is 'lua_sethook', on the coroutine
** that runs now, and only when the request is for the execution that runs
** now. The value carries 'id << 2 | what'.
*/
ATL_NO_SANITIZE
static void onsignal(int sig, siginfo_t *si, void *uc) {
  Slot *s = myslot;
  lua_State *co;
  uint64_t v;
  (void)sig;
  (void)uc;
  if (s == NULL || si == NULL || si->si_code != SI_QUEUE) return;
  v = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
  if ((v >> 2) == 0 || atomic_load(&s->id) != (v >> 2)) return;
  atomic_fetch_or(&s->pending, (int)(v & 3));
  co = atomic_load(&s->co);  /* not 'arm': no call of instrumented code */
  if (co != NULL) lua_sethook(co, hookf, HOOKMASK, 1);
}

/* }====================================================================== */


/* {======================================================================
** Executions
** ======================================================================= */

uint64_t atl_exec_next(const char *what) {
  return atl_exec_next_host(what, NULL);
}

uint64_t atl_exec_next_host(const char *what, void *host) {
  if (what == NULL) what = "code";
  return atl_exec_next_hostn(what, strlen(what), host);
}

uint64_t atl_exec_next_hostn(const char *what, size_t n, void *host) {
  Slot *s = getslot();
  uint64_t id = atomic_fetch_add(&lastid, 1) + 1;
  if (s == NULL) return 0;
  /* a copy, not snprintf: async code announces often */
  if (n >= sizeof s->nextwhat) n = sizeof s->nextwhat - 1;
  memcpy(s->nextwhat, what, n);
  s->nextwhat[n] = '\0';
  atomic_store(&s->nexthost, host);
  atomic_store(&s->nextid, id);
  return id;
}

uint64_t atl_exec_next_task(unsigned long long taskid, const char *name,
                            void *host) {
  char what[WHATMAX], digits[24];
  size_t n = 0, d = 0;
  memcpy(what, "task ", 5);
  n = 5;
  do {
    digits[d++] = (char)('0' + taskid % 10);
    taskid /= 10;
  } while (taskid != 0);
  while (d > 0) what[n++] = digits[--d];
  if (name != NULL) {
    size_t l = strlen(name);
    if (l > sizeof what - n - 4) l = sizeof what - n - 4;
    what[n++] = ' ';
    what[n++] = '(';
    memcpy(what + n, name, l);
    n += l;
    what[n++] = ')';
  }
  what[n] = '\0';
  return atl_exec_next_host(what, host);
}

int atl_exec_running(void *host, uint64_t *ids, int max) {
  Slot *s;
  int n = 0;
  pthread_mutex_lock(&reglock);
  for (s = allslots; s != NULL && n < max; s = s->next) {
    uint64_t id;
    if (!s->inuse) continue;
    if (atomic_load(&s->host) == host && (id = atomic_load(&s->id)) != 0)
      ids[n++] = id;
    /* announced, about to begin: a request waits for it there */
    if (n < max && atomic_load(&s->nexthost) == host &&
        (id = atomic_load(&s->nextid)) != 0)
      ids[n++] = id;
  }
  pthread_mutex_unlock(&reglock);
  return n;
}

int atl_exec_label(uint64_t id, char *buf, size_t len) {
  Slot *s;
  int found = 0;
  pthread_mutex_lock(&reglock);
  s = findslot(id, 0);
  if (s != NULL) {
    pthread_mutex_lock(&s->lock);
    snprintf(buf, len, "%s", s->what);
    pthread_mutex_unlock(&s->lock);
    found = 1;
  }
  pthread_mutex_unlock(&reglock);
  return found;
}

/* The coarse clock: a few nanoseconds a read, and its few milliseconds of
** resolution are enough to say how long an execution has run. */
static double coarsenow(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double atl_exec_elapsed(uint64_t id) {
  Slot *s;
  double elapsed = -1;
  if (id == 0) return -1;
  pthread_mutex_lock(&reglock);
  s = findslot(id, 0);
  if (s != NULL) {
    pthread_mutex_lock(&s->lock);
    if (atomic_load(&s->id) == id) {
      elapsed = coarsenow() - s->started;
      if (elapsed < 0) elapsed = 0;
    }
    pthread_mutex_unlock(&s->lock);
  }
  pthread_mutex_unlock(&reglock);
  return elapsed;
}

void atl_exec_begin(lua_State *L, atl_ExecFrame *f) {
  Slot *s = myslot;
  uint64_t id;
  memset(f, 0, sizeof *f);
  if (s == NULL || (id = atomic_load(&s->nextid)) == 0) {
    f->tracked = 0;
    if (s != NULL) {  /* untracked, but the coroutine is known */
      f->co = atomic_load(&s->co);
      f->id = atomic_load(&s->id);
      atomic_store(&s->co, L);
    }
    return;
  }
  f->tracked = 1;
  f->id = atomic_load(&s->id);
  f->co = atomic_load(&s->co);
  f->L = s->L;
  f->cancelling = s->cancelling;
  pthread_mutex_lock(&s->lock);
  memcpy(f->what, s->what, sizeof f->what);
  memcpy(s->what, s->nextwhat, sizeof s->what);
  strcpy(s->where, "?");
  f->started = s->started;
  s->started = coarsenow();
  pthread_mutex_unlock(&s->lock);
  s->L = L;
  s->cancelling = 0;
  atomic_store(&s->pending, 0);
  atomic_store(&s->co, L);
  f->host = atomic_load(&s->host);
  atomic_store(&s->host, atomic_load(&s->nexthost));
  atomic_store(&s->id, id);  /* now a signal for 'id' acts */
  atomic_store(&s->nextid, 0);
  if (atomic_load(&s->earlyid) == id) {  /* asked before it began */
    atomic_fetch_or(&s->pending, atomic_load(&s->earlywhat));
    arm(L);
  }
}

void atl_exec_end(lua_State *L, atl_ExecFrame *f) {
  Slot *s = myslot;
  if (s == NULL) return;
  if (!f->tracked) {
    atomic_store(&s->co, f->co);
    return;
  }
  atomic_store(&s->id, f->id);  /* first: a late signal finds another id */
  atomic_store(&s->host, f->host);
  atomic_store(&s->pending, 0);
  atomic_store(&s->co, f->co);
  s->cancelling = f->cancelling;
  s->L = f->L;
  lua_sethook(L, NULL, 0, 0);
  pthread_mutex_lock(&s->lock);
  memcpy(s->what, f->what, sizeof s->what);
  s->started = f->started;
  pthread_cond_broadcast(&s->cond);  /* waiters for a traceback: it ended */
  pthread_mutex_unlock(&s->lock);
}

int atl_exec_cancelling(void) {
  Slot *s = myslot;
  return s != NULL && atomic_load(&s->id) != 0 && s->cancelling;
}

void atl_exec_cancel_now(lua_State *co) {
  Slot *s = myslot;
  if (s == NULL || atomic_load(&s->id) == 0) return;
  s->cancelling = 1;
  noteplace(co, s);
  arm(co);
}

void atl_exec_pushcancel(lua_State *L) {
  Slot *s = myslot;
  if (s == NULL) {
    lua_pushliteral(L, "cancelled");
    return;
  }
  {
    char what[WHATMAX], where[WHEREMAX];
    pthread_mutex_lock(&s->lock);
    memcpy(what, s->what, sizeof what);
    memcpy(where, s->where, sizeof where);
    pthread_mutex_unlock(&s->lock);
    /* pushed after the unlock: a memory error must not leave it held */
    lua_pushfstring(L, "%s cancelled at %s", what, where);
  }
}

int atl_exec_cancel_pending(void) {
  Slot *s = myslot;
  if (s == NULL || atomic_load(&s->id) == 0) return 0;
  return s->cancelling || (atomic_load(&s->pending) & ATL_EXEC_CANCEL);
}

uint64_t atl_exec_current(void) {
  Slot *s = myslot;
  return s != NULL ? atomic_load(&s->id) : 0;
}

int atl_funcplace(lua_State *L, int idx, char *buf, size_t size) {
  lua_Debug ar;
  lua_pushvalue(L, idx);
  if (lua_getinfo(L, ">S", &ar) && ar.linedefined > 0) {
    snprintf(buf, size, "%s:%d", ar.short_src, ar.linedefined);
    return 1;
  }
  snprintf(buf, size, "?");
  return 0;
}

void atl_exec_setplace(lua_State *L, int idx) {
  Slot *s = myslot;
  char place[WHEREMAX];
  if (s == NULL || atomic_load(&s->id) == 0) return;
  if (atl_funcplace(L, idx, place, sizeof place)) atl_exec_setplacestr(place);
}

void atl_exec_setplacestr(const char *place) {
  Slot *s = myslot;
  size_t n;
  if (s == NULL || place == NULL || atomic_load(&s->id) == 0 ||
      (place[0] == '?' && place[1] == '\0'))
    return;
  n = strlen(place);  /* a copy, not snprintf: a queue worker sets it per item */
  if (n >= sizeof s->where) n = sizeof s->where - 1;
  pthread_mutex_lock(&s->lock);
  memcpy(s->where, place, n);
  s->where[n] = '\0';
  pthread_mutex_unlock(&s->lock);
}

/* Send the request to the slot's thread. Call with 'reglock' held. */
static int sendto(Slot *s, uint64_t id, int what) {
  union sigval v;
  v.sival_ptr = (void *)(uintptr_t)((id << 2) | (uint64_t)what);
  return pthread_sigqueue(s->thread, signo, v) == 0;
}

int atl_exec_request(uint64_t id, int what) {
  Slot *s;
  int result = ATL_EXEC_NOTRUNNING;
  what &= (ATL_EXEC_CANCEL | ATL_EXEC_TRACE);
  if (id == 0 || what == 0) return ATL_EXEC_NOTRUNNING;
  pthread_once(&once, installonce);
  pthread_mutex_lock(&reglock);
  s = findslot(id, 1);
  if (s != NULL && pthread_equal(s->thread, pthread_self()))
    result = ATL_EXEC_SELF;
  else if (s != NULL) {
    int sent = 0;
    if (atomic_load(&s->id) == id) sent = sendto(s, id, what);
    else {
      /* announced, not begun: leave the request for 'atl_exec_begin',
      ** then look again, in case it began meanwhile */
      if (atomic_load(&s->earlyid) != id) atomic_store(&s->earlywhat, what);
      else atomic_fetch_or(&s->earlywhat, what);
      atomic_store(&s->earlyid, id);
      if (atomic_load(&s->id) == id) sent = sendto(s, id, what);
      else sent = 1;
    }
    result = sent ? ATL_EXEC_SENT : ATL_EXEC_NOTRUNNING;
  }
  pthread_mutex_unlock(&reglock);
  return result;
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = (char *)malloc(n);
  if (p != NULL) memcpy(p, s, n);
  return p;
}

int atl_exec_report(uint64_t id, double seconds, char **place,
                    char **trace) {
  Slot *s;
  struct timespec until;
  *place = NULL;
  *trace = NULL;
  if (id == 0) return ATL_EXEC_NOTRUNNING;
  pthread_mutex_lock(&reglock);
  s = findslot(id, 0);
  if (s == NULL) {
    pthread_mutex_unlock(&reglock);
    return ATL_EXEC_NOTRUNNING;
  }
  /* slots are never freed: 's' stays valid after 'reglock' */
  pthread_mutex_lock(&s->lock);
  pthread_mutex_unlock(&reglock);
  clock_gettime(CLOCK_MONOTONIC, &until);
  if (seconds > 0) {
    long long ns = (long long)(seconds * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000LL);
    until.tv_nsec += (long)(ns % 1000000000LL);
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while (s->traceid != id && atomic_load(&s->id) == id) {
      if (pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT)
        break;
    }
  }
  if (atomic_load(&s->id) != id && s->traceid != id) {
    pthread_mutex_unlock(&s->lock);
    return ATL_EXEC_NOTRUNNING;
  }
  *place = dupstr(s->where);
  if (s->traceid == id && s->trace != NULL) *trace = dupstr(s->trace);
  pthread_mutex_unlock(&s->lock);
  return ATL_EXEC_SENT;
}

int atl_exec_signal_late(uint64_t running, uint64_t id, int what) {
  Slot *s;
  int sent = 0;
  pthread_once(&once, installonce);
  pthread_mutex_lock(&reglock);
  s = findslot(running, 0);
  if (s != NULL) sent = sendto(s, id, what);
  pthread_mutex_unlock(&reglock);
  return sent;
}

/* }====================================================================== */


/* {======================================================================
** 'coroutine.resume' and 'coroutine.wrap' that keep the slot's running
** coroutine up to date (and re-arm the hook up the chain of resumers
** while an execution is being cancelled)
** ======================================================================= */

/* Resume 'co' with the 'narg' values on the top of 'L'. Returns the number
** of values moved to 'L', or -1 with the error object on the top of 'L'. */
static int tracked_resume(lua_State *L, lua_State *co, int narg) {
  Slot *s = myslot;
  int st, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  if (s != NULL) {
    atomic_store(&s->co, co);
    if (s->cancelling) arm(co);
  }
  st = lua_resume(co, L, narg, &nres);
  if (s != NULL) {
    atomic_store(&s->co, L);
    if (s->cancelling || atomic_load(&s->pending) != 0) arm(L);
  }
  if (st != LUA_OK && st != LUA_YIELD) {
    lua_xmove(co, L, 1);  /* the error object */
    return -1;
  }
  if (!lua_checkstack(L, nres + 1)) {
    lua_pop(co, nres);
    lua_pushliteral(L, "too many results to resume");
    return -1;
  }
  lua_xmove(co, L, nres);
  return nres;
}

/*
** One resume of 'co' with the 'narg' values on the top, for
** 'coroutine.resume' ('wrapped' 0: 'co' is argument 1) or the function of
** 'coroutine.wrap' ('wrapped' 1: 'co' is upvalue 1). A host yield of 'co'
** (async code waiting for the aloop) is passed up: this function yields it
** on, and when the aloop resumes us, 'resume_k' resumes 'co' with what it
** brought. While 'co' runs from a place that cannot yield, 'nonpass'
** tells host calls in it that no yield can reach the aloop.
*/
static int resume_step(lua_State *L, lua_State *co, int narg, int wrapped);

static int resume_k(lua_State *L, int status, lua_KContext ctx) {
  int wrapped = (int)ctx;
  lua_State *co = lua_tothread(L, wrapped ? lua_upvalueindex(1) : 1);
  (void)status;
  return resume_step(L, co, lua_gettop(L) - (wrapped ? 0 : 1), wrapped);
}

static int resume_step(lua_State *L, lua_State *co, int narg, int wrapped) {
  atl_StateData *d = atl_statedata(L);
  int passable = lua_isyieldable(L);
  int n, st;
  if (!passable) d->nonpass++;
  n = tracked_resume(L, co, narg);
  if (!passable) d->nonpass--;
  if (n == 2 && lua_status(co) == LUA_YIELD && atl_async_ishostyield(L, 2)) {
    if (!passable)  /* 'nonpass' made the host call raise instead */
      return luaL_error(L, "a host yield cannot pass this coroutine");
    return lua_yieldk(L, 2, (lua_KContext)wrapped, resume_k);
  }
  if (!wrapped) {
    lua_pushboolean(L, n >= 0);
    if (n < 0) {
      lua_insert(L, -2);  /* false, error */
      return 2;
    }
    lua_insert(L, -(n + 1));  /* true, results */
    return n + 1;
  }
  if (n >= 0) return n;
  st = lua_status(co);
  if (st != LUA_OK && st != LUA_YIELD) {  /* the coroutine died */
    st = lua_resetthread(co);
    lua_xmove(co, L, 1);
  }
  if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING &&
      !atl_exec_cancelling()) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  if (atl_exec_cancelling() || atl_isexit(L, -1))
    return atl_raise_unhandled(L);
  return lua_error(L);
}

static int co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  return resume_step(L, co, lua_gettop(L) - 1, 0);
}

/* The function that 'coroutine.wrap' returns; upvalue 1 is the coroutine.
** An error in the coroutine closes it and propagates, with the caller's
** place in front of a string message (not while cancelling: the cancel
** message stays as the hook raised it). */
static int co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  return resume_step(L, co, lua_gettop(L), 1);
}

static int co_wrap(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, co_wrapped, 1);
  return 1;
}

void atl_open_coroutine(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"resume", co_resume},
    {"wrap", co_wrap},
    {NULL, NULL}
  };
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_COLIBNAME) == LUA_TTABLE)
    luaL_setfuncs(L, funcs, 0);
  lua_pop(L, 2);
}

/* }====================================================================== */
