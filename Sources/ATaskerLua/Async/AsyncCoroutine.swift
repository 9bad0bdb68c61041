import ATasker
import Synchronization

/// One Lua coroutine that an aloop resumes: an execution of an async worker, or an aloop task.
///
/// A step (the start, or a resumption) runs on the aloop's thread as an execution that a canceller or the
/// never-yielding watchdog can reach. When the coroutine yields, it waits for a host call (`atasker.sleep`,
/// `atasker.wait_completed`, ...) that the host does without blocking: a timer of the aloop, or handlers of the
/// tasks waited for, which bring the coroutine back to the aloop as a job. While it waits the coroutine is work of
/// the aloop (``AloopWork``), so a stopping aloop runs until it ends, and cancels it at its deadline.
final class AsyncCoroutine: AloopWork {
    /// How the coroutine ended.
    enum Outcome {
        /// The function returned: a worker's executor said `false` (`stop`), a task's first result.
        case returned(stop: Bool, result: EncodedValues?)
        /// A worker's error went to its `on_error`.
        case handled
        /// `os.exit(code)`.
        case exit(Int32)
        /// It raised (or was cancelled).
        case failed(LuaError)
    }

    let core: HostCore
    let aloop: Aloop
    let state: LuaState
    let ref: Int32
    /// `worker 'w'` or `task 7`: the name of its executions in messages.
    let label: String
    let isWorker: Bool
    /// The never-yielding watchdog of the aloop.
    let monitor: AloopMonitor
    /// The id of the step that runs now (for a cancel from another thread), or 0.
    let runningID = Atomic<UInt64>(0)

    // owned by the aloop's thread: the rest
    /// Called once, on the aloop's thread, when a coroutine that suspended ends.
    @exclusivity(unchecked) var onEnd: ((Outcome) -> Void)?
    @exclusivity(unchecked) private var pending: PendingCall?
    @exclusivity(unchecked) private var isSuspended = false
    /// Bumped at each suspension, so that a late wake-up of an earlier wait is dropped.
    @exclusivity(unchecked) private var waitID = 0
    @exclusivity(unchecked) private var timer: TimerID?
    /// What to do, before resuming, when a wait for tasks ends (`nil`: they finished; else the task that did not).
    @exclusivity(unchecked) private var afterWait: ((SupervisorTask?) -> Void)?
    @exclusivity(unchecked) private var isRegistered = false

    /// A task's execution counts in ``Aloop/pendingWork`` as its task.
    var isAloopTask: Bool { !self.isWorker }

    init(core: HostCore, aloop: Aloop, state: LuaState, ref: Int32, label: String, isWorker: Bool) {
        self.core = core
        self.aloop = aloop
        self.state = state
        self.ref = ref
        self.label = label
        self.isWorker = isWorker
        self.monitor = core.aloopMonitor(aloop)
    }

    // MARK: - Steps

    /// Starts the coroutine with `begin` (a ``LuaState`` call that starts it), on the aloop's thread. Returns the
    /// outcome when it ended at once; otherwise it waits, and ``onEnd`` (set it now) gets the outcome later.
    func start(_ begin: () throws(LuaError) -> LuaState.AsyncStep) -> Outcome? {
        self.step(begin)
    }

    private func step(_ body: () throws(LuaError) -> LuaState.AsyncStep) -> Outcome? {
        let result: LuaState.AsyncStep
        do {
            result = try self.core.asyncStep(self.label, self) { () throws(LuaError) in try body() }
        } catch {
            return .failed(error)
        }
        switch result {
        case .returned(let stop, let value): return .returned(stop: stop, result: value)
        case .handled: return .handled
        case .exit(let code): return .exit(code)
        case .suspended(let call):
            self.suspend(call)
            return nil
        }
    }

