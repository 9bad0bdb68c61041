import ATasker
import Glibc
import Logging
import Synchronization

/// The shared heart of a ``LuaHost``: what every state of the host reaches through the trampoline.
///
/// Its address is the `host` pointer of every state; pool states keep it alive through the thread-local
/// ``PoolStates`` that own them.
final class HostCore: Sendable {
    let supervisor: TaskSupervisor
    let logger: Mutex<Logger>
    let exitHandler: (@Sendable (Int32) -> Void)?
    let settings: Mutex<Settings>
    let sharedTables = Mutex<[String: SharedTable]>([:])
    let nextFunctionID = Atomic<UInt64>(1)
    let timeoutHandlers = Mutex<(warning: TaskFunction?, critical: TaskFunction?)>((nil, nil))
    /// Fires `run_timeout` reports; its thread starts with the first one.
    let watchdog = TimerQueue(name: "atasker-lua-wd")
    /// This host runs in a process-pool child: shared tables and the log work through the parent, and what lives
    /// in the parent (supervisor, workers, locks, tasks) is refused.
    let isChild: Bool
    /// Async code: the never-yielding watchdog of each aloop, and its limits.
    let asyncState = HostAsyncState()
    /// Set by `s:stop{cancel_tasks=true}`: an execution that begins from then on is cancelled before it runs.
    let cancelsNewExecutions = Atomic<Bool>(false)
    /// Whether this host has set up the process pool for its children (hello, service).
    let processPoolReady = Mutex(false)
    /// `set_thread_pool{memory_limit=}`: the limit of each pool thread's state (0: none), applied when a pool
    /// thread next takes its state.
    let poolMemoryLimit = Atomic<Int>(0)

    struct Settings: Sendable {
        var packagePath: String?
        var packageCPath: String?
        var allowsBytecode = false
        /// The main state's limit (`--memory-limit`, ``LuaHost/Configuration/memoryLimit``); 0: none.
        var memoryLimit = 0
        /// The limit of a process-pool child's state (`set_mp_pool{memory_limit=}`); 0: none.
        var processMemoryLimit = 0
        var hostFunctions: [HostFunction] = []
        /// ``hostFunctions`` as the shim reads them, made when the settings freeze (the first state opens).
        var hostFunctionTable: HostFunctionTable? = nil
        /// Lua modules written in Lua that the app registered (`LuaHost.register(module:source:)`).
        var luaModules: LuaModuleTable? = nil
        var frozen = false
    }

    init(supervisor: TaskSupervisor, logger: Logger, exitHandler: (@Sendable (Int32) -> Void)?, isChild: Bool = false) {
        self.supervisor = supervisor
        self.isChild = isChild
        self.logger = Mutex(logger)
        self.exitHandler = exitHandler
        self.settings = Mutex(Settings())
        HostCallbacks.install()
    }

    deinit {
        self.watchdog.shutdown()
    }

    var currentLogger: Logger { self.logger.withLock { $0 } }

