/*
** Private declarations shared by the .c files of CLuaShim. Functions here
** may raise: they are called only from code that already runs inside
** 'lua_pcall'.
*/
#ifndef shim_private_h
#define shim_private_h

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "CLuaShim.h"

/* A host handle: a full userdata whose metatable carries the field
** '__atl_kind' (an integer, ATL_H_*) and '__name' ("atasker.Task", ...). */
typedef struct atl_Handle {
  void *obj;    /* retained host object; NULL once released */
  int kind;
} atl_Handle;

extern atl_HostCallbacks atl_host;  /* set by 'atl_set_host_callbacks' */

/* The small blocks of a state (state.c): blocks of up to ATL_SMALL_MAX
** bytes come from a few pages of the state's own, in 8-byte classes, so a
** small object costs its size rounded up to 8 bytes instead of malloc's
** header and 16-byte rounding. A worker state is mostly small objects.
** The unused rest of a state's last page is slack, half a page on average:
** pages of 1 KB keep it near 0.5 KB (with 2 KB pages a worker paid about
** 1 KB more RSS). A worker state fills about 9 pages; 24 pages (24 KB) are
** the most a state keeps, and its small blocks come from malloc beyond. */
#define ATL_SMALL_MAX   128
#define ATL_SMALL_PAGES 24
#define ATL_SMALL_PAGE  1016  /* one 1024-byte malloc chunk each */

typedef struct atl_Small {
  void *free[ATL_SMALL_MAX / 8];     /* free blocks by class (8, 16, ...) */
  char *bump, *end;                  /* the unused rest of the last page */
  char *pages[ATL_SMALL_PAGES];
  int npages;
} atl_Small;

/* Host calls keep this many emptied buffers (arguments and results) per
** state, of at most ATL_SPAREMAX bytes each. */
#define ATL_NSPARE   2
#define ATL_SPAREMAX 1024

/* The thread that is inside a state now, through an entry point of the
** shim (owner.c; checked only when compiled with ATL_STATE_OWNER). */
typedef struct atl_Owner {
  _Atomic(uintptr_t) thread;      /* its pthread_t, or 0: none */
  _Atomic(long) tid;              /* its kernel thread id, for messages */
  _Atomic(const char *) where;    /* the entry point it came in by */
  int depth;                      /* nested entries (a host call that comes
                                     back into the same state) */
} atl_Owner;

/* Per-state data, kept in the state's extra space (a pointer to it). */
typedef struct atl_StateData {
  atl_Small small;
  void *host;
  void *supervisor;
  int is_main;
  int is_child;         /* see 'atl_StateOptions.is_child' */
  int exitcode;         /* set with the exit sentinel by 'os.exit' */
  long alloc_count;
  long alloc_limit;
  /* Memory (see 'atl_StateMemory'), beside the allocator's other fields:
  ** written by the owner's thread only, in the allocator (plain adds and
  ** compares; stored with relaxed atomic stores, which are plain stores, so
  ** that a report may read them from another thread); 'mem_limit' is
  ** (size_t)-1 when there is none. */
  size_t mem_live;
  size_t mem_peak;
  size_t mem_limit;
  uint64_t task_tick;   /* LRU clock of the function cache */
  int async_depth;      /* > 0 while an aloop resumes a coroutine of this
                           state (async.c): blocking calls yield instead */
  int nonpass;          /* coroutines resumed now from a place that cannot
                           yield: a host yield cannot reach the aloop */
  atl_Buffer spare[ATL_NSPARE];  /* empty buffers kept for the next host
                           calls, so that a call mallocs none (trampoline.c) */
  int nspare;
  const void *handle_mt[ATL_H_MAX + 1];  /* each kind's metatable once made:
                           a handle's check compares pointers (trampoline.c) */
  char *package_path;   /* prepended to 'package.path' when it loads */
  char *package_cpath;
  int allow_bytecode;   /* user code may load binary chunks (loadtext.c) */
  const atl_LuaModules *lua_modules;  /* the app's Lua modules (module_app.c) */
  const atl_HostFunctions *host_functions;  /* module "host" (module_app.c) */
  /* The host's list of open states (memory.c), under its lock. */
  uint64_t serial;
  struct atl_StateData *reg_prev, *reg_next;
  char label[ATL_LABELMAX];
  atl_Owner owner;      /* the thread inside the state (owner.c) */
} atl_StateData;

/* [-0, +0, -] Add an opened state's data to the list of states / take it
** out before it is freed (memory.c). */
void atl_registry_add(atl_StateData *d, const char *label);
void atl_registry_remove(atl_StateData *d);

