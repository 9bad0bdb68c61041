import ATasker
import Logging

/// The aloops from Lua: the supervisor's aloop methods, an aloop handle's methods, and aloop tasks.
extension HostCore {
    /// Calls from Lua about aloops and async jobs (the ids of ``ATLAsyncFunction`` but `sleep` and
    /// `waitCompleted`).
    func asyncCall(_ fn: Int, _ object: AnyObject?, _ arguments: WorkerCallArguments) throws -> CallResults {
        if self.isChild {
            throw CallError(
                message: "aloops and async jobs are not available in an mp child process: they live in the parent")
        }
        switch fn {
        case ATLAsyncFunction.supCreateAloop:
            let args = try arguments.decoded()
            guard let name = args.first?.stringValue, !name.isEmpty else {
                throw CallError(message: "bad argument #1 to 'create_aloop' (a name expected)")
            }
            let opts = args.count > 1 ? (args[1].tableValue ?? LuaTable()) : LuaTable()
            try Self.checkOptions(opts, ["default", "start", "daemon"], "create_aloop")
            let start = try LuaArguments.boolean(opts["start"], "create_aloop", "start") ?? true
            let isDefault = try LuaArguments.boolean(opts["default"], "create_aloop", "default") ?? false
            let aloop = try Self.aloopCall("create_aloop") {
                try self.supervisor.createAloop(named: name, start: start, isDefault: isDefault)
            }
            return .values([Self.aloopHandle(aloop)])
        case ATLAsyncFunction.supGetAloop:
            let args = try arguments.decoded()
            if let name = args.first?.stringValue {
                return .values([self.supervisor.aloop(named: name).map(Self.aloopHandle) ?? .nil])
            }
            return .values([self.supervisor.defaultAloop.map(Self.aloopHandle) ?? .nil])
        case ATLAsyncFunction.supSetDefaultAloop:
            let aloop = try self.aloop(try arguments.decoded().first ?? .nil, for: "set_default_aloop")
            try Self.aloopCall("set_default_aloop") { try self.supervisor.setDefaultAloop(named: aloop.name) }
            return .none
        case ATLAsyncFunction.supStartAloop:
            let aloop = try self.aloop(try arguments.decoded().first ?? .nil, for: "start_aloop")
            try Self.aloopCall("start_aloop") { try aloop.start() }
            return .none
        case ATLAsyncFunction.supStopAloop:
            let args = try arguments.decoded()
            let aloop = try self.aloop(args.first ?? .nil, for: "stop_aloop")
            return .values([.boolean(try self.stopAloop(aloop, args.count > 1 ? args[1] : .nil))])
        case ATLAsyncFunction.aloopBackgroundTask:
            guard let aloop = object as? Aloop else { throw CallError(message: "not an aloop") }
            let (function, args) = try Self.functionAndArguments(arguments.takeAll())
            let task = self.spawnAloopTask(function, arguments: args, on: aloop)
            return .values([.handle(LuaHandle(object: task, kind: Int32(ATLKind.task)))])
        case ATLAsyncFunction.aloopRun:
            guard let aloop = object as? Aloop else { throw CallError(message: "not an aloop") }
            guard !aloop.isCurrent else {
                throw CallError(
                    message: "aloop:run would wait on aloop '\(aloop.name)' for a task of that aloop; call it from "
                        + "async code (it yields there), or use aloop:background_task")
            }
            let (function, args) = try Self.functionAndArguments(arguments.takeAll())
            let task = self.spawnAloopTask(function, arguments: args, on: aloop)
            task.wait(timeout: nil)
            return try self.waitResults([task], single: true)
        case ATLAsyncFunction.aloopStart:
            guard let aloop = object as? Aloop else { throw CallError(message: "not an aloop") }
            try Self.aloopCall("start") { try aloop.start() }
            return .none
        case ATLAsyncFunction.aloopStop:
            guard let aloop = object as? Aloop else { throw CallError(message: "not an aloop") }
            return .values([.boolean(try self.stopAloop(aloop, try arguments.decoded().first ?? .nil))])
        case ATLAsyncFunction.aloopIsActive:
            guard let aloop = object as? Aloop else { throw CallError(message: "not an aloop") }
            return .values([.boolean(aloop.isActive)])
        case ATLAsyncFunction.aloopIndex:
            guard let aloop = object as? Aloop else { throw CallError(message: "not an aloop") }
            switch try arguments.decoded().first?.stringValue ?? "" {
            case "name": return .values([.string(LuaString(aloop.name))])
            case "active": return .values([.boolean(aloop.isActive)])
            case "pending": return .values([.integer(Int64(aloop.pendingWork))])
            case "is_default": return .values([.boolean(self.supervisor.defaultAloop === aloop)])
            default: return .values([.nil])
            }
        default:
            return try self.asyncJobCall(fn, object, arguments)
        }
    }

