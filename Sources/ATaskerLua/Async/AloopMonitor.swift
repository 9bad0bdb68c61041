import ATasker
import Glibc
import Logging
import Synchronization

/// The async side of a host: the watchdog of each aloop and its settings.
final class HostAsyncState: Sendable {
    /// `s.aloop_block_warning` and `s.aloop_block_cancel`.
    let limits = AloopBlockLimits()
    let monitors = Mutex<[ObjectIdentifier: AloopMonitor]>([:])
    /// Executors shared by the workers made from the same function.
    let functions = SharedFunctions()
    /// The async job schedulers (`s:create_async_job_scheduler`).
    let schedulers = Mutex(AsyncJobSchedulers())

    var warning: Double { self.limits.warning }

    var cancelAfter: Double { self.limits.cancelAfter }
}

/// The limits that every aloop's monitor reads. An object of their own: a monitor, which its aloop keeps (through
/// its interrupter), holds nothing else of the host, so that an aloop and the host's async state (which keeps the
/// async job schedulers, and through them their aloops) form no cycle.
final class AloopBlockLimits: Sendable {
    /// Seconds a coroutine may run on an aloop without yielding before it is reported (`s.aloop_block_warning`).
    let warningBits = Atomic<UInt64>(1.0.bitPattern)
    /// Seconds after which such a coroutine is cancelled (`s.aloop_block_cancel`); infinity: never.
    let cancelBits = Atomic<UInt64>(Double.infinity.bitPattern)

    var warning: Double {
        Double(bitPattern: self.warningBits.load(ordering: .relaxed))
    }

    var cancelAfter: Double {
        Double(bitPattern: self.cancelBits.load(ordering: .relaxed))
    }
}

/// Watches one aloop for a coroutine that never yields: the one thing that can hold an aloop.
///
/// Each step of a coroutine tells the monitor when it begins and ends (two atomic stores). One timer of the
/// host's watchdog thread is armed at a time, for the moment the step that runs would become too long; when it
/// fires and finds that step (or a later one) still running past the limit, it asks the aloop's thread for a
/// traceback (the signal and hook of DESIGN.md's "Cancelling running Lua code") and logs a warning with the
/// execution's name and that traceback; past the cancel limit, it cancels the step. A busy aloop whose steps are
/// short costs one timer per `s.aloop_block_warning` seconds; an idle one, none.
final class AloopMonitor: Sendable {
    let aloopName: String
    private let logger: Logger
    private let settings: AloopBlockLimits
    private let watchdog: TimerQueue
    /// The execution id of the step that runs now, or 0.
    private let running = Atomic<UInt64>(0)
    /// When it began (``Monotonic/now()`` bits).
    private let startedBits = Atomic<UInt64>(0)
    /// Whether a timer is armed.
    private let armed = Atomic<Bool>(false)
    /// The last step reported, and the last cancelled, so that each happens once.
    private let reported = Atomic<UInt64>(0)
    private let cancelled = Atomic<UInt64>(0)

    init(aloopName: String, core: HostCore) {
        self.aloopName = aloopName
        self.logger = core.currentLogger
        self.settings = core.asyncState.limits
        self.watchdog = core.watchdog
    }

    /// A step with execution id `id` begins on the aloop's thread.
    @inline(__always)
    func begin(_ id: UInt64) {
        let now = Monotonic.now()
        self.startedBits.store(now.bitPattern, ordering: .relaxed)
        self.running.store(id, ordering: .releasing)
        if !self.armed.load(ordering: .relaxed) {
            self.arm(at: now + self.settings.warning)
        }
    }

    /// Cancels the step that runs now, if any (from any thread): the aloop stops, or the program's deadline came.
    func cancelRunning() {
        let id = self.running.load(ordering: .acquiring)
        if id != 0 {
            LuaState.requestExecution(id, cancel: true, traceback: false)
        }
    }

    /// The step ended.
    @inline(__always)
    func end() {
        self.running.store(0, ordering: .releasing)
    }

    private func arm(at deadline: Double) {
        guard self.armed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        self.watchdog.schedule(at: deadline) { [self] in self.fire() }
    }

