import ATasker
internal import CLuaShim
import Glibc
import Logging
import Synchronization

/// The `atasker` module's functions, on the Swift side of the trampoline.
extension HostCore {
    // MARK: - Background tasks

    /// The options of `background_task(fn, opts)`.
    static let taskOptions = [
        "name", "priority", "delay", "callback", "mp", "loop", "run_timeout", "cancel_on_timeout", "timeout",
        "memory_limit",
    ]

    /// `atasker.background_task(fn, opts)`: the arguments are the function (or `{fn, callback}`, which travel as one
    /// value for a task of the thread pool), the callback (`true` when it came with the function, or nil) and the
    /// other options, each encoded on its own. The functions stay bytes: the starter keeps them as they came.
    func backgroundTask(_ parts: [EncodedValues]) throws -> LuaValue {
        guard parts.count == 3 else { throw CallError(message: "background_task: bad arguments") }
        let bundled = try parts[1].kind == .true
        var opts = try parts[2].decode().first?.tableValue ?? LuaTable()
        let callbackKind = try parts[1].kind
        if callbackKind != .nil { opts["callback"] = .boolean(true) }
        try LuaArguments.refuseUnknown(opts, Self.taskOptions, "background_task")
        let inProcess = try LuaArguments.boolean(opts["mp"], "background_task", "mp") ?? false
        let aloop = try self.taskAloop(opts)
        let priority = try taskPriority(opts["priority"], function: "background_task")
        let delay = try LuaArguments.seconds(opts["delay"], "background_task", "delay")
        let memoryLimit = try MemorySize.option(opts["memory_limit"], "background_task") ?? 0
        let id = self.makeFunctionID()
        var callback: TaskFunction? = nil
        switch callbackKind {
        case .nil:
            break
        case .true where bundled:
            callback = TaskFunction(
                id: id, function: parts[0], priority: .critical, delay: nil, name: "callback", callback: nil,
                member: 2)
        case .function:
            callback = TaskFunction(
                id: self.makeFunctionID(), function: parts[1], priority: .critical, delay: nil, name: "callback",
                callback: nil)
        default:
            throw CallError(message: "background_task: callback must be a function")
        }
        let name = try LuaArguments.string(opts["name"], "background_task", "name")
        let runTimeout = try LuaArguments.seconds(
            opts["run_timeout"], "background_task", "run_timeout", lower: .positive)
        let cancelOnTimeout =
            try LuaArguments.boolean(opts["cancel_on_timeout"], "background_task", "cancel_on_timeout") ?? false
        if cancelOnTimeout && runTimeout == nil {
            throw CallError(message: "background_task: cancel_on_timeout needs run_timeout")
        }
        var processTimeout: Double? = nil
        if !opts["timeout"].isNil {
            guard inProcess else {
                throw CallError(
                    message: "background_task: timeout= is for mp tasks (the child is killed); use run_timeout= "
                        + "and cancel_on_timeout=true in the thread pool")
            }
            processTimeout = try LuaArguments.seconds(opts["timeout"], "background_task", "timeout", lower: .positive)
        }
        if inProcess && runTimeout != nil {
            throw CallError(
                message: "background_task: run_timeout is for the thread pool; an mp task takes timeout= (its "
                    + "child is killed when a run takes longer)")
        }
        if inProcess && delay != nil {
            throw CallError(message: "background_task: delay is not supported with mp=true; start the task later")
        }
        let starter = TaskFunction(
            id: id, function: parts[0], priority: priority, delay: delay, name: name, callback: callback,
            member: bundled ? 1 : 0, runTimeout: runTimeout, cancelOnTimeout: cancelOnTimeout, inProcess: inProcess,
            processTimeout: processTimeout, aloop: aloop, memoryLimit: memoryLimit)
        return .handle(LuaHandle(object: starter, kind: Int32(ATLKind.spawner)))
    }

    /// Submits one run of a task function with its encoded arguments.
    func spawn(_ function: TaskFunction, arguments: EncodedValues?) -> SupervisorTask {
        if function.inProcess {
            return self.spawnProcess(function, arguments: arguments)
        }
        if let aloop = function.aloop {
            return self.spawnAloopTask(
                function.function, arguments: arguments, on: aloop, name: function.name, callback: function.callback,
                memoryLimit: function.memoryLimit)
        }
        return self.supervisor.submit(priority: function.priority, delay: function.delay, name: function.name) {
            [self] task in
            try self.runTask(function, arguments: arguments, task: task)
        }
    }

