import ATasker
import Logging
import Synchronization

/// A worker created from Lua (`atasker.background_worker`): an ``ATasker`` worker whose executions run the Lua
/// executor in the worker's own Lua state, opened when the worker starts and closed when it stops.
///
/// The executor, `o` and `on_error` were encoded once, when the worker was created; each start decodes them into a
/// new state. The worker's handle (`kw._worker` inside the worker) is this object.
final class LuaWorker: Sendable {
    let core: HostCore
    let worker: Worker
    let execution: Execution
    /// The worker as a queue worker, found once (a generic cast on every `put` costs a metadata lookup).
    let queue: QueueWorker<LuaQueueItem>?

    /// What the ``Worker``'s hooks and executor use: no reference back to the ``LuaWorker``, so that the worker's
    /// closures form no cycle with it.
    final class Execution: Sendable {
        let core: HostCore
        let function: EncodedValues
        let onError: EncodedValues?
        /// The `kw` values of the current start (start arguments, `o`, the handle, the name).
        let keywords = Mutex<EncodedValues?>(nil)
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
            self.core = core
            self.function = function
            self.onError = onError
            self.runTimeout = runTimeout
            self.cancelOnTimeout = cancelOnTimeout
            self.process = process
            self.async = async
        }

        /// `onStart`: the worker's own state, with the executor and `kw` decoded into it.
        func open(_ worker: Worker) throws {
            guard let keywords = self.keywords.withLock({ $0 }) else {
                throw LuaError(code: .runtime, fullMessage: "worker '\(worker.name)' started without arguments")
            }
            let state: LuaState
            do {
                state = try self.core.openState(
                    isMain: false, memoryLimit: self.memoryLimit, label: "worker '\(worker.name)'")
            } catch {
                throw LuaError(code: error.code, fullMessage: "worker '\(worker.name)': \(error.fullMessage)")
            }
            do {
                // An mp worker's state runs process_result as its executor (`process_result(result, kw)`).
                let local = self.process.map { $0.processResult ?? self.function } ?? self.function
                try state.setUpWorker(function: local, keywords: keywords, onError: self.onError)
                try self.async?.opened(worker, state: state)
            } catch {
                state.close()
                throw LuaError(
                    code: error.code, fullMessage: "worker '\(worker.name)': \(self.withLimit(error).fullMessage)")
            }
            self.label.withLock { $0 = "worker '\(worker.name)'" }
            self.state.set(state)
        }

        /// `onStop`: closes the state.
        func close(_ worker: Worker) {
            self.async?.closing()
            self.state.take()?.close()
        }

        /// One execution: `fn(kw)` or `fn(item, kw)`.
        func run(_ worker: Worker, item: LuaQueueItem?) throws -> Bool {
            guard let state = self.state.get() else { return false }
            let taskID = self.executions.wrappingAdd(1, ordering: .relaxed).newValue
            if let async = self.async {
                return try async.run(worker, state: state, item: item?.encodedValues(), taskID: taskID)
            }
            if let process = self.process {
                return try self.runInProcess(
                    process, worker, state: state, item: item?.encodedValues(), taskID: taskID)
            }
            let label = self.label.withLock { $0 }
            let outcome = try self.core.execute(label) { (id) throws(LuaError) -> LuaState.WorkerRun in
                self.current.store(id, ordering: .releasing)
                defer { self.current.store(0, ordering: .releasing) }
                let watchdog = self.runTimeout.map {
                    self.core.watch(id, label: label, runTimeout: $0, cancel: self.cancelOnTimeout)
                }
                defer { watchdog.map { self.core.unwatch($0) } }
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

        /// One execution of an mp worker: the executor runs in a child with `(item, kw)` or `(kw)`; its result goes
        /// to `process_result(result, kw)` in this worker's state (without one, a result of `false` stops the
        /// worker). An error in the child goes to `on_error` as any execution error does.
        private func runInProcess(
            _ process: InProcess, _ worker: Worker, state: LuaState, item: EncodedValues?, taskID: Int
        ) throws -> Bool {
            let keywords = try state.workerKeywords(taskID: taskID)
            let arguments = try item.map { try EncodedValues(concatenating: [$0, keywords]) } ?? keywords
            let task = self.core.spawnProcess(process.executor, arguments: arguments, logFailure: false)
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
            let outcome = try self.core.execute(label) { (id) throws(LuaError) -> LuaState.WorkerRun in
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
            if let error = error as? LuaError, error.code == .canceled {
                self.core.currentLogger.warning("\(error.fullMessage)", metadata: ["worker": "\(worker.name)"])
                return
            }
            let text = (error as? LuaError).map { self.withLimit($0).fullMessage } ?? "\(error)"
            self.core.currentLogger.error(
                "worker '\(worker.name)' failed: \(text)", metadata: ["worker": "\(worker.name)"])
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
                self.core.currentLogger.warning("\(text)")
            }
            return worker.isStopped
        }
    }

    /// An error that the worker's `on_error` handled: counted, not logged again.
    struct HandledError: Error {}

    /// The worker's Lua state, touched only by the worker's hooks and executions, which never overlap and each of
    /// which happens-after the one before (``Worker``'s guarantee).
    final class StateBox: @unchecked Sendable {
        // protected by the worker's ordering of hooks and executions (see above), plus this lock for `stop` from
        // a thread that reads `get` while no execution runs
        private let lock = Mutex<Void>(())
        private nonisolated(unsafe) var state: LuaState?

        func set(_ state: LuaState) { self.lock.withLock { _ in self.state = state } }
        func get() -> LuaState? { self.lock.withLock { _ in self.state } }
        func take() -> LuaState? {
            self.lock.withLock { _ in
                defer { self.state = nil }
                return self.state
            }
        }
    }

    init(core: HostCore, worker: Worker, execution: Execution) {
        self.core = core
        self.worker = worker
        self.execution = execution
        self.queue = worker as? QueueWorker<LuaQueueItem>
    }
}
