public import ATasker
import ATaskerLua
import Glibc
public import Logging
import Synchronization

/// When a ``PeriodicJob`` puts its job.
public enum PeriodicSchedule: Sendable, Hashable {
    /// Once per period of this many seconds: the periods are the wall clock's multiples of it since the Unix epoch.
    case every(Double)
    /// At each fire time of a cron schedule (a period runs from one fire time to the next).
    case cron(CronSchedule)
}

/// A job put into a durable queue once per period across every host that declares it, and the store takes each
/// period's slot once, so hosts that start, stop and restart at different times still put one job per period. A
/// host that starts within a period whose job no host has put yet puts it at once; after a wall-clock step forward
/// it puts the latest period's job only (never one per period skipped), and after a step back none until the clock
/// passes the last one put.
///
/// It is a ``BackgroundWorker`` of the supervisor that sleeps (holding no thread) until the next period.
public final class PeriodicJob: Sendable {
    /// The supervisor's worker.
    public let worker: BackgroundWorker
    /// When it puts its job.
    public let schedule: PeriodicSchedule
    private let progress: Progress

    private final class Progress: Sendable {
        let puts = Atomic<Int>(0)
        let lastPeriod = Atomic<Int64>(Int64.min)
        let nextRunAt = Mutex<Double?>(nil)
    }

    /// Makes a schedule of a period of `every` seconds (not started); see ``init(supervisor:store:name:schedule:job:logger:)``.
    public convenience init(
        supervisor: TaskSupervisor, store: any JobStore, name: String, every: Double, job: NewJob, logger: Logger
    ) throws {
        try self.init(
            supervisor: supervisor, store: store, name: name, schedule: .every(every), job: job, logger: logger)
    }

    /// Makes the schedule (not started).
    /// - Parameters:
    ///   - name: The schedule's name in the queue (the slot's key) and the worker's name (`periodic:` + queue + name).
    ///     A cron schedule keeps its slot apart from an `every` one of the same name (as `NAME@cron`), since their
    ///     periods are counted differently: an `every` period by its index, a cron one by its fire time.
    ///   - schedule: Every N seconds (> 0), or a cron schedule.
    ///   - job: The job to put each period (its `runAt` is replaced by the period's start).
    public init(
        supervisor: TaskSupervisor, store: any JobStore, name: String, schedule: PeriodicSchedule, job: NewJob,
        logger: Logger
    ) throws {
        if case .every(let every) = schedule, !(every >= 0.001 && every <= 1e9) {
            throw JobStoreError(
                "periodic job '\(name)': every must be a number of seconds from 0.001 to 1e9, got \(every)")
        }
        let progress = Progress()
        self.progress = progress
        self.schedule = schedule
        let slot: String
        if case .cron = schedule { slot = name + "@cron" } else { slot = name }
        self.worker = try BackgroundWorker(supervisor: supervisor, name: "periodic:\(job.queue):\(name)") { _ in
            let now = wallClock()
            // This period (its key and start), and when the next one starts.
            let current: (period: Int64, start: Double)?
            let next: Double?
            switch schedule {
            case .every(let every):
                let period = Int64((now / every).rounded(.down))
                current = (period, Double(period) * every)
                next = Double(period + 1) * every
            case .cron(let cron):
                current = cron.previous(atOrBefore: now).map { (Int64($0), $0) }
                next = cron.next(after: now)
            }
            progress.nextRunAt.withLock { $0 = next }
            if let current, progress.lastPeriod.load(ordering: .relaxed) < current.period {
                var this = job
                this.runAt = current.start
                do {
                    // A store call blocks its thread (SQLite's busy wait, a PostgreSQL round trip or outage):
                    // not one of Swift concurrency's few cooperative threads.
                    let put = try await onThreadOfItsOwn { [this] in
                        try store.putPeriodic(name: slot, period: current.period, job: this)
                    }
                    if let id = put {
                        progress.puts.wrappingAdd(1, ordering: .relaxed)
                        logger.debug(
                            "periodic job '\(name)': period \(current.period) put as job \(id) in '\(job.queue)'")
                    }
                    progress.lastPeriod.store(current.period, ordering: .relaxed)
                } catch {
                    logger.error(
                        "periodic job '\(name)': putting period \(current.period) into \(store.url) failed: \(error); trying again in 1 s"
                    )
                    try await Task.sleep(for: .seconds(1))
                    return
                }
            }
            guard let next else {
                logger.error("periodic job '\(name)': the schedule \(schedule) has no fire time in the next 30 years")
                try await Task.sleep(for: .seconds(86400))
                return
            }
            // At most an hour at a time: the wall clock may be stepped meanwhile.
            try await Task.sleep(for: .seconds(min(3600, max(0.001, next - wallClock()))))
        }
    }

    /// The last period this host has handled (put, or found put by another host), or `nil` before the first: the
    /// index of an `every` period (its start over `every`), or the fire time of a cron one (seconds since the epoch).
    public var lastPeriod: Int64? {
        let p = self.progress.lastPeriod.load(ordering: .relaxed)
        return p == Int64.min ? nil : p
    }

    /// How many periods this host put (the others were put by other hosts).
    public var periodsPut: Int { self.progress.puts.load(ordering: .relaxed) }

    /// When the next period starts (wall clock, seconds since the epoch), as this host last computed it; `nil`
    /// before it first ran.
    public var nextRunAt: Double? { self.progress.nextRunAt.withLock { $0 } }
}

/// Runs a blocking call on a thread of its own and suspends (holding no thread) until it returns.
func onThreadOfItsOwn<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, any Error>) in
        _ = spawnThread { continuation.resume(with: Result { try body() }) }
    }
}
