/*
** The shim's lua_State owner check (owner.c, built with -DATL_STATE_OWNER),
** run by scripts/sanitize before the suite: the main thread enters a state
** and stays inside it, a second thread enters the same state, and the
** program must abort with a message that names the state and both entry
** points. Entering twice from one thread (a host call that comes back into
** its own state) and leaving in order must pass.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "CLuaShim.h"

static lua_State *L;

static void retain (void *obj) { (void)obj; }
static void release (void *obj) { (void)obj; }
static int call (atl_Call *c) { (void)c; return ATL_ERRRUN; }

static void *intruder (void *arg) {
  (void)arg;
  atl_state_enter(L, "the second thread");
  fprintf(stderr, "state_owner: the second thread got in\n");
  exit(3);  /* not reached: the check aborts */
}

int main (void) {
  atl_HostCallbacks cb;
  atl_StateOptions opts;
  char *err = NULL;
  pthread_t t;
  memset(&cb, 0, sizeof(cb));
  cb.retain = retain;
  cb.release = release;
  cb.call = call;
  atl_set_host_callbacks(&cb);
  memset(&opts, 0, sizeof(opts));
  L = atl_state_open(&opts, &err);
  if (L == NULL) {
    fprintf(stderr, "state_owner: %s\n", err);
    return 2;
  }
  atl_state_enter(L, "main, first");
  atl_state_enter(L, "main, again");  /* the same thread: allowed */
  atl_state_leave(L);
  atl_state_leave(L);
  atl_state_enter(L, "main, holding it");
  if (pthread_create(&t, NULL, intruder, NULL) != 0) return 2;
  pthread_join(t, NULL);
  return 4;  /* not reached */
}
