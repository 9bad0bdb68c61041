/*
** Fatal signals. Swift's runtime installs a backtracer for SIGSEGV, SIGBUS,
** SIGILL, SIGFPE, SIGABRT, SIGTRAP and SIGQUIT: for a signal sent from
** outside (kill -SEGV) it prints a long report and then lets the process go
** on, or hangs. A process of ours must die by the signal as a C program
** does, so that its parent (a shell, systemd, the process pool) sees a
** death by that signal. The handler writes one line to standard error and
** re-raises the signal with its default action.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "CProcessSpawn.h"

static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE,
                            SIGABRT, SIGTRAP, SIGQUIT, SIGSYS};

static char label[64] = "atasker-lua";

/* Append 'v' in decimal (async-signal-safe). */
static size_t putnum(char *p, unsigned long v) {
  char tmp[24];
  size_t n = 0, i;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
  return n;
}

static size_t puthex(char *p, unsigned long v) {
  static const char digits[] = "0123456789abcdef";
  char tmp[20];
  size_t n = 0, i;
  do {
    tmp[n++] = digits[v & 15];
    v >>= 4;
  } while (v != 0);
  p[0] = '0';
  p[1] = 'x';
  for (i = 0; i < n; i++) p[2 + i] = tmp[n - 1 - i];
  return n + 2;
}

static size_t puts_(char *p, const char *s) {
  size_t n = strlen(s);
  memcpy(p, s, n);
  return n;
}

static void onfatal(int sig, siginfo_t *info, void *context) {
  char line[256];
  size_t n = 0;
  const char *name = sigabbrev_np(sig);
  (void)context;
  n += puts_(line + n, label);
  n += puts_(line + n, " (pid ");
  n += putnum(line + n, (unsigned long)getpid());
  n += puts_(line + n, "): killed by SIG");
  n += puts_(line + n, name != NULL ? name : "?");
  if (info != NULL && (info->si_code == SI_USER || info->si_code == SI_QUEUE ||
                       info->si_code == SI_TKILL)) {
    n += puts_(line + n, ", sent by pid ");
    n += putnum(line + n, (unsigned long)info->si_pid);
  }
  else if (info != NULL && sig != SIGQUIT && sig != SIGABRT) {
    n += puts_(line + n, ", a fault at address ");
    n += puthex(line + n, (unsigned long)info->si_addr);
  }
  line[n++] = '\n';
  (void)!write(2, line, n);
  /* SA_RESETHAND made the action the default one: raise it again; it is
  ** delivered when this handler returns (a fault also recurs then). */
  raise(sig);
}

void atp_fatal_signals(const char *name) {
  struct sigaction sa;
  sigset_t set;
  size_t i;
  if (name != NULL) {
    strncpy(label, name, sizeof label - 1);
    label[sizeof label - 1] = '\0';
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = onfatal;
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigemptyset(&set);
  for (i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
    sigaction(fatal[i], &sa, NULL);
    sigaddset(&set, fatal[i]);
  }
  /* A parent may have blocked some of them (a test runner does): the
  ** threads started from now on inherit this mask. */
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}
