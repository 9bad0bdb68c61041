/*
** ThreadSanitizer and Swift's Synchronization.Mutex on Linux (preloaded by
** `scripts/sanitize thread`; never part of a build of the project).
**
** Mutex's fast paths are atomics inlined into the caller, which TSan sees.
** Its slow paths, _MutexHandle._lockSlow / _tryLockSlow / _unlockSlow, are
** in libswiftSynchronization.so, which is not instrumented, and take and
** give the lock in the kernel (FUTEX_LOCK_PI / FUTEX_UNLOCK_PI): a thread
** that gets a contended lock shows TSan no acquire, so every access under a
** Mutex that was ever contended is reported as a race (a correct program of
** four threads incrementing a counter under one Mutex gets reports). These
** wrappers stand in for the three functions, call the real ones, and tell
** TSan what happened: a release on the lock's word before an unlock, an
** acquire after a lock. The word's address is 'self', which Swift passes
** in r13 (swiftself), a callee-saved register (x86-64 only).
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define LOCK    "$s15Synchronization12_MutexHandleV9_lockSlowyys6UInt32VF"
#define TRYLOCK "$s15Synchronization12_MutexHandleV12_tryLockSlowSbyF"
#define UNLOCK  "$s15Synchronization12_MutexHandleV11_unlockSlowyyF"

/* In a TSan-built program these come from its runtime; elsewhere (a shell
** that a test starts) they are absent and the wrappers only forward. */
extern void __tsan_acquire (void *addr) __attribute__((weak));
extern void __tsan_release (void *addr) __attribute__((weak));

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN void *atl_tsan_real_lock, *atl_tsan_real_trylock, *atl_tsan_real_unlock;

HIDDEN void atl_tsan_acquire (void *addr) {
  if (__tsan_acquire != NULL) __tsan_acquire(addr);
}

HIDDEN void atl_tsan_release (void *addr) {
  if (__tsan_release != NULL) __tsan_release(addr);
}

static void *real (const char *name) {
  void *f = dlsym(RTLD_NEXT, name);
  if (f == NULL) {
    fprintf(stderr, "tsan_mutex: no %s in the next libraries\n", name);
    abort();
  }
  return f;
}

__attribute__((constructor)) static void init (void) {
  /* only a process that has Swift's Synchronization library has them */
  if (dlsym(RTLD_NEXT, LOCK) == NULL) return;
  atl_tsan_real_lock = real(LOCK);
  atl_tsan_real_trylock = real(TRYLOCK);
  atl_tsan_real_unlock = real(UNLOCK);
}

__asm__(
  ".text\n"
  ".globl \"" LOCK "\"\n"
  ".type \"" LOCK "\", @function\n"
  "\"" LOCK "\":\n"
  "  push %r13\n"                              /* self; aligns the stack */
  "  call *atl_tsan_real_lock(%rip)\n"         /* edi: the argument, as given */
  "  pop %rdi\n"
  "  jmp atl_tsan_acquire\n"
  ".globl \"" TRYLOCK "\"\n"
  ".type \"" TRYLOCK "\", @function\n"
  "\"" TRYLOCK "\":\n"
  "  push %r13\n"
  "  call *atl_tsan_real_trylock(%rip)\n"
  "  pop %rdi\n"
  "  test %al, %al\n"
  "  jz 1f\n"
  "  push %rax\n"
  "  call atl_tsan_acquire\n"
  "  pop %rax\n"
  "1:\n"
  "  ret\n"
  ".globl \"" UNLOCK "\"\n"
  ".type \"" UNLOCK "\", @function\n"
  "\"" UNLOCK "\":\n"
  "  push %r13\n"
  "  mov %r13, %rdi\n"
  "  call atl_tsan_release\n"
  "  pop %r13\n"
  "  jmp *atl_tsan_real_unlock(%rip)\n"
);
