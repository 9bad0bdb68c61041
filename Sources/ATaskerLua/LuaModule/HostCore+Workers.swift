import ATasker
import Logging
import Synchronization

/// `atasker.background_worker` and the methods of a worker handle, on the Swift side of the trampoline.
extension HostCore {
    /// The options that `background_worker{...}` accepts besides `fn`/`run`, `o`, `on_error`, `on_error_kwargs`.
    static let workerOptions: Set<String> = [
        "name", "priority", "poll_delay", "interval", "i", "delay", "delay_before", "q", "queue", "e", "event",
        "max_queue", "async", "loop", "mp", "process_result", "supervisor", "run_timeout", "cancel_on_timeout",
        "timeout", "memory_limit",
    ]

    /// `background_worker(fn | {...})`: the arguments are `kind` (from a named constructor, or nil), the executor,
    /// `o`, `on_error`, `on_error_kwargs`, `process_result` and the other options, each encoded on its own. The
    /// functions stay bytes: they are never decoded here and encoded again.
    func backgroundWorker(_ parts: [EncodedValues]) throws -> LuaValue {
        guard parts.count == 7 else { throw CallError(message: "background_worker: bad arguments") }
        let kindHint = try parts[0].decode().first?.stringValue
        var opts = try parts[6].decode().first?.tableValue ?? LuaTable()
        let processResultValue = try parts[5].kind
        if processResultValue != .nil { opts["process_result"] = .boolean(true) }
        var name = opts["name"].stringValue
        let label = name.map { "background_worker '\($0)'" } ?? "background_worker"
        try LuaArguments.refuseUnknown(
            opts, ["fn", "run", "o", "on_error", "on_error_kwargs"] + Self.workerOptions.sorted(), label)
        name = try LuaArguments.string(opts["name"], label, "name")
        if name?.isEmpty == true { name = nil }
        // `i=` is atasker's short name of `interval=`.
        if !opts["i"].isNil {
            guard opts["interval"].isNil else { throw CallError(message: "\(label): give interval= or i=, not both") }
            opts["interval"] = opts["i"]
            opts["i"] = .nil
        }
        let inProcess = try LuaArguments.boolean(opts["mp"], label, "mp") ?? false
        _ = try LuaArguments.boolean(opts["async"], label, "async")
        _ = try LuaArguments.seconds(opts["poll_delay"], label, "poll_delay")
        if !opts["process_result"].isNil && !inProcess {
            throw CallError(message: "\(label): process_result is for mp=true workers (their executor runs in a child)")
        }
        let memoryLimit = try MemorySize.option(opts["memory_limit"], label) ?? 0
        let asyncRunner = try self.asyncRunner(opts, kindHint: kindHint, label: label)
        let priority = try taskPriority(opts["priority"], function: label)
        let queue = opts["q"].isNil ? opts["queue"] : opts["q"]
        let event =
            try LuaArguments.boolean(opts["e"], label, "e") ?? LuaArguments.boolean(opts["event"], label, "event")
            ?? false
        let timed = !opts["interval"].isNil || !opts["delay"].isNil || !opts["delay_before"].isNil
        let queued = !queue.isNil && queue != .boolean(false)
        if [queued, event, timed].filter({ $0 }).count > 1 {
            throw CallError(
                message: "\(label): q=, e= and interval=/delay=/delay_before= choose different kinds of worker; "
                    + "give one of them")
        }
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
            try LuaArguments.seconds(
                opts[LuaValue.string(LuaString(key))], label, key,
                lower: key == "interval" ? .atLeast(LuaArguments.minInterval) : .zero)
        }
        let onError: EncodedValues?
        switch try parts[3].kind {
        case .nil:
            onError = nil
        case .function, .true:
            // `true`: on_error travels with the executor, in one value (see background_worker in the shim)
            onError = try self.concatenated([parts[3], parts[4]])
        default:
            throw CallError(message: "\(label): on_error must be a function")
        }
        let runTimeout = try LuaArguments.seconds(opts["run_timeout"], label, "run_timeout", lower: .positive)
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
            switch processResultValue {
            case .nil: break
            case .function: processResult = parts[5]
            default: throw CallError(message: "\(label): process_result must be a function")
            }
            let timeout = try LuaArguments.seconds(opts["timeout"], label, "timeout", lower: .positive)
            let function = TaskFunction(
                id: self.makeFunctionID(), function: executor, priority: priority, delay: nil, name: name,
                callback: nil, inProcess: true, processTimeout: timeout, memoryLimit: memoryLimit)
            process = .init(executor: function, processResult: processResult)
        } else if !opts["timeout"].isNil {
            throw CallError(message: "\(label): timeout= is for mp=true workers; use run_timeout= in the thread pool")
        }
        let execution = LuaWorker.Execution(
            core: self, function: executor, onError: onError, runTimeout: runTimeout, cancelOnTimeout: cancelOnTimeout,
            process: process, async: asyncRunner, memoryLimit: memoryLimit)
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
                let maxQueue = try LuaArguments.integer(opts["max_queue"], label, "max_queue", in: 1...Int64.max)
                if execution.runsBatches {
                    worker = try QueueWorker<LuaQueueItem>(
                        supervisor: self.supervisor, name: name, priority: priority, order: order, maxQueue: maxQueue,
                        hooks: hooks, executor: { item, w in try execution.run(w, item: item) },
                        batchExecutor: { items, w in execution.runBatch(w, items: items) })
                } else {
                    worker = try QueueWorker<LuaQueueItem>(
                        supervisor: self.supervisor, name: name, priority: priority, order: order, maxQueue: maxQueue,
                        hooks: hooks
                    ) { item, w in try execution.run(w, item: item) }
                }
            default:
                throw CallError(message: "\(label): unknown worker kind '\(kind)'")
            }
        } catch let error as WorkerError {
            throw CallError(message: "\(label): \(error.message)")
        }
        let luaWorker = LuaWorker(worker: worker, execution: execution, object: parts[2])
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
            let method = fn == ATLFunction.workerRestart ? "restart" : "start"
            let parts = try call.takeAll()?.split() ?? []
            if parts.count > 1 {
                throw CallError(
                    message: "\(method): positional arguments are not passed to the executor; give one table, e.g. "
                        + "w:\(method){1, 2, key = 'v'} (the executor gets it as kw: kw[1], kw.key)")
            }
            let args = try parts.first.flatMap { part -> EncodedValues? in
                switch part.firstTag {
                case .none, CodecTag.nil: return nil
                case CodecTag.table: return part
                default: throw CallError(message: "\(method): the arguments must be one table (or nothing)")
                }
            }
            if fn == ATLFunction.workerRestart {
                worker.stop(wait: .forever)
            }
            try lw.start(args)
            return []
        case ATLFunction.workerStop:
            let opts = try call.decoded().first?.tableValue ?? LuaTable()
            try LuaArguments.refuseUnknown(opts, ["wait", "drain"], "stop")
            let drain = try LuaArguments.boolean(opts["drain"], "stop", "drain") ?? false
            // From an aloop's thread a stop never waits: what it would wait for may need that thread.
            let wait = try stopWait(opts["wait"]).unlessOnAloop
            let stopped = worker.stop(wait: wait, drain: drain)
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
            // (a scalar item of a FIFO or LIFO queue went to the host's fastPut: this is any other)
            guard let encoded = call.takeAll() else { throw CallError(message: "put: an item expected") }
            guard encoded.valueCount == 1 else {
                throw CallError(
                    message: "put: one item expected, got \(encoded.valueCount) values (put a table to pass several)")
            }
            let item = LuaQueueItem(encoded: encoded)
            var priority = 0
            if queue.order == .priority {
                guard let p = item.priority else {
                    throw CallError(
                        message: "put: worker '\(worker.name)' has a priority queue: put {priority, value} with an "
                            + "integer priority")
                }
                priority = p
            }
            if Aloop.current != nil {
                // A full queue never blocks an aloop's thread: the item is added anyway.
                queue.putWithoutWaiting(item, priority: priority)
            } else {
                queue.put(item, priority: priority)
            }
            return []
        case ATLFunction.workerTrigger:
            let opts = try call.decoded().first?.tableValue ?? LuaTable()
            try LuaArguments.refuseUnknown(opts, ["force"], "trigger")
            let force = try LuaArguments.boolean(opts["force"], "trigger", "force") ?? false
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
    convenience init(worker: Worker, execution: Execution, object: EncodedValues) {
        self.init(worker: worker, execution: execution)
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
        // Keys without a leading underscore are the executor's own; those with one are the worker's overrides.
        let overrideKeys = ["_name", "_priority", "_interval", "_delay", "_delay_before", "_loop"]
        for (key, _) in overrides.entries {
            guard let k = key.stringValue, k.hasPrefix("_"), !overrideKeys.contains(k) else { continue }
            throw CallError(
                message: "start: unknown option '\(k)' (options are: \(overrideKeys.joined(separator: ", ")); keys "
                    + "without a leading underscore are the executor's arguments)")
        }
        let name = try LuaArguments.string(overrides["_name"], "start", "_name")
        let priority = try LuaArguments.priority(overrides["_priority"], "start", "_priority")
        let keywordName = name ?? self.worker.name
        let nilValue = try EncodedValues([.nil])
        let object = self.execution.object.withLock { $0 } ?? nilValue
        // (the handle, `kw._worker`, is added when the worker's state opens: see `Execution.keywords`)
        let head = try EncodedValues(concatenating: [args ?? nilValue, object])
        let nameValue = try EncodedValues([.string(LuaString(keywordName))])
        self.execution.keywords.withLock { $0 = (head, nameValue) }
        do {
            if let async = self.execution.async, self.worker.isStopped {
                try self.worker.bind(to: try async.aloop(override: overrides["_loop"]))
            }
            if let interval = self.worker as? IntervalWorker {
                func seconds(_ key: String) throws -> Double? {
                    try LuaArguments.seconds(
                        overrides[LuaValue.string(LuaString(key))], "start", key,
                        lower: key == "_interval" ? .atLeast(LuaArguments.minInterval) : .zero)
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
