import Glibc

/// A pthread mutex paired with a condition variable (on `CLOCK_MONOTONIC`) that protects one value.
///
/// Pool threads (also while they serve the timers) block on this type: `Synchronization.Mutex` cannot
/// be waited on, so where a thread must sleep until the protected state changes we use the pthread pair directly
/// (as `NIOThreadPoolWorkAvailable` does). Callers either use ``withLock(_:)`` or, in the hot loops,
/// ``lock()`` / ``lockedValue`` / ``unlock()`` so that one acquisition covers "finish a task, take the
/// next one, or wait".
package final class ConditionLock<Value> {
    // The mutex and the condition variable must not move in memory, so they live in their own
    // allocations rather than as stored properties of this class.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    // protected by `mutex` (which is why the dynamic exclusivity check, a cost on every access, is off)
    @exclusivity(unchecked) private var storage: Value

    package init(_ value: Value) {
        self.storage = value
        self.mutex = .allocate(capacity: 1)
        self.condition = .allocate(capacity: 1)

        var mutexAttributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&mutexAttributes)
        // An adaptive mutex spins a little before it sleeps: our critical sections are a few
        // hundred nanoseconds, so a short spin is cheaper than a futex round trip.
        pthread_mutexattr_settype(&mutexAttributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        let mutexStatus = pthread_mutex_init(self.mutex, &mutexAttributes)
        pthread_mutexattr_destroy(&mutexAttributes)
        precondition(mutexStatus == 0, "pthread_mutex_init failed: \(mutexStatus)")

        var conditionAttributes = pthread_condattr_t()
        pthread_condattr_init(&conditionAttributes)
        pthread_condattr_setclock(&conditionAttributes, clockid_t(CLOCK_MONOTONIC))
        let conditionStatus = pthread_cond_init(self.condition, &conditionAttributes)
        pthread_condattr_destroy(&conditionAttributes)
        precondition(conditionStatus == 0, "pthread_cond_init failed: \(conditionStatus)")
    }

    deinit {
        pthread_cond_destroy(self.condition)
        pthread_mutex_destroy(self.mutex)
        self.condition.deallocate()
        self.mutex.deallocate()
    }

    /// Acquires the mutex.
    @inline(__always)
    package func lock() {
        pthread_mutex_lock(self.mutex)
    }

    /// Releases the mutex.
    @inline(__always)
    package func unlock() {
        pthread_mutex_unlock(self.mutex)
    }

    /// The protected value. Only touch it between ``lock()`` and ``unlock()``.
    package var lockedValue: Value {
        _read { yield self.storage }
        _modify { yield &self.storage }
    }

    /// Runs `body` with the mutex held.
    @inline(__always)
    package func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        self.lock()
        defer { self.unlock() }
        return try body(&self.storage)
    }

    /// Waits for a signal. The mutex must be held; it is held again on return.
    package func wait() {
        pthread_cond_wait(self.condition, self.mutex)
    }

    /// Waits for a signal until a monotonic deadline. The mutex must be held; it is held again on return.
    ///
    /// - Returns: `false` if the deadline passed, `true` if the wait ended for another reason
    ///   (a signal, or a spurious wake-up).
    package func wait(until deadline: Double) -> Bool {
        var spec = Monotonic.absoluteTime(at: deadline)
        return pthread_cond_timedwait(self.condition, self.mutex, &spec) != ETIMEDOUT
    }

    /// Wakes one waiting thread. Call it after releasing the mutex when possible.
    @inline(__always)
    package func signal() {
        pthread_cond_signal(self.condition)
    }

    /// Wakes every waiting thread.
    package func broadcast() {
        pthread_cond_broadcast(self.condition)
    }
}

/// `ConditionLock` is safe to share between threads because:
/// 1. the stored value is only read or written while `mutex` is held (by ``ConditionLock/withLock(_:)``
///    or between ``ConditionLock/lock()`` and ``ConditionLock/unlock()``);
/// 2. the mutex and the condition variable are allocated once, never move, and are destroyed only in
///    `deinit`, when no other thread can hold a reference;
/// 3. the value itself is `Sendable`, so handing it from one thread to another is allowed.
extension ConditionLock: @unchecked Sendable where Value: Sendable {}