    /// `atasker.wait_completed(task | {tasks}, timeout)`.
    func waitCompleted(_ args: [LuaValue]) throws -> CallResults {
        let (tasks, single, timeout) = try self.waitArguments(args)
        return try self.waitCompleted(tasks, single: single, timeout: timeout)
    }

    /// `atasker.wait_completed` once its arguments are read.
    func waitCompleted(_ tasks: [SupervisorTask], single: Bool, timeout: Double?) throws -> CallResults {
        let deadline = timeout.map { Monotonic.now() + $0 }
        for task in tasks {
            let remaining = deadline.map { max(0, $0 - Monotonic.now()) }
            if !task.wait(timeout: remaining) {
                throw Self.waitTimedOut(timeout ?? 0, task)
            }
        }
        return try self.waitResults(tasks, single: single)
    }

    /// The tasks of `wait_completed(task | {tasks}, timeout)`, whether it got one task, and the timeout.
    func waitArguments(_ args: [LuaValue]) throws -> (tasks: [SupervisorTask], single: Bool, timeout: Double?) {
        let tasks: [SupervisorTask]
        let single: Bool
        switch args.first ?? .nil {
        case .handle(let handle):
            guard let task = handle.object as? SupervisorTask else {
                throw CallError(message: "bad argument #1 to 'wait_completed' (atasker.Task expected)")
            }
            tasks = [task]
            single = true
        case .table(let table):
            tasks = try table.array.enumerated().map { index, value in
                guard case .handle(let handle) = value, let task = handle.object as? SupervisorTask else {
                    throw CallError(
                        message: "bad argument #1 to 'wait_completed' (item \(index + 1) is not an atasker.Task)")
                }
                return task
            }
            single = false
        default:
            throw CallError(message: "bad argument #1 to 'wait_completed' (atasker.Task or table of tasks expected)")
        }
        let timeout = try LuaArguments.seconds(
            args.count > 1 ? args[1] : .nil, "wait_completed", "argument #2 (timeout)")
        return (tasks, single, timeout)
    }

    /// The result of a task that has none: one nil.
    static let nilResult: EncodedValues = {
        var buffer = atl_Buffer()
        let bytes = CodecTag.header + [1, CodecTag.nil]
        guard bytes.withUnsafeBytes({ atl_buffer_append(&buffer, $0.baseAddress, $0.count) }) == ATL_OK else {
            fatalError("not enough memory for 7 bytes")
        }
        return EncodedValues(taking: &buffer)
    }()

    /// The error of a `wait_completed` whose timeout passed before `task` finished.
    static func waitTimedOut(_ timeout: Double, _ task: SupervisorTask) -> CallError {
        CallError(
            message: "wait_completed: timed out after \(formatSeconds(timeout)) s "
                + "(task \(task.id) is \(task.status.rawValue))")
    }

    /// The results of `wait_completed` once every task has finished: one, or a list; the first failed task's
    /// error (in list order) is raised.
    func waitResults(_ tasks: [SupervisorTask], single: Bool) throws -> CallResults {
        var results: [EncodedValues] = []
        results.reserveCapacity(tasks.count)
        for task in tasks {
            switch task.status {
            case .failed:
                if let error = task.error as? LuaError { throw error }
                throw CallError(message: "task \(task.id) failed: \(task.error.map { "\($0)" } ?? "unknown error")")
            case .canceled:
                throw CallError(message: "wait_completed: task \(task.id) was canceled")
            default:
                if let result = task.result as? EncodedValues {
                    results.append(result)
                } else {
                    results.append(Self.nilResult)
                }
            }
        }
        if single { return .encoded(results[0]) }
        return .list(results)
    }

    // MARK: - Shared tables

    func sharedCall(_ fn: Int, _ table: SharedTable, _ args: [LuaValue]) throws -> [LuaValue] {
        switch fn {
        case Int(ATLFunction.sharedGet):
            return [table.get(try sharedKey(args.first ?? .nil, "get"))]
        case Int(ATLFunction.sharedSet):
            table.set(try sharedKey(args.first ?? .nil, "set"), args.count > 1 ? args[1] : .nil)
            return []
        case Int(ATLFunction.sharedIncr):
            let k = try sharedKey(args.first ?? .nil, "incr")
            return [try table.increment(k, by: args.count > 1 ? args[1] : .nil)]
        case Int(ATLFunction.sharedCas):
            let k = try sharedKey(args.first ?? .nil, "cas")
            let old = args.count > 1 ? args[1] : .nil
            let new = args.count > 2 ? args[2] : .nil
            return [
                .boolean(
                    table.values.withLock { values in
                        guard luaEquals(values[k] ?? .nil, old) else { return false }
                        values[k] = new.isNil ? nil : new
                        return true
                    })
            ]
        default:
            let keys = table.values.withLock { Array($0.keys) }
            return [.table(LuaTable(array: keys))]
        }
    }