/* Allocation-failure tests (memory.c): 'atl_faults_armed' is nonzero while
** some thread has armed them; 'atl_fault_take' counts one allocation of the
** calling thread and says whether it must fail. */
extern int atl_faults_armed;
int atl_fault_take(void);
#define atl_fault() \
  (__atomic_load_n(&atl_faults_armed, __ATOMIC_RELAXED) && atl_fault_take())

/* [-0, +0, e] Make 'load', 'loadfile' and 'dofile' load text only, unless
** the state allows bytecode (loadtext.c). */
void atl_loadtext_base(lua_State *L);
/* [-0, +0, e] Make the searcher of Lua files in the 'package' table at
** 'pkg' load text only, unless the state allows bytecode. */
void atl_loadtext_package(lua_State *L, int pkg);

/* [-0, +(0|1), e] Load lazy library 'name' of a worker or pool state (a
** standard library, 'package' or 'atasker'), once, and push it; returns 0
** (pushing nothing) when 'name' is not one. */
int atl_state_loadlazy(lua_State *L, const char *name);

atl_StateData *atl_statedata(lua_State *L);

/* [-0, +0, e] Put the app's Lua modules of the state and the loader of
** module "host" into 'package.preload' (module_app.c). */
void atl_preload_app_modules(lua_State *L);

/* [-0, +0, -] Free the spare buffers of a state that is closing. */
void atl_host_freespare(atl_StateData *d);

/* [-0, +1, m] Push a new handle for 'obj' of 'kind'; retains 'obj'. */
void atl_handle_push(lua_State *L, void *obj, int kind);
/* [-0, +0, -] The handle at 'idx', or NULL if that value is not one. */
atl_Handle *atl_handle_test(lua_State *L, int idx);
/* [-0, +0, -] The metatable name of handles of 'kind'. */
const char *atl_handle_tname(int kind);

/* [-0, +0, e] Encode 'n' values from 'first' into 'out'; raises a Lua error
** naming the path on failure ('out' is then freed by the caller). */
void atl_codec_encode_raw(lua_State *L, int first, int n, const char *what,
                          int flags, atl_Buffer *out);
/* [-0, +0, e] The same, naming value 'i' 'labels[i]' in errors for 'i'
** below 'nlabels' (a NULL label: 'what[...]' as below), and the values
** after them 'what[1]', 'what[2]', ... */
void atl_codec_encode_labelled(lua_State *L, int first, int n,
                               const char *const *labels, int nlabels,
                               const char *what, int flags, atl_Buffer *out);
/* [-0, +0, -] 'atl_codec_encode' with labels, as 'atl_codec_encode_labelled'
** names the values. */
int atl_codec_encode_names(lua_State *L, int first, int n,
                           const char *const *labels, int nlabels,
                           const char *what, int flags, atl_Buffer *out,
                           char **err);
/* [-0, +0, -] Encode the 'n' values from 'first' into 'out' without a
** protected call when all are nil, booleans, numbers or strings: ATL_OK,
** ATL_ERRCODEC (some value is not: nothing written) or ATL_ERRMEM. */
int atl_codec_encode_plain(lua_State *L, int first, int n, atl_Buffer *out);

/* One plain value read from a buffer ('atl_codec_peek_plain'). */
#define ATL_CODEC_PLAINSTR 48
typedef struct atl_PlainValue {
  int type;                      /* the codec's tag */
  uint64_t bits;                 /* an integer, or a float's bits */
  size_t len;
  char s[ATL_CODEC_PLAINSTR];    /* a string's bytes */
} atl_PlainValue;

/* [-0, +0, -] Whether 'b' holds one plain value (nil, boolean, number, or
** a string of at most ATL_CODEC_PLAINSTR bytes) and no host object; if so
** it is read into 'v'. */
int atl_codec_peek_plain(const atl_Buffer *b, atl_PlainValue *v);
/* [-0, +1, m] Push the value that 'atl_codec_peek_plain' read. */
void atl_codec_push_plain(lua_State *L, const atl_PlainValue *v);

/* [-0, +0, m] Drop the state's cache of values that travel by name: a
** module table got a new field. */
void atl_codec_forget_names(lua_State *L);
/* [-0, +n(+1), e] Decode a buffer; returns the number of values pushed. With
** ATL_CODEC_JOINENV, when some '_ENV' upvalue stood for the source's _G, all
** those upvalues are joined into one cell and one more value is pushed after
** the decoded ones: a function that owns the cell; '*envup' receives the
** upvalue index (else '*envup' is 0 and nothing more is pushed); that
** extra value is included in the returned count. */
int atl_codec_decode_raw(lua_State *L, const atl_Buffer *b, int flags,
                         int *envup);

