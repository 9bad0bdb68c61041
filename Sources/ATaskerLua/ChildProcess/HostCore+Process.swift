import ATasker
import Logging
import Synchronization

/// The parent's side of the process pool: `set_mp_pool`, mp tasks, and reading what children send back.
extension HostCore {
    /// `supervisor:set_mp_pool{pool_size=, reserve_normal=, reserve_high=}` (also `create_mp_pool`).
    func setProcessPool(_ value: LuaValue) throws {
        let opts = value.isNil ? LuaTable() : value.tableValue
        guard let opts else { throw CallError(message: "bad argument #1 to 'set_mp_pool' (table expected)") }
        let known = ["pool_size", "reserve_normal", "reserve_high", "stop_timeout", "memory_limit"]
        try LuaArguments.refuseUnknown(opts, known, "set_mp_pool")
        if let limit = try MemorySize.poolOption(opts["memory_limit"], "set_mp_pool") {
            self.settings.withLock { $0.processMemoryLimit = limit }
        }
        func size(_ name: String) throws -> Int? {
            try LuaArguments.integer(
                opts[LuaValue.string(LuaString(name))], "set_mp_pool", name, in: 0...Int64(LuaArguments.maxPoolSize))
        }
        var configuration = self.processPoolConfiguration()
        if let n = try size("pool_size") {
            guard n > 0 else { throw CallError(message: "set_mp_pool: pool_size must be at least 1") }
            configuration.poolSize = n
        }
        if let n = try size("reserve_normal") { configuration.reserveNormal = n }
        if let n = try size("reserve_high") { configuration.reserveHigh = n }
        if let t = try LuaArguments.seconds(opts["stop_timeout"], "set_mp_pool", "stop_timeout") {
            configuration.stopTimeout = t
        }
        self.supervisor.setProcessPool(configuration)
    }

    /// The pool's configuration with what this host's children need: the hello (package paths, log level), the
    /// service that answers their requests, and the output flush before each spawn.
    func processPoolConfiguration() -> ProcessPoolConfiguration {
        var configuration = self.supervisor.processPoolConfiguration ?? ProcessPoolConfiguration()
        let settings = self.settings.withLock { $0 }
        var hello = LuaTable()
        if let path = settings.packagePath { hello["path"] = .string(LuaString(path)) }
        if let cpath = settings.packageCPath { hello["cpath"] = .string(LuaString(cpath)) }
        if settings.allowsBytecode { hello["bytecode"] = .boolean(true) }
        if settings.processMemoryLimit > 0 { hello["memory_limit"] = .integer(Int64(settings.processMemoryLimit)) }
        hello["debug"] = .boolean(self.currentLogger.logLevel <= .debug)
        configuration.hello = ChildWire.plain([.table(hello)])
        configuration.service = { [weak self] payload, isNotify in
            self?.serveChild(payload, isNotify: isNotify) ?? []
        }
        configuration.beforeSpawn = { LuaHost.flushOutput() }
        return configuration
    }

    /// Sets the pool up for this host on first use, when the script did not call `set_mp_pool`.
    func ensureProcessPool() {
        let ready = self.processPoolReady.withLock { ready -> Bool in
            defer { ready = true }
            return ready
        }
        if !ready && self.supervisor.processPoolConfiguration?.hello.isEmpty != false {
            self.supervisor.setProcessPool(self.processPoolConfiguration())
        }
    }

    /// Submits one run of an mp task function: the function goes to each child once, then only the arguments.
    /// Refuses, at the call, an mp task whose function (with its upvalues) and arguments would not fit in one
    /// frame of the pool's protocol.
    func checkProcessCallSize(_ function: TaskFunction, arguments: EncodedValues?) throws {
        // the call's header, the definition's, the call payload's function id and transfer header
        let size = 13 + 12 + function.definition.payload.count + 64 + (arguments?.count ?? 0)
        guard size <= ProcessCall.maximumSize else {
            throw CallError(
                message: "mp task: its arguments and function take \((size + (1 << 20) - 1) >> 20) MiB, over the "
                    + "process pool's limit of \(ProcessCall.maximumSize >> 20) MiB per call; pass large data "
                    + "another way, such as a file name")
        }
    }

    func spawnProcess(_ function: TaskFunction, arguments: EncodedValues?, logFailure: Bool = true) -> SupervisorTask {
        self.ensureProcessPool()
        let call = ProcessCall(
            definitions: [function.definition],
            payload: ChildWire.call(function: function.id, arguments: arguments))
        let task = self.supervisor.submitProcess(
            call, priority: function.priority, timeout: function.processTimeout, name: function.name
        ) { reply in try HostCore.childResult(reply) }
        guard logFailure || function.callback != nil else { return task }
        task.onFinish { [self] task in
            let name = function.name.map { " (\($0))" } ?? ""
            var callbackArguments: EncodedValues? = nil
            switch task.status {
            case .completed:
                callbackArguments = task.result as? EncodedValues
            case .failed:
                let message = (task.error as? LuaError)?.fullMessage ?? task.error.map { "\($0)" } ?? "unknown error"
                // The pool logs its own faults (a child that died, a timeout); an error of the Lua code is ours.
                if logFailure, task.error is LuaError {
                    self.logFailure(of: task, "mp task \(task.id)\(name) failed: \(message)")
                }
                callbackArguments = try? EncodedValues([.nil, .string(LuaString(message))])
            default:
                callbackArguments = try? EncodedValues([.nil, .string(LuaString("task \(task.id) was canceled"))])
            }
            if let callback = function.callback {
                let callbackArguments = callbackArguments
                self.supervisor.submit(priority: .critical, name: "callback") { [self] _ in
                    self.runCallback(callback, arguments: callbackArguments)
                    return nil
                }
            }
        }
        return task
    }

    /// What a child's reply becomes: the result's values (checked to hold no function and no handle, so that
    /// decoding them loads no bytecode from another process), or the child's error as a ``LuaError``.
    static func childResult(_ reply: ProcessReply) throws -> (any Sendable)? {
        switch reply {
        case .success(let bytes):
            do {
                try bytes.withUnsafeBytes { try LuaValue.checkPlain($0) }
            } catch {
                throw LuaError(code: .codec, fullMessage: "mp task: the child sent a bad result (\(error))")
            }
            return try EncodedValues(EncodedBytes(bytes: bytes, handles: []))
        case .failure(let bytes):
            let values = (try? ChildWire.readPlain(bytes)) ?? []
            let code = values.first?.intValue.map { LuaError.Code(rawValue: Int($0)) } ?? .runtime
            let message = values.dropFirst().first?.stringValue ?? "mp task failed in the child (no message)"
            throw LuaError(code: code, fullMessage: message)
        }
    }
}