    // MARK: - Logging

    func log(level: String, message: String) {
        let logger = self.currentLogger
        switch level {
        case "debug": logger.debug("\(message)")
        case "warning": logger.warning("\(message)")
        case "error": logger.error("\(message)")
        case "critical": logger.critical("\(message)")
        default: logger.info("\(message)")
        }
    }

    // MARK: - The supervisor

    func supervisorField(_ key: String) throws -> LuaValue {
        let configuration = self.supervisor.configuration
        switch key {
        case "poll_delay": return .number(configuration.pollDelay)
        case "timeout_warning": return .number(configuration.timeoutWarning)
        case "timeout_critical": return .number(configuration.timeoutCritical)
        case "timeout_warning_func", "timeout_critical_func":
            let handlers = self.timeoutHandlers.withLock { $0 }
            let function = key == "timeout_warning_func" ? handlers.warning : handlers.critical
            guard let function else { return .nil }
            return try function.function.decode().first ?? .nil
        case "id": return .string(LuaString(self.supervisor.info().id))
        case "aloop_block_warning", "aloop_block_cancel": return self.asyncSetting(key)
        default: return .nil
        }
    }

    func setSupervisorField(_ key: String, _ value: LuaValue) throws {
        switch key {
        case "poll_delay":
            guard let d = try LuaArguments.seconds(value, "supervisor", "poll_delay") else {
                throw CallError(message: "supervisor: poll_delay must be a number of seconds >= 0 (got nil)")
            }
            self.supervisor.setPollDelay(d)
        case "timeout_warning", "timeout_critical":
            guard let d = try LuaArguments.seconds(value, "supervisor", key, lower: .positive) else {
                throw CallError(message: "supervisor: \(key) must be a number of seconds > 0 and <= 1e9 (got nil)")
            }
            if key == "timeout_warning" {
                self.supervisor.setTimeouts(warning: d, critical: nil)
            } else {
                self.supervisor.setTimeouts(warning: nil, critical: d)
            }
        case "timeout_warning_func", "timeout_critical_func":
            var function: TaskFunction? = nil
            switch value {
            case .nil: break
            case .function(let f):
                function = TaskFunction(
                    id: self.makeFunctionID(), function: try EncodedValues([.function(f)]), priority: .critical,
                    delay: nil, name: key, callback: nil)
            default:
                throw CallError(message: "\(key) must be a function or nil")
            }
            let handlers = self.timeoutHandlers.withLock { handlers in
                if key == "timeout_warning_func" { handlers.warning = function } else { handlers.critical = function }
                return handlers
            }
            // The supervisor holds the handlers: they hold the host weakly, and find its function when they run, so
            // that neither keeps the other alive.
            var warning: (@Sendable (SupervisorTask) -> Void)? = nil
            var critical: (@Sendable (SupervisorTask) -> Void)? = nil
            if handlers.warning != nil {
                warning = { [weak self] task in
                    guard let self, let f = self.timeoutHandlers.withLock({ $0.warning }) else { return }
                    self.submitCallback(f, for: task)
                }
            }
            if handlers.critical != nil {
                critical = { [weak self] task in
                    guard let self, let f = self.timeoutHandlers.withLock({ $0.critical }) else { return }
                    self.submitCallback(f, for: task)
                }
            }
            self.supervisor.setTimeoutHandlers(warning: warning, critical: critical)
        case "aloop_block_warning", "aloop_block_cancel":
            try self.setAsyncSetting(key, value)
        default:
            throw CallError(
                message: "cannot set supervisor field '\(key)' (settable: poll_delay, timeout_warning, "
                    + "timeout_critical, timeout_warning_func, timeout_critical_func, aloop_block_warning, "
                    + "aloop_block_cancel)")
        }
    }

