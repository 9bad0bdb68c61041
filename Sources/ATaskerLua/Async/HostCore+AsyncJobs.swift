import ATasker
import Synchronization

/// The async job schedulers of a host, by name, and the default one.
struct AsyncJobSchedulers: Sendable {
    var byName: [String: AsyncJobScheduler] = [:]
    var defaultScheduler: AsyncJobScheduler?
    var nextJob = 1
}

/// Async jobs from Lua: `s:create_async_job_scheduler`, `s:create_async_job`, `s:cancel_async_job`, and the
/// methods of schedulers and jobs.
extension HostCore {
    /// Calls about async job schedulers and jobs.
    func asyncJobCall(_ fn: Int, _ object: AnyObject?, _ arguments: WorkerCallArguments) throws -> CallResults {
        switch fn {
        case ATLAsyncFunction.supCreateScheduler:
            let args = try arguments.decoded()
            guard let name = args.first?.stringValue, !name.isEmpty else {
                throw CallError(message: "bad argument #1 to 'create_async_job_scheduler' (a name expected)")
            }
            let opts = args.count > 1 ? (args[1].tableValue ?? LuaTable()) : LuaTable()
            try Self.checkOptions(opts, ["aloop", "default", "start"], "create_async_job_scheduler")
            let aloop = try self.aloop(forLoop: opts["aloop"], function: "create_async_job_scheduler")
            let scheduler = AsyncJobScheduler(name: name, aloop: aloop)
            try self.asyncState.schedulers.withLock { schedulers in
                guard schedulers.byName[name] == nil else {
                    throw CallError(message: "create_async_job_scheduler: a scheduler called '\(name)' exists already")
                }
                schedulers.byName[name] = scheduler
                if opts["default"].boolValue || schedulers.defaultScheduler == nil {
                    schedulers.defaultScheduler = scheduler
                }
            }
            return .values([.handle(LuaHandle(object: scheduler, kind: ATLAsyncKind.scheduler))])
        case ATLAsyncFunction.supCreateAsyncJob, ATLAsyncFunction.schedCreateJob:
            // the options but target= and args=, then the target and its arguments in one buffer (see
            // create_job in the shim): the functions stay bytes, and what they share stays shared
            guard let all = arguments.takeAll() else { throw CallError(message: "create_async_job: options expected") }
            let (options, call) = try all.splitFirst()
            guard case .table(var opts) = try options.decode().first ?? .nil else {
                throw CallError(message: "create_async_job: options expected: {target = fn, interval = seconds, ...}")
            }
            if let call, try call.kind == .function {
                opts["target"] = .boolean(true)
            } else if let call, try call.kind != .nil {
                opts["target"] = .boolean(false)  // refused below as not a function
            }
            let target = call
            let scheduler: AsyncJobScheduler
            if let given = object as? AsyncJobScheduler {
                scheduler = given
            } else {
                scheduler = try self.scheduler(opts["scheduler"], function: "create_async_job")
            }
            let job = try self.createJob(opts, target: target, on: scheduler)
            return .values([.handle(LuaHandle(object: job, kind: ATLAsyncKind.job))])
        case ATLAsyncFunction.supCancelAsyncJob, ATLAsyncFunction.schedCancelJob:
            let args = try arguments.decoded()
            let value =
                fn == ATLAsyncFunction.schedCancelJob ? (args.first ?? .nil) : (args.first?.tableValue?["job"] ?? .nil)
            guard case .handle(let handle) = value, let job = handle.object as? AsyncJob else {
                throw CallError(message: "cancel_async_job: job= must be a job that create_async_job returned")
            }
            job.cancel()
            return .none
        case ATLAsyncFunction.schedIndex:
            guard let scheduler = object as? AsyncJobScheduler else { throw CallError(message: "not a scheduler") }
            switch try arguments.decoded().first?.stringValue ?? "" {
            case "name": return .values([.string(LuaString(scheduler.name))])
            case "aloop": return .values([Self.aloopHandle(scheduler.aloop)])
            case "jobs":
                let count = scheduler.jobs.withLock { jobs in
                    jobs.count { $0.job?.active.load(ordering: .relaxed) ?? false }
                }
                return .values([.integer(Int64(count))])
            default: return .values([.nil])
            }
        case ATLAsyncFunction.jobCancel:
            guard let job = object as? AsyncJob else { throw CallError(message: "not an async job") }
            job.cancel()
            return .none
        case ATLAsyncFunction.jobIndex:
            guard let job = object as? AsyncJob else { throw CallError(message: "not an async job") }
            switch try arguments.decoded().first?.stringValue ?? "" {
            case "name": return .values([.string(LuaString(job.name))])
            case "interval": return .values([.number(job.interval)])
            case "runs": return .values([.integer(Int64(job.runs.load(ordering: .relaxed)))])
            case "skipped": return .values([.integer(Int64(job.skipped.load(ordering: .relaxed)))])
            case "failures": return .values([.integer(Int64(job.failures.load(ordering: .relaxed)))])
            case "active": return .values([.boolean(job.active.load(ordering: .relaxed))])
            default: return .values([.nil])
            }
        default:
            throw CallError(message: "unknown host function \(fn)")
        }
    }

