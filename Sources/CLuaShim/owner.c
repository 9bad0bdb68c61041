/*
** owner.c: the check that a 'lua_State' is used by one thread at a time
** (see 'atl_state_enter' in CLuaShim.h). The owner word is in the state's
** data (the extra space points to it); a thread takes it with a
** compare-and-swap from 0 and gives it back with a release store, so the
** check costs two atomic operations per entry when it is compiled in.
*/
#define owner_c
#define _GNU_SOURCE  /* gettid */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shim_private.h"

#if defined(ATL_STATE_OWNER)

static uintptr_t self_thread (void) {
  return (uintptr_t)pthread_self();
}

static void violation (lua_State *L, atl_Owner *o, const char *what,
                       const char *where) {
  const char *other = atomic_load(&o->where);
  fprintf(stderr,
          "atasker-lua: lua_State %p%s: thread %ld %s %s while thread %ld "
          "is inside it (entered by %s)\n",
          (void *)L, atl_statedata(L)->is_main ? " (the main state)" : "",
          (long)gettid(), what, where, atomic_load(&o->tid),
          other != NULL ? other : "?");
  abort();
}

void atl_state_enter (lua_State *L, const char *where) {
  atl_Owner *o = &atl_statedata(L)->owner;
  uintptr_t me = self_thread(), expected = 0;
  if (atomic_compare_exchange_strong_explicit(&o->thread, &expected, me,
                                              memory_order_acquire,
                                              memory_order_relaxed)) {
    atomic_store_explicit(&o->tid, (long)gettid(), memory_order_relaxed);
    atomic_store_explicit(&o->where, where, memory_order_relaxed);
    o->depth = 0;
  }
  else if (expected == me)
    o->depth++;
  else
    violation(L, o, "enters it by", where);
}

void atl_state_leave (lua_State *L) {
  atl_Owner *o = &atl_statedata(L)->owner;
  if (atomic_load_explicit(&o->thread, memory_order_relaxed) != self_thread())
    violation(L, o, "leaves it, not being inside, by", "atl_state_leave");
  if (o->depth > 0)
    o->depth--;
  else
    atomic_store_explicit(&o->thread, 0, memory_order_release);
}

#else

void atl_state_enter (lua_State *L, const char *where) {
  (void)L;
  (void)where;
}

void atl_state_leave (lua_State *L) {
  (void)L;
}

#endif