    func setThreadPool(_ value: LuaValue) throws {
        guard let opts = value.tableValue else {
            throw CallError(message: "bad argument #1 to 'set_thread_pool' (table expected)")
        }
        try LuaArguments.refuseUnknown(
            opts, ["pool_size", "reserve_normal", "reserve_high", "min_size", "max_size", "memory_limit"],
            "set_thread_pool")
        let memoryLimit = try MemorySize.poolOption(opts["memory_limit"], "set_thread_pool")
        func size(_ name: String, from lowest: Int64 = 0) throws -> Int? {
            try LuaArguments.integer(
                opts[LuaValue.string(LuaString(name))], "set_thread_pool", name,
                in: lowest...Int64(LuaArguments.maxPoolSize))
        }
        let minSize = try size("min_size")
        let maxSize = try size("max_size", from: 1)
        let poolSize = try size("pool_size")
        let reserveNormal = try size("reserve_normal")
        let reserveHigh = try size("reserve_high")
        // The sizes that apply once this call is done: the new ones, or those in place.
        var after = self.supervisor.configuration
        after.poolSize = poolSize ?? after.poolSize
        after.reserveNormal = reserveNormal ?? after.reserveNormal
        after.reserveHigh = reserveHigh ?? after.reserveHigh
        after.minSize = minSize ?? after.minSize
        after.maxSize = maxSize ?? after.maxSize
        if let limit = after.effectiveMaxSize, after.minSize > limit {
            throw CallError(
                message: "set_thread_pool: min_size \(after.minSize) is above max_size \(limit) (the thread limit); "
                    + "lower min_size or raise max_size")
        }
        self.supervisor.setThreadPool(
            poolSize: poolSize, reserveNormal: reserveNormal, reserveHigh: reserveHigh, minSize: minSize,
            maxSize: maxSize)
        if let memoryLimit {
            self.poolMemoryLimit.store(memoryLimit, ordering: .relaxed)
        }
    }

    func infoTable() -> LuaValue {
        let info = self.supervisor.info()
        var table: [String: LuaValue] = [
            "id": .string(LuaString(info.id)),
            "active": .boolean(info.active),
            "started": .boolean(info.started),
            "thread_pool_size": .integer(Int64(info.threadPoolSize)),
            "thread_reserve_normal": .integer(Int64(info.threadReserveNormal)),
            "thread_reserve_high": .integer(Int64(info.threadReserveHigh)),
            "thread_min_size": .integer(Int64(info.threadMinSize)),
            "thread_tasks_count": .integer(Int64(info.threadTasksCount)),
            "thread_tasks": .table(LuaTable(array: info.threadTasks.map { .integer(Int64($0)) })),
            "mp_tasks_count": .integer(Int64(info.processPool?.runningCount ?? 0)),
            "threads_count": .integer(Int64(info.threadsCount)),
            "idle_threads_count": .integer(Int64(info.idleThreadsCount)),
            "queued_count": .integer(Int64(info.queuedCount)),
            "delayed_count": .integer(Int64(info.delayedCount)),
            "tasks_count": .integer(Int64(info.tasks)),
            "poll_delay": .number(self.supervisor.configuration.pollDelay),
        ]
        if let maxSize = info.threadMaxSize { table["thread_max_size"] = .integer(Int64(maxSize)) }
        if let pool = info.processPool {
            table["mp_pool_size"] = .integer(Int64(pool.poolSize))
            table["mp_reserve_normal"] = .integer(Int64(pool.reserveNormal))
            table["mp_reserve_high"] = .integer(Int64(pool.reserveHigh))
            table["mp_queued_count"] = .integer(Int64(pool.queuedCount))
            table["mp_children_count"] = .integer(Int64(pool.children.count))
            table["mp_children"] = .table(LuaTable(array: pool.children.map { .integer(Int64($0.pid)) }))
            table["mp_children_spawned"] = .integer(Int64(pool.childrenSpawned))
            table["mp_child_deaths"] = .integer(Int64(pool.childDeaths))
            if let cause = pool.brokenCause { table["mp_broken"] = .string(LuaString(cause)) }
        }
        let states = self.stateMemory()
        var workerStates: [String: LuaHost.StateMemory] = [:]
        for state in states where state.label.hasPrefix("worker '") { workerStates[state.label] = state }
        table["workers"] = .table(
            LuaTable(
                array: info.workers.map { w in
                    var entry = LuaTable([
                        "name": .string(LuaString(w.name)),
                        "kind": .string(LuaString(w.kind == .background ? "plain" : w.kind.rawValue)),
                        "state": .string(LuaString(w.state.rawValue)),
                        "priority": .integer(Int64(w.priority.rawValue)),
                        "executions": .integer(Int64(w.executions)),
                        "errors": .integer(Int64(w.errors)),
                        "skipped": .integer(Int64(w.skipped)),
                        "queue_depth": .integer(Int64(w.queueDepth)),
                    ])
                    if let memory = workerStates["worker '\(w.name)'"] {
                        entry["memory"] = .integer(Int64(memory.bytes))
                        entry["memory_peak"] = .integer(Int64(memory.peak))
                        if memory.limit > 0 { entry["memory_limit"] = .integer(Int64(memory.limit)) }
                    }
                    return .table(entry)
                }))
        table["states"] = .table(
            LuaTable(
                array: states.map { m in
                    var entry = LuaTable([
                        "name": .string(LuaString(m.label)),
                        "bytes": .integer(Int64(m.bytes)),
                        "peak": .integer(Int64(m.peak)),
                    ])
                    if m.limit > 0 { entry["limit"] = .integer(Int64(m.limit)) }
                    return .table(entry)
                }))
        table["lua_memory"] = .integer(Int64(states.reduce(0) { $0 + $1.bytes }))
        let poolLimit = self.poolMemoryLimit.load(ordering: .relaxed)
        if poolLimit > 0 { table["thread_memory_limit"] = .integer(Int64(poolLimit)) }
        let processLimit = self.settings.withLock { $0.processMemoryLimit }
        if processLimit > 0 { table["mp_memory_limit"] = .integer(Int64(processLimit)) }
        return .table(LuaTable(table))
    }

