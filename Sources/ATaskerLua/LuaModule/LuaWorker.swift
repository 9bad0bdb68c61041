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
        let executions = Atomic<Int>(0)

        init(core: HostCore, function: EncodedValues, onError: EncodedValues?) {
            self.core = core
            self.function = function
            self.onError = onError
        }

        /// `onStart`: the worker's own state, with the executor and `kw` decoded into it.
        func open(_ worker: Worker) throws {
            guard let keywords = self.keywords.withLock({ $0 }) else {
                throw LuaError(code: .runtime, fullMessage: "worker '\(worker.name)' started without arguments")
            }
            let state = try self.core.openState(isMain: false)
            do {
                try state.setUpWorker(function: self.function, keywords: keywords, onError: self.onError)
            } catch {
                state.close()
                throw LuaError(code: error.code, fullMessage: "worker '\(worker.name)': \(error.fullMessage)")
            }
            self.state.set(state)
        }

        /// `onStop`: closes the state.
        func close(_ worker: Worker) {
            self.state.take()?.close()
        }

        /// One execution: `fn(kw)` or `fn(item, kw)`.
        func run(_ worker: Worker, item: EncodedValues?) throws -> Bool {
            guard let state = self.state.get() else { return false }
            let taskID = self.executions.wrappingAdd(1, ordering: .relaxed).newValue
            switch try state.runWorker(item: item, taskID: taskID) {
            case .returned(let stop):
                return !stop
            case .handled:
                throw HandledError()
            case .exit:
                return false
            }
        }

        /// Errors that `on_error` did not handle: logged with the worker's name and the traceback.
        func report(_ worker: Worker, _ error: any Error) {
            guard !(error is HandledError) else { return }
            let text = (error as? LuaError)?.fullMessage ?? "\(error)"
            self.core.currentLogger.error("worker '\(worker.name)' failed: \(text)")
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
    }
}