    /// The timer fired (on the watchdog's thread): report or cancel the step that runs too long, and arm the
    /// next check.
    private func fire() {
        let warning = self.settings.warning
        let cancelAfter = self.settings.cancelAfter
        let id = self.running.load(ordering: .acquiring)
        if id != 0 {
            let started = Double(bitPattern: self.startedBits.load(ordering: .relaxed))
            let elapsed = Monotonic.now() - started
            if elapsed >= warning && self.reported.exchange(id, ordering: .relaxed) != id {
                self.report(id, elapsed: elapsed, cancelling: elapsed >= cancelAfter)
            }
            if elapsed >= cancelAfter && self.cancelled.exchange(id, ordering: .relaxed) != id {
                LuaState.requestExecution(id, cancel: true, traceback: false)
            }
            // The next check of this step, if one is left to make.
            let next = elapsed < warning ? started + warning : (elapsed < cancelAfter ? started + cancelAfter : nil)
            if let next, next.isFinite {
                self.watchdog.schedule(at: next) { [self] in self.fire() }
                return
            }
        }
        self.armed.store(false, ordering: .releasing)
        // A step that began meanwhile found the timer armed: watch it now.
        let now = self.running.load(ordering: .acquiring)
        if now != 0 && now != id {
            let started = Double(bitPattern: self.startedBits.load(ordering: .relaxed))
            self.arm(at: started + warning)
        }
    }

    /// Asks the aloop's thread for the traceback of step `id` and logs it, off the watchdog's thread.
    private func report(_ id: UInt64, elapsed: Double, cancelling: Bool) {
        guard LuaState.requestExecution(id, cancel: false, traceback: true) == .sent else { return }
        let aloopName = self.aloopName
        let logger = self.logger
        spawnThread {
            let label = LuaState.label(of: id) ?? "async code"
            guard let report = LuaState.reportExecution(id, waiting: 2) else { return }
            let action = cancelling ? "; cancelling it (aloop_block_cancel)" : ""
            let head =
                "\(label) has not yielded for \(formatSeconds(elapsed)) s and holds aloop '\(aloopName)': "
                + "nothing else runs there until it yields (atasker.sleep, atasker.wait_completed, "
                + "coroutine.yield)\(action); it runs at \(report.place)"
            if let traceback = report.traceback {
                logger.warning("\(head)\n\(traceback)")
            } else {
                logger.warning("\(head), inside one long C call or a __gc finalizer")
            }
        }
    }
}

extension HostCore {
    /// The never-yielding watchdog of `aloop`, made on first use.
    func aloopMonitor(_ aloop: Aloop) -> AloopMonitor {
        self.asyncState.monitors.withLock { monitors in
            if let monitor = monitors[ObjectIdentifier(aloop)] {
                return monitor
            }
            let monitor = AloopMonitor(aloopName: aloop.name, core: self)
            monitors[ObjectIdentifier(aloop)] = monitor
            aloop.setInterrupter { [monitor] in monitor.cancelRunning() }
            return monitor
        }
    }
}

extension HostCore {
    /// `s.aloop_block_warning` and `s.aloop_block_cancel` (nil when off).
    func asyncSetting(_ key: String) -> LuaValue {
        let value = key == "aloop_block_warning" ? self.asyncState.warning : self.asyncState.cancelAfter
        return value.isFinite ? .number(value) : .nil
    }

    /// Sets `s.aloop_block_warning` (seconds > 0) or `s.aloop_block_cancel` (seconds > 0, or nil / false: never).
    func setAsyncSetting(_ key: String, _ value: LuaValue) throws {
        let seconds: Double
        switch value {
        case .nil,
            .boolean(false) where key == "aloop_block_cancel":
            seconds = .infinity
        default:
            guard value.doubleValue != nil,
                let d = try? LuaArguments.seconds(value, "supervisor", key, lower: .positive)
            else {
                throw CallError(
                    message: "supervisor: \(key) must be a number of seconds > 0 and <= 1e9"
                        + (key == "aloop_block_cancel" ? ", or nil / false for never" : "")
                        + " (got \(LuaArguments.describe(value)))")
            }
            seconds = d
        }
        if key == "aloop_block_warning" {
            self.asyncState.limits.warningBits.store(seconds.bitPattern, ordering: .relaxed)
        } else {
            self.asyncState.limits.cancelBits.store(seconds.bitPattern, ordering: .relaxed)
        }
    }
}

extension HostCore {
    /// Cancels the coroutines of the supervisor's aloops that wait (their steps that run are reached by signals);
    /// returns how many were waiting.
    func cancelWaitingAsync() -> Int {
        var count = 0
        for aloop in self.supervisor.aloops {
            count += aloop.pendingWork
            aloop.cancelWork()
        }
        return count
    }
}
