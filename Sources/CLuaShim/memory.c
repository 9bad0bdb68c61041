/*
** memory.c: the list of open states with their memory (for reports), and
** the allocation-failure tests.
*/
#define atl_memory_c

#include <pthread.h>
#include <string.h>

#include "shim_private.h"

/* {======================================================================
** The list of states. Opening and closing a state takes this lock once;
** a report takes it while it copies the figures, so a state's data is
** never freed while a report reads it.
** ======================================================================= */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static atl_StateData *registry_head = NULL;
static uint64_t registry_serial = 0;

static void setlabel(atl_StateData *d, const char *label) {
  size_t n = label != NULL ? strlen(label) : 0;
  if (n >= ATL_LABELMAX) n = ATL_LABELMAX - 1;
  if (n > 0) memcpy(d->label, label, n);
  d->label[n] = '\0';
}

void atl_registry_add(atl_StateData *d, const char *label) {
  pthread_mutex_lock(&registry_lock);
  d->serial = ++registry_serial;
  setlabel(d, label);
  d->reg_prev = NULL;
  d->reg_next = registry_head;
  if (registry_head != NULL) registry_head->reg_prev = d;
  registry_head = d;
  pthread_mutex_unlock(&registry_lock);
}

void atl_registry_remove(atl_StateData *d) {
  pthread_mutex_lock(&registry_lock);
  if (d->reg_prev != NULL) d->reg_prev->reg_next = d->reg_next;
  else if (registry_head == d) registry_head = d->reg_next;
  if (d->reg_next != NULL) d->reg_next->reg_prev = d->reg_prev;
  d->reg_prev = d->reg_next = NULL;
  pthread_mutex_unlock(&registry_lock);
}

static void fill(const atl_StateData *d, atl_StateMemory *out) {
  size_t limit = __atomic_load_n(&d->mem_limit, __ATOMIC_RELAXED);
  out->serial = d->serial;
  out->bytes = __atomic_load_n(&d->mem_live, __ATOMIC_RELAXED);
  out->peak = __atomic_load_n(&d->mem_peak, __ATOMIC_RELAXED);
  out->limit = limit == (size_t)-1 ? 0 : limit;
}

void atl_state_memory(lua_State *L, atl_StateMemory *out) {
  atl_StateData *d = atl_statedata(L);
  pthread_mutex_lock(&registry_lock);  /* the label may change */
  fill(d, out);
  memcpy(out->label, d->label, ATL_LABELMAX);
  pthread_mutex_unlock(&registry_lock);
}

void atl_state_set_memory_limit(lua_State *L, size_t limit) {
  atl_StateData *d = atl_statedata(L);
  __atomic_store_n(&d->mem_limit, limit == 0 ? (size_t)-1 : limit,
                   __ATOMIC_RELAXED);
}

size_t atl_state_bytes(lua_State *L) { return atl_statedata(L)->mem_live; }

size_t atl_state_memory_limit(lua_State *L) {
  size_t limit = atl_statedata(L)->mem_limit;
  return limit == (size_t)-1 ? 0 : limit;
}

void atl_state_set_label(lua_State *L, const char *label) {
  atl_StateData *d = atl_statedata(L);
  pthread_mutex_lock(&registry_lock);
  setlabel(d, label);
  pthread_mutex_unlock(&registry_lock);
}

int atl_states_memory(void *host, atl_StateMemory *out, int max) {
  const atl_StateData *d;
  int n = 0;
  pthread_mutex_lock(&registry_lock);
  for (d = registry_head; d != NULL; d = d->reg_next) {
    if (d->host != host) continue;
    if (n < max) {
      fill(d, &out[n]);
      memcpy(out[n].label, d->label, ATL_LABELMAX);
    }
    n++;
  }
  pthread_mutex_unlock(&registry_lock);
  return n;
}

/* }====================================================================== */

/* {======================================================================
** Allocation-failure tests. A thread arms them for itself; the flag that
** the allocators read first is global (a relaxed load), so that a thread
** that never armed them pays one load per allocation.
** ======================================================================= */

int atl_faults_armed = 0;
static pthread_mutex_t faults_lock = PTHREAD_MUTEX_INITIALIZER;
static int faults_threads = 0;  /* threads armed now */

static _Thread_local int tl_armed = 0;
static _Thread_local long tl_failat = 0;
static _Thread_local long tl_count = 0;

int atl_fault_take(void) {
  if (!tl_armed) return 0;
  return tl_count++ >= tl_failat;
}

int atl_test_fail_allocations(long k) {
  int was = tl_armed;
  tl_armed = k >= 0;
  tl_failat = k;
  tl_count = 0;
  if (was != tl_armed) {
    pthread_mutex_lock(&faults_lock);
    faults_threads += tl_armed ? 1 : -1;
    __atomic_store_n(&atl_faults_armed, faults_threads > 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&faults_lock);
  }
  return ATL_OK;
}

long atl_test_allocations(void) { return tl_count; }

/* }====================================================================== */