/* [-0, +1, m] Push a fresh table for a task's '_ENV': empty, with the
** state's one metatable '{__index = _G}' (task.c). */
void atl_push_freshenv(lua_State *L);

/* [-0, +0, -] Run 'f' with 'ud' (a light userdata, its only argument) in
** protected mode: ATL_OK, or ATL_ERRMEM / 'failstatus' with '*err' set to a
** malloc'd copy of the error. */
int atl_protect(lua_State *L, lua_CFunction f, void *ud, int failstatus,
                char **err);

/* [-0, +0, e] Raise 'msg' (a malloc'd string, freed here) as a Lua error. */
int atl_raise_owned(lua_State *L, char *msg);
/* [-0, +0, e] The same, with the caller's 'file:line:' in front. */
int atl_raise_owned_where(lua_State *L, char *msg);
/* [-0, +0, -] A malloc'd copy of the string at 'idx' (or a fixed text). */
char *atl_strdup_top(lua_State *L, int idx);
/* [-0, +1, m] The metatable of 'atasker.Error' (the error tables that
** Swift functions raise): the registry's, made once per state; the module
** gives it as 'atasker.Error', so that such an error travels by name. */
void atl_push_errormt(lua_State *L);

/* [-1, +1, m] Message handler: adds a traceback to string messages. */
int atl_msghandler(lua_State *L);

/* The error object that 'os.exit' raises to unwind to the host. */
extern char atl_exit_sentinel;
#define atl_isexit(L,i) (lua_touserdata(L, (i)) == (void *)&atl_exit_sentinel)

/* [-0, +r, e] Call the host: encode the values from 'first' to the top as
** the arguments of function 'fn' on 'self' (of 'kind'), run the host's
** callback, push its results and return their count, or raise its error. */
int atl_host_call(lua_State *L, int fn, int kind, void *self, int first);
/* [-0, +r, e] The same, where a value that cannot be copied is named by
** its label: 'labels[i]' for argument 'i' (from 0) below 'nlabels', and
** 'args[1]', 'args[2]', ... after them. The calls that take functions
** ('background_task', 'background_worker') send each function as its own
** argument, and their other options in a table after them. Each argument is
** encoded on its own (ATL_CODEC_SEPARATE): the host splits the buffer into
** values and keeps each as bytes, never decoding a function and encoding it
** again; two arguments that share a table or an upvalue get a copy each. */
int atl_host_call_labelled(lua_State *L, int fn, int kind, void *self,
                           int first, const char *const *labels,
                           int nlabels);
/* [-0, +r, e] 'atl_host_call' encoding the arguments with codec 'flags'
** (ATL_CODEC_FIRSTALONE: a task function and its arguments). */
/* [-0, +(0|1), m] The objects of the handles of 'kind' at 1..#t of the
** list at 't', in a userdata array pushed on the stack (which keeps it for
** the caller), with their count in '*n'; NULL, pushing nothing, when the
** list is empty or holds anything else (a value of another kind, a released
** handle, a hole): the caller then goes the general way. */
void **atl_handle_objects(lua_State *L, int t, int kind, size_t *n);
/* [-0, +?, e] Host call 'fn' with the objects 'objs' (see 'atl_Call.objs')
** and the encoded arguments from 'first' to the top. */
int atl_host_call_objs(lua_State *L, int fn, void *const *objs, size_t n,
                       int first);
int atl_host_call_flags(lua_State *L, int fn, int kind, void *self,
                        int first, int flags);

/* {======================================================================
** Host yields (async.c, trampoline.c): in async code, a host call that
** would block yields to the aloop instead. The yield carries two values,
** 'atl_async_tag' (a light userdata that Lua code cannot make) and the
** pending call; the coroutine wrappers pass such yields up to the aloop,
** which resumes the coroutine with the finished call (or with
** 'atl_async_cancel', to cancel it).
** ======================================================================= */

extern char atl_async_tag;
extern char atl_async_cancel;

/* [-0, +0, e] Whether a host call named 'what' must yield: 0 outside async
** code (it blocks, as it always did), 1 in async code where a yield reaches
** the aloop; raises a clear error in async code where it cannot (a
** 'table.sort' comparator, a metamethod called from C, a finalizer). */
int atl_async_mustyield(lua_State *L, const char *what);

/* [-?, +?, e] Yield to the aloop with a host call like 'atl_host_call''s;
** when the aloop resumes, 'k' runs (with 'ctx') and gets the stack of the
** caller with one value on the top: call 'atl_host_resumed' there. Use as
** 'return atl_host_yield(...)'. */
int atl_host_yield(lua_State *L, int fn, int kind, void *self, int first,
                   lua_KContext ctx, lua_KFunction k);
