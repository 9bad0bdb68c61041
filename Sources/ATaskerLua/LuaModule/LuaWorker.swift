import ATasker
import Logging
import Synchronization

/// A worker created from Lua (`atasker.background_worker`): an ``ATasker`` worker whose executions run the Lua
/// executor in the worker's own Lua state, opened when the worker starts and closed when it stops.
///
/// The executor, `o` and `on_error` were encoded once, when the worker was created; each start decodes them into a
/// new state. The worker's handle (`kw._worker` inside the worker) is this object; nothing that the worker's
/// executions use refers back to it, so it lives as long as a Lua value (a handle in a state, a shared table, a
/// queued item) holds it: when the last one goes, with the worker stopped, it goes with its worker.
final class LuaWorker: Sendable {
    let worker: Worker
    let execution: Execution
    /// The worker as a queue worker, found once (a generic cast on every `put` costs a metadata lookup).
    let queue: QueueWorker<LuaQueueItem>?

    /// What the ``Worker``'s hooks and executor use: no reference back to the ``LuaWorker``, so that the worker's
    /// closures form no cycle with it.
    ///
    /// It holds its host weakly, and strongly only while the worker's state is open (beside the state, in `state`):
    /// a stopped worker whose handle a value of the host keeps (a shared table, `s.timeout_warning_func`) would
    /// otherwise keep that host, and its supervisor, alive for ever. A running worker keeps itself alive, and so
    /// its host, whose address its state has.
    final class Execution: Sendable {
        private weak let host: HostCore?
        let function: EncodedValues
        let onError: EncodedValues?
        /// The `kw` values of the current start but the handle: the start arguments and `o` (`head`), and the name.
        /// The handle is added by ``open(_:)``: kept here, it would keep its ``LuaWorker`` (and through it this
        /// execution, the worker, the host and the supervisor) alive for ever.
        let keywords = Mutex<(head: EncodedValues, name: EncodedValues)?>(nil)
        /// The ``LuaWorker`` whose handle is `kw._worker`, held weakly (see `keywords`).
        private let owner = Mutex(WeakOwner())
        /// `o`, copied when the worker was created.
        let object = Mutex<EncodedValues?>(nil)
        let state = StateBox()
        /// `worker 'name'`, the executions' label for reports and cancels: made at each start, not at each
        /// execution.
        let label = Mutex<String>("worker")
        let executions = Atomic<Int>(0)
        /// The id of the execution that runs now (see ``HostCore/execute(_:_:)``), or 0.
        let current = Atomic<UInt64>(0)
        /// `run_timeout`: an execution that runs longer is reported with its traceback.
        let runTimeout: Double?
        /// `cancel_on_timeout`: such an execution is also cancelled (the worker goes on).
        let cancelOnTimeout: Bool
        /// `mp = true`: the executor runs in a process-pool child.
        let process: InProcess?
        /// `async = true`: the executions are coroutines resumed by an aloop.
        let async: AsyncWorkerRunner?
        /// `memory_limit`: the bytes that the worker's state may hold (0: no limit).
        let memoryLimit: Int

        /// How an `mp = true` worker runs: its executor in a child, `process_result(result, kw)` (if any) in the
        /// worker's own state.
        struct InProcess {
            /// The executor, sent once to each child.
            let executor: TaskFunction
            /// `process_result`, or nil.
            let processResult: EncodedValues?
        }

        init(
            core: HostCore, function: EncodedValues, onError: EncodedValues?, runTimeout: Double? = nil,
            cancelOnTimeout: Bool = false, process: InProcess? = nil, async: AsyncWorkerRunner? = nil,
            memoryLimit: Int = 0
        ) {
            self.memoryLimit = memoryLimit
            self.host = core
            self.function = function
            self.onError = onError
            self.runTimeout = runTimeout
            self.cancelOnTimeout = cancelOnTimeout
            self.process = process
            self.async = async
        }

        /// A weak reference to the ``LuaWorker`` of this execution.
        struct WeakOwner: Sendable {
            weak var value: LuaWorker?
        }

        /// Records the ``LuaWorker`` whose handle `kw._worker` is (its initializer does).
        func setOwner(_ owner: LuaWorker) {
            self.owner.withLock { $0.value = owner }
        }

        /// The handle for `kw._worker`: the worker's ``LuaWorker``, or, when no Lua value holds that one any more (a
        /// restart from Swift of a worker that a script dropped), a new one for the same worker, which the worker's
        /// state then keeps alive while it is open. No other state can hold the old one, so none can tell them apart.
        private func handle(_ worker: Worker) -> LuaValue {
            let owner = self.owner.withLock { $0.value } ?? LuaWorker(worker: worker, execution: self)
            return .handle(LuaHandle(object: owner, kind: Int32(ATLKind.worker)))
        }

