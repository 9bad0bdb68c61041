import ATasker
public import ATaskerLua
import Glibc
public import Logging
import Synchronization

/// How a worker of a durable queue takes and runs its jobs.
public struct JobWorkerOptions: Sendable, Hashable {
    /// Jobs of this worker that run at once (on this host). Claims take up to the free slots in one transaction.
    public var concurrency: Int = 10
    /// Seconds of each lease; a running job's lease is renewed every third of it. A host that stops renewing
    /// (it died or stalled) loses its jobs to other hosts after this time.
    public var lease: Double = 30
    /// Seconds between looks at the store when nothing woke the worker (jobs put by other processes, jobs whose
    /// time comes, leases that ran out).
    public var poll: Double = 1
    /// The first retry's delay in seconds; each further attempt doubles it, up to ``backoffMax``, with jitter
    /// (each delay is drawn between half and all of it).
    public var backoff: Double = 1
    public var backoffMax: Double = 3600
    /// Stop the worker once its queue has nothing pending or running (on any host).
    public var stopWhenEmpty = false

    /// The defaults.
    public init() {}
}

/// Counters of a worker of a durable queue, since it was made.
public struct JobWorkerCounts: Sendable, Hashable {
    public var claimed = 0
    public var completed = 0
    public var failed = 0
    public var dead = 0
    /// Jobs given back at a stop (not counted as attempts).
    public var released = 0
    /// Leases lost (the host stalled past them, or the job was cancelled): their acks were refused.
    public var lost = 0
    /// Jobs running now.
    public var running = 0
}

/// Claims the jobs of one queue and runs them through a Lua task starter, with leases renewed while they run.
///
/// A thread of its own loops: renew the leases held, claim up to the free slots, start each job as a task of the
/// starter (thread pool, aloop or process pool), sleep until a wake-up (a put in this process, a slot freed after a
/// full claim), a poll, or the next renewal. Each task's end acks its job: complete, fail (retry with backoff, or
/// dead) or, when the worker stops, release. An ack whose lease was lost is refused by the store.
final class JobRunner: Sendable {
    let store: any JobStore
    let queue: String
    let host: LuaHost
    let starter: LuaValue
    let options: JobWorkerOptions
    let owner: String
    let workerName: String
    let logger: Logger
    private let state = ConditionLock(RunnerState())
    private let timedStarters = Mutex<[Double: LuaValue]>([:])
    private let acks: AckFlusher
    let counts = Mutex(JobWorkerCounts())

    struct RunnerState: Sendable {
        var inflight: [Int64: Inflight] = [:]
        var running = false
        var stopping = false
        var woken = false
        var ends: [@Sendable () -> Void] = []
    }

    struct Inflight: Sendable {
        var lease: Lease
        var lost = false
        /// Its run completed and its ack waits for the flusher's commit: it holds its lease (renewed) but no slot.
        var acking = false
    }

    /// Slots free for a claim: `concurrency` jobs may run; completed jobs whose acks wait for their commit do not
    /// count, so claims do not wait for the commits, up to as many again (then a slow store holds the claims back).
    static func freeSlots(_ s: RunnerState, concurrency: Int) -> Int {
        let acking = s.inflight.values.reduce(0) { $0 + ($1.acking ? 1 : 0) }
        return max(0, min(concurrency - (s.inflight.count - acking), 2 * concurrency - s.inflight.count))
    }

    init(
        store: any JobStore, queue: String, host: LuaHost, starter: LuaValue, options: JobWorkerOptions,
        workerName: String, logger: Logger
    ) {
        self.store = store
        self.queue = queue
        self.host = host
        self.starter = starter
        self.options = options
        self.workerName = workerName
        self.logger = logger
        self.owner = "\(hostName()):\(getpid())/\(workerName)"
        self.acks = AckFlusher(supervisor: host.supervisor, name: workerName)
        self.acks.runner = self
    }

    /// Starts the loop on a thread of its own; `onEnd` runs once it has ended (after a stop, every job of this
    /// run acked or released).
    func run(onEnd: @escaping @Sendable () -> Void) {
        let startNow = self.state.withLock { s -> Bool in
            s.ends.append(onEnd)
            if s.running { return false }
            s.running = true
            s.stopping = false
            return true
        }
        guard startNow else { return }
        let subscription = self.store.subscribe(queue: self.queue) { [weak self] in self?.wake() }
        spawnThread {
            self.loop()
            subscription.cancel()
            let ends = self.state.withLock { s -> [@Sendable () -> Void] in
                s.running = false
                defer { s.ends = [] }
                return s.ends
            }
            for end in ends { end() }
        }
    }

