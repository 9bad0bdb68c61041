import ATasker
public import ATaskerLua
import Glibc
public import Logging
import Synchronization

/// The Lua module `atasker.jobs`: durable queues in a store, their workers and periodic jobs.
///
/// ```swift
/// let host = LuaHost(supervisor: supervisor, logger: logger)
/// try JobsModule.install(on: host, defaultStore: "sqlite:///var/lib/app/jobs.db", logger: logger)
/// try host.run(file: "workers.lua")   // where Lua code does `local jobs = require "atasker.jobs"`
/// ```
///
/// It is made of what any app can register: a Swift function in module `host` (`atasker.jobs`) and a Lua module
/// that wraps them in objects (``LuaHost/register(module:source:)``); the core does not know of it.
public enum JobsModule {
    /// Registers `atasker.jobs` and its functions on `host`. Call it before the first script runs (and in the
    /// `register` closure of ``LuaHost/runChildIfNeeded(register:)``, so process-pool children have it too).
    /// - Parameter defaultStore: The store of `jobs.queue(name)` without a `store=` option (the command line's
    ///   `--store` or `ATASKER_STORE`).
    public static func install(on host: LuaHost, defaultStore: String? = nil, logger: Logger) throws {
        let module = JobsFunctions(host: host, defaultStore: defaultStore, logger: logger)
        let functions: [String: @Sendable ([LuaValue]) throws -> LuaValue] = [
            "queue": module.queue, "put": module.put, "put_many": module.putMany, "get": module.get,
            "cancel": module.cancel, "info": module.info, "worker": module.worker, "periodic": module.periodic,
            "control": module.control, "enter": module.enter, "leave": module.leave,
        ]
        // One function in module `host` (each registered function is a handle in every state): the Lua module
        // calls it with the operation's name first.
        try host.register("atasker.jobs") { args in
            guard let op = args.first?.stringValue, let body = functions[op] else {
                throw argumentError("atasker.jobs: unknown operation \(args.first ?? .nil)")
            }
            return try body(Array(args.dropFirst()))
        }
        try host.register(module: "atasker.jobs", source: jobsLuaSource)
    }
}

/// Stores opened in this process, by URL: one connection per file, migrated once.
enum JobStores {
    private static let open = Mutex<[String: any JobStore]>([:])

    /// The store at `url`, opened and migrated on first use.
    static func store(_ url: String) throws -> any JobStore {
        try Self.open.withLock { stores in
            if let store = stores[url] { return store }
            let store: any JobStore
            if SQLiteJobStore.path(of: url) != nil {
                store = try SQLiteJobStore(url: url)
            } else if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
                #if Postgres
                    store = try PostgresJobStore(url: url)
                #else
                    throw JobStoreError(
                        "store '\(url)': this build has no PostgreSQL driver (it was built without the package's "
                            + "Postgres trait); build with it, or use sqlite:///path/file.db")
                #endif
            } else {
                throw JobStoreError(
                    "store '\(url)': unknown kind of store URL; write sqlite:///absolute/path.db (or sqlite:relative.db), "
                        + "or postgres://user:password@host:port/database"
                )
            }
            try store.migrate()
            stores[url] = store
            return store
        }
    }
}

/// The Swift side of `atasker.jobs`.
final class JobsFunctions: Sendable {
    let host: LuaHost
    let defaultStore: String?
    let logger: Logger
    private let workers = Mutex<[String: JobWorker]>([:])
    private let schedules = Mutex<[String: PeriodicJob]>([:])
    /// For each worker, the threads that run one of its jobs now (and how many: aloop coroutines interleave).
    private let insideJobs = Mutex<[String: [UInt: Int]]>([:])

    init(host: LuaHost, defaultStore: String?, logger: Logger) {
        self.host = host
        self.defaultStore = defaultStore
        self.logger = logger
    }

    // MARK: - Queues

    static let queueOptions = ["store", "keep"]