        /// `onStart`: the worker's own state, with the executor and `kw` decoded into it.
        func open(_ worker: Worker) throws {
            guard let parts = self.keywords.withLock({ $0 }) else {
                throw LuaError(code: .runtime, fullMessage: "worker '\(worker.name)' started without arguments")
            }
            guard let core = self.host else {
                throw LuaError(
                    code: .runtime,
                    fullMessage: "worker '\(worker.name)' cannot start: its LuaHost is gone (released); a Lua worker "
                        + "runs only while its host lives")
            }
            let keywords = try EncodedValues(
                concatenating: [parts.head, try EncodedValues([self.handle(worker)]), parts.name])
            let state: LuaState
            do {
                state = try core.openState(
                    isMain: false, memoryLimit: self.memoryLimit, label: "worker '\(worker.name)'")
            } catch {
                throw LuaError(code: error.code, fullMessage: "worker '\(worker.name)': \(error.fullMessage)")
            }
            do {
                // An mp worker's state runs process_result as its executor (`process_result(result, kw)`).
                let local = self.process.map { $0.processResult ?? self.function } ?? self.function
                try state.setUpWorker(function: local, keywords: keywords, onError: self.onError)
                try self.async?.opened(worker, state: state, core: core)
            } catch {
                state.close()
                throw LuaError(
                    code: error.code, fullMessage: "worker '\(worker.name)': \(self.withLimit(error).fullMessage)")
            }
            self.label.withLock { $0 = "worker '\(worker.name)'" }
            self.state.set(state, core: core)
        }

        /// `onStop`: closes the state.
        func close(_ worker: Worker) {
            self.async?.closing()
            self.state.take()?.close()
        }

        /// One execution: `fn(kw)` or `fn(item, kw)`.
        func run(_ worker: Worker, item: LuaQueueItem?) throws -> Bool {
            guard let (state, core) = self.state.get() else { return false }
            let taskID = self.executions.wrappingAdd(1, ordering: .relaxed).newValue
            if let async = self.async {
                return try async.run(worker, state: state, item: item?.encodedValues(), taskID: taskID)
            }
            if let process = self.process {
                return try self.runInProcess(
                    process, worker, state: state, core: core, item: item?.encodedValues(), taskID: taskID)
            }
            let label = self.label.withLock { $0 }
            let outcome = try core.execute(label) { (id) throws(LuaError) -> LuaState.WorkerRun in
                self.current.store(id, ordering: .releasing)
                defer { self.current.store(0, ordering: .releasing) }
                let watchdog = self.runTimeout.map {
                    core.watch(id, label: label, runTimeout: $0, cancel: self.cancelOnTimeout)
                }
                defer { watchdog.map { core.unwatch($0) } }
                return try state.runWorker(item: item, taskID: taskID)
            }
            switch outcome {
            case .returned(let stop):
                return !stop
            case .handled:
                throw HandledError()
            case .exit:
                return false
            }
        }

        /// Whether items can run in chunks (``runBatch(_:items:)``): a thread worker without `run_timeout`, which
        /// watches each execution on its own.
        var runsBatches: Bool { self.async == nil && self.process == nil && self.runTimeout == nil }

        /// Runs queue items in turn in one call into the worker's state, as one execution, for at most about 2 ms
        /// (a stop drops the rest between chunks): each item is counted, gets its own `kw._task_id`, and fails or
        /// goes to `on_error` on its own, as in ``run(_:item:)``.
        func runBatch(_ worker: Worker, items: ArraySlice<LuaQueueItem>) -> QueueWorker<LuaQueueItem>.BatchRun {
            guard let (state, core) = self.state.get() else { return .init(ran: 1, errors: [], goOn: false) }
            let first = self.executions.load(ordering: .relaxed) + 1
            let label = self.label.withLock { $0 }
            let run: LuaState.WorkerBatchRun
            do {
                run = try core.execute(label) { (id) throws(LuaError) -> LuaState.WorkerBatchRun in
                    self.current.store(id, ordering: .releasing)
                    defer { self.current.store(0, ordering: .releasing) }
                    return state.runWorkerBatch(items, taskID: first, budget: 0.002)
                }
            } catch {
                // not begun (the supervisor stops): the first item fails with that, as its own execution would
                self.executions.wrappingAdd(1, ordering: .relaxed)
                return .init(ran: 1, errors: [error], goOn: true)
            }
            let ran = max(run.ran, 1)
            self.executions.wrappingAdd(ran, ordering: .relaxed)
            var errors: [any Error] = Array(repeating: HandledError(), count: run.handled)
            switch run.end {
            case .ranAll:
                return .init(ran: ran, errors: errors, goOn: true)
            case .stop, .exit:
                return .init(ran: ran, errors: errors, goOn: false)
            case .failed(let error):
                errors.append(error)
                return .init(ran: ran, errors: errors, goOn: true)
            }
        }

