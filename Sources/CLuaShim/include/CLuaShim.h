/*
** CLuaShim: the only code of atasker-lua that calls the Lua C API in ways that
** can raise. Every function declared here is marked like the Lua manual's API
** entries, '[-o, +p, x]', and every one of them is '-': it never raises. Work
** that can raise runs inside 'lua_pcall', entered from C; failures come back
** as a status code and a message that the caller owns (free it with 'free').
**
** Swift imports only this header. Swift never receives a 'lua_State *' from a
** callback; it holds the pointer of each state it owns as an opaque value and
** hands it back to these functions on the thread that owns the state.
*/
#ifndef CLuaShim_h
#define CLuaShim_h

#include <stddef.h>
#include <stdint.h>

#include "atl_codec.h"

typedef struct lua_State lua_State;

/* Status codes. */
#define ATL_OK        0
#define ATL_ERRRUN    2   /* a runtime error (message holds 'file:line: ...') */
#define ATL_ERRSYNTAX 3   /* a syntax error while loading a chunk */
#define ATL_ERRMEM    4   /* out of memory */
#define ATL_ERRFILE   6   /* a file that cannot be opened or read */
#define ATL_ERRCODEC  7   /* a value that cannot be copied, or a bad buffer */
#define ATL_EXIT      8   /* 'os.exit' was called; the code is in the result */

/* ========================================================================
** Buffers: encoded values. A buffer owns its bytes and a +1 reference on
** every host object that it names (see 'atl_HostCallbacks').
** ======================================================================== */

typedef struct atl_Buffer {
  unsigned char *data;
  size_t len;
  size_t cap;
  void **handles;        /* host objects retained by this buffer */
  size_t nhandles;
  size_t handlescap;
} atl_Buffer;

/* [-0, +0, -] Release the handles and the memory of 'b', and zero it. */
void atl_buffer_free(atl_Buffer *b);
/* [-0, +0, -] Append 'n' bytes. Returns ATL_OK or ATL_ERRMEM. */
int atl_buffer_append(atl_Buffer *b, const void *p, size_t n);
/* [-0, +0, -] Retain host object 'obj' for the life of 'b'. ATL_OK or
** ATL_ERRMEM (then 'obj' is not retained). */
int atl_buffer_add_handle(atl_Buffer *b, void *obj);

/* ========================================================================
** The codec (codec_*.c). Its format, tags and limits are in atl_codec.h.
** ======================================================================== */

/* Flags for encoding and decoding. */
#define ATL_CODEC_NOHANDLES   1  /* refuse host handles (crossing processes) */
#define ATL_CODEC_NOFUNCTIONS 2  /* refuse functions (results from a child) */
#define ATL_CODEC_JOINENV     4  /* decode: join '_ENV' upvalues bound to _G */
#define ATL_CODEC_SEPARATE    8  /* encode: each value on its own, with no
                                  ** reference to another: the buffer splits
                                  ** into values that decode alone */
#define ATL_CODEC_FIRSTALONE  16 /* encode: the first value on its own, the
                                  ** others together (a task function and
                                  ** its arguments, which may share tables) */

/* [-0, +0, -] Encode the 'n' values at stack indices 'first' .. first+n-1 of
** 'L' into 'out' (zeroed by the caller). 'what' names the values in error
** paths: "args" gives 'args[2].conn'; with n == 1 a name such as "value"
** or "function" is used as is. Returns ATL_OK, or ATL_ERRCODEC / ATL_ERRMEM
** with '*err' set to a message that names the path and the type of the
** value that could not be copied. On error 'out' is left empty. */
int atl_codec_encode(lua_State *L, int first, int n, const char *what,
                     int flags, atl_Buffer *out, char **err);

/* [-0, +n, -] Decode every value of buffer 'b' and push them onto 'L';
** '*nout' receives their count. A host handle is accepted only when 'b'
** holds a reference on it (its 'handles'), so a damaged pointer is an error,
** never a crash. Nothing is pushed on error: returns ATL_ERRCODEC
** (malformed, truncated or corrupted buffer; a module that cannot be
** required) or ATL_ERRMEM, with '*err' set. */
int atl_codec_decode(lua_State *L, const atl_Buffer *b, int flags, int *nout,
                     char **err);

