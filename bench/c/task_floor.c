/*
** The floor of the task rows: the least that running N trivial Lua tasks on a
** thread pool can cost on this machine, with no Swift, no codec and no
** supervisor. The main lua_State runs the same loop as bench/lua/throughput.lua;
** its `submit(i)` (a C function) makes a task record, queues it under a mutex
** and wakes a pool thread if one sleeps. Each of THREADS pool threads has its
** own lua_State holding `function(i) end`; it takes one record at a time,
** pcalls the function with the record's argument, stores the result in the
** record and counts it done. `wait_all()` returns once every task is done.
**
** Usage: task_floor [N] [THREADS]   (default 100000 tasks, 2 threads)
** Prints RESULT lines: tasks, seconds, tasks_per_s, cpu_us_per_task (the
** process's CPU time over the run / N).
*/
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct Task {
  struct Task *next;
  lua_Integer arg;
  lua_Integer result;
  int done;
} Task;

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;  /* a task queued */
static pthread_cond_t all = PTHREAD_COND_INITIALIZER;   /* the last task done */
static Task *head, *tail, *kept;  /* the queue; every record, to free */
static long submitted, completed, sleeping;
static int quit;

static double clock_of(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int submit(lua_State *L) {
  Task *t = (Task *)calloc(1, sizeof(Task));
  if (t == NULL) return luaL_error(L, "not enough memory");
  t->arg = luaL_checkinteger(L, 1);
  pthread_mutex_lock(&mutex);
  if (tail) tail->next = t; else head = t;
  tail = t;
  submitted++;
  if (sleeping > 0) pthread_cond_signal(&work);
  pthread_mutex_unlock(&mutex);
  lua_pushlightuserdata(L, t);
  return 1;
}

static int wait_all(lua_State *L) {
  pthread_mutex_lock(&mutex);
  while (completed < submitted) pthread_cond_wait(&all, &mutex);
  pthread_mutex_unlock(&mutex);
  (void)L;
  return 0;
}

static void *pool_thread(void *unused) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_dostring(L, "return function(i) end") != LUA_OK) abort();
  int fn = luaL_ref(L, LUA_REGISTRYINDEX);
  (void)unused;
  pthread_mutex_lock(&mutex);
  for (;;) {
    while (head == NULL && !quit) {
      sleeping++;
      pthread_cond_wait(&work, &mutex);
      sleeping--;
    }
    if (head == NULL) break;
    Task *t = head;
    head = t->next;
    if (head == NULL) tail = NULL;
    pthread_mutex_unlock(&mutex);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
    lua_pushinteger(L, t->arg);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) abort();
    t->result = lua_tointeger(L, -1);
    lua_pop(L, 1);
    pthread_mutex_lock(&mutex);
    t->done = 1;
    t->next = kept;
    kept = t;
    if (++completed == submitted) pthread_cond_broadcast(&all);
  }
  pthread_mutex_unlock(&mutex);
  lua_close(L);
  return NULL;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  int threads = argc > 2 ? atoi(argv[2]) : 2;
  pthread_t ids[64];
  if (n < 1 || threads < 1 || threads > 64) {
    fprintf(stderr, "usage: task_floor [N >= 1] [THREADS 1..64]\n");
    return 2;
  }
  for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, pool_thread, NULL);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_register(L, "submit", submit);
  lua_register(L, "wait_all", wait_all);
  /* the loop of bench/lua/throughput.lua: keep every task, then wait */
  if (luaL_loadstring(L,
                      "local n = ... local tasks = {} "
                      "for i = 1, n do tasks[i] = submit(i) end "
                      "wait_all()") != LUA_OK)
    abort();
  lua_pushinteger(L, n);
  double t0 = clock_of(CLOCK_MONOTONIC), c0 = clock_of(CLOCK_PROCESS_CPUTIME_ID);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  double elapsed = clock_of(CLOCK_MONOTONIC) - t0;
  double cpu = clock_of(CLOCK_PROCESS_CPUTIME_ID) - c0;
  pthread_mutex_lock(&mutex);
  quit = 1;
  pthread_cond_broadcast(&work);
  pthread_mutex_unlock(&mutex);
  for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
  while (kept) {
    Task *t = kept;
    kept = t->next;
    free(t);
  }
  lua_close(L);
  printf("RESULT tasks %ld\n", n);
  printf("RESULT seconds %.6f\n", elapsed);
  printf("RESULT tasks_per_s %.1f\n", (double)n / elapsed);
  printf("RESULT cpu_us_per_task %.3f\n", cpu / (double)n * 1e6);
  return 0;
}
