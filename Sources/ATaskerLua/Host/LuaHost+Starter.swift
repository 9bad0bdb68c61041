public import ATasker

extension LuaHost {
    /// Starts one run of a task starter that Lua code made — what `atasker.background_task(fn, opts)` returned, on
    /// the thread pool, an aloop (`loop=`) or the process pool (`mp=true`) — as Lua calling it does: `fn` runs
    /// with copies of `arguments`, by the starter's options (priority, name, delay, timeouts, callback).
    ///
    /// This is how Swift runs a Lua function that a script handed over (a registered function that takes a
    /// callback): the script passes `atasker.background_task(fn, opts)`, Swift keeps the value and starts it when
    /// it wants. The task's result is ``result(ofFinished:)`` (or ``result(of:)``).
    ///
    /// - Throws: ``LuaHostError`` with ``LuaHostError/Code/notAStarter`` when `starter` is not one; ``LuaError``
    ///   when an argument cannot be copied or an mp call is over the process pool's frame limit.
    public func start(_ starter: LuaValue, arguments: [LuaValue]) throws -> SupervisorTask {
        let function = try Self.taskFunction(starter)
        let encoded = try EncodedValues(arguments)
        if function.inProcess {
            do {
                try self.core.checkProcessCallSize(function, arguments: encoded)
            } catch let error as CallError {
                throw LuaError(code: .runtime, fullMessage: error.message)
            }
        }
        return self.core.spawn(function, arguments: encoded)
    }

    /// A starter like `starter` whose runs are cancelled after `timeout` seconds: on the thread pool as
    /// `run_timeout = timeout, cancel_on_timeout = true` (the run fails with a cancel error naming its place), in
    /// the process pool as `timeout=` (the child is killed). A starter of an aloop has no run timeout: it is
    /// returned as it is.
    public func starter(_ starter: LuaValue, timeout: Double) throws -> LuaValue {
        let function = try Self.taskFunction(starter)
        guard function.aloop == nil else { return starter }
        guard timeout.isFinite, timeout > 0 else {
            throw LuaError(code: .runtime, fullMessage: "a run timeout must be a number of seconds > 0, got \(timeout)")
        }
        let timed = TaskFunction(
            id: function.id, function: function.function, priority: function.priority, delay: function.delay,
            name: function.name, callback: function.callback, member: function.member,
            runTimeout: function.inProcess ? nil : timeout, cancelOnTimeout: !function.inProcess,
            inProcess: function.inProcess, processTimeout: function.inProcess ? timeout : nil, aloop: nil)
        return .handle(LuaHandle(object: timed, kind: Int32(ATLKind.spawner)))
    }

    /// Where a starter runs its tasks.
    public enum StarterKind: Sendable, Equatable {
        /// The thread pool.
        case thread
        /// The aloop of this name.
        case aloop(String)
        /// The process pool.
        case process
    }

    /// Where `starter` runs its tasks.
    public func kind(ofStarter starter: LuaValue) throws -> StarterKind {
        let function = try Self.taskFunction(starter)
        if function.inProcess { return .process }
        if let aloop = function.aloop { return .aloop(aloop.name) }
        return .thread
    }

    private static func taskFunction(_ starter: LuaValue) throws(LuaHostError) -> TaskFunction {
        guard case .handle(let handle) = starter, let function = handle.object as? TaskFunction else {
            throw LuaHostError(
                code: .notAStarter,
                message: "\(starter) is not a task starter: pass what atasker.background_task(fn, opts) returned")
        }
        return function
    }

    /// The result of a Lua task that has finished (its first value), read at once: for an ``SupervisorTask/onFinish(_:)``
    /// handler. A task that has not finished is waited for, blocking the calling thread.
    /// - Throws: the task's error when it failed (a ``LuaError``, with its traceback), a ``LuaValueCodecError``
    ///   when the value has no ``LuaValue`` form, ``LuaHostError`` when Lua did not run the task.
    public func result(ofFinished task: SupervisorTask) throws -> LuaValue {
        if !task.isFinished { _ = task.wait(timeout: nil) }
        if let error = task.error { throw error }
        guard let result = task.result else { return .nil }
        guard let encoded = result as? EncodedValues else {
            throw LuaHostError(
                code: .notALuaTask,
                message: "task \(task.id) was not run by Lua: its result is a Swift \(type(of: result))")
        }
        return try encoded.decode().first ?? .nil
    }
}
