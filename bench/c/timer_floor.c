/*
** The timer floor of this machine: how late a bare pthread_cond_timedwait on
** CLOCK_MONOTONIC wakes up for a deadline every INTERVAL seconds, with the
** thread's timer slack at 1 ns (as atasker-lua's timer thread sets it).
** Nothing else runs: this is the least lateness that any scheduler built on
** timed waits can reach here, the yardstick of the interval rows.
**
** Usage: timer_floor TICKS INTERVAL
** Prints RESULT lines: p50_us p99_us max_us (nearest rank over TICKS ticks), and
** cpu_us_per_tick: the process's CPU time over the ticks / TICKS, what one wake-up
** from a timed wait costs here (the least CPU a tick of a scheduler that wakes up
** for every tick can take).
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int ticks = argc > 1 ? atoi(argv[1]) : 1000;
  double interval = argc > 2 ? atof(argv[2]) : 0.01;
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_condattr_t attributes;
  pthread_cond_t cond;
  double *late, start, cpu_start, cpu_used;
  int i;
  if (ticks < 1 || !(interval > 0)) {
    fprintf(stderr, "usage: timer_floor TICKS INTERVAL\n");
    return 2;
  }
  late = malloc(sizeof *late * (size_t)ticks);
  if (late == NULL) return 1;
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  pthread_condattr_init(&attributes);
  pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
  pthread_cond_init(&cond, &attributes);
  pthread_mutex_lock(&mutex);
  start = now() + interval;
  cpu_start = cpu();
  for (i = 0; i < ticks; i++) {
    double deadline = start + i * interval;
    struct timespec at;
    at.tv_sec = (time_t)deadline;
    at.tv_nsec = (long)((deadline - (double)at.tv_sec) * 1e9);
    while (now() < deadline)  /* a spurious wake-up waits again */
      pthread_cond_timedwait(&cond, &mutex, &at);
    late[i] = (now() - deadline) * 1e6;
  }
  cpu_used = cpu() - cpu_start;
  pthread_mutex_unlock(&mutex);
  qsort(late, (size_t)ticks, sizeof *late, compare);
  printf("RESULT p50_us %.1f\n", late[(ticks + 1) / 2 - 1]);
  printf("RESULT p99_us %.1f\n", late[(ticks * 99 + 99) / 100 - 1]);
  printf("RESULT max_us %.1f\n", late[ticks - 1]);
  printf("RESULT cpu_us_per_tick %.2f\n", cpu_used / ticks * 1e6);
  free(late);
  return 0;
}