    /// `s:stop{wait=, cancel_tasks=}`. With `cancel_tasks`, tasks not started are canceled and the Lua code that
    /// runs (tasks, worker executions, async code) is cancelled at once; otherwise, with `wait=seconds`, what still
    /// runs at the deadline is. Code that called the stop from inside an execution (a worker, a task, a callback,
    /// async code) is never waited for nor cancelled by it: the stop goes on from a thread of its own.
    func stopSupervisor(_ value: LuaValue) throws {
        let opts = value.tableValue ?? LuaTable()
        try LuaArguments.refuseUnknown(opts, ["wait", "stop_schedulers", "cancel_tasks"], "stop")
        let wait = try stopWait(opts["wait"])
        let cancel = try LuaArguments.boolean(opts["cancel_tasks"], "stop", "cancel_tasks") ?? false
        let caller = LuaState.currentExecution
        if caller != 0 || PoolStates.isPoolThread || Aloop.current != nil {
            // The caller is work of the supervisor: waiting here would wait for itself.
            spawnThread { [self] in self.stopSupervisor(wait: wait, cancel: cancel, except: caller) }
        } else {
            self.stopSupervisor(wait: wait, cancel: cancel, except: 0)
        }
    }

    /// How long Lua code that a stop cancelled may take to get back to the host before the stop returns without it.
    static let stopCancelGrace = 1.0

    private func stopSupervisor(wait: StopWait, cancel: Bool, except caller: UInt64) {
        var cancelled = 0
        if cancel {
            // Nothing starts from now on (what begins is cancelled before it runs), then what runs is cancelled.
            self.cancelsNewExecutions.store(true, ordering: .releasing)
            _ = self.supervisor.stop(wait: .none, cancelTasks: true)
            cancelled = self.cancelRunning(except: caller)
        }
        var left = self.supervisor.stop(wait: wait, cancelTasks: cancel)
        if case .none = wait { return }
        if !left.isEmpty, case .seconds = wait {
            cancelled += self.cancelRunning(except: caller)
        }
        guard cancelled > 0, !left.isEmpty else { return }
        left = self.supervisor.stop(wait: .seconds(Self.stopCancelGrace), cancelTasks: cancel)
        guard !left.isEmpty else { return }
        for place in self.runningReports(except: caller) {
            self.currentLogger.warning(
                "stop: \(place) is stuck in one long C call or a __gc finalizer, where it cannot be cancelled")
        }
    }
}

/// The key `k` of a call of shared-table method `method`: a string, a boolean, or a number (an integral float
/// becomes an integer, as in Lua).
/// - Throws: ``CallError`` for a NaN or a key of another type.
func sharedKey(_ k: LuaValue, _ method: String) throws -> LuaValue {
    switch k {
    case .string, .integer, .boolean: return k
    case .number(let d):
        if let i = Int64(exactly: d) { return .integer(i) }
        guard d.isFinite else { throw CallError(message: "shared:\(method): key must not be NaN") }
        return k
    default:
        throw CallError(message: "bad argument #1 to '\(method)' (string, number or boolean key expected)")
    }
}

