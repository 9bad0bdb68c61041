import ATasker
import Logging
import Synchronization

/// `atasker.background_worker` and the methods of a worker handle, on the Swift side of the trampoline.
extension HostCore {
    /// The options that `background_worker{...}` accepts besides `fn`/`run`, `o`, `on_error`, `on_error_kwargs`.
    static let workerOptions: Set<String> = [
        "name", "priority", "poll_delay", "interval", "delay", "delay_before", "q", "queue", "e", "event",
        "max_queue", "async", "loop", "mp", "process_result", "supervisor", "run_timeout", "cancel_on_timeout",
        "timeout",
    ]

    /// `background_worker(fn | {...})`: the arguments are `kind` (from a named constructor, or nil), the executor,
    /// `o`, `on_error`, `on_error_kwargs` and the other options.
    func backgroundWorker(_ parts: [EncodedValues]) throws -> LuaValue {
        guard parts.count == 6 else { throw CallError(message: "background_worker: bad arguments") }
        let kindHint = try parts[0].decode().first?.stringValue
        let opts = try parts[5].decode().first?.tableValue ?? LuaTable()
        var name = opts["name"].stringValue
        let label = name.map { "background_worker '\($0)'" } ?? "background_worker"
        for (key, _) in opts.entries {
            guard let k = key.stringValue, Self.workerOptions.contains(k) else {
                throw CallError(
                    message: "\(label): unknown option '\(key.stringValue ?? "\(key)")' (see the README's list of "
                        + "worker parameters)")
            }
        }
        if !opts["name"].isNil && name == nil { throw CallError(message: "\(label): name must be a string") }
        if name?.isEmpty == true { name = nil }
        let inProcess = opts["mp"].boolValue
        if !opts["process_result"].isNil && !inProcess {
            throw CallError(message: "\(label): process_result is for mp=true workers (their executor runs in a child)")
        }
        let asyncRunner = try self.asyncRunner(opts, kindHint: kindHint, label: label)
        let priority = try taskPriority(opts["priority"], function: label)
        let queue = opts["q"].isNil ? opts["queue"] : opts["q"]
        let event = opts["e"].boolValue || opts["event"].boolValue
        let timed = !opts["interval"].isNil || !opts["delay"].isNil || !opts["delay_before"].isNil
        let kind: String
        switch kindHint == "async" ? nil : kindHint {
        case .some(let hint):
            kind = hint
        case .none:
            if !queue.isNil && queue != .boolean(false) {
                kind = "queue"
            } else if event {
                kind = "event"
            } else if timed {
                kind = "interval"
            } else {
                kind = "plain"
            }
        }
        func seconds(_ key: String) throws -> Double? {
            let v = opts[LuaValue.string(LuaString(key))]
            if v.isNil { return nil }
            guard let d = v.doubleValue, d.isFinite, d >= 0 else {
                throw CallError(message: "\(label): \(key) must be a number of seconds >= 0")
            }
            return d
        }
        let onError: EncodedValues?
        if (try parts[3].decode().first ?? .nil).isNil {
            onError = nil
        } else {
            let handler = try parts[3].decode().first ?? .nil
            guard case .function = handler else { throw CallError(message: "\(label): on_error must be a function") }
            onError = try self.concatenated([parts[3], parts[4]])
        }
        let runTimeout = try seconds("run_timeout")
        if let runTimeout, runTimeout <= 0 {
            throw CallError(message: "\(label): run_timeout must be a number of seconds > 0")
        }
        let cancelOnTimeout: Bool
        switch opts["cancel_on_timeout"] {
        case .nil: cancelOnTimeout = false
        case .boolean(let b): cancelOnTimeout = b
        default: throw CallError(message: "\(label): cancel_on_timeout must be a boolean")
        }
        if cancelOnTimeout && runTimeout == nil {
            throw CallError(message: "\(label): cancel_on_timeout needs run_timeout")
        }
        // Workers made from the same function share one copy of its bytes.
        let executor = self.asyncState.functions.share(parts[1])
        var process: LuaWorker.Execution.InProcess? = nil
        if inProcess {
            if runTimeout != nil {
                throw CallError(
                    message: "\(label): run_timeout is for thread workers; an mp worker takes timeout= (its child is "
                        + "killed when an execution takes longer)")
            }
            var processResult: EncodedValues? = nil
            switch opts["process_result"] {
            case .nil: break
            case .function(let f): processResult = try EncodedValues([.function(f)])
            default: throw CallError(message: "\(label): process_result must be a function")
            }
            var timeout: Double? = nil
            if !opts["timeout"].isNil {
                guard let t = opts["timeout"].doubleValue, t.isFinite, t > 0 else {
                    throw CallError(message: "\(label): timeout must be a number of seconds > 0")
                }
                timeout = t
            }
            let function = TaskFunction(
                id: self.makeFunctionID(), function: executor, priority: priority, delay: nil, name: name,
                callback: nil, inProcess: true, processTimeout: timeout)
            process = .init(executor: function, processResult: processResult)
        } else if !opts["timeout"].isNil {
            throw CallError(message: "\(label): timeout= is for mp=true workers; use run_timeout= in the thread pool")
        }
        let execution = LuaWorker.Execution(
            core: self, function: executor, onError: onError, runTimeout: runTimeout, cancelOnTimeout: cancelOnTimeout,
            process: process, async: asyncRunner)
        let hooks = Worker.Hooks(
            onStart: { worker in try execution.open(worker) },
            onStop: { worker in execution.close(worker) },
            onError: { worker, error in execution.report(worker, error) })
        let worker: Worker
        do {
            switch kind {
            case "plain":
                worker = try BackgroundWorker(
                    supervisor: self.supervisor, name: name, priority: priority, hooks: hooks
                ) { w in try execution.run(w, item: nil) }
            case "interval":
                worker = try IntervalWorker(
                    supervisor: self.supervisor, name: name, priority: priority, interval: try seconds("interval"),
                    delay: try seconds("delay"), delayBefore: try seconds("delay_before"), hooks: hooks
                ) { w in try execution.run(w, item: nil) }
            case "event":
                worker = try EventWorker(supervisor: self.supervisor, name: name, priority: priority, hooks: hooks) {
                    w in try execution.run(w, item: nil)
                }
            case "queue":
                let order: QueueOrder
                switch queue {
                case .string(let s) where s.string == "priority": order = .priority
                case .string(let s) where s.string == "lifo": order = .lifo
                case .string(let s) where s.string == "fifo": order = .fifo
                case .nil, .boolean(true): order = .fifo
                default:
                    throw CallError(message: "\(label): q must be true, \"fifo\", \"priority\" or \"lifo\"")
                }
                var maxQueue: Int? = nil
                if !opts["max_queue"].isNil {
                    guard let m = opts["max_queue"].intValue, m > 0 else {
                        throw CallError(message: "\(label): max_queue must be an integer > 0")
                    }
                    maxQueue = Int(m)
                }
                worker = try QueueWorker<EncodedValues>(
                    supervisor: self.supervisor, name: name, priority: priority, order: order, maxQueue: maxQueue,
                    hooks: hooks
                ) { item, w in try execution.run(w, item: item) }
            default:
                throw CallError(message: "\(label): unknown worker kind '\(kind)'")
            }
        } catch let error as WorkerError {
            throw CallError(message: "\(label): \(error.message)")
        }
        let luaWorker = LuaWorker(core: self, worker: worker, execution: execution, object: parts[2])
        return .handle(LuaHandle(object: luaWorker, kind: Int32(ATLKind.worker)))
    }