    /// The aloop that `value` names: an aloop handle or an aloop's name.
    func aloop(_ value: LuaValue, for function: String) throws -> Aloop {
        switch value {
        case .handle(let handle):
            guard let aloop = handle.object as? Aloop else {
                throw CallError(message: "\(function): an aloop or an aloop's name expected")
            }
            return aloop
        case .string(let name):
            guard let aloop = self.supervisor.aloop(named: name.string) else {
                throw CallError(message: "\(function): the supervisor has no aloop called '\(name.string)'")
            }
            return aloop
        default:
            throw CallError(message: "\(function): an aloop or an aloop's name expected, got \(value.typeName)")
        }
    }

    /// The aloop of `loop=` (a handle, a name, or true / nil for the default one, made on first use).
    func aloop(forLoop value: LuaValue, function: String) throws -> Aloop {
        switch value {
        case .nil, .boolean(true):
            guard let aloop = try Self.aloopCall(function, { try self.supervisor.defaultAloop(creating: true) }) else {
                throw CallError(message: "\(function): no default aloop")
            }
            return aloop
        default:
            return try self.aloop(value, for: function)
        }
    }

    private func stopAloop(_ aloop: Aloop, _ options: LuaValue) throws -> Bool {
        let opts = options.tableValue ?? LuaTable()
        try Self.checkOptions(opts, ["wait", "cancel_tasks"], "stop_aloop")
        // From an aloop's thread, a stop never waits: the work it would wait for may need that thread.
        let wait = try stopWait(opts["wait"]).unlessOnAloop
        return aloop.stop(
            wait: wait,
            cancelTasks: try LuaArguments.boolean(opts["cancel_tasks"], "stop_aloop", "cancel_tasks") ?? false)
    }

    /// Runs `body`, turning an ``AloopError`` into an error raised at the caller's line.
    static func aloopCall<R>(_ function: String, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as AloopError {
            throw CallError(message: "\(function): \(error.message)")
        }
    }

    static func aloopHandle(_ aloop: Aloop) -> LuaValue {
        .handle(LuaHandle(object: aloop, kind: ATLAsyncKind.aloop))
    }

    /// Raises for a key of `opts` that is not one of `known`.
    static func checkOptions(_ opts: LuaTable, _ known: Set<String>, _ function: String) throws {
        try LuaArguments.refuseUnknown(opts, known.sorted(), function)
    }

    /// Splits `(fn, ...)` into the function (one encoded value) and its arguments (nil when none).
    static func functionAndArguments(_ all: EncodedValues?) throws -> (EncodedValues, EncodedValues?) {
        guard let all else { throw CallError(message: "a task function expected") }
        // the function and its arguments stay in one buffer, which the task's state decodes at once (so what they
        // share stays shared); the shim checked that the first is a function
        return (all, nil)
    }

    // MARK: - Aloop tasks

    /// Runs `function(arguments...)` as a task of `aloop`: a coroutine in a Lua state of its own, opened for it on
    /// the aloop's thread and closed when it ends. The task is `started` at once and completes with the
    /// function's first result, or fails with its error.
    func spawnAloopTask(
        _ function: EncodedValues, arguments: EncodedValues?, on aloop: Aloop, name: String? = nil,
        callback: TaskFunction? = nil, memoryLimit: Int = 0
    ) -> SupervisorTask {
        guard let task = aloop.makeTask(name: name) else {
            return aloop.failedTask(name: name)
        }
        let stopped = LuaError(
            code: .canceled, fullMessage: "aloop '\(aloop.name)' stopped before task \(task.id) could start")
        let accepted = aloop.enqueue(
            run: { [self] in self.runAloopTask(task, function, arguments, aloop, callback, memoryLimit) },
            lost: { aloop.finishTask(task, result: nil, error: stopped) })
        if !accepted {
            aloop.finishTask(task, result: nil, error: stopped)
        }
        return task
    }

