/*
** The floor of the queue rows: the least that putting N integers from Lua into
** a queue that another Lua state drains can cost on this machine, with no
** Swift, no codec and no supervisor. The main lua_State runs the loop of
** bench/lua/queue.lua; its `put(i)` (a C function) appends the integer to a
** growable ring under a mutex and wakes the consumer only if it sleeps. One
** consumer thread with its own lua_State holding `function(item) end` takes
** every queued item at once (one lock per batch) and pcalls the function per
** item. `drain()` returns once every item has run.
**
** Usage: queue_floor [N]   (default 1000000 items)
** Prints RESULT lines: items, seconds, put_seconds, items_per_s, cpu_us_per_item.
*/
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t drained = PTHREAD_COND_INITIALIZER;
static lua_Integer *ring;
static size_t cap, first, count;  /* the ring's items: [first, first + count) mod cap */
static long put_total, ran_total;
static int sleeping, quit;

static double clock_of(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Doubles the ring, keeping its items in order; with the mutex held. */
static int grow(void) {
  size_t ncap = cap ? cap * 2 : 1024;
  lua_Integer *n = (lua_Integer *)malloc(ncap * sizeof *n);
  if (n == NULL) return 0;
  for (size_t i = 0; i < count; i++) n[i] = ring[(first + i) % cap];
  free(ring);
  ring = n;
  cap = ncap;
  first = 0;
  return 1;
}

static int put(lua_State *L) {
  lua_Integer v = luaL_checkinteger(L, 1);
  pthread_mutex_lock(&mutex);
  if (count == cap && !grow()) {
    pthread_mutex_unlock(&mutex);
    return luaL_error(L, "not enough memory");
  }
  ring[(first + count) % cap] = v;
  count++;
  put_total++;
  if (sleeping) pthread_cond_signal(&work);
  pthread_mutex_unlock(&mutex);
  return 0;
}

static int drain(lua_State *L) {
  pthread_mutex_lock(&mutex);
  while (ran_total < put_total) pthread_cond_wait(&drained, &mutex);
  pthread_mutex_unlock(&mutex);
  (void)L;
  return 0;
}

static void *consumer(void *unused) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_dostring(L, "return function(item) end") != LUA_OK) abort();
  int fn = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_Integer *batch = NULL;
  size_t batchcap = 0;
  (void)unused;
  pthread_mutex_lock(&mutex);
  for (;;) {
    while (count == 0 && !quit) {
      sleeping = 1;
      pthread_cond_wait(&work, &mutex);
      sleeping = 0;
    }
    if (count == 0) break;
    size_t n = count;
    if (n > batchcap) {
      free(batch);
      batchcap = cap;
      batch = (lua_Integer *)malloc(batchcap * sizeof *batch);
      if (batch == NULL) abort();
    }
    for (size_t i = 0; i < n; i++) batch[i] = ring[(first + i) % cap];
    first = (first + n) % cap;
    count = 0;
    pthread_mutex_unlock(&mutex);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
      lua_pushinteger(L, batch[i]);
      if (lua_pcall(L, 1, 0, 0) != LUA_OK) abort();
    }
    pthread_mutex_lock(&mutex);
    ran_total += (long)n;
    if (ran_total == put_total) pthread_cond_broadcast(&drained);
  }
  pthread_mutex_unlock(&mutex);
  free(batch);
  lua_close(L);
  return NULL;
}

static int now(lua_State *L) {
  lua_pushnumber(L, clock_of(CLOCK_MONOTONIC));
  return 1;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  pthread_t id;
  if (n < 1) {
    fprintf(stderr, "usage: queue_floor [N >= 1]\n");
    return 2;
  }
  pthread_create(&id, NULL, consumer, NULL);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_register(L, "put", put);
  lua_register(L, "drain", drain);
  lua_register(L, "now", now);
  /* the loop of bench/lua/queue.lua, timing the puts alone too */
  if (luaL_loadstring(L,
                      "local n = ... local t0 = now() "
                      "for i = 1, n do put(i) end "
                      "local put_seconds = now() - t0 "
                      "drain() return put_seconds") != LUA_OK)
    abort();
  lua_pushinteger(L, n);
  double t0 = clock_of(CLOCK_MONOTONIC), c0 = clock_of(CLOCK_PROCESS_CPUTIME_ID);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  double elapsed = clock_of(CLOCK_MONOTONIC) - t0;
  double cpu = clock_of(CLOCK_PROCESS_CPUTIME_ID) - c0;
  double put_seconds = lua_tonumber(L, -1);
  pthread_mutex_lock(&mutex);
  quit = 1;
  pthread_cond_signal(&work);
  pthread_mutex_unlock(&mutex);
  pthread_join(id, NULL);
  lua_close(L);
  free(ring);
  printf("RESULT items %ld\n", n);
  printf("RESULT seconds %.6f\n", elapsed);
  printf("RESULT put_seconds %.6f\n", put_seconds);
  printf("RESULT items_per_s %.1f\n", (double)n / elapsed);
  printf("RESULT cpu_us_per_item %.3f\n", cpu / (double)n * 1e6);
  return 0;
}