    func makeFunctionID() -> UInt64 {
        self.nextFunctionID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Opens a state of this host: the main state, or the state of a pool thread. `memoryLimit` nil: the main state's
    /// own (``Settings/memoryLimit``) for the main state, none for the others.
    func openState(
        isMain: Bool, allocationLimit: Int = 0, memoryLimit: Int? = nil, label: String? = nil
    ) throws(LuaError) -> LuaState {
        let settings = self.settings.withLock { s in
            s.frozen = true
            if s.hostFunctionTable == nil { s.hostFunctionTable = HostFunctionTable(s.hostFunctions) }
            return s
        }
        let options = LuaState.Options(
            host: Unmanaged.passUnretained(self).toOpaque(),
            supervisor: Unmanaged.passUnretained(self).toOpaque(),
            isMain: isMain,
            isChild: self.isChild,
            packagePath: settings.packagePath,
            packageCPath: settings.packageCPath,
            hostFunctions: settings.hostFunctionTable,
            allocationLimit: allocationLimit,
            allowsBytecode: settings.allowsBytecode,
            memoryLimit: memoryLimit ?? (isMain ? settings.memoryLimit : 0),
            label: label ?? (isMain ? "main" : nil),
            metrics: self.supervisor.metrics,
            luaModules: settings.luaModules
        )
        return try LuaState(options: options)
    }

    // MARK: - Pool states

    /// The Lua state of this host on the current pool thread, created on first use.
    func poolState() throws(LuaError) -> LuaState {
        let states = PoolStates.current()
        let limit = self.poolMemoryLimit.load(ordering: .relaxed)
        // a thread nearly always runs the tasks of one host: that one is checked first, without the dictionary
        var found: LuaState? = nil
        if let last = states.last, last.core === self {
            found = last.state
        } else if let state = states.states[ObjectIdentifier(self)]?.state {
            states.last = (self, state)
            found = state
        }
        if let state = found {
            if state.poolLimit != limit {
                state.poolLimit = limit
                state.memoryLimit = limit
            }
            return state
        }
        let state = try self.openState(isMain: false, memoryLimit: limit, label: "pool thread")
        state.poolLimit = limit
        states.states[ObjectIdentifier(self)] = (self, state)
        states.last = (self, state)
        return state
    }

    /// Runs a Lua task function in the current pool thread's state.
    func runTask(_ function: TaskFunction, arguments: EncodedValues?, task: SupervisorTask) throws -> EncodedValues? {
        let state = try self.poolState()
        let result: EncodedValues?
        do {
            let outcome = try self.executeTask(task, name: function.name) { (id) throws(LuaError) -> LuaOutcome in
                let watchdog = function.runTimeout.map {
                    self.watch(
                        id, label: Self.taskLabel(task, function.name), runTimeout: $0,
                        cancel: function.cancelOnTimeout)
                }
                defer { watchdog.map { self.unwatch($0) } }
                return try state.withRunMemoryLimit(function.memoryLimit, label: Self.taskLabel(task, function.name)) {
                    () throws(LuaError) in
                    try state.runTask(
                        functionID: function.id, function: function.function, member: function.member,
                        arguments: arguments)
                }
            }
            switch outcome {
            case .values(let values):
                result = values
            case .exit:
                result = nil
            }
        } catch {
            if error.code == .canceled {
                self.currentLogger.warning("\(error)", metadata: Self.metadata(task))
            } else {
                self.logFailure(of: task, "\(Self.taskLabel(task, function.name)) failed: \(error)")
            }
            if let callback = function.callback {
                self.runCallback(callback, arguments: try? EncodedValues([.nil, .string(LuaString(error.message))]))
            }
            throw error
        }
        if let callback = function.callback {
            // (a nil result has no bytes: the callback still gets it as its one argument)
            self.runCallback(callback, arguments: result ?? Self.nilResult)
        }
        return result
    }

    /// The log metadata of a task: `task.id`, and `task.name` when it has one.
    static func metadata(_ task: SupervisorTask) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["task.id": "\(task.id)"]
        if let name = task.name { metadata["task.name"] = "\(name)" }
        return metadata
    }

    /// Logs the failure of a Lua task: as an error when nobody waits for it, at debug level when code waits (a
    /// `wait_completed`, `LuaHost.result(of:)`, `task.value(as:)`), since the error reaches that code, which
    /// handles it or fails with it.
    func logFailure(of task: SupervisorTask, _ message: String) {
        let level: Logger.Level = task.isAwaited ? .debug : .error
        self.currentLogger.log(level: level, "\(message)", metadata: Self.metadata(task))
    }

    /// Runs a callback in the current pool thread's state; its errors are logged.
    func runCallback(_ function: TaskFunction, arguments: EncodedValues?) {
        do {
            let state = try self.poolState()
            _ = try state.runTask(
                functionID: function.id, function: function.function, member: function.member, arguments: arguments,
                wantResult: false)
        } catch {
            self.currentLogger.error("callback\(function.name.map { " \($0)" } ?? "") failed: \(error)")
        }
    }

    /// Runs `function` as a critical task with the task handle as its argument (timeout handlers).
    func submitCallback(_ function: TaskFunction, for task: SupervisorTask) {
        let arguments = try? EncodedValues([.handle(LuaHandle(object: task, kind: Int32(ATLKind.task)))])
        self.supervisor.submit(priority: .critical, name: "timeout handler") { [self] _ in
            self.runCallback(function, arguments: arguments)
            return nil
        }
    }

    // MARK: - Running executions

    /// Runs `body`, which must call the shim's worker or task run at once, as an execution named `label`
    /// (`worker 'w'`, `task 7`) that a stop can cancel; `body` gets the execution's id.
    /// How messages name a task: `task 7`, or `task 7 (name)`.
    static func taskLabel(_ task: SupervisorTask, _ name: String?) -> String {
        "task \(task.id)\(name.map { " (\($0))" } ?? "")"
    }

    /// ``execute(_:_:)`` for a run of `task`: the shim writes its label, and a String of it is made only for a
    /// message (a task announces itself at every run).
    func executeTask<R>(_ task: SupervisorTask, name: String?, _ body: (UInt64) throws(LuaError) -> R) throws(LuaError)
        -> R
    {
        let id = LuaState.announceTask(task.id, name: name, host: self)
        if self.cancelsNewExecutions.load(ordering: .acquiring) {
            throw LuaError(
                code: .canceled,
                fullMessage: "\(Self.taskLabel(task, name)) cancelled before it began: the supervisor stops")
        }
        return try body(id)
    }