    /// The scheduler that `value` names (a handle or a name), or the default one (made on the default aloop on
    /// first use) for nil.
    private func scheduler(_ value: LuaValue, function: String) throws -> AsyncJobScheduler {
        switch value {
        case .handle(let handle):
            guard let scheduler = handle.object as? AsyncJobScheduler else {
                throw CallError(message: "\(function): scheduler= must be a scheduler or a scheduler's name")
            }
            return scheduler
        case .string(let name):
            guard let scheduler = self.asyncState.schedulers.withLock({ $0.byName[name.string] }) else {
                throw CallError(message: "\(function): no async job scheduler called '\(name.string)'")
            }
            return scheduler
        case .nil:
            if let existing = self.asyncState.schedulers.withLock({ $0.defaultScheduler }) {
                return existing
            }
            let aloop = try self.aloop(forLoop: .nil, function: function)
            return self.asyncState.schedulers.withLock { schedulers in
                if let existing = schedulers.defaultScheduler { return existing }
                let scheduler = AsyncJobScheduler(name: "default", aloop: aloop)
                schedulers.byName["default"] = scheduler
                schedulers.defaultScheduler = scheduler
                return scheduler
            }
        default:
            throw CallError(message: "\(function): scheduler= must be a scheduler or a scheduler's name")
        }
    }

    /// `create_async_job{target=fn, interval=, args=, number=, name=}` on `scheduler`; `target` holds the function
    /// and its arguments, encoded together.
    private func createJob(_ opts: LuaTable, target: EncodedValues?, on scheduler: AsyncJobScheduler) throws
        -> AsyncJob
    {
        try Self.checkOptions(opts, ["target", "interval", "args", "number", "name", "scheduler"], "create_async_job")
        guard opts["target"] == .boolean(true), let target else {
            throw CallError(message: "create_async_job: target= must be a function")
        }
        guard
            let interval = try LuaArguments.seconds(
                opts["interval"], "create_async_job", "interval", lower: .atLeast(LuaArguments.minInterval))
        else {
            throw CallError(message: "create_async_job: interval= must be a number of seconds > 0")
        }
        let number = try LuaArguments.integer(opts["number"], "create_async_job", "number", in: 1...Int64.max)
        guard opts["args"].isNil else {  // a list comes with the target
            throw CallError(message: "create_async_job: args= must be a list of arguments")
        }
        let name =
            try LuaArguments.string(opts["name"], "create_async_job", "name")
            ?? "job-\(self.asyncState.schedulers.withLock { s in defer { s.nextJob += 1 }; return s.nextJob })"
        let job = AsyncJob(
            core: self, aloop: scheduler.aloop, name: name, interval: interval,
            function: target, arguments: nil, number: number)
        guard job.start() else {
            throw CallError(
                message: "create_async_job: aloop '\(scheduler.aloop.name)' of scheduler '\(scheduler.name)' is not "
                    + "running")
        }
        scheduler.jobs.withLock { jobs in
            jobs.removeAll { !($0.job?.active.load(ordering: .relaxed) ?? false) }
            jobs.append(.init(job: job))
        }
        return job
    }
}

/// `tostring` of schedulers and jobs.
func describeAsyncJob(_ object: AnyObject?) -> String? {
    switch object {
    case let scheduler as AsyncJobScheduler:
        return "atasker.AsyncJobScheduler '\(scheduler.name)' (aloop '\(scheduler.aloop.name)')"
    case let job as AsyncJob:
        let state = job.active.load(ordering: .relaxed) ? "active" : "cancelled"
        return "atasker.AsyncJob '\(job.name)' (every \(job.interval) s, \(state))"
    default:
        return nil
    }
}
