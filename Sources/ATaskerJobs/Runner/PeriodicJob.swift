public import ATasker
import ATaskerLua
import Glibc
public import Logging
import Synchronization

/// A job put into a durable queue once per period across every host that declares it: the periods are the wall
/// clock's multiples of `every` seconds since the Unix epoch, and the store takes each period's slot once, so hosts
/// that start, stop and restart at different times still put one job per period. A host that starts within a
/// period whose job no host has put yet puts it at once.
///
/// It is a ``BackgroundWorker`` of the supervisor that sleeps (holding no thread) until the next period.
public final class PeriodicJob: Sendable {
    /// The supervisor's worker.
    public let worker: BackgroundWorker
    private let progress: Progress

    private final class Progress: Sendable {
        let puts = Atomic<Int>(0)
        let lastPeriod = Atomic<Int64>(Int64.min)
    }

    /// Makes the schedule (not started).
    /// - Parameters:
    ///   - name: The schedule's name in the queue (the slot's key) and the worker's name (`periodic:` + name).
    ///   - every: Seconds in a period (> 0).
    ///   - job: The job to put each period (its `runAt` is replaced by the period's start).
    public init(
        supervisor: TaskSupervisor, store: any JobStore, name: String, every: Double, job: NewJob, logger: Logger
    ) throws {
        let progress = Progress()
        self.progress = progress
        self.worker = try BackgroundWorker(supervisor: supervisor, name: "periodic:\(job.queue):\(name)") { _ in
            let now = wallClock()
            let period = Int64((now / every).rounded(.down))
            if progress.lastPeriod.load(ordering: .relaxed) < period {
                var this = job
                this.runAt = Double(period) * every
                do {
                    // A store call blocks its thread (SQLite's busy wait, a PostgreSQL round trip or outage):
                    // not one of Swift concurrency's few cooperative threads.
                    let put = try await onThreadOfItsOwn { [this] in
                        try store.putPeriodic(name: name, period: period, job: this)
                    }
                    if let id = put {
                        progress.puts.wrappingAdd(1, ordering: .relaxed)
                        logger.debug("periodic job '\(name)': period \(period) put as job \(id) in '\(job.queue)'")
                    }
                    progress.lastPeriod.store(period, ordering: .relaxed)
                } catch {
                    logger.error(
                        "periodic job '\(name)': putting period \(period) into \(store.url) failed: \(error); trying again in 1 s"
                    )
                    try await Task.sleep(for: .seconds(1))
                    return
                }
            }
            let next = Double(period + 1) * every
            try await Task.sleep(for: .seconds(max(0.001, next - wallClock())))
        }
    }

    /// The last period this host has handled (put, or found put by another host), or `nil` before the first.
    public var lastPeriod: Int64? {
        let p = self.progress.lastPeriod.load(ordering: .relaxed)
        return p == Int64.min ? nil : p
    }

    /// How many periods this host put (the others were put by other hosts).
    public var periodsPut: Int { self.progress.puts.load(ordering: .relaxed) }
}

/// Runs a blocking call on a thread of its own and suspends (holding no thread) until it returns.
func onThreadOfItsOwn<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, any Error>) in
        _ = spawnThread { continuation.resume(with: Result { try body() }) }
    }
}