/* [-0, +0, -] Decode 'data' in 'L' and drop the values: ATL_OK, or the
** decoding error in '*err' (tests of damaged buffers). */
int atl_codec_probe(lua_State *L, const atl_Buffer *b, int flags,
                    char **err);

/* ========================================================================
** Host objects and calls from Lua into the host (trampoline.c).
** ======================================================================== */

/* Kinds of host handles: userdata that hold a retained host object. They
** travel as ints ('atl_Handle.kind', 'atl_Call.kind', a byte of HANDLE);
** Swift switches over them as a closed enum. */
typedef enum ATL_CLOSED_ENUM atl_HandleKind {
  ATL_H_SUPERVISOR = 1,
  ATL_H_TASK       = 2,
  ATL_H_SPAWNER    = 3,   /* the callable that 'background_task' returns */
  ATL_H_SHARED     = 4,
  ATL_H_HOSTFN     = 5,   /* a function registered by the embedding app */
  ATL_H_WORKER     = 6,
  ATL_H_LOCK       = 7,
  ATL_H_ALOOP      = 8,   /* an aloop */
  ATL_H_JOBSCHED   = 9,   /* an async job scheduler */
  ATL_H_JOB        = 10   /* an async job */
} atl_HandleKind;
#define ATL_H_MAX  ATL_H_JOB   /* the last kind */