    /// Asks the loop to stop: no more claims; it ends once the running jobs are acked or released.
    func requestStop() {
        self.state.withLock { $0.stopping = true }
        self.state.broadcast()
    }

    private func wake() {
        // A wake-up that is pending already needs no second broadcast (the watcher of another process's commits
        // may call this up to a thousand times a second).
        let first = self.state.withLock { s -> Bool in
            defer { s.woken = true }
            return !s.woken
        }
        if first { self.state.broadcast() }
    }

    private func loop() {
        let renewEvery = max(self.options.lease / 3, 0.01)
        var nextRenew = Monotonic.now() + renewEvery
        var nextPoll = 0.0  // claim at once
        var fullClaim = false
        var failures = 0
        let lowWater = max(1, self.options.concurrency / 4)
        while true {
            // Decide under the lock; talk to the store outside it.
            self.state.lock()
            var claimNow = false
            var free = 0
            while true {
                let s = self.state.lockedValue
                if s.stopping && s.inflight.isEmpty {
                    self.state.unlock()
                    return
                }
                let now = Monotonic.now()
                free = s.stopping ? 0 : Self.freeSlots(s, concurrency: self.options.concurrency)
                // With a backlog (the last claim was full), claim again once a quarter of the slots are free, so
                // claims stay batches instead of one job per finished job.
                // A wake-up (a put, another process's commit) is for a worker that found the queue drained; with a
                // backlog the low-water mark decides.
                if free > 0 && ((s.woken && !fullClaim) || now >= nextPoll || (fullClaim && free >= lowWater)) {
                    claimNow = true
                    break
                }
                if now >= nextRenew { break }
                let until = free > 0 ? min(nextPoll, nextRenew) : nextRenew
                _ = self.state.wait(until: until)
            }
            self.state.lockedValue.woken = false
            let held = self.state.lockedValue.inflight.values.filter { !$0.lost }.map(\.lease)
            self.state.unlock()

            if Monotonic.now() >= nextRenew {
                nextRenew = Monotonic.now() + renewEvery
                self.renew(held)
            }
            guard claimNow else { continue }
            do {
                let claimed = try self.store.claim(
                    queue: self.queue, limit: free, leaseSeconds: self.options.lease, owner: self.owner)
                failures = 0
                fullClaim = claimed.count == free
                nextPoll = Monotonic.now() + self.options.poll
                if !claimed.isEmpty {
                    self.state.withLock { s in
                        for job in claimed { s.inflight[job.id] = Inflight(lease: job.lease) }
                    }
                    self.counts.withLock {
                        $0.claimed += claimed.count
                        $0.running += claimed.count
                    }
                    for job in claimed { self.start(job) }
                }
                if !fullClaim {
                    let work = try self.store.work(queue: self.queue)
                    if let next = work.nextRunAt {
                        nextPoll = min(nextPoll, Monotonic.now() + max(0, next - wallClock()))
                    }
                    if self.options.stopWhenEmpty && work.isEmpty
                        && self.state.withLock({ $0.inflight.isEmpty })
                    {
                        self.logger.debug("worker '\(self.workerName)': queue '\(self.queue)' is empty; it stops")
                        self.requestStop()
                    }
                }
            } catch {
                failures += 1
                fullClaim = false
                let delay = min(self.options.poll * Double(1 << min(failures, 6)), 30)
                nextPoll = Monotonic.now() + delay
                self.logger.error(
                    "worker '\(self.workerName)': the store \(self.store.url) failed: \(error); trying again in \(delay) s"
                )
            }
        }
    }

    private func renew(_ leases: [Lease]) {
        guard !leases.isEmpty else { return }
        do {
            let lost = try self.store.renew(leases, leaseSeconds: self.options.lease)
            guard !lost.isEmpty else { return }
            self.state.withLock { s in
                for lease in lost where s.inflight[lease.id]?.lease == lease { s.inflight[lease.id]?.lost = true }
            }
            for lease in lost {
                self.logger.warning(
                    "worker '\(self.workerName)': the lease of \(lease) was lost (this host stalled past it, or the job was cancelled): its run goes on, but its ack will be refused"
                )
            }
        } catch {
            self.logger.error("worker '\(self.workerName)': renewing leases in \(self.store.url) failed: \(error)")
        }
    }