    /// `jobs.queue(name, {store=, keep=})` → `{store = url, name = name, keep = seconds}`.
    func queue(_ args: [LuaValue]) throws -> LuaValue {
        let f = "jobs.queue"
        guard let name = args.first?.stringValue, !name.isEmpty else {
            throw argumentError("\(f): argument #1 must be the queue's name (a non-empty string)")
        }
        let opts = try options(args.count > 1 ? args[1] : .nil, f, Self.queueOptions)
        let url: String
        if let given = opts["store"].stringValue {
            url = given
        } else if !opts["store"].isNil {
            throw argumentError("\(f): option 'store' must be a store URL string (sqlite:///path/file.db)")
        } else if let fallback = self.defaultStore {
            url = fallback
        } else {
            throw argumentError(
                "\(f)('\(name)'): no store: pass {store = 'sqlite:///path/file.db'}, or run atasker-lua with "
                    + "--store URL (or ATASKER_STORE=URL)")
        }
        let keep = try seconds(opts["keep"], f, "keep", minimum: 0) ?? 86400
        _ = try self.store(url)
        return ["store": .string(LuaString(url)), "name": .string(LuaString(name)), "keep": .number(keep)]
    }

    private func store(_ url: String) throws -> any JobStore {
        do {
            return try JobStores.store(url)
        } catch let error as JobStoreError {
            throw argumentError(error.message)
        }
    }

    static let putOptions = ["priority", "run_at", "delay", "max_attempts", "unique_key", "timeout"]

    /// `jobs.put(url, queue, keep, value, opts)` → `{id, added}`.
    func put(_ args: [LuaValue]) throws -> LuaValue {
        let f = "put"
        let (store, queue, keep) = try self.queueArguments(args)
        let value = args.count > 3 ? args[3] : .nil
        let opts = try options(args.count > 4 ? args[4] : .nil, f, Self.putOptions)
        let payload: [UInt8]
        do {
            payload = try JobPayload.encode(value, what: "\(f): the job's value")
        } catch let error as JobStoreError {
            throw argumentError(error.message)
        }
        let job = try self.newJob(queue: queue, keep: keep, payload: payload, opts, f)
        let outcome: PutOutcome
        do {
            outcome = try store.put([job])[0]
        } catch {
            throw argumentError("\(f): the store \(store.url) failed: \(error)")
        }
        switch outcome {
        case .added(let id): return [.integer(id), true]
        case .duplicate(let id): return [.integer(id), false]
        }
    }

    /// `jobs.put_many(url, queue, keep, values, opts)` → `{ids, added}`: every value in one transaction.
    func putMany(_ args: [LuaValue]) throws -> LuaValue {
        let f = "put_many"
        let (store, queue, keep) = try self.queueArguments(args)
        guard let list = (args.count > 3 ? args[3] : .nil).tableValue else {
            throw argumentError("\(f): argument #1 must be a list of values ({v1, v2, ...})")
        }
        let values = list.array
        guard values.count == list.entries.count else {
            throw argumentError("\(f): argument #1 must be a list (keys 1..n, no holes), got other keys")
        }
        let opts = try options(args.count > 4 ? args[4] : .nil, f, Self.putOptions)
        var batch: [NewJob] = []
        batch.reserveCapacity(values.count)
        for (i, value) in values.enumerated() {
            let payload: [UInt8]
            do {
                payload = try JobPayload.encode(value, what: "\(f): value #\(i + 1)")
            } catch let error as JobStoreError {
                throw argumentError(error.message)
            }
            batch.append(try self.newJob(queue: queue, keep: keep, payload: payload, opts, f))
        }
        if batch.contains(where: { $0.uniqueKey != nil }) && batch.count > 1 {
            throw argumentError("\(f): unique_key names one job: put such jobs one by one with q:put")
        }
        let outcomes: [PutOutcome]
        do {
            outcomes = try store.put(batch)
        } catch {
            throw argumentError("\(f): the store \(store.url) failed: \(error)")
        }
        var ids = LuaTable()
        var added = LuaTable()
        for (i, outcome) in outcomes.enumerated() {
            switch outcome {
            case .added(let id):
                ids[.integer(Int64(i + 1))] = .integer(id)
                added[.integer(Int64(i + 1))] = true
            case .duplicate(let id):
                ids[.integer(Int64(i + 1))] = .integer(id)
                added[.integer(Int64(i + 1))] = false
            }
        }
        return [.table(ids), .table(added)]
    }