/* Function ids: what a call from Lua asks the host to do ('atl_Call.fn',
** an int); Swift switches over them as a closed enum, exhaustively. */
typedef enum ATL_CLOSED_ENUM atl_Fn {
  ATL_FN_BACKGROUND_TASK = 1,   /* (fn, opts) -> spawner */
  ATL_FN_SPAWN,                 /* self = spawner; (...) -> task */
  ATL_FN_WAIT_COMPLETED,        /* (task | {tasks}, timeout) -> result(s) */
  ATL_FN_SLEEP,                 /* (seconds) */
  ATL_FN_SHARED,                /* (name) -> shared */
  ATL_FN_SHARED_GET,            /* self = shared; (key) -> value */
  ATL_FN_SHARED_SET,            /* (key, value) */
  ATL_FN_SHARED_INCR,           /* (key, n) -> new value */
  ATL_FN_SHARED_CAS,            /* (key, old, new) -> boolean */
  ATL_FN_SHARED_KEYS,           /* () -> {keys} */
  ATL_FN_LOG,                   /* (level, message) */
  ATL_FN_SET_DEBUG,             /* (on) */
  ATL_FN_EXIT,                  /* (code) */
  ATL_FN_SUP_INDEX,             /* self = supervisor; (key) -> value */
  ATL_FN_SUP_NEWINDEX,          /* (key, value) */
  ATL_FN_SUP_SET_THREAD_POOL,   /* ({...}) */
  ATL_FN_SUP_SET_MP_POOL,       /* ({pool_size=, reserve_normal=, ...}) */
  ATL_FN_SUP_INFO,              /* () -> {...} */
  ATL_FN_SUP_GET_TASK,          /* (id) -> task | nil */
  ATL_FN_SUP_STOP,              /* ({wait=, cancel_tasks=, ...}) */
  ATL_FN_SUP_BLOCK,             /* () */
  ATL_FN_TASK_INDEX,            /* self = task; (key) -> value */
  ATL_FN_HOSTFN_CALL,           /* self = registered function; (...) */
  ATL_FN_TOSTRING,              /* self = any handle; () -> string */
  ATL_FN_BACKGROUND_WORKER,     /* (fn | {opts}, kind) -> worker */
  ATL_FN_WORKER_START,          /* self = worker; ({args}) */
  ATL_FN_WORKER_STOP,           /* ({wait=, drain=}) */
  ATL_FN_WORKER_RESTART,        /* ({args}) */
  ATL_FN_WORKER_IS_ACTIVE,      /* () -> boolean */
  ATL_FN_WORKER_IS_STARTED,     /* () -> boolean */
  ATL_FN_WORKER_IS_STOPPED,     /* () -> boolean */
  ATL_FN_WORKER_PUT,            /* (item) */
  ATL_FN_WORKER_TRIGGER,        /* ({force=}) */
  ATL_FN_WORKER_INDEX,          /* (key) -> value */
  ATL_FN_LOCKER_NEW,            /* ({mod=, timeout=, relative=}) -> lock */
  ATL_FN_LOCK_ACQUIRE,          /* self = lock; ([timeout]) -> boolean */
  ATL_FN_LOCK_RELEASE,          /* () */
  ATL_FN_LOCK_CRITICAL,         /* () runs the critical handler */
  ATL_FN_LOCK_INDEX,            /* (key) -> value */
  ATL_FN_LOCK_NEWINDEX,         /* (key, value) */
  ATL_FN_SUP_CREATE_ALOOP,      /* self = supervisor; (name, {opts}) -> aloop */
  ATL_FN_SUP_GET_ALOOP,         /* ([name]) -> aloop | nil */
  ATL_FN_SUP_SET_DEFAULT_ALOOP, /* (name | aloop) */
  ATL_FN_SUP_START_ALOOP,       /* (name) */
  ATL_FN_SUP_STOP_ALOOP,        /* (name, {wait=, cancel_tasks=}) -> boolean */
  ATL_FN_ALOOP_BACKGROUND_TASK, /* self = aloop; (fn, ...) -> task */
  ATL_FN_ALOOP_RUN,             /* (fn, ...) -> result (waits) */
  ATL_FN_ALOOP_START,           /* () */
  ATL_FN_ALOOP_STOP,            /* ({wait=, cancel_tasks=}) -> boolean */
  ATL_FN_ALOOP_IS_ACTIVE,       /* () -> boolean */
  ATL_FN_ALOOP_INDEX,           /* (key) -> value */
  ATL_FN_SUP_CREATE_SCHEDULER,  /* self = supervisor; (name, {opts}) */
  ATL_FN_SUP_CREATE_ASYNC_JOB,  /* ({target=, interval=, ...}) -> job */
  ATL_FN_SUP_CANCEL_ASYNC_JOB,  /* ({job=, scheduler=}) */
  ATL_FN_SCHED_CREATE_JOB,      /* self = scheduler; ({...}) -> job */
  ATL_FN_SCHED_CANCEL_JOB,      /* (job) */
  ATL_FN_SCHED_INDEX,           /* (key) -> value */
  ATL_FN_JOB_CANCEL,            /* self = job; () */
  ATL_FN_JOB_INDEX              /* (key) -> value */
} atl_Fn;
#define ATL_FN_MAX  (ATL_FN_JOB_INDEX + 1)   /* one past the last id */

/* Properties of worker handles that the shim knows by name: the field
** 'atl_Call.field' of an ATL_FN_WORKER_INDEX call. */
enum {
  ATL_P_WORKER_NAME = 1,
  ATL_P_WORKER_KIND,
  ATL_P_WORKER_STATE,
  ATL_P_WORKER_PRIORITY,
  ATL_P_WORKER_EXECUTIONS,
  ATL_P_WORKER_ERRORS,
  ATL_P_WORKER_SKIPPED,
  ATL_P_WORKER_QUEUE_DEPTH
};