        /// One execution of an mp worker: the executor runs in a child with `(item, kw)` or `(kw)`; its result goes
        /// to `process_result(result, kw)` in this worker's state (without one, a result of `false` stops the
        /// worker). An error in the child goes to `on_error` as any execution error does.
        private func runInProcess(
            _ process: InProcess, _ worker: Worker, state: LuaState, core: HostCore, item: EncodedValues?, taskID: Int
        ) throws -> Bool {
            let keywords = try state.workerKeywords(taskID: taskID)
            let arguments = try item.map { try EncodedValues(concatenating: [$0, keywords]) } ?? keywords
            let task = core.spawnProcess(process.executor, arguments: arguments, logFailure: false)
            task.wait(timeout: nil)
            guard task.status == .completed else {
                let message =
                    (task.error as? LuaError)?.fullMessage ?? task.error.map { "\($0)" } ?? "the mp task was canceled"
                if try state.workerFailed(message) {
                    throw HandledError()
                }
                throw LuaError(code: (task.error as? LuaError)?.code ?? .runtime, fullMessage: message)
            }
            let result = task.result as? EncodedValues
            guard process.processResult != nil else {
                return (try? result?.decode().first) != .boolean(false)
            }
            let label = "worker '\(worker.name)' process_result"
            let value = try result ?? EncodedValues([.nil])
            let outcome = try core.execute(label) { (id) throws(LuaError) -> LuaState.WorkerRun in
                self.current.store(id, ordering: .releasing)
                defer { self.current.store(0, ordering: .releasing) }
                return try state.runWorker(item: .encoded(value), taskID: taskID)
            }
            switch outcome {
            case .returned(let stop): return !stop
            case .handled: throw HandledError()
            case .exit: return false
            }
        }

        /// Errors that `on_error` did not handle: logged with the worker's name and the traceback. A cancelled
        /// execution (whose message names the worker already) is logged as a warning; `on_error` never sees it.
        func report(_ worker: Worker, _ error: any Error) {
            guard !(error is HandledError) else { return }
            let logger = self.logger(worker)
            if let error = error as? LuaError, error.code == .canceled {
                logger.warning("\(error.fullMessage)", metadata: ["worker": "\(worker.name)"])
                return
            }
            let text = (error as? LuaError).map { self.withLimit($0).fullMessage } ?? "\(error)"
            logger.error(
                "worker '\(worker.name)' failed: \(text)", metadata: ["worker": "\(worker.name)"])
        }

        /// The host's logger, or the supervisor's once the host is gone.
        private func logger(_ worker: Worker) -> Logger {
            self.host?.currentLogger ?? worker.supervisor.logger
        }

        /// A memory error of the worker's state with its `memory_limit` named (when it has one).
        func withLimit(_ error: LuaError) -> LuaError {
            guard error.code == .memory || error.message.hasSuffix("not enough memory"), self.memoryLimit > 0,
                !error.message.contains("memory_limit"), !error.message.contains("memory limit")
            else {
                return error
            }
            return LuaError(
                code: .memory,
                fullMessage: "\(error.message) (the worker's memory_limit is \(self.memoryLimit) bytes)"
                    + (error.traceback.map { "\n\($0)" } ?? ""))
        }

        /// `stop{wait=T}` found the worker still running at its deadline: cancels the running execution (and drops
        /// the items that a draining stop would still run), then waits up to `grace` seconds for the stop to
        /// finish. Code inside one long C call or a `__gc` finalizer cannot be reached: it is logged as stuck, with
        /// its place, and fails as soon as it is back in Lua.
        ///
        /// - Returns: Whether the worker is stopped.
        @discardableResult
        func cancelAtDeadline(_ worker: Worker, grace: Double = 1) -> Bool {
            if let async = self.async {
                return async.cancelAtDeadline(worker, grace: grace)
            }
            worker.stop(wait: .none, drain: false)
            let id = self.current.load(ordering: .acquiring)
            guard id != 0, LuaState.requestExecution(id, cancel: true, traceback: false) == .sent else {
                return worker.isStopped
            }
            if worker.stop(wait: .seconds(grace)) { return true }
            if let report = LuaState.reportExecution(id, waiting: 0) {
                let text =
                    "worker '\(worker.name)' is stuck at \(report.place): it runs one long C call or a __gc finalizer, "
                    + "where it cannot be cancelled; it fails as soon as it is back in Lua"
                self.logger(worker).warning("\(text)")
            }
            return worker.isStopped
        }
    }

    /// An error that the worker's `on_error` handled: counted, not logged again.
    struct HandledError: Error {}

    /// The worker's Lua state and, while it is open, its host (which the state's `host` pointer names, unretained),
    /// touched only by the worker's hooks and executions, which never overlap and each of which happens-after the
    /// one before (``Worker``'s guarantee).
    final class StateBox: @unchecked Sendable {
        // protected by the worker's ordering of hooks and executions (see above), plus this lock for `stop` from
        // a thread that reads `get` while no execution runs
        private let lock = Mutex<Void>(())
        private nonisolated(unsafe) var open: (state: LuaState, core: HostCore)?

        func set(_ state: LuaState, core: HostCore) { self.lock.withLock { _ in self.open = (state, core) } }
        func get() -> (state: LuaState, core: HostCore)? { self.lock.withLock { _ in self.open } }
        /// Takes the state out, and with it the hold on the host.
        func take() -> LuaState? {
            self.lock.withLock { _ in
                defer { self.open = nil }
                return self.open?.state
            }
        }
    }

    init(worker: Worker, execution: Execution) {
        self.worker = worker
        self.execution = execution
        self.queue = worker as? QueueWorker<LuaQueueItem>
        execution.setOwner(self)
    }
}