    /// One buffer holding the values of `parts`, in order.
    func concatenated(_ parts: [EncodedValues]) throws -> EncodedValues {
        try EncodedValues(concatenating: parts)
    }

    /// The methods of a worker handle.
    func workerCall(_ fn: Int, _ lw: LuaWorker, _ call: WorkerCallArguments) throws -> [LuaValue] {
        let worker = lw.worker
        switch fn {
        case ATLFunction.workerStart, ATLFunction.workerRestart:
            if fn == ATLFunction.workerRestart {
                worker.stop(wait: .forever)
            }
            try lw.start(call.first())
            return []
        case ATLFunction.workerStop:
            let opts = try call.decoded().first?.tableValue ?? LuaTable()
            // From an aloop's thread a stop never waits: what it would wait for may need that thread.
            let wait = Aloop.current == nil ? try stopWait(opts["wait"]) : StopWait.none
            let stopped = worker.stop(wait: wait, drain: opts["drain"].boolValue)
            if !stopped, case .seconds = wait {
                // The execution did not return by the deadline: cancel it (see "Cancelling running Lua code").
                lw.execution.cancelAtDeadline(worker)
            }
            return []
        case ATLFunction.workerIsActive: return [.boolean(worker.isActive)]
        case ATLFunction.workerIsStarted: return [.boolean(worker.isStarted)]
        case ATLFunction.workerIsStopped: return [.boolean(worker.isStopped)]
        case ATLFunction.workerPut:
            guard let queue = lw.queue else {
                throw CallError(
                    message: "put: worker '\(worker.name)' is a \(worker.kind.rawValue) worker, not a queue worker")
            }
            guard let item = call.takeAll() else { throw CallError(message: "put: an item expected") }
            var priority = 0
            if queue.order == .priority {
                guard let p = try item.decode().first?.tableValue?[1].intValue else {
                    throw CallError(
                        message: "put: worker '\(worker.name)' has a priority queue: put {priority, value} with an "
                            + "integer priority")
                }
                priority = Int(truncatingIfNeeded: p)
            }
            if Aloop.current != nil {
                // A full queue never blocks an aloop's thread: the item is added anyway.
                queue.putWithoutWaiting(item, priority: priority)
            } else {
                queue.put(item, priority: priority)
            }
            return []
        case ATLFunction.workerTrigger:
            let force = try call.decoded().first?.tableValue?["force"].boolValue ?? false
            switch worker {
            case let event as EventWorker: return [.boolean(event.trigger(force: force))]
            case let interval as IntervalWorker: return [.boolean(interval.trigger())]
            default:
                throw CallError(
                    message: "trigger: worker '\(worker.name)' is a \(worker.kind.rawValue) worker; only event and "
                        + "interval workers can be triggered")
            }
        default:
            return [Self.workerProperty(worker, call.property)]
        }
    }