    /// Starts one claimed job as a task of the starter.
    private func start(_ job: ClaimedJob) {
        let value: LuaValue
        do {
            value = try JobPayload.decode(job.payload)
        } catch {
            self.finish(
                job, .dead("job \(job.id) of queue '\(self.queue)': its stored value cannot be decoded: \(error)"))
            return
        }
        let info: LuaValue = [
            "id": .integer(job.id), "attempt": .integer(Int64(job.attempt)),
            "max_attempts": .integer(Int64(job.maxAttempts)), "queue": .string(LuaString(self.queue)),
            "created_at": .number(job.createdAt), "priority": .integer(Int64(job.priority)),
        ]
        let task: SupervisorTask
        do {
            task = try self.host.start(try self.starter(timeout: job.timeout), arguments: [value, info])
        } catch {
            self.finish(job, .failed("job \(job.id): it could not start: \(error)", traceback: nil))
            return
        }
        task.onFinish { [self] task in
            self.finish(job, self.outcome(of: task, job: job))
        }
    }

    private func starter(timeout: Double?) throws -> LuaValue {
        guard let timeout else { return self.starter }
        if let cached = self.timedStarters.withLock({ $0[timeout] }) { return cached }
        let made = try self.host.starter(self.starter, timeout: timeout)
        self.timedStarters.withLock { cache in
            if cache.count > 64 { cache.removeAll() }
            cache[timeout] = made
        }
        return made
    }

    enum Outcome {
        case completed([UInt8])
        case failed(String, traceback: String?)
        case dead(String)
        case release
    }

    private func outcome(of task: SupervisorTask, job: ClaimedJob) -> Outcome {
        let stopping = self.state.withLock { $0.stopping }
        if task.status == .canceled { return .release }
        do {
            // What the module's wrapper returns: {true, result} or {false, message, traceback}.
            let wrapped = try self.host.result(ofFinished: task).tableValue ?? LuaTable()
            guard wrapped[1] == .boolean(true) else {
                let message = wrapped[2].stringValue ?? "the job failed with no message"
                return .failed(message, traceback: wrapped[3].stringValue)
            }
            do {
                return .completed(try JobPayload.encode(wrapped[2], what: "the result"))
            } catch {
                return .dead("job \(job.id): its result cannot be stored: \(error)")
            }
        } catch let error as LuaError {
            if error.code == .canceled && stopping { return .release }
            var message = error.message
            if error.code == .canceled, let timeout = job.timeout {
                message = "job \(job.id) timed out after \(timeout) s: \(message)"
            }
            return .failed(message, traceback: error.traceback)
        } catch {
            if stopping { return .release }
            return .failed("\(error)", traceback: nil)
        }
    }

    private func finish(_ job: ClaimedJob, _ outcome: Outcome) {
        let lease = job.lease
        do {
            switch outcome {
            case .completed(let result):
                // Its slot is free now; its lease is held (and renewed) until the ack's commit ends it.
                self.state.withLock { s in
                    if s.inflight[lease.id]?.lease == lease { s.inflight[lease.id]?.acking = true }
                }
                self.state.broadcast()
                self.acks.add(job, result: result)
                return  // the ack's commit ends the job's bookkeeping
            case .failed(let message, let traceback):
                let retryAt = wallClock() + self.backoff(attempt: job.attempt)
                switch try self.store.fail(lease, error: message, traceback: traceback, retryAt: retryAt) {
                case .retry(let at):
                    self.counts.withLock { $0.failed += 1 }
                    self.logger.warning(
                        "worker '\(self.workerName)': job \(job.id) failed (attempt \(job.attempt) of \(job.maxAttempts)); it runs again in \(seconds(at - wallClock())): \(message)"
                    )
                case .dead:
                    self.counts.withLock {
                        $0.failed += 1
                        $0.dead += 1
                    }
                    self.logger.error(
                        "worker '\(self.workerName)': job \(job.id) is dead after attempt \(job.attempt) of \(job.maxAttempts): \(message)"
                    )
                case .refused:
                    self.refused(lease, "its failure")
                }
            case .dead(let message):
                if try self.store.fail(lease, error: message, traceback: nil, retryAt: nil) == .refused {
                    self.refused(lease, "its failure")
                } else {
                    self.counts.withLock { $0.dead += 1 }
                    self.logger.error("worker '\(self.workerName)': \(message); the job is dead")
                }
            case .release:
                let n = try self.store.release([lease])
                self.counts.withLock { $0.released += n }
                if n > 0 {
                    self.logger.info(
                        "worker '\(self.workerName)': job \(job.id) was given back to queue '\(self.queue)' at the stop (the run does not count as an attempt)"
                    )
                }
            }
        } catch {
            self.logger.error(
                "worker '\(self.workerName)': recording the end of job \(job.id) in \(self.store.url) failed: \(error); its lease runs out and it runs again"
            )
        }
        self.ended([lease])
    }