/* One call from Lua into the host. The trampoline fills the first part;
** the host's callback fills 'result' or 'error'. */
typedef struct atl_Call {
  void *host;                 /* the host context given to 'atl_state_open' */
  int fn;                     /* ATL_FN_* (an 'atl_Fn') */
  int kind;                   /* kind of 'self' (ATL_H_*), or 0 */
  void *self;                 /* host object the method was called on, or NULL */
  const unsigned char *args;  /* encoded arguments (without 'self') */
  size_t argslen;
  atl_Buffer *argsbuf;        /* the buffer behind 'args': the host may move
                                 it out (copy the struct, then zero it) */
  int nargs;                  /* number of encoded arguments */
  int field;                  /* an '__index' call for a property that the
                                 shim knows (ATL_P_*; the name is still the
                                 argument), or 0 */
  const char *where;          /* 'file:line:' of the Lua caller, or "" */
  atl_Buffer result;          /* encoded results, decoded by the trampoline */
  char *error;                /* malloc'd message: raised in the caller */
  int error_raw;              /* 1: raise 'error' as is, without 'file:line:' */
  int error_value;            /* 1: raise the table in 'result' (fields
                                 'code' and 'message'; the caller's
                                 'file:line:' goes before the message) as an
                                 'atasker.Error', 'error' being its message */
  int exitcode;               /* with ATL_EXIT */
  void *const *objs;          /* 'wait_completed' of a list of tasks: their
                                 objects, in order (not retained: the list
                                 holds them during the call; the arguments
                                 are then the timeout alone), or NULL */
  size_t nobjs;
} atl_Call;

/* A queue item that is one number, boolean or short string, as 'put'
** hands it to the host. */
#define ATL_SCALAR_MAXSTR 15
typedef struct atl_Scalar {
  int type;                       /* ATL_T_INT, _FLOAT, _TRUE, _FALSE, _STRING */
  uint64_t bits;                  /* an integer, or a float's bits */
  size_t len;                     /* a string's length */
  char s[ATL_SCALAR_MAXSTR + 1];  /* a string's bytes */
} atl_Scalar;

/* Callbacks into the host, set once with 'atl_set_host_callbacks'. None of
** them may raise (they are Swift '@convention(c)' functions). */
typedef struct atl_HostCallbacks {
  void (*retain)(void *obj);
  void (*release)(void *obj);
  /* Returns ATL_OK with 'call->result' set, ATL_ERRRUN with 'call->error'
  ** set, or ATL_EXIT with 'call->exitcode' set. */
  int (*call)(atl_Call *call);
  /* 'worker:put(item)' of a scalar item, for host 'host': returns 1 when the
  ** host put it into the queue of worker 'self', 0 to leave the call to
  ** 'call' (another kind of worker or queue, a child: that path also gives
  ** the errors). May be NULL. */
  int (*put)(void *host, void *self, const atl_Scalar *item);
} atl_HostCallbacks;

/* [-0, +0, -] Install the host callbacks (once, before any state opens). */
void atl_set_host_callbacks(const atl_HostCallbacks *cb);

/* ========================================================================
** States (state.c) and running code (call.c, task.c).
** ======================================================================== */

/* Lua modules written in Lua, registered by the app: 'names[i]' loads the
** text 'sources[i]' of 'lengths[i]' bytes (module_app.c). Owned by the host,
** which outlives its states. */
typedef struct atl_LuaModules {
  int n;
  const char *const *names;
  const char *const *sources;
  const size_t *lengths;
} atl_LuaModules;

/* The functions of module "host" that the embedding app registered: names
** and host objects, kept by the host for as long as its states may load the
** module (it is built on the first 'require "host"' of each state). */
typedef struct atl_HostFunctions {
  int n;
  const char *const *names;
  void *const *objs;
} atl_HostFunctions;

typedef struct atl_StateOptions {
  void *host;                 /* passed back in every 'atl_Call' */
  void *supervisor;           /* host object behind 'atasker.supervisor' */
  int is_main;                /* value of 'atasker.is_main' */
  int is_child;               /* a process-pool child: handles in buffers
                                 from the parent are matched by order (the
                                 child has its own objects for them), and
                                 task results are encoded without functions
                                 or handles */
  const char *package_path;   /* prepended to 'package.path', or NULL */
  const char *package_cpath;  /* prepended to 'package.cpath', or NULL */
  const atl_HostFunctions *host_functions;  /* module "host", or NULL */
  long alloc_limit;           /* fail the Nth allocation and all later ones
                                 (tests); 0: never */
  int allow_bytecode;         /* user code may load binary chunks; 0: text
                                 only (loadtext.c) */
  size_t memory_limit;        /* bytes the state may hold (Lua's count, as
                                 'collectgarbage("count")' gives it); an
                                 allocation past it fails; 0: no limit */
  const char *label;          /* the state's name in memory reports
                                 ("main", "worker 'w'"), or NULL */
  const atl_LuaModules *lua_modules;  /* in 'package.preload', or NULL */
} atl_StateOptions;

