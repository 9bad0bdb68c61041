public import ATasker
public import ATaskerLua
import Glibc
public import Logging
import Synchronization

/// A worker of the supervisor that takes the jobs of one durable queue and runs them with a Lua task starter (what
/// `atasker.background_task(fn, opts)` returned: the thread pool, an aloop or the process pool).
///
/// It is a ``BackgroundWorker`` of the supervisor (so it keeps the supervisor active, and a stop of the supervisor
/// stops it), whose one long execution waits, holding no thread, while the runner's own thread claims and acks. A
/// stop stops the claims; the jobs that run go on until they end (they are acked) or, when the supervisor cancels
/// them at its stop deadline, are given back to the queue at once.
public final class JobWorker: Sendable {
    /// The supervisor's worker.
    public let worker: BackgroundWorker
    let runner: JobRunner

    /// Makes the worker (not started).
    /// - Parameters:
    ///   - host: The host whose starter runs the jobs.
    ///   - store: The queue's store (migrated).
    ///   - queue: The queue's name.
    ///   - starter: What `atasker.background_task(fn, opts)` returned; each job runs `fn(value, job)`.
    ///   - name: A worker name unique in the supervisor.
    /// - Throws: ``WorkerError`` when the name is taken.
    public init(
        host: LuaHost, store: any JobStore, queue: String, starter: LuaValue, name: String,
        options: JobWorkerOptions = JobWorkerOptions(), logger: Logger
    ) throws {
        let runner = JobRunner(
            store: store, queue: queue, host: host, starter: starter, options: options, workerName: name,
            logger: logger)
        self.runner = runner
        self.worker = try BackgroundWorker(supervisor: host.supervisor, name: name) { worker in
            let ended = Atomic<Bool>(false)
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    runner.run {
                        ended.store(true, ordering: .releasing)
                        continuation.resume()
                    }
                    // A cancel that came before `run` (which clears an old stop request) is not lost.
                    if Task.isCancelled { runner.requestStop() }
                }
            } onCancel: {
                runner.requestStop()
            }
            // The runner ended by itself (stop_when_empty): the worker stops too.
            if ended.load(ordering: .acquiring) && !Task.isCancelled { worker.stop(wait: .none) }
        }
    }

    /// The counters since the worker was made.
    public var counts: JobWorkerCounts { self.runner.counts.withLock { $0 } }
}