    private func newJob(queue: String, keep: Double, payload: [UInt8], _ opts: LuaTable, _ f: String) throws -> NewJob {
        let priority = try integer(opts["priority"], f, "priority", range: -1_000_000_000...1_000_000_000) ?? 100
        let maxAttempts = try integer(opts["max_attempts"], f, "max_attempts", range: 1...1_000_000) ?? 5
        let timeout = try seconds(opts["timeout"], f, "timeout", minimum: 0, positive: true)
        let delay = try seconds(opts["delay"], f, "delay", minimum: 0)
        let runAt = try number(opts["run_at"], f, "run_at")
        if delay != nil && runAt != nil {
            throw argumentError("\(f): give run_at (a time, as atasker.time()) or delay (seconds from now), not both")
        }
        var uniqueKey: String? = nil
        if !opts["unique_key"].isNil {
            guard let key = opts["unique_key"].stringValue, !key.isEmpty else {
                throw argumentError("\(f): option 'unique_key' must be a non-empty string")
            }
            uniqueKey = key
        }
        return NewJob(
            queue: queue, payload: payload, priority: Int(priority), runAt: runAt ?? (wallClock() + (delay ?? 0)),
            maxAttempts: Int(maxAttempts), uniqueKey: uniqueKey, timeout: timeout, keep: keep)
    }

    /// The store, queue name and keep time that the Lua module passes first.
    private func queueArguments(_ args: [LuaValue]) throws -> (any JobStore, String, Double) {
        guard args.count >= 3, let url = args[0].stringValue, let queue = args[1].stringValue,
            let keep = args[2].doubleValue
        else {
            throw argumentError("call it as a method of a queue made by jobs.queue(name, opts): q:put(value)")
        }
        return (try self.store(url), queue, keep)
    }

    /// `jobs.get(url, id)` → the job as a table, or nil.
    func get(_ args: [LuaValue]) throws -> LuaValue {
        guard args.count >= 2, let url = args[0].stringValue else { throw argumentError("get_job: bad call") }
        let id = try integer(args[1], "get_job", "argument #1 (the job's id)", range: 1...Int64.max)
        guard let id else { throw argumentError("get_job: argument #1 must be a job id (an integer)") }
        let store = try self.store(url)
        guard let record = try store.job(id: id) else { return .nil }
        var t = LuaTable()
        t["id"] = .integer(record.id)
        t["queue"] = .string(LuaString(record.queue))
        t["state"] = .string(LuaString(record.state.rawValue))
        t["priority"] = .integer(Int64(record.priority))
        t["attempts"] = .integer(Int64(record.attempts))
        t["max_attempts"] = .integer(Int64(record.maxAttempts))
        t["run_at"] = .number(record.runAt)
        t["created_at"] = .number(record.createdAt)
        t["started_at"] = record.startedAt.map { .number($0) } ?? .nil
        t["finished_at"] = record.finishedAt.map { .number($0) } ?? .nil
        t["unique_key"] = record.uniqueKey.map { .string(LuaString($0)) } ?? .nil
        t["timeout"] = record.timeout.map { .number($0) } ?? .nil
        t["error"] = record.error.map { .string(LuaString($0)) } ?? .nil
        t["traceback"] = record.traceback.map { .string(LuaString($0)) } ?? .nil
        do {
            t["value"] = try JobPayload.decode(record.payload)
        } catch {
            t["value_error"] = .string(LuaString("its stored value cannot be decoded: \(error)"))
        }
        if let result = record.result {
            do {
                t["result"] = try JobPayload.decode(result)
            } catch {
                t["result_error"] = .string(LuaString("its stored result cannot be decoded: \(error)"))
            }
        }
        return .table(t)
    }