/* [-0, +0, -] A new state with the standard libraries, the 'atasker' module
** (also global 'atasker'), module "host" and the process-wide 'print' and
** 'os.exit'. Returns NULL and sets '*err' on failure. */
lua_State *atl_state_open(const atl_StateOptions *opts, char **err);
/* [-0, +0, -] The calling thread enters / leaves state 'L' through entry
** point 'where' (a static string). Built with ATL_STATE_OWNER defined
** (scripts/sanitize passes -Xcc -DATL_STATE_OWNER), entering a state that
** another thread is inside, or leaving one that this thread is not inside,
** prints what happened, naming the state, both threads and their entry
** points, and aborts: TSan cannot see a 'lua_State' shared by two threads,
** since liblua is not instrumented. The same thread may enter again (a host
** call that comes back into its own state). Without the define both do
** nothing. 'atl_state_close' needs no 'atl_state_leave' after it. */
void atl_state_enter(lua_State *L, const char *where);
void atl_state_leave(lua_State *L);
/* [-0, +0, -] Close a state (runs finalizers, releases handles). */
void atl_state_close(lua_State *L);
/* [-0, +0, -] Set the global table 'arg' of the main state: 'argv[0]' is the
** script, the rest its arguments (as the standalone 'lua' does). */
int atl_state_set_args(lua_State *L, const char *const *argv, int argc,
                       char **err);
/* [-0, +0, -] How many allocations a state made (for the limit tests). */
long atl_state_alloc_count(lua_State *L);

/* ========================================================================
** Memory of states (state.c, memory.c). Each state's allocator counts the
** bytes that Lua holds in it (live, and the most it held: peak) and refuses
** an allocation that would take it past its limit, so Lua raises "not
** enough memory" (after one emergency collection) and the limit is never
** exceeded. The host's states are listed, with these figures, per host.
** ======================================================================== */

#define ATL_LABELMAX 80

/* One state's memory. */
typedef struct atl_StateMemory {
  uint64_t serial;        /* unique in the process: which state this is */
  size_t bytes;           /* held now */
  size_t peak;            /* the most held since the state opened */
  size_t limit;           /* the limit in force; 0: none */
  char label[ATL_LABELMAX];  /* 'atl_StateOptions.label' */
} atl_StateMemory;

/* [-0, +0, -] The memory of 'L' (its owner's thread). */
void atl_state_memory(lua_State *L, atl_StateMemory *out);
/* [-0, +0, -] Set the limit of 'L' (0: none), from its owner's thread. A
** limit below what the state holds now refuses every allocation that grows
** it until it holds less. */
void atl_state_set_memory_limit(lua_State *L, size_t limit);
/* [-0, +0, -] The bytes that 'L' holds now, on its owner's thread. */
size_t atl_state_bytes(lua_State *L);
/* [-0, +0, -] The limit of 'L' (0: none), on its owner's thread. */
size_t atl_state_memory_limit(lua_State *L);
/* [-0, +0, -] Rename 'L' in memory reports. */
void atl_state_set_label(lua_State *L, const char *label);
/* [-0, +0, -] The states of 'host' that are open now, at most 'max' of them
** into 'out' (from any thread); returns how many there are. */
int atl_states_memory(void *host, atl_StateMemory *out, int max);

/* [-0, +0, -] Tests (the allocation-failure sweep): from now on, on the
** calling thread, allocation number 'k' (0: the next one) and every later
** one fails, whether Lua's (in any state that this thread runs) or the
** shim's own (buffers, messages); 'k' < 0 ends it. Returns ATL_OK. */
int atl_test_fail_allocations(long k);
/* [-0, +0, -] Tests: the allocations counted on this thread since the last
** 'atl_test_fail_allocations'. */
long atl_test_allocations(void);