    /// Property `id` (one of ``ATLWorkerProperty``) of a worker handle; nil for another id (0: a name that the
    /// shim does not know).
    static func workerProperty(_ worker: Worker, _ id: Int) -> LuaValue {
        // Each field alone: the counters are atomics that an executor may read at every run
        // (`kw._worker.executions`), with no lock and no copy of the worker's whole state.
        switch id {
        case ATLWorkerProperty.name: return .string(LuaString(worker.name))
        case ATLWorkerProperty.kind:
            return .string(LuaString(worker.kind == .background ? "plain" : worker.kind.rawValue))
        case ATLWorkerProperty.state: return .string(LuaString(worker.info().state.rawValue))
        case ATLWorkerProperty.priority: return .integer(Int64(worker.priority.rawValue))
        case ATLWorkerProperty.executions: return .integer(Int64(worker.executions))
        case ATLWorkerProperty.errors: return .integer(Int64(worker.errors))
        case ATLWorkerProperty.skipped: return .integer(Int64(worker.skippedTicks))
        case ATLWorkerProperty.queueDepth: return .integer(Int64(worker.queueDepth))
        default: return .nil
        }
    }
}

extension LuaWorker {
    convenience init(core: HostCore, worker: Worker, execution: Execution, object: EncodedValues) {
        self.init(core: core, worker: worker, execution: execution)
        self.execution.object.withLock { $0 = object }
    }

    /// `w:start(args)`: the executor's `kw` is a copy of `args` with `o`, `_worker` and `_name`; `_name`,
    /// `_priority`, `_interval`, `_delay` and `_delay_before` override the worker's own.
    func start(_ args: EncodedValues?) throws {
        // An interval worker's ticks count from here, not from the end of the decoding below.
        let calledAt = Monotonic.now()
        var overrides = LuaTable()
        if let args, let table = try? args.decode().first?.tableValue {
            overrides = table
        }
        let name = overrides["_name"].stringValue
        let priority = overrides["_priority"].isNil ? nil : try taskPriority(overrides["_priority"], function: "start")
        let keywordName = name ?? self.worker.name
        let nilValue = try EncodedValues([.nil])
        let object = self.execution.object.withLock { $0 } ?? nilValue
        let keywords = try EncodedValues(concatenating: [
            args ?? nilValue, object,
            try EncodedValues([.handle(LuaHandle(object: self, kind: Int32(ATLKind.worker)))]),
            try EncodedValues([.string(LuaString(keywordName))]),
        ])
        self.execution.keywords.withLock { $0 = keywords }
        do {
            if let async = self.execution.async, self.worker.isStopped {
                try self.worker.bind(to: try async.aloop(override: overrides["_loop"]))
            }
            if let interval = self.worker as? IntervalWorker {
                func seconds(_ key: String) throws -> Double? {
                    let v = overrides[LuaValue.string(LuaString(key))]
                    if v.isNil { return nil }
                    guard let d = v.doubleValue, d.isFinite, d >= 0 else {
                        throw CallError(message: "start: \(key) must be a number of seconds >= 0")
                    }
                    return d
                }
                try interval.start(
                    interval: try seconds("_interval"), delay: try seconds("_delay"),
                    delayBefore: try seconds("_delay_before"), name: name, priority: priority,
                    calledAt: calledAt)
            } else {
                try self.worker.start(name: name, priority: priority)
            }
        } catch let error as WorkerError {
            throw CallError(message: "start: \(error.message)")
        }
    }
}
