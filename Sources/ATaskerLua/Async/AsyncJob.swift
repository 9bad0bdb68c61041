import ATasker
import Logging
import Synchronization

/// An async job (atasker's aiosched jobs): `target(args...)` run on an aloop every `interval` seconds, as a
/// coroutine that may wait (`atasker.sleep`, `atasker.wait_completed`) without holding the aloop.
///
/// Lighter than a worker: no `kw`, no `on_error`, no lifecycle beyond `cancel`; the job keeps a Lua state of its
/// own, opened at its first run on the aloop's thread and closed when it ends. Its schedule is drift-free
/// (`created + k · interval` on the monotonic clock) and, unlike aiosched's, a run never overlaps the one before:
/// the ticks that pass while a run waits are skipped and counted.
final class AsyncJob: AloopWork {
    let aloop: Aloop
    let name: String
    let interval: Double
    let function: EncodedValues
    let arguments: EncodedValues?
    /// Runs after which the job ends by itself (`number=`), or nil for ever.
    let number: Int?
    let runs = Atomic<Int>(0)
    let skipped = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    /// Cleared by a cancel; the job then ends after the run under way.
    let active = Atomic<Bool>(true)

    // owned by the aloop's thread
    /// The host, until the job ends: an ended job whose handle a value of the host keeps (a shared table) holds
    /// no reference back to it.
    private var core: HostCore?
    private var state: LuaState?
    private var coroutine: AsyncCoroutine?
    private var origin = 0.0
    private var tick = 0
    private var running = false
    private var timer: TimerID?
    private var ended = false

    init(
        core: HostCore, aloop: Aloop, name: String, interval: Double, function: EncodedValues,
        arguments: EncodedValues?, number: Int?
    ) {
        self.core = core
        self.aloop = aloop
        self.name = name
        self.interval = interval
        self.function = function
        self.arguments = arguments
        self.number = number
    }

    /// Registers the job on its aloop and runs it first at once; returns false when the aloop takes no new work.
    func start() -> Bool {
        guard case .registered = self.aloop.register(self, whileStopping: false) else {
            return false
        }
        let started = self.aloop.enqueue(
            run: { [self] in
                self.origin = Monotonic.now()
                self.run()
            }, lost: nil)
        if !started {
            self.aloop.unregister(self)
        }
        return started
    }

    /// Stops the job: no run starts after this; the one under way finishes. From any thread.
    func cancel() {
        guard self.active.exchange(false, ordering: .acquiringAndReleasing) else { return }
        self.aloop.enqueue(
            run: { [self] in
                if !self.running {
                    self.end()
                }
            }, lost: nil)
    }

    // MARK: - Runs (on the aloop's thread)

    private func run() {
        self.timer = nil
        guard self.active.load(ordering: .acquiring) else {
            self.end()
            return
        }
        guard let core = self.core else { return }
        if self.state == nil {
            do {
                let state = try core.openState(isMain: false, label: "async job '\(self.name)'")
                do {
                    let ref = try state.newCoroutine()
                    self.coroutine = AsyncCoroutine(
                        core: core, aloop: self.aloop, state: state, ref: ref, label: "async job '\(self.name)'",
                        isWorker: false)
                    self.state = state
                } catch {
                    state.close()
                    throw error
                }
            } catch {
                core.currentLogger.error("async job '\(self.name)' cannot run: \(error)")
                self.active.store(false, ordering: .releasing)
                self.end()
                return
            }
        }
        guard let state = self.state, let coroutine = self.coroutine else { return }
        self.running = true
        let outcome = coroutine.start { () throws(LuaError) in
            try state.beginTaskCoroutine(coroutine.ref, function: self.function, arguments: self.arguments)
        }
        if let outcome {
            self.finished(outcome)
        } else {
            coroutine.onEnd = { [self] outcome in self.finished(outcome) }
        }
    }

    private func finished(_ outcome: AsyncCoroutine.Outcome) {
        self.running = false
        let runs = self.runs.wrappingAdd(1, ordering: .relaxed).newValue
        if case .failed(let error) = outcome {
            self.failures.wrappingAdd(1, ordering: .relaxed)
            // (the host is there: the job has not ended)
            let logger = self.core?.currentLogger ?? self.aloop.supervisor?.logger ?? Logger(label: "atasker")
            if error.code == .canceled {
                logger.warning("\(error.fullMessage)")
            } else {
                logger.error(
                    "async job '\(self.name)' failed: \(error.fullMessage)", metadata: ["job": "\(self.name)"])
            }
        }
        if case .exit = outcome {
            self.active.store(false, ordering: .releasing)
        }
        if let number = self.number, runs >= number {
            self.active.store(false, ordering: .releasing)
        }
        guard self.active.load(ordering: .acquiring) else {
            self.end()
            return
        }
        // The next tick at or after now; the ticks a long run missed are skipped, never piled up.
        let now = Monotonic.now()
        let due = max(self.tick + 1, Int(((now - self.origin) / self.interval).rounded(.up)))
        if due > self.tick + 1 {
            self.skipped.wrappingAdd(due - self.tick - 1, ordering: .relaxed)
        }
        self.tick = due
        self.timer = self.aloop.schedule(at: self.origin + Double(due) * self.interval) { [self] in self.run() }
        if self.timer == nil {
            self.end()
        }
    }

    private func end() {
        guard !self.ended else { return }
        self.ended = true
        self.active.store(false, ordering: .releasing)
        if let timer = self.timer {
            self.aloop.cancel(timer)
            self.timer = nil
        }
        self.coroutine = nil
        self.state?.close()
        self.state = nil
        self.core = nil
        self.aloop.unregister(self)
    }

    func aloopStopping() {
        self.cancel()
    }

    func aloopCancel() {
        self.cancel()
        self.aloop.enqueue(run: { [self] in self.coroutine?.cancel() }, lost: nil)
    }
}

/// `AsyncJob` is safe to share between threads because its counters and `active` are `Atomic`, its `let`s are
/// immutable, and everything else is touched only on its aloop's thread (its jobs and timers); other threads only
/// enqueue jobs there.
extension AsyncJob: @unchecked Sendable {}

/// An async job scheduler (atasker's `create_async_job_scheduler`): a name, the aloop its jobs run on, and its
/// jobs, held weakly (a job runs while its aloop holds it, and a handle keeps it for `cancel`; the host, which
/// holds its schedulers, must not keep every job it ever made).
final class AsyncJobScheduler: Sendable {
    struct WeakJob: Sendable {
        weak var job: AsyncJob?
    }

    let name: String
    let aloop: Aloop
    let jobs = Mutex<[WeakJob]>([])

    init(name: String, aloop: Aloop) {
        self.name = name
        self.aloop = aloop
    }
}