/* [-0, +0, -] Load 'path' in text mode and run it with a traceback handler.
** Returns ATL_OK, ATL_ERRFILE, ATL_ERRSYNTAX, ATL_ERRRUN (message with
** 'file:line:' and a traceback), ATL_ERRMEM, or ATL_EXIT with '*exitcode'. */
int atl_run_file(lua_State *L, const char *path, char **err, int *exitcode);
/* [-0, +0, -] Run 'code' (text mode) as chunk 'name'; its results are
** encoded into 'out' (zeroed by the caller). Statuses as 'atl_run_file'. */
int atl_run_string(lua_State *L, const char *code, size_t len,
                   const char *name, atl_Buffer *out, char **err,
                   int *exitcode);

/* [-0, +0, -] Run one background task in a pool state: the function encoded
** in 'fn' (cached by 'fnid' in a bounded LRU cache of the state) with a fresh
** '_ENV' whose '__index' is the state's globals, called with the values of
** 'args' (or none when NULL). Its first result is encoded into 'out' (or
** dropped when 'out' is NULL). Errors carry a traceback. With 'member' 0
** 'fn' holds the function; with 1 or 2 it holds a table of functions that
** travelled together ({fn, callback}) and the run calls that entry (a
** local they share is one cell in the state). */
int atl_run_task(lua_State *L, uint64_t fnid, const atl_Buffer *fn,
                 int member, const atl_Buffer *args, atl_Buffer *out,
                 char **err, int *exitcode);

/* [-0, +0, -] Prepare state 'L' (a worker's own state) to run a worker:
** decode its executor 'fn', its 'kw' table (from the four values of 'kw':
** the start arguments table or nil, 'o', the worker handle, the name) and 'onerror' (NULL, or the 'on_error' function and
** optionally the 'on_error_kwargs' table) and keep them in the state. */
int atl_worker_setup(lua_State *L, const atl_Buffer *fn, const atl_Buffer *kw,
                     const atl_Buffer *onerror, char **err);

/* [-0, +0, -] Run one execution of the worker set up in 'L': 'fn(kw)', or
** 'fn(item, kw)' when 'item' is not NULL (a queue worker), with
** 'kw._task_id' set to 'taskid'. '*stop' is set to 1 when the executor
** returned false. An error calls 'on_error(kw)' with 'kw.error' and
** 'kw.traceback' (and the 'on_error_kwargs' fields) when there is one, and
** then returns ATL_OK with '*handled' = 1; otherwise the error is returned. */
int atl_worker_run(lua_State *L, const atl_Buffer *item, long long taskid,
                   int *stop, int *handled, char **err, int *exitcode);

/* [-0, +0, -] 'atl_worker_run' for the queue items 'items[0..n-1]' in turn,
** as one execution (announced once), item i with 'kw._task_id' = 'taskid'
** + i. It ends after the item whose executor returned false ('*stop' = 1),
** after the item whose error was not handled (its status and '*err' are
** returned), or once 'budget' seconds have passed since it began (so that
** a stop is not held up); '*ran' counts the items that ran, '*handled' those
** whose error 'on_error' handled. */
int atl_worker_run_batch(lua_State *L, const atl_Buffer *items, int n,
                         long long taskid, double budget, int *ran,
                         int *handled, int *stop, char **err, int *exitcode);

/* [-0, +0, -] For a worker whose executor runs in a process-pool child:
** set 'kw._task_id' to 'taskid' in the worker's state 'L' and encode 'kw'
** into 'out' (zeroed by the caller). ATL_OK or ATL_ERRCODEC / ATL_ERRMEM
** with '*err'. */
int atl_worker_kwargs(lua_State *L, long long taskid, atl_Buffer *out,
                      char **err);

/* [-0, +0, -] The child's execution failed with 'message' (with its
** traceback): call the worker's 'on_error(kw)' as 'atl_worker_run' does;
** '*handled' is 1 when there is a handler. A handler's own error is
** returned (ATL_ERRRUN with '*err'). */
int atl_worker_onerror(lua_State *L, const char *message, int *handled,
                       char **err);