    /// The jobs of `leases` are acked (or their ack failed): their slots are free.
    private func ended(_ leases: [Lease]) {
        self.counts.withLock { $0.running -= leases.count }
        self.state.withLock { s in
            for lease in leases where s.inflight[lease.id]?.lease == lease { s.inflight[lease.id] = nil }
            // The last job of a worker that stops when the queue is empty: look at the queue now, not at the poll.
            if s.inflight.isEmpty && self.options.stopWhenEmpty { s.woken = true }
        }
        self.state.broadcast()
    }

    /// Commits a batch of acks of completed jobs (on the flusher's task).
    fileprivate func commit(_ batch: [(job: ClaimedJob, result: [UInt8])]) {
        do {
            let accepted = try self.store.complete(batch.map { ($0.job.lease, $0.result) })
            var completed = 0
            for (item, ok) in zip(batch, accepted) {
                if ok { completed += 1 } else { self.refused(item.job.lease, "its result") }
            }
            self.counts.withLock { $0.completed += completed }
        } catch {
            self.logger.error(
                "worker '\(self.workerName)': recording the end of \(batch.count) jobs in \(self.store.url) failed: \(error); their leases run out and they run again"
            )
        }
        self.ended(batch.map(\.job.lease))
    }

    private func refused(_ lease: Lease, _ what: String) {
        self.counts.withLock { $0.lost += 1 }
        self.logger.warning(
            "worker '\(self.workerName)': \(lease): the store refused \(what): the lease was lost (this host stalled past it, or the job was cancelled), and another claim owns the job now"
        )
    }

    /// The delay before retry number `attempt`: `backoff * 2^(attempt - 1)`, at most `backoffMax`, drawn between half
    /// and all of it.
    func backoff(attempt: Int) -> Double {
        let exponent = Double(max(0, min(attempt - 1, 60)))
        let full = min(self.options.backoff * pow(2, exponent), self.options.backoffMax)
        return full / 2 + Double.random(in: 0...1) * full / 2
    }
}

/// `0.25 s`, `12 s`: a delay as a log line shows it.
func seconds(_ d: Double) -> String {
    let d = max(0, d)
    if d >= 10 { return "\(Int(d.rounded())) s" }
    return "\(Double(Int((d * 100).rounded())) / 100) s"
}

func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "host" }
    return String(cString: buffer)
}

/// Acks of completed jobs, committed in batches by a task of the supervisor: a job's end queues its ack and
/// returns at once (its pool thread takes the next job); the flusher task, started by the first ack of a batch,
/// commits every ack queued so far in one transaction, and again while more came meanwhile. Being a task, it keeps
/// the supervisor busy until every ack is committed, so a graceful stop (or the end of a program that waits until
/// it is idle) never leaves a finished job leased. If the task cannot run (the supervisor stops), the acks are
/// committed on the calling thread.
final class AckFlusher: Sendable {
    private struct State: Sendable {
        var queued: [(job: ClaimedJob, result: [UInt8])] = []
        var flushing = false
    }
    private let state = Mutex(State())
    private let supervisor: TaskSupervisor
    private let name: String
    private let runnerSlot = Mutex<JobRunnerBox?>(nil)

    private struct JobRunnerBox: Sendable {
        weak var runner: JobRunner?
    }

    init(supervisor: TaskSupervisor, name: String) {
        self.supervisor = supervisor
        self.name = name
    }

    var runner: JobRunner? {
        get { self.runnerSlot.withLock { $0?.runner } }
        set { self.runnerSlot.withLock { $0 = JobRunnerBox(runner: newValue) } }
    }

    func add(_ job: ClaimedJob, result: [UInt8]) {
        let start = self.state.withLock { s -> Bool in
            s.queued.append((job, result))
            if s.flushing { return false }
            s.flushing = true
            return true
        }
        guard start else { return }
        let task = self.supervisor.submit(priority: .critical, name: "acks of \(self.name)") { [self] _ in
            self.flush()
            return nil
        }
        // Refused (the supervisor stops) or cancelled before it ran: commit here.
        task.onFinish { [self] task in
            if task.status != .completed { self.flush() }
        }
    }

    private func flush() {
        while true {
            let batch = self.state.withLock { s -> [(job: ClaimedJob, result: [UInt8])] in
                if s.queued.isEmpty {
                    s.flushing = false
                    return []
                }
                defer { s.queued = [] }
                return s.queued
            }
            guard !batch.isEmpty else { return }
            guard let runner = self.runner else { return }
            runner.commit(batch)
        }
    }
}