    /// `jobs.cancel(url, id)` → whether the job was cancelled.
    func cancel(_ args: [LuaValue]) throws -> LuaValue {
        guard args.count >= 2, let url = args[0].stringValue else { throw argumentError("cancel: bad call") }
        guard let id = try integer(args[1], "cancel", "argument #1 (the job's id)", range: 1...Int64.max) else {
            throw argumentError("cancel: argument #1 must be a job id (an integer)")
        }
        return .boolean(try self.store(url).cancel(id: id))
    }

    /// `jobs.info(url, queue)` → `{ready=, later=, running=, next_run_at=}`.
    func info(_ args: [LuaValue]) throws -> LuaValue {
        guard args.count >= 2, let url = args[0].stringValue, let queue = args[1].stringValue else {
            throw argumentError("info: bad call")
        }
        let work = try self.store(url).work(queue: queue)
        return [
            "ready": .integer(Int64(work.ready)), "later": .integer(Int64(work.later)),
            "running": .integer(Int64(work.running)), "next_run_at": work.nextRunAt.map { .number($0) } ?? .nil,
        ]
    }

    // MARK: - Workers

    static let workerOptions = ["name", "concurrency", "lease", "poll", "backoff", "backoff_max", "stop_when_empty"]

    /// `jobs.worker(url, queue, starter, opts)` → the worker's name.
    func worker(_ args: [LuaValue]) throws -> LuaValue {
        let f = "jobs.worker"
        guard args.count >= 3, let url = args[0].stringValue, let queue = args[1].stringValue else {
            throw argumentError("\(f): bad call")
        }
        let opts = try options(args.count > 3 ? args[3] : .nil, f, Self.workerOptions)
        var o = JobWorkerOptions()
        o.concurrency = Int(try integer(opts["concurrency"], f, "concurrency", range: 1...100_000) ?? 10)
        o.lease = try seconds(opts["lease"], f, "lease", minimum: 0, positive: true) ?? o.lease
        o.poll = try seconds(opts["poll"], f, "poll", minimum: 0, positive: true) ?? o.poll
        o.backoff = try seconds(opts["backoff"], f, "backoff", minimum: 0) ?? o.backoff
        o.backoffMax = try seconds(opts["backoff_max"], f, "backoff_max", minimum: 0) ?? max(o.backoffMax, o.backoff)
        if o.backoffMax < o.backoff {
            throw argumentError("\(f): backoff_max (\(o.backoffMax)) must not be below backoff (\(o.backoff))")
        }
        switch opts["stop_when_empty"] {
        case .nil: break
        case .boolean(let b): o.stopWhenEmpty = b
        default: throw argumentError("\(f): option 'stop_when_empty' must be a boolean")
        }
        let name = opts["name"].stringValue ?? "jobs:\(queue)"
        let store = try self.store(url)
        let worker: JobWorker
        do {
            worker = try JobWorker(
                host: self.host, store: store, queue: queue, starter: args[2], name: name, options: o,
                logger: self.logger)
        } catch let error as WorkerError {
            throw argumentError("\(f): \(error) (give each worker of a queue a name of its own: name = '...')")
        }
        self.workers.withLock { $0[name] = worker }
        return .string(LuaString(name))
    }

    static let periodicOptions = ["name", "every", "cron", "tz", "value", "priority", "max_attempts", "timeout"]