/* [-0, +0, -] Lock and unlock the process-wide output lock that 'print'
** uses, so that the host can write whole lines too; flush stdout. */
void atl_output_lock(void);
void atl_output_unlock(void);
void atl_output_flush(void);

/* ========================================================================
** Cancelling running Lua code (hook.c). An execution is one run of a
** worker's executor ('atl_worker_run') or of a task ('atl_run_task'). A
** thread announces it with 'atl_exec_next' just before that call; from
** any other thread, 'atl_exec_request' then asks it for a traceback or
** cancels it. The request reaches the owning thread as a real-time signal
** (SIGRTMIN+4, installed once with SA_RESTART), whose handler only arms a
** hook; the hook runs on that thread. A cancelled execution fails with
** ATL_ERRCANCEL: "<what> cancelled at file:line" and a traceback.
** ======================================================================== */

#define ATL_ERRCANCEL 9   /* the execution was cancelled */

/* Requests (bits). */
#define ATL_EXEC_CANCEL 1
#define ATL_EXEC_TRACE  2

/* Results of 'atl_exec_request' and 'atl_exec_report'. */
#define ATL_EXEC_NOTRUNNING 0   /* that execution is not running */
#define ATL_EXEC_SENT       1   /* sent / running */
#define ATL_EXEC_SELF       2   /* it runs on the calling thread: not sent */

/* [-0, +0, -] Announce the next execution on the calling thread, named
** 'what' in messages ("worker 'w'", "task 7"); returns its id (never 0;
** 0 only when out of memory, then it cannot be reached). */
uint64_t atl_exec_next(const char *what);
/* [-0, +0, -] The same, for an execution of host 'host' (found again by
** 'atl_exec_running'). */
uint64_t atl_exec_next_host(const char *what, void *host);
/* [-0, +0, -] The same with the name's length ('what' needs no '\0'). */
uint64_t atl_exec_next_hostn(const char *what, size_t len, void *host);
/* [-0, +0, -] The same for task 'taskid' of 'host', named "task N" or
** "task N (name)" ('name' may be NULL), written without a format call:
** tasks announce themselves at every run. */
uint64_t atl_exec_next_task(unsigned long long taskid, const char *name,
                            void *host);
/* [-0, +0, -] The ids of the executions of 'host' that run now, or are
** announced and about to begin (at most 'max' of them into 'ids'); returns
** their count. */
int atl_exec_running(void *host, uint64_t *ids, int max);
/* [-0, +0, -] The name of running execution 'id' ("worker 'w'") into 'buf';
** returns 0 when it does not run. */
int atl_exec_label(uint64_t id, char *buf, size_t len);
/* [-0, +0, -] Seconds that running execution 'id' has run (on a clock of a
** few milliseconds' resolution), or -1 when it does not run. */
double atl_exec_elapsed(uint64_t id);

/* [-0, +0, -] Ask execution 'id' for ATL_EXEC_TRACE and/or
** ATL_EXEC_CANCEL. Returns ATL_EXEC_SENT, ATL_EXEC_NOTRUNNING (it ended:
** nothing happens, ever), or ATL_EXEC_SELF (the caller runs it). */
int atl_exec_request(uint64_t id, int what);

/* [-0, +0, -] Wait up to 'seconds' (0: do not wait) for the traceback
** that a trace request made execution 'id' record. Returns
** ATL_EXEC_NOTRUNNING when it is not running (nothing set); else
** ATL_EXEC_SENT with '*place' the last known 'file:line' ("?" when none)
** and '*trace' the traceback, or NULL when the hook did not run (the code
** is in one long C call or a finalizer). Free both with 'free'. */
int atl_exec_report(uint64_t id, double seconds, char **place,
                    char **trace);

/* [-0, +0, -] Whether the execution running on the calling thread was
** asked to cancel: a host call that blocks (a sleep) and sees EINTR may
** return early, so that the hook raises as soon as it is back in Lua. */
int atl_exec_cancel_pending(void);

