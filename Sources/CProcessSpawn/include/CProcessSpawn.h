/*
** CProcessSpawn: the few Linux calls that the process pool of ATasker needs
** and that Swift's Glibc module cannot import: posix_spawn set up in one
** call (close-from, default signals, a signal mask), pidfd_open and
** pidfd_send_signal (raw system calls), waitid on a pidfd, eventfd, the
** signal abbreviations of glibc, CRC-32C for the frame checksums, and the
** timer slack of a thread (prctl, which is variadic), and the timerfd alarm of
** the timer thread.
**
** Every function returns a status and never touches errno of its caller
** beyond what the underlying call does; none keeps global state except the
** CRC table, which is built once.
*/
#ifndef cprocessspawn_h
#define cprocessspawn_h

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
** Spawns 'path' with 'argv' and 'envp' (NULL-terminated arrays) by
** posix_spawn. The child gets fds 0-2, and 'childfd' duplicated to fd
** 'targetfd'; every descriptor above 'targetfd' is closed in the child
** (posix_spawn_file_actions_addclosefrom_np). Every catchable signal is set
** to its default action in the child, and its signal mask is exactly
** { SIGINT }, so that a Ctrl-C stays pending until the child ignores it.
** The child leads a process group of its own (its pgid is its pid), so it
** is out of the terminal's foreground group, and the group holds what it
** starts. Stores the pid in '*pid'. Returns 0 or an errno value.
*/
int atp_spawn(const char *path, char *const argv[], char *const envp[],
              int childfd, int targetfd, pid_t *pid);

/* pidfd_open(pid, 0): a descriptor (close-on-exec) or -1 with errno. */
int atp_pidfd_open(pid_t pid);

/* pidfd_send_signal(pidfd, sig, NULL, 0): 0 or -1 with errno. */
int atp_pidfd_send_signal(int pidfd, int sig);

/*
** waitid(P_PIDFD, pidfd, ..., WEXITED | 'extraoptions'). On success returns
** 0 and stores si_code (CLD_EXITED, CLD_KILLED, CLD_DUMPED; 0 when WNOHANG
** found nothing) in '*code' and si_status in '*status'. Else -1 with errno.
*/
int atp_waitid_pidfd(int pidfd, int extraoptions, int *code, int *status);

/*
** waitid(P_PID, pid, ..., WEXITED | WNOHANG | WNOWAIT): 0 while the
** process is a child of the caller (it is not reaped), or -1 with errno
** (ECHILD once it has been reaped or was never a child).
*/
int atp_waitid_pid_nohang(pid_t pid);

/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): a descriptor or -1 with errno. */
int atp_eventfd(void);

/* socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): 0 or -1 with errno. */
int atp_socketpair(int fds[2]);

/* "SIGKILL" for SIGKILL, "SIGRTMIN+4" for a real-time one, NULL if unknown. */
const char *atp_signal_name(int sig, char *buffer, size_t size);

/* The process's environment ('environ'), which Swift sees as an unsafe global. */
char **atp_environ(void);

/*
** kill(-pgid, sig): signals every process of group 'pgid'. Refuses (EINVAL)
** a 'pgid' of 0 or 1, which would mean the caller's own group or every
** process. Returns 0 or an errno value. The caller must know that the group
** is still the one it means: a pool child's group while that child is not
** reaped (its pid, which is the group's id, cannot be reused before).
*/
int atp_signal_group(pid_t pgid, int sig);

/*
** The start of a pool child: ignores SIGINT, unblocks every signal, and asks
** for SIGCONT when the thread that spawned it ends (PR_SET_PDEATHSIG), which
** resumes a stopped child once its parent is gone.
*/
void atp_child_signals(void);

/*
** The parent of a pool child is gone: kill the child's process group with
** SIGKILL (the child and whatever it started), when the child leads its own
** group, then '_exit(0)' (reached only when it does not).
*/
void atp_child_end_group(void) __attribute__((noreturn));

/* Makes SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGQUIT and SIGSYS
** fatal as in a C program, in place of Swift's backtracer: one line on
** standard error ('name (pid N): killed by SIGSEGV, sent by pid M'), then
** death by the signal; unblocks them in the calling thread. 'name' labels
** the line (copied; NULL keeps the last). Call it before starting threads. */
void atp_fatal_signals(const char *name);

/*
** Sets the calling thread's timer slack to 'nanoseconds' (PR_SET_TIMERSLACK).
** Linux lets a timed wait end up to the slack late (50 us by default), to
** batch wake-ups; the threads that keep schedules ask for 1 ns. Returns 0 or
** an errno value.
*/
int atp_set_timer_slack(unsigned long nanoseconds);

/*
** The alarm of a timer thread: a timerfd on CLOCK_MONOTONIC, close-on-exec.
** Returns the descriptor, or -1 (errno set). 'atp_alarm_set' arms it for an
** absolute CLOCK_MONOTONIC time (a time in the past fires at once), or
** disarms it when 'seconds' and 'nanoseconds' are both 0; it never wakes a
** thread by itself. 'atp_alarm_wait' blocks until the alarm fires (restarting
** after a signal). Both return 0 or an errno value.
*/
int atp_alarm_create(void);
int atp_alarm_set(int fd, long seconds, long nanoseconds);
int atp_alarm_wait(int fd);

/* The value of the constants that Swift sees as macros it cannot import. */
int atp_cld_exited(void);
int atp_cld_killed(void);
int atp_cld_dumped(void);

/*
** CRC-32C (Castagnoli) of 'size' bytes at 'data', continuing from 'crc'
** (start with 0). Uses the SSE 4.2 instruction when the processor has it,
** else a table.
*/
uint32_t atp_crc32c(uint32_t crc, const void *data, size_t size);

#endif