    /// `jobs.periodic(url, queue, keep, opts)` → the schedule's worker name.
    func periodic(_ args: [LuaValue]) throws -> LuaValue {
        let f = "jobs.periodic"
        let (store, queue, keep) = try self.queueArguments(args)
        let opts = try options(args.count > 3 ? args[3] : .nil, f, Self.periodicOptions)
        guard let name = opts["name"].stringValue, !name.isEmpty else {
            throw argumentError("\(f): option 'name' must be the schedule's name (a non-empty string)")
        }
        let every = try seconds(opts["every"], f, "every", minimum: 0.001)
        let schedule: PeriodicSchedule
        switch (every, opts["cron"]) {
        case (let every?, .nil):
            guard opts["tz"].isNil else {
                throw argumentError("\(f) \"\(name)\": option 'tz' goes with 'cron' (an 'every' period is zoneless)")
            }
            schedule = .every(every)
        case (nil, .nil):
            throw argumentError(
                "\(f) \"\(name)\": give option 'every' (seconds in a period) or 'cron' (a schedule such as "
                    + "\"*/5 * * * *\")")
        case (nil, let cron):
            guard let text = cron.stringValue else {
                throw argumentError(
                    "\(f) \"\(name)\": option 'cron' must be a string such as \"0 3 * * *\", got \(cron)")
            }
            let zone: CronSchedule.Zone
            switch opts["tz"] {
            case .nil: zone = .utc
            case let tz where tz.stringValue?.lowercased() == "utc": zone = .utc
            case let tz where tz.stringValue?.lowercased() == "local": zone = .local
            case let tz: throw argumentError("\(f) \"\(name)\": option 'tz' must be \"utc\" or \"local\", got \(tz)")
            }
            do {
                schedule = .cron(try CronSchedule(text, zone: zone))
            } catch {
                throw argumentError("\(f) \"\(name)\": \(error.message)")
            }
        case (.some, _):
            throw argumentError("\(f) \"\(name)\": give 'every' or 'cron', not both")
        }
        let payload: [UInt8]
        do {
            payload = try JobPayload.encode(opts["value"], what: "\(f): value")
        } catch let error as JobStoreError {
            throw argumentError(error.message)
        }
        var jobOpts = LuaTable()
        for key in ["priority", "max_attempts", "timeout"] { jobOpts[key] = opts[key] }
        let job = try self.newJob(queue: queue, keep: keep, payload: payload, jobOpts, f)
        let periodic: PeriodicJob
        do {
            periodic = try PeriodicJob(
                supervisor: self.host.supervisor, store: store, name: name, schedule: schedule, job: job,
                logger: self.logger)
        } catch let error as WorkerError {
            throw argumentError("\(f): \(error)")
        }
        let workerName = periodic.worker.name
        self.schedules.withLock { $0[workerName] = periodic }
        return .string(LuaString(workerName))
    }

    /// `jobs.enter(name)`: this thread runs a job of worker `name`.
    func enter(_ args: [LuaValue]) throws -> LuaValue {
        let name = args.first?.stringValue ?? ""
        let thread = UInt(pthread_self())
        self.insideJobs.withLock { $0[name, default: [:]][thread, default: 0] += 1 }
        return .nil
    }

    /// `jobs.leave(name)`: the job has returned.
    func leave(_ args: [LuaValue]) throws -> LuaValue {
        let name = args.first?.stringValue ?? ""
        let thread = UInt(pthread_self())
        self.insideJobs.withLock { all in
            let n = (all[name]?[thread] ?? 1) - 1
            all[name]?[thread] = n > 0 ? n : nil
        }
        return .nil
    }

    /// Whether the calling thread runs a job of worker `name`, or is an aloop's (where nothing waits for a job).
    private func mustNotWait(for name: String) -> Bool {
        if Aloop.current != nil { return true }
        let thread = UInt(pthread_self())
        return self.insideJobs.withLock { ($0[name]?[thread] ?? 0) > 0 }
    }

