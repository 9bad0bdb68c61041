public import ATasker
public import Logging
import Synchronization

/// Runs Lua scripts on a ``TaskSupervisor``: the script's top-level code in the host's main state, its background
/// tasks on the supervisor's pool threads, each thread with a Lua state of its own.
///
/// ```swift
/// let supervisor = TaskSupervisor(logger: logger)
/// supervisor.start()
/// let host = LuaHost(supervisor: supervisor, logger: logger)
/// try host.register("greet") { args in .string("hello, \(args.first?.stringValue ?? "you")") }
/// try host.run(string: """
///     local host = require "host"
///     local t = atasker.background_task(function(n) return host.greet(n) end)("Lua")
///     print(atasker.wait_completed(t))
///     """)
/// host.waitUntilIdle()
/// ```
///
/// Functions registered with ``register(_:_:)`` live in the Lua module `host` of every state (`require "host"`), so
/// they travel between states by name. Register them before the first script runs.
///
/// - Important: Call ``close()`` when done with the host; pool states are closed when their threads end (when the
///   supervisor stops).
public final class LuaHost: Sendable {
    /// Options of a host.
    public struct Configuration: Sendable {
        /// Folders (`dir/?.lua` templates, `;`-separated) put in front of `package.path` in every state.
        /// `run(file:)` adds the script's own folder.
        public var packagePath: String?
        /// Templates put in front of `package.cpath` in every state.
        public var packageCPath: String?
        /// Called when Lua code calls `os.exit(code)`; `nil` (the default) makes `os.exit` raise an error, so that
        /// a script cannot end an embedding app.
        public var exitHandler: (@Sendable (Int32) -> Void)?
        /// Whether Lua code may load binary chunks (`load` of a `string.dump`, `require` or `dofile` of a compiled
        /// file). Default `false`: every state loads source text only, since Lua 5.4 does not verify bytecode and a
        /// corrupted chunk can crash the process. Allow it only for bytecode you trust.
        public var allowsBytecode: Bool
        /// Bytes that the main state may hold (`--memory-limit` of the command line); `nil`: no limit. An
        /// allocation past it fails, and the Lua code gets "not enough memory". See ``LuaHost/memorySize(_:)``.
        public var memoryLimit: Int?
        /// Bytes that each pool thread's state may hold (Lua: `set_thread_pool{memory_limit=}`); `nil`: no limit.
        public var poolMemoryLimit: Int?
        /// Bytes that the state of each process-pool child may hold (Lua: `set_mp_pool{memory_limit=}`); `nil`: no
        /// limit.
        public var processMemoryLimit: Int?

        /// Creates a configuration.
        public init(
            packagePath: String? = nil, packageCPath: String? = nil,
            exitHandler: (@Sendable (Int32) -> Void)? = nil, allowsBytecode: Bool = false,
            memoryLimit: Int? = nil, poolMemoryLimit: Int? = nil, processMemoryLimit: Int? = nil
        ) {
            self.packagePath = packagePath
            self.packageCPath = packageCPath
            self.exitHandler = exitHandler
            self.allowsBytecode = allowsBytecode
            self.memoryLimit = memoryLimit
            self.poolMemoryLimit = poolMemoryLimit
            self.processMemoryLimit = processMemoryLimit
        }
    }

    let core: HostCore
    private let main: Mutex<MainState>

    private struct MainState: ~Copyable {
        var state: LuaState?
        var closed = false
    }

    /// Creates a host that runs its tasks on `supervisor` and logs through `logger`.
    public convenience init(supervisor: TaskSupervisor, logger: Logger, configuration: Configuration = Configuration())
    {
        self.init(supervisor: supervisor, logger: logger, configuration: configuration, isChild: false)
    }

    /// The host of a process-pool child.
    convenience init(childOf supervisor: TaskSupervisor, logger: Logger, configuration: Configuration) {
        self.init(supervisor: supervisor, logger: logger, configuration: configuration, isChild: true)
    }

    private init(supervisor: TaskSupervisor, logger: Logger, configuration: Configuration, isChild: Bool) {
        self.core = HostCore(
            supervisor: supervisor, logger: logger, exitHandler: configuration.exitHandler, isChild: isChild)
        self.core.settings.withLock {
            $0.packagePath = configuration.packagePath
            $0.packageCPath = configuration.packageCPath
            $0.allowsBytecode = configuration.allowsBytecode
            $0.memoryLimit = Self.clampedLimit(configuration.memoryLimit)
            $0.processMemoryLimit = Self.clampedLimit(configuration.processMemoryLimit)
        }
        self.core.poolMemoryLimit.store(Self.clampedLimit(configuration.poolMemoryLimit), ordering: .relaxed)
        self.main = Mutex(MainState())
        supervisor.addCodeCanceller(self.core)
    }

