/*
** Spawning, reaping and signalling children for the process pool.
*/
#define _GNU_SOURCE
#include "CProcessSpawn.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int atp_spawn(const char *path, char *const argv[], char *const envp[],
              int childfd, int targetfd, pid_t *pid) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  sigset_t defaults, mask;
  int status = posix_spawn_file_actions_init(&actions);
  if (status != 0)
    return status;
  status = posix_spawnattr_init(&attr);
  if (status != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return status;
  }
  /* dup2 clears close-on-exec, also when 'childfd' == 'targetfd' (glibc
     2.29 and later) */
  status = posix_spawn_file_actions_adddup2(&actions, childfd, targetfd);
  if (status == 0)
    status = posix_spawn_file_actions_addclosefrom_np(&actions, targetfd + 1);
  /* sigfillset leaves out glibc's internal signals; SIGKILL and SIGSTOP
     cannot be changed */
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  if (status == 0)
    status = posix_spawnattr_setsigdefault(&attr, &defaults);
  if (status == 0)
    status = posix_spawnattr_setsigmask(&attr, &mask);
  /* a process group of its own (pgid = its pid), so that the pool can end
     the child with everything it started */
  if (status == 0)
    status = posix_spawnattr_setpgroup(&attr, 0);
  if (status == 0)
    status = posix_spawnattr_setflags(&attr,
                                      POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETPGROUP);
  if (status == 0)
    status = posix_spawn(pid, path, &actions, &attr, argv, envp);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return status;
}

int atp_pidfd_open(pid_t pid) {
  return (int)syscall(SYS_pidfd_open, pid, 0);
}

int atp_pidfd_send_signal(int pidfd, int sig) {
  return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int atp_waitid_pidfd(int pidfd, int extraoptions, int *code, int *status) {
  siginfo_t info;
  memset(&info, 0, sizeof info);
  int result;
  do {
    result = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | extraoptions);
  } while (result == -1 && errno == EINTR);
  if (result == 0) {
    *code = info.si_pid == 0 ? 0 : info.si_code;
    *status = info.si_status;
  }
  return result;
}

int atp_waitid_pid_nohang(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof info);
  return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
}

int atp_eventfd(void) {
  return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int atp_socketpair(int fds[2]) {
  return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

const char *atp_signal_name(int sig, char *buffer, size_t size) {
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
    if (sig == SIGRTMIN)
      snprintf(buffer, size, "SIGRTMIN");
    else if (sig == SIGRTMAX)
      snprintf(buffer, size, "SIGRTMAX");
    else
      snprintf(buffer, size, "SIGRTMIN+%d", sig - SIGRTMIN);
    return buffer;
  }
  const char *abbreviation = sigabbrev_np(sig);
  if (abbreviation == NULL)
    return NULL;
  snprintf(buffer, size, "SIG%s", abbreviation);
  return buffer;
}

char **atp_environ(void) { return environ; }

int atp_signal_group(pid_t pgid, int sig) {
  if (pgid <= 1) return EINVAL;  /* never 0 (our own group) nor -1 (all) */
  return kill(-pgid, sig) == 0 ? 0 : errno;
}

void atp_child_signals(void) {
  sigset_t none;
  signal(SIGINT, SIG_IGN);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* when the thread that spawned us ends (the parent died), SIGCONT: it
     resumes this process if it is stopped, so that its watcher thread sees
     the end of the socket and ends the group; a running process ignores it */
  prctl(PR_SET_PDEATHSIG, SIGCONT, 0UL, 0UL, 0UL);
}

void atp_child_end_group(void) {
  pid_t self = getpid();
  if (getpgrp() == self) kill(-self, SIGKILL);  /* us among them */
  _exit(0);
}

int atp_cld_exited(void) { return CLD_EXITED; }
int atp_cld_killed(void) { return CLD_KILLED; }
int atp_cld_dumped(void) { return CLD_DUMPED; }

int atp_set_timer_slack(unsigned long nanoseconds) {
  return prctl(PR_SET_TIMERSLACK, nanoseconds, 0UL, 0UL, 0UL) == 0 ? 0 : errno;
}

int atp_alarm_create(void) {
  return timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
}

int atp_alarm_set(int fd, long seconds, long nanoseconds) {
  struct itimerspec spec;
  memset(&spec, 0, sizeof spec);
  spec.it_value.tv_sec = seconds;
  spec.it_value.tv_nsec = nanoseconds;
  return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL) == 0 ? 0 : errno;
}

int atp_alarm_wait(int fd) {
  uint64_t expirations;
  for (;;) {
    ssize_t n = read(fd, &expirations, sizeof expirations);
    if (n == (ssize_t)sizeof expirations) return 0;
    if (n < 0 && errno != EINTR) return errno;
  }
}