    func execute<R>(_ label: String, _ body: (UInt64) throws(LuaError) -> R) throws(LuaError) -> R {
        // The shim keeps the running execution of each thread (and its host): no lock shared by all pool threads
        // is taken per execution.
        let id = LuaState.announceExecution(label, host: self)
        if self.cancelsNewExecutions.load(ordering: .acquiring) {
            throw LuaError(code: .canceled, fullMessage: "\(label) cancelled before it began: the supervisor stops")
        }
        return try body(id)
    }

    /// Cancels every Lua execution of this host that runs now, but execution `except` (the caller's own); returns
    /// how many were asked.
    func cancelRunning(except: UInt64 = 0) -> Int {
        let running = LuaState.runningExecutions(host: self)
        let sent = running.filter {
            $0.id != except && LuaState.requestExecution($0.id, cancel: true, traceback: false) == .sent
        }
        return sent.count + self.cancelWaitingAsync()
    }

    /// The Lua executions of this host that run now, but execution `except`, each as `worker 'w' at file:line` (the
    /// place last known).
    func runningReports(except: UInt64 = 0) -> [String] {
        let running = LuaState.runningExecutions(host: self).filter { $0.id != except }
        return running.sorted { $0.id < $1.id }.compactMap { id, label in
            LuaState.reportExecution(id, waiting: 0).map { "\(label) at \($0.place)" }
        }
    }

    /// Arms the `run_timeout` report of execution `id`; ``unwatch(_:)`` disarms it when the execution ends.
    func watch(_ id: UInt64, label: String, runTimeout: Double, cancel: Bool) -> TimerID {
        self.watchdog.schedule(after: runTimeout) { [self] in
            // The timer thread only sends the request; waiting for the traceback happens on a thread of its own.
            guard LuaState.requestExecution(id, cancel: cancel, traceback: true) == .sent else { return }
            spawnThread { self.reportTimeout(id, label: label, runTimeout: runTimeout, cancel: cancel) }
        }
    }

    func unwatch(_ timer: TimerID) {
        self.watchdog.cancel(timer)
    }

    /// Logs an execution that runs longer than its `run_timeout`, with the traceback its hook took, or as stuck
    /// when the hook did not run (one long C call or a finalizer).
    private func reportTimeout(_ id: UInt64, label: String, runTimeout: Double, cancel: Bool) {
        guard let report = LuaState.reportExecution(id, waiting: 2) else { return }
        let action = cancel ? "; cancelling it (cancel_on_timeout)" : ""
        if let traceback = report.traceback {
            self.currentLogger.warning(
                "\(label) runs longer than run_timeout (\(runTimeout) s), at \(report.place)\(action)\n\(traceback)")
        } else {
            let text =
                "\(label) runs longer than run_timeout (\(runTimeout) s) and is stuck at \(report.place): it runs one "
                + "long C call or a __gc finalizer, where no traceback can be taken\(action)"
            self.currentLogger.warning("\(text)")
        }
    }

    // MARK: - Shared tables

    func sharedTable(named name: String) -> SharedTable {
        self.sharedTables.withLock { tables in
            if let table = tables[name] { return table }
            let table = SharedTable(name: name)
            tables[name] = table
            return table
        }
    }
}

/// Runs `body` on a new detached thread (rare reports that wait off the timer thread, a stop from inside a task,
/// and the command line's own threads). When no thread can be made, `body` runs on the calling thread, unless
/// `inlineOnFailure` is false (a body that never returns, such as a signal loop); returns whether a thread runs it.
@discardableResult
package func spawnThread(inlineOnFailure: Bool = true, _ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(
        &thread, nil,
        { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
    if rc == 0 {
        pthread_detach(thread)
        return true
    }
    let unstarted = Unmanaged<Box>.fromOpaque(box).takeRetainedValue()
    if inlineOnFailure {
        unstarted.body()
    }
    return false
}

/// The Lua states that one pool thread keeps, one per host; closed when the thread exits.
final class PoolStates {
    var states: [ObjectIdentifier: (core: HostCore, state: LuaState)] = [:]
    /// The entry used last (one of `states`).
    var last: (core: HostCore, state: LuaState)?

    deinit {
        for entry in self.states.values {
            entry.state.close()
        }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in
            guard let pointer else { return }
            Unmanaged<PoolStates>.fromOpaque(pointer).release()
        }
        precondition(rc == 0, "pthread_key_create failed")
        return key
    }()

    /// The states of the calling thread.
    static func current() -> PoolStates {
        if let pointer = pthread_getspecific(self.key) {
            return Unmanaged<PoolStates>.fromOpaque(pointer).takeUnretainedValue()
        }
        let states = PoolStates()
        pthread_setspecific(self.key, Unmanaged.passRetained(states).toOpaque())
        return states
    }

    /// Whether the calling thread keeps Lua states (a pool thread that has run Lua code).
    static var isPoolThread: Bool { pthread_getspecific(self.key) != nil }
}