    /// The supervisor that runs this host's tasks.
    public var supervisor: TaskSupervisor { self.core.supervisor }

    /// Registers a Swift function that Lua code calls as `require("host").name(...)`.
    ///
    /// The function gets copies of its arguments and returns one value. A thrown ``LuaError`` is raised in Lua as
    /// it is; any other thrown error is raised as an `atasker.Error` table (`e.code`, `e.message` with the caller's
    /// `file:line:` and `name: description`, and the fields of a ``LuaStructuredError``).
    /// - Parameters:
    ///   - name: The function's name in module `host`.
    ///   - body: The function; it runs on the thread of the calling state.
    /// - Throws: ``LuaHostError`` with ``LuaHostError/Code/registeredTooLate`` once a script has run (or a task or
    ///   worker opened a state): register every function first, since a later one would reach no state.
    public func register(
        _ name: String, _ body: @escaping @Sendable ([LuaValue]) throws -> LuaValue
    ) throws(LuaHostError) {
        let registered = self.core.settings.withLock { settings -> Bool in
            guard !settings.frozen else { return false }
            settings.hostFunctions.removeAll { $0.name == name }
            settings.hostFunctions.append(HostFunction(name: name, body: body))
            return true
        }
        guard registered else {
            throw LuaHostError(
                code: .registeredTooLate,
                message: "LuaHost.register(\"\(name)\"): a Lua state is open already; register every function "
                    + "before the first script runs")
        }
    }

    /// What a script ended with.
    public enum Completion: Sendable, Equatable {
        /// The chunk returned.
        case returned
        /// The chunk called `os.exit(code)` (only with an ``Configuration/exitHandler``).
        case exit(Int32)
    }

    /// Runs the file at `path` (text only: bytecode files are refused) in the main state.
    ///
    /// The script's folder is added to `package.path` of every state opened from now on, and `arguments` become
    /// the global `arg` (`arg[0]` is the script). Returns when the top-level code returns; tasks that it started go
    /// on (see ``waitUntilIdle()``).
    /// - Throws: ``LuaError`` for a missing file, a syntax error, or an error at top level.
    @discardableResult
    public func run(file path: String, arguments: [String] = []) throws(LuaError) -> Completion {
        let folder = folderOf(path)
        self.core.settings.withLock { settings in
            guard !settings.frozen else { return }
            let dir = folder.isEmpty ? "" : folder + "/"
            let scriptPath = "\(dir)?.lua;\(dir)?/init.lua"
            settings.packagePath = settings.packagePath.map { "\(scriptPath);\($0)" } ?? scriptPath
        }
        return try self.withMainState { state throws(LuaError) in
            try state.setArguments([path] + arguments)
            switch try state.runFile(path) {
            case .values: return .returned
            case .exit(let code): return .exit(code)
            }
        }
    }

    /// Runs `code` as a chunk named `name` in the main state and returns its results.
    /// - Throws: ``LuaError`` for a syntax error, an error in the chunk, or a result that cannot be copied.
    @discardableResult
    public func run(string code: String, name: String = "=(string)") throws(LuaError) -> [LuaValue] {
        try self.withMainState { state throws(LuaError) in
            switch try state.runString(code, name: name) {
            case .values(let values):
                guard let values else { return [] }
                do {
                    return try values.decode()
                } catch {
                    throw LuaError(code: .codec, fullMessage: "\(error)")
                }
            case .exit: return []
            }
        }
    }

    private func withMainState<R: Sendable>(_ body: (LuaState) throws(LuaError) -> R) throws(LuaError) -> R {
        try self.main.withLock { (main: inout MainState) throws(LuaError) -> R in
            if main.closed { throw LuaError(code: .canceled, fullMessage: "the LuaHost is closed") }
            let state: LuaState
            if let existing = main.state {
                state = existing
            } else {
                do throws(LuaError) {
                    state = try self.core.openState(isMain: true)
                } catch {
                    throw LuaError(code: error.code, fullMessage: "the main Lua state: \(error.fullMessage)")
                }
                main.state = state
            }
            do throws(LuaError) {
                return try body(state)
            } catch  where error.code == .memory && state.hasMemoryLimit {
                throw LuaError(
                    code: .memory,
                    fullMessage:
                        "\(error.message): the main state reached its memory limit of \(state.memoryLimit) bytes"
                        + (error.traceback.map { "\n\($0)" } ?? ""))
            }
        }
    }