    /// The first step of an aloop task, on the aloop's thread.
    private func runAloopTask(
        _ task: SupervisorTask, _ function: EncodedValues, _ arguments: EncodedValues?, _ aloop: Aloop,
        _ callback: TaskFunction?, _ memoryLimit: Int
    ) {
        let label = "task \(task.id)\(task.name.map { " (\($0))" } ?? "")"
        let state: LuaState
        let ref: Int32
        do {
            state = try self.openState(isMain: false, label: label)
            if memoryLimit > 0 {
                // The task's own state: what it holds once open, plus the task's limit, for the task's life.
                let (cap, overflow) = state.bytes.addingReportingOverflow(memoryLimit)
                state.memoryLimit = overflow ? Int.max : cap
            }
        } catch {
            self.endAloopTask(task, .failed(error), label: label, aloop: aloop, callback: callback)
            return
        }
        do {
            ref = try state.newCoroutine()
        } catch {
            state.close()
            self.endAloopTask(task, .failed(error), label: label, aloop: aloop, callback: callback)
            return
        }
        let coroutine = AsyncCoroutine(core: self, aloop: aloop, state: state, ref: ref, label: label, isWorker: false)
        let outcome = coroutine.start { () throws(LuaError) in
            try state.beginTaskCoroutine(coroutine.ref, function: function, arguments: arguments)
        }
        if let outcome {
            state.close()
            self.endAloopTask(task, outcome, label: label, aloop: aloop, callback: callback)
            return
        }
        coroutine.onEnd = { [self] outcome in
            state.close()
            self.endAloopTask(task, outcome, label: label, aloop: aloop, callback: callback)
        }
    }

    private func endAloopTask(
        _ task: SupervisorTask, _ outcome: AsyncCoroutine.Outcome, label: String, aloop: Aloop,
        callback: TaskFunction?
    ) {
        switch outcome {
        case .returned(_, let result):
            if let callback { self.runCallback(callback, arguments: result) }
            aloop.finishTask(task, result: result, error: nil)
        case .handled, .exit:
            aloop.finishTask(task, result: nil, error: nil)
        case .failed(let error):
            if error.code == .canceled {
                self.currentLogger.warning("\(error.fullMessage)", metadata: Self.metadata(task))
            } else {
                self.logFailure(of: task, "\(label) failed: \(error.fullMessage)")
            }
            if let callback {
                self.runCallback(callback, arguments: try? EncodedValues([.nil, .string(LuaString(error.message))]))
            }
            aloop.finishTask(task, result: nil, error: error)
        }
    }
}

extension LuaValue {
    /// The Lua type name of the value, for messages.
    var typeName: String {
        switch self {
        case .nil: return "nil"
        case .boolean: return "boolean"
        case .integer, .number: return "number"
        case .string: return "string"
        case .table: return "table"
        case .function: return "function"
        case .handle: return "userdata"
        }
    }
}

/// `tostring` of the async handles, or nil for another object.
func describeAsync(_ object: AnyObject?) -> String? {
    switch object {
    case let aloop as Aloop:
        return "atasker.Aloop '\(aloop.name)' (\(aloop.isActive ? "active" : aloop.isStopped ? "stopped" : "stopping"))"
    default:
        return describeAsyncJob(object)
    }
}

extension HostCore {
    /// The aloop of `background_task(fn, {loop=...})`, or nil for the thread pool.
    func taskAloop(_ opts: LuaTable) throws -> Aloop? {
        guard !opts["loop"].isNil, opts["loop"] != .boolean(false) else { return nil }
        for option in ["mp", "delay", "run_timeout", "cancel_on_timeout", "timeout"] where !opts[option].isNil {
            throw CallError(
                message: "background_task: \(option)= is not for aloop tasks (loop=); an aloop task that does not "
                    + "yield is reported after s.aloop_block_warning seconds")
        }
        return try self.aloop(forLoop: opts["loop"], function: "background_task")
    }
}