/* [-1, +r, e] In a continuation of 'atl_host_yield': pop the finished call
** from the top, push its results and return their count, or raise its
** error (or the cancel error). */
int atl_host_resumed(lua_State *L);
/* [-(2), +0, -] Whether the 2 values on the top of 'L' are a host yield. */
int atl_async_ishostyield(lua_State *L, int n);

/* }====================================================================== */

/* Opening the 'atasker' module (module_atasker.c), and the loader of
** "atasker.extra" (module_extra.c). */
int atl_open_atasker(lua_State *L);
int atl_open_extra(lua_State *L);

/* {======================================================================
** Running executions (hook.c): every run of a worker or a task is framed
** by 'atl_exec_begin' / 'atl_exec_end', so that a canceller can reach it.
** ======================================================================= */

/* Offset of the real-time signal from SIGRTMIN (above glibc's own). */
#define ATL_EXEC_SIGNAL 4

#define ATL_EXEC_WHATMAX 96

/* What 'atl_exec_begin' saved of the thread's slot (on the C stack). */
typedef struct atl_ExecFrame {
  int tracked;
  uint64_t id;
  lua_State *co;
  lua_State *L;
  int cancelling;
  void *host;
  double started;
  char what[ATL_EXEC_WHATMAX];
} atl_ExecFrame;

/* [-0, +0, -] An execution starts on this thread in state 'L' (its main
** thread): the one that 'atl_exec_next' announced, if any. */
void atl_exec_begin(lua_State *L, atl_ExecFrame *f);
/* [-0, +0, -] The execution is back in the host: no request acts on it
** any more, and the hook is off. */
void atl_exec_end(lua_State *L, atl_ExecFrame *f);
/* [-0, +0, -] Whether the execution running on this thread is being
** cancelled. */
int atl_exec_cancelling(void);
/* [-0, +0, m] The place of the function at 'idx' ('file:line' where it
** is defined) is the place known of the execution until a hook runs. */
void atl_exec_setplace(lua_State *L, int idx);
/* [-0, +0, -] The same with the place already made ('file:line', as
** 'atl_funcplace' makes it): a worker runs one function, whose place it
** makes once. */
void atl_exec_setplacestr(const char *place);
/* [-0, +0, -] Writes 'file:line' of the function at 'idx' into 'buf';
** returns 0 (and writes "?") for a function without a Lua definition. */
int atl_funcplace(lua_State *L, int idx, char *buf, size_t size);
/* [-0, +0, e] Replace 'coroutine.resume' and 'coroutine.wrap' by versions
** that keep the running coroutine known to the signal handler, and pass
** host yields up to the aloop. */
void atl_open_coroutine(lua_State *L);
/* [-0, +0, -] Cancel the execution that runs on this thread now, from the
** thread itself: the hook raises the cancel error at the next event of
** 'co' (or of a coroutine it resumes), and again until the execution is
** back in the host. The place known is where 'co' is suspended. */
void atl_exec_cancel_now(lua_State *co);
/* [-0, +1, m] Push the cancel error of the execution running on this
** thread: "<what> cancelled at <file:line>". */
void atl_exec_pushcancel(lua_State *L);
/* [-?, +?, e] 'xpcall', whose message handler is slot 2 of its frame. */
int atl_xpcall(lua_State *L);
/* [-0, +0, -] Every 'xpcall' running in 'L' gets a message handler that
** returns the error as it is, so that the error raised next reaches the
** protected call without running the code's handler: a cancel or an exit
** is not the code's to handle, and a handler called for an error raised in
** a hook runs with hooks off, out of reach of any cancel. */
void atl_skiphandlers(lua_State *L);
/* [-1, +0, v] 'lua_error' after 'atl_skiphandlers'. */
int atl_raise_unhandled(lua_State *L);

/* }====================================================================== */

/* {======================================================================
** Workers (worker.c), for the async runner
** ======================================================================= */

/* [-0, +n, e] Push the worker's executor and its arguments ('item', when
** not NULL, then 'kw' with '_task_id'); returns the number of arguments. */
int atl_worker_pushcall(lua_State *L, const atl_Buffer *item,
                        long long taskid);
/* [-1, +0, e] The error (a string with its traceback) on the top: call
** 'on_error(kw)' with a message handler at 'msgh' and return 1, or leave
** the error on the top and return 0 when there is no handler. */
int atl_worker_handleerror(lua_State *L, int msgh);

/* }====================================================================== */

#endif