extension SharedTable {
    /// `s:get(k)`: the value at key `k` (a key made by ``sharedKey(_:_:)``), nil when absent.
    func get(_ k: LuaValue) -> LuaValue {
        self.values.withLock { $0[k] } ?? .nil
    }

    /// `s:set(k, v)`: a nil `v` removes the key.
    func set(_ k: LuaValue, _ v: LuaValue) {
        self.values.withLock { $0[k] = v.isNil ? nil : v }
    }

    /// `s:incr(k, by)`: adds `by` (1 when nil) to the value at `k` (0 when absent) and returns the sum; two
    /// integers add with wrap-around, other numbers as floats. The key is hashed once.
    /// - Throws: ``CallError`` when the value or the increment is not a number.
    func increment(_ k: LuaValue, by: LuaValue) throws -> LuaValue {
        let by = by.isNil ? .integer(1) : by
        return try self.values.withLock { values -> LuaValue in
            let index = values.index(forKey: k)
            let current = index.map { values.values[$0] } ?? .integer(0)
            let next: LuaValue
            switch (current, by) {
            case (.integer(let a), .integer(let b)):
                let (sum, overflow) = a.addingReportingOverflow(b)
                if overflow {
                    throw CallError(
                        message: "shared:incr: integer overflow (\(a) + \(b) is out of range \(Int64.min)..."
                            + "\(Int64.max)); use a float increment for a counter that large")
                }
                next = .integer(sum)
            default:
                guard let a = current.doubleValue, let b = by.doubleValue else {
                    throw CallError(message: "shared:incr: value of \(k) and increment must be numbers")
                }
                guard b.isFinite else {
                    throw CallError(
                        message: "shared:incr: increment must be a finite number (got \(LuaArguments.describe(by)))")
                }
                next = .number(a + b)
            }
            if let index {
                values.values[index] = next
            } else {
                values[k] = next
            }
            return next
        }
    }
}

/// `t.<key>` of a task handle.
func taskField(_ task: SupervisorTask, _ key: String) -> LuaValue {
    switch key {
    case "id": return .integer(Int64(task.id))
    case "status": return .string(LuaString(task.status.rawValue))
    case "priority": return .integer(Int64(task.priority.rawValue))
    case "name": return task.name.map { .string(LuaString($0)) } ?? .nil
    case "error":
        guard let error = task.error else { return .nil }
        return .string(LuaString((error as? LuaError)?.fullMessage ?? "\(error)"))
    case "time_queued": return task.timeQueued.map { .number($0) } ?? .nil
    case "time_started": return task.timeStarted.map { .number($0) } ?? .nil
    case "time_completed": return task.timeCompleted.map { .number($0) } ?? .nil
    case "completed": return .boolean(task.isFinished)
    default: return .nil
    }
}

/// A Lua priority argument: an integer (`atasker.TASK_*`) in ``LuaArguments/priorities``; default normal.
func taskPriority(_ value: LuaValue, function: String, name: String = "priority") throws -> TaskPriority {
    try LuaArguments.priority(value, function, name) ?? .normal
}

/// Lua's `==` for copied values: numbers compare by value whatever their subtype.
func luaEquals(_ a: LuaValue, _ b: LuaValue) -> Bool {
    switch (a, b) {
    case (.integer, .number), (.number, .integer):
        return a.doubleValue == b.doubleValue
    default:
        return a == b
    }
}

func formatSeconds(_ s: Double) -> String {
    guard s.isFinite, abs(s) < 1e15 else { return "\(s)" }
    let ms = Int((s * 1000).rounded())
    let frac = ms % 1000
    return "\(ms / 1000).\(frac < 10 ? "00" : frac < 100 ? "0" : "")\(frac)"
}

extension StopWait {
    /// This wait, or none on an aloop's thread: a stop from there never waits, since what it would wait for may need
    /// that thread.
    var unlessOnAloop: StopWait { Aloop.current == nil ? self : .none }
}

/// The `wait=` of a `stop{...}`: true or nil waits for ever, false not at all, a number that many seconds.
func stopWait(_ value: LuaValue) throws -> StopWait {
    switch value {
    case .nil, .boolean(true): return .forever
    case .boolean(false): return StopWait.none
    default:
        guard value.doubleValue != nil, let d = try? LuaArguments.seconds(value, "stop", "wait") else {
            throw CallError(
                message: "stop: wait must be true, false or a number of seconds >= 0 and <= 1e9 (got "
                    + "\(LuaArguments.describe(value)))")
        }
        return .seconds(d)
    }
}