    /// Puts a copy of `value` into the queue of the Lua queue worker named `name` (one that a script created with
    /// `background_worker{q=...}`), from any thread. For a priority queue, `value` is `{priority, item}`.
    /// - Throws: ``LuaError`` when there is no such worker, it is not a Lua queue worker, or the value is bad.
    public func put(_ value: LuaValue, intoWorker name: String) throws {
        guard let worker = self.core.supervisor.worker(named: name) else {
            throw LuaError(code: .runtime, fullMessage: "no worker named '\(name)'")
        }
        guard let queue = worker as? QueueWorker<LuaQueueItem> else {
            throw LuaError(code: .runtime, fullMessage: "worker '\(name)' is not a Lua queue worker")
        }
        var priority = 0
        if queue.order == .priority {
            guard let p = value.tableValue?[1].intValue else {
                throw LuaError(
                    code: .runtime, fullMessage: "worker '\(name)' has a priority queue: put {priority, value}")
            }
            priority = Int(truncatingIfNeeded: p)
        }
        queue.put(try LuaQueueItem(value), priority: priority)
    }

    /// Triggers the event or interval worker named `name`; returns whether the trigger was taken.
    /// - Throws: ``LuaError`` when there is no such worker or it cannot be triggered.
    @discardableResult
    public func trigger(worker name: String, force: Bool = false) throws -> Bool {
        switch self.core.supervisor.worker(named: name) {
        case let event as EventWorker: return event.trigger(force: force)
        case let interval as IntervalWorker: return interval.trigger()
        case .some: throw LuaError(code: .runtime, fullMessage: "worker '\(name)' cannot be triggered")
        case .none: throw LuaError(code: .runtime, fullMessage: "no worker named '\(name)'")
        }
    }

    /// Blocks until no task of the supervisor is pending and no worker is active, or the supervisor stops.
    public func waitUntilIdle() {
        self.core.supervisor.waitUntilIdle()
    }

    /// The result of a Lua task (its first value), once the task has completed.
    /// - Throws: the task's ``LuaError`` when it failed, a ``LuaValueCodecError`` when the value has no
    ///   ``LuaValue`` form (a cycle).
    public func result(of task: SupervisorTask) async throws -> LuaValue {
        await task.wait()
        if let error = task.error { throw error }
        guard let result = task.result else { return .nil }  // a Lua function that returned nothing
        guard let encoded = result as? EncodedValues else {
            throw LuaHostError(
                code: .notALuaTask,
                message: "task \(task.id) was not run by Lua: its result is a Swift \(type(of: result)); read it "
                    + "with `task.result` or `await task.value(as:)`")
        }
        return try encoded.decode().first ?? .nil
    }

    /// A host dropped without ``close()`` closes its main state here.
    deinit {
        self.close()
    }

    /// Closes the main state, running its `__gc` finalizers. Pool states close when their threads end. Closing
    /// twice does nothing. A finalizer that never returns keeps this call from returning (no hook can reach a
    /// finalizer: Lua runs them with hooks off); ``close(timeout:)`` bounds the wait.
    public func close() {
        // Taken out under the lock and closed outside it: calls that come during the finalizers find the host
        // closed and raise, instead of waiting for the lock.
        let state = self.main.withLock { main in
            main.closed = true
            defer { main.state = nil }
            return main.state
        }
        state?.close()
    }

    /// Closes the main state as ``close()`` does, waiting at most `timeout` for its `__gc` finalizers.
    ///
    /// - Returns: `true` when the state is closed; `false` when a finalizer still runs at the deadline (one that
    ///   never returns cannot be cancelled). It goes on, on a thread of its own, and the host is closed for every
    ///   other call: a process that ends then leaves it behind, as `atasker-lua` does at its stop deadline.
    @discardableResult
    public func close(timeout: Duration) -> Bool {
        let done = ConditionLock(false)
        let started = spawnThread(inlineOnFailure: false) {
            self.close()
            done.withLock { $0 = true }
            done.broadcast()
        }
        guard started else {
            self.close()
            return true
        }
        let deadline = Monotonic.now() + max(0, timeout.inSeconds)
        done.lock()
        defer { done.unlock() }
        while !done.lockedValue {
            if !done.wait(until: deadline) { return done.lockedValue }
        }
        return true
    }
}

/// The folder part of a path ("" for a bare file name).
func folderOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "" }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}
