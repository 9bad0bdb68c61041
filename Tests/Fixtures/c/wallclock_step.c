/*
** A wall-clock step for one process, for the clock-step tests: loaded with
** LD_PRELOAD, it moves what CLOCK_REALTIME (clock_gettime, gettimeofday,
** time) reads by an offset that changes at given times after the process
** began, as a clock stepped by an administrator or NTP would be.
** ATL_WALLCLOCK_STEPS="3:3600,6:0": from 3 s on (monotonic, since the first
** reading) the wall clock is one hour ahead, from 6 s on it is back.
** The monotonic clocks are not touched (the kernel never steps them).
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#define MAXSTEPS 16

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static double at[MAXSTEPS];
static long offset[MAXSTEPS];
static int nsteps = -1;
static double began;

static double mono(void) {
  struct timespec t;
  real_clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void setup(void) {
  const char *s = getenv("ATL_WALLCLOCK_STEPS");
  char *end;
  real_clock_gettime =
      (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
  began = mono();
  nsteps = 0;
  while (s != NULL && *s != '\0' && nsteps < MAXSTEPS) {
    at[nsteps] = strtod(s, &end);
    if (*end != ':') break;
    offset[nsteps] = strtol(end + 1, &end, 10);
    nsteps++;
    if (*end != ',') break;
    s = end + 1;
  }
}

static long current(void) {
  double t;
  long off = 0;
  int i;
  if (nsteps < 0) setup();
  t = mono() - began;
  for (i = 0; i < nsteps; i++)
    if (t >= at[i]) off = offset[i];
  return off;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
  int r;
  if (nsteps < 0) setup();
  r = real_clock_gettime(id, ts);
  if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
    ts->tv_sec += current();
  return r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
  struct timespec ts;
  (void)tz;
  clock_gettime(CLOCK_REALTIME, &ts);
  tv->tv_sec = ts.tv_sec;
  tv->tv_usec = ts.tv_nsec / 1000;
  return 0;
}

time_t time(time_t *out) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (out != NULL) *out = ts.tv_sec;
  return ts.tv_sec;
}