    private func suspend(_ call: PendingCall?) {
        self.isSuspended = true
        self.waitID &+= 1
        let id = self.waitID
        if !self.isRegistered {
            // The aloop runs this job, so it is running or stopping: a work under way is always taken.
            _ = self.aloop.register(self, whileStopping: true)
            self.isRegistered = true
        }
        self.pending = call
        guard let call else {
            self.wakeSoon(id)
            return
        }
        self.core.beginAsyncCall(call, for: self, id: id)
    }

    private func resume(cancel: Bool) {
        self.isSuspended = false
        self.afterWait = nil
        if let timer = self.timer {
            self.aloop.cancel(timer)
            self.timer = nil
        }
        let call = self.pending
        self.pending = nil
        let outcome = self.step { () throws(LuaError) in
            try self.state.resumeCoroutine(self.ref, isWorker: self.isWorker, call: call, cancel: cancel)
        }
        if let outcome {
            self.end(outcome)
        }
    }

    private func end(_ outcome: Outcome) {
        if self.isRegistered {
            self.isRegistered = false
            self.aloop.unregister(self)
        }
        let onEnd = self.onEnd
        self.onEnd = nil
        onEnd?(outcome)
    }

    // MARK: - Waking (the host side of the calls waited for)

    /// Resumes the coroutine in a job of its own, if it still waits for `id` then.
    func wakeSoon(_ id: Int) {
        self.aloop.enqueue(run: { [self] in self.wake(id) }, lost: nil)
    }

    /// Resumes the coroutine after `seconds`, if it still waits for `id` then.
    func wake(after seconds: Double, id: Int) {
        self.timer = self.aloop.schedule(after: seconds) { [self] in
            self.timer = nil
            self.wake(id)
        }
    }

    /// Resumes the coroutine when every task of `tasks` has finished, or when `timeout` seconds have passed;
    /// `done` runs first, on the aloop's thread, with `nil` or the task that had not finished.
    func wake(when tasks: [SupervisorTask], timeout: Double?, id: Int, done: @escaping (SupervisorTask?) -> Void) {
        self.afterWait = done
        let left = Atomic<Int>(tasks.count)
        if let timeout {
            self.timer = self.aloop.schedule(after: timeout) { [self] in
                self.timer = nil
                guard self.isSuspended, id == self.waitID else { return }
                self.afterWait?(tasks.first { !$0.isFinished })
                self.wake(id)
            }
        }
        if tasks.isEmpty {
            // Never at once: the step that suspended the coroutine has not returned yet.
            self.aloop.enqueue(run: { [self] in self.wakeAfterWait(id) }, lost: nil)
            return
        }
        for task in tasks {
            // Handlers run on the thread that finishes the task (or here, for a finished one): only a job is sent.
            task.onFinish(awaiting: true) { [self] _ in
                if left.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                    self.aloop.enqueue(run: { [self] in self.wakeAfterWait(id) }, lost: nil)
                }
            }
        }
    }

    private func wakeAfterWait(_ id: Int) {
        guard self.isSuspended, id == self.waitID else { return }
        self.afterWait?(nil)
        self.wake(id)
    }

    private func wake(_ id: Int) {
        guard self.isSuspended, id == self.waitID else { return }
        self.resume(cancel: false)
    }

    // MARK: - Cancelling

    /// Cancels the coroutine where it waits: it fails with `<label> cancelled at file:line`. From any thread;
    /// a coroutine that runs now is reached by a signal instead (see ``HostCore/cancelRunning()``).
    func cancel() {
        self.aloop.enqueue(
            run: { [self] in
                if self.isSuspended {
                    self.resume(cancel: true)
                }
            }, lost: nil)
    }

    func aloopStopping() {}

    func aloopCancel() {
        self.cancel()
    }
}

/// `AsyncCoroutine` is safe to share between threads because:
/// 1. everything but `runningID` (an `Atomic`) and the `let`s is read and written only on its aloop's thread:
///    the steps, and the jobs and timers of the aloop that wake it;
/// 2. other threads (task handlers, cancellers) only enqueue jobs on the aloop, and the aloop's lock orders those
///    jobs after what the thread did before.
extension AsyncCoroutine: @unchecked Sendable {}
