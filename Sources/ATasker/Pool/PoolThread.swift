import CProcessSpawn
import Glibc

/// Starts detached, named pthreads that run a Swift closure.
///
/// The pool creates its own pthreads (not Foundation `Thread`, not Dispatch) so that the program
/// stays small and each thread has a name visible in `top -H`, `gdb` and `/proc/PID/task/*/comm`.
package enum PoolThread {
    fileprivate final class Start: Sendable {
        let name: String
        let keepsTime: Bool
        let body: @Sendable () -> Void

        init(name: String, keepsTime: Bool, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.keepsTime = keepsTime
            self.body = body
        }
    }

    /// Starts a detached thread named `name` (truncated to the 15 bytes that Linux keeps) running `body`.
    ///
    /// - Parameters:
    ///   - name: The thread's name.
    ///   - keepsTime: The thread sleeps until deadlines that must be met closely (a pool thread that
    ///     serves the timers, a timer thread): its timed waits get a timer slack of 1 ns instead of Linux's default 50 µs, by which
    ///     the kernel may otherwise end each of them late to batch wake-ups.
    ///   - body: What the thread runs.
    /// - Returns: `false` if the thread could not be created (`pthread_create` failed).
    package static func spawn(name: String, keepsTime: Bool = false, _ body: @escaping @Sendable () -> Void) -> Bool {
        let start = Unmanaged.passRetained(Start(name: name, keepsTime: keepsTime, body: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let status = pthread_create(&thread, &attributes, poolThreadEntry, start)
        if status != 0 {
            Unmanaged<Start>.fromOpaque(start).release()
            return false
        }
        return true
    }

    /// Names the calling thread by writing `/proc/thread-self/comm`.
    ///
    /// `pthread_setname_np` is a GNU extension that Swift's Glibc module does not import (it needs
    /// `_GNU_SOURCE`), and `prctl` is variadic; the `comm` file is what both of them write.
    fileprivate static func setCurrentThreadName(_ name: String) {
        let bytes = Array(name.utf8.prefix(15))
        let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            return
        }
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
    }
}

/// The C entry point of every thread started by ``PoolThread/spawn(name:_:)``.
private func poolThreadEntry(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let argument else {
        return nil
    }
    let start = Unmanaged<PoolThread.Start>.fromOpaque(argument).takeRetainedValue()
    PoolThread.setCurrentThreadName(start.name)
    if start.keepsTime {
        // Best effort: a refusal leaves the default slack, which only makes wake-ups later.
        _ = atp_set_timer_slack(1)
    }
    start.body()
    return nil
}