/* [-0, +0, -] The id of the execution running on the calling thread, or 0
** when none runs there (the main state's top level, a thread of the app). */
uint64_t atl_exec_current(void);

/* [-0, +0, -] Tests: send the thread that runs execution 'running' the
** signal of a request for execution 'id' (a late signal). Returns 1 when
** sent. */
int atl_exec_signal_late(uint64_t running, uint64_t id, int what);

/* ========================================================================
** Async executions (async.c): coroutines that an aloop resumes. A state
** keeps them by reference. A step starts one (a worker's execution or a
** task) or resumes it, and tells how it ended: returned, failed, or
** suspended with the host call that it waits for ('atasker.sleep',
** 'atasker.wait_completed', ...), which the host then does without
** blocking; the next step gives the finished call back. Every step runs
** as an execution of 'atl_exec_next' (announce it first), so a canceller
** or a watchdog reaches code that does not yield.
** ======================================================================== */

#define ATL_YIELD 1   /* the coroutine is suspended */

/* A host call that a suspended coroutine waits for: 'call' as for
** 'atl_HostCallbacks.call' (the host may move 'args' out through
** 'call.argsbuf'), and once it is done, 'status' as the callback would
** return it, with 'call.result' or 'call.error' (or 'call.exitcode'). */
typedef struct atl_PendingCall {
  atl_Call call;
  atl_Buffer args;
  int status;
} atl_PendingCall;

/* What a step ended with. */
typedef struct atl_AsyncStep {
  int status;             /* ATL_OK (returned), ATL_YIELD, ATL_ERRRUN,
                             ATL_ERRMEM, ATL_ERRCANCEL or ATL_EXIT */
  atl_PendingCall *call;  /* ATL_YIELD: the call it waits for (the host
                             owns it until it gives it back); NULL for a
                             plain 'coroutine.yield()': resume it soon */
  int stop;               /* a worker's executor returned false */
  int handled;            /* a worker's error went to its 'on_error' */
  atl_Buffer result;      /* a task's first result (zeroed by the caller) */
  char *err;              /* the error, with the coroutine's traceback */
  int exitcode;           /* with ATL_EXIT */
} atl_AsyncStep;

/* [-0, +0, -] A new coroutine of 'L'; '*ref' receives its reference. */
int atl_async_new(lua_State *L, int *ref, char **err);
/* [-0, +0, -] Drop coroutine 'ref'. */
void atl_async_free(lua_State *L, int ref);
/* [-0, +0, -] A full garbage collection of 'L' (after a worker's setup,
** so that the garbage of decoding is not kept for the worker's life). */
void atl_async_collect(lua_State *L);
/* [-0, +0, -] Free a pending call whose coroutine will not be resumed. */
void atl_async_call_free(atl_PendingCall *call);

/* [-0, +0, -] Start an execution of the worker set up in 'L'
** ('atl_worker_setup') in coroutine 'ref': 'fn(kw)' or 'fn(item, kw)'. An
** error goes to 'on_error' as 'atl_worker_run' does; the coroutine is
** then ready for the next execution. Returns 'out->status'. */
int atl_async_begin_worker(lua_State *L, int ref, const atl_Buffer *item,
                           long long taskid, atl_AsyncStep *out);
/* [-0, +0, -] Start a task in coroutine 'ref': the function encoded in
** 'fn', with a fresh '_ENV' whose '__index' is the state's globals, called
** with the values after it in 'fn' (which may share tables with it) and
** then the values of 'args' (or none). Its first result goes to
** 'out->result'. Returns 'out->status'. */
int atl_async_begin_task(lua_State *L, int ref, const atl_Buffer *fn,
                         const atl_Buffer *args, atl_AsyncStep *out);
/* [-0, +0, -] Resume suspended coroutine 'ref' ('isworker': it runs a
** worker's execution) with 'call', the finished call it waited for (NULL
** after a plain yield); with 'cancel', the execution fails with the cancel
** error instead, where it waits (and 'call' is freed). */
int atl_async_resume(lua_State *L, int ref, int isworker,
                     atl_PendingCall *call, int cancel, atl_AsyncStep *out);

#endif