    /// `jobs.control(name, action, opts)`: start, stop, is_active, info of a worker or schedule.
    func control(_ args: [LuaValue]) throws -> LuaValue {
        guard args.count >= 2, let name = args[0].stringValue, let action = args[1].stringValue else {
            throw argumentError("bad call")
        }
        let jobWorker = self.workers.withLock { $0[name] }
        let schedule = self.schedules.withLock { $0[name] }
        guard let worker = jobWorker?.worker ?? schedule?.worker else {
            throw argumentError("no durable-queue worker named '\(name)'")
        }
        switch action {
        case "start":
            do {
                try worker.start()
            } catch {
                throw argumentError("start: worker '\(name)': \(error)")
            }
            return .boolean(true)
        case "stop":
            let opts = try options(args.count > 2 ? args[2] : .nil, "stop", ["wait"])
            let wait: StopWait
            switch opts["wait"] {
            case .nil, .boolean(true): wait = .forever
            case .boolean(false): wait = .none
            default:
                guard let s = try seconds(opts["wait"], "stop", "wait", minimum: 0) else { wait = .forever; break }
                wait = .seconds(s)
            }
            // From inside one of its own jobs (or on an aloop), a stop only asks: waiting would wait for itself.
            return .boolean(worker.stop(wait: self.mustNotWait(for: name) ? .none : wait))
        case "is_active":
            return .boolean(worker.isActive)
        case "info":
            var t = LuaTable()
            t["name"] = .string(LuaString(name))
            t["state"] = .string(LuaString(worker.state.rawValue))
            if let counts = jobWorker?.counts {
                t["claimed"] = .integer(Int64(counts.claimed))
                t["completed"] = .integer(Int64(counts.completed))
                t["failed"] = .integer(Int64(counts.failed))
                t["dead"] = .integer(Int64(counts.dead))
                t["released"] = .integer(Int64(counts.released))
                t["lost"] = .integer(Int64(counts.lost))
                t["running"] = .integer(Int64(counts.running))
            }
            if let schedule {
                t["periods_put"] = .integer(Int64(schedule.periodsPut))
                t["period"] = schedule.lastPeriod.map { .integer($0) } ?? .nil
                t["next_run_at"] = schedule.nextRunAt.map { .number($0) } ?? .nil
            }
            return .table(t)
        default:
            throw argumentError("unknown action '\(action)'")
        }
    }
}

// MARK: - Arguments

/// An error that the Lua module raises at its caller's line (a plain message, no position of its own).
func argumentError(_ message: String) -> LuaError {
    LuaError(code: .runtime, fullMessage: message)
}

/// The options table (or an empty one for nil), refusing keys not in `known`.
func options(_ value: LuaValue, _ f: String, _ known: [String]) throws -> LuaTable {
    switch value {
    case .nil: return LuaTable()
    case .table(let t):
        for key in t.entries.keys {
            guard let name = key.stringValue, known.contains(name) else {
                throw argumentError(
                    "\(f): unknown option \(key) (options are: \(known.joined(separator: ", ")))")
            }
        }
        return t
    default:
        throw argumentError("\(f): the options must be a table, got \(value)")
    }
}

func number(_ value: LuaValue, _ f: String, _ name: String) throws -> Double? {
    if value.isNil { return nil }
    guard let d = value.doubleValue else {
        throw argumentError("\(f): option '\(name)' must be a number, got \(value)")
    }
    guard d.isFinite, abs(d) <= 1e15 else {
        throw argumentError("\(f): option '\(name)' must be a finite number of seconds, got \(value)")
    }
    return d
}

func seconds(_ value: LuaValue, _ f: String, _ name: String, minimum: Double, positive: Bool = false) throws
    -> Double?
{
    if value.isNil { return nil }
    guard let d = value.doubleValue, d.isFinite, d >= minimum, d <= 1e9, !positive || d > 0 else {
        let bound = positive ? "> 0" : ">= \(minimum == minimum.rounded() ? String(Int(minimum)) : String(minimum))"
        throw argumentError("\(f): option '\(name)' must be a number of seconds \(bound) and <= 1e9, got \(value)")
    }
    return d
}

func integer(_ value: LuaValue, _ f: String, _ name: String, range: ClosedRange<Int64>) throws -> Int64? {
    if value.isNil { return nil }
    guard let i = value.intValue, range.contains(i) else {
        throw argumentError(
            "\(f): \(name.hasPrefix("argument") ? name : "option '\(name)'") must be an integer from "
                + "\(range.lowerBound) to \(range.upperBound), got \(value)")
    }
    return i
}
