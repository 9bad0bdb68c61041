package import CoreMetrics
import Synchronization

/// The swift-metrics instruments of one supervisor, made once when it is created (from the factory that
/// `MetricsSystem.bootstrap` installed by then; with none, they cost a call that does nothing).
///
/// Names and dimensions (the README's "Metrics" section lists them):
/// - `atasker_tasks_submitted_total`, `atasker_tasks_started_total`, `atasker_tasks_completed_total`,
///   `atasker_tasks_failed_total`, `atasker_tasks_canceled_total`: counters, by `kind` (`thread`, `process`,
///   `aloop`) and `priority` (`critical`, `high`, `normal`, `low`);
/// - `atasker_task_queue_wait_seconds` and `atasker_task_run_seconds`: timers (nanoseconds), by the same;
/// - `atasker_mp_children_spawned_total`, `atasker_mp_children_exited_total`: counters; `atasker_mp_children`:
///   a gauge of the children alive;
/// - `atasker_lua_states`: a gauge of the Lua states open for the supervisor's Lua hosts (main, worker,
///   pool-thread and aloop-task states).
package final class SupervisorMetrics: Sendable {
    /// Where a task runs, as the `kind` dimension says it.
    package enum TaskKind: Int, Sendable, CaseIterable {
        case thread, process, aloop

        var label: String {
            switch self {
            case .thread: "thread"
            case .process: "process"
            case .aloop: "aloop"
            }
        }
    }

    /// The factory that made the instruments (and makes each worker's).
    let factory: any MetricsFactory
    private let tasks: [TaskMetrics]
    private let childrenSpawned: Counter
    private let childrenExited: Counter
    private let children: Gauge
    private let liveChildren = Atomic<Int>(0)
    private let luaStates: Gauge
    private let openLuaStates = Atomic<Int>(0)

    package init(factory: any MetricsFactory) {
        self.factory = factory
        var tasks: [TaskMetrics] = []
        for kind in TaskKind.allCases {
            for priorityClass in PriorityClass.allCases {
                tasks.append(TaskMetrics(kind: kind.label, priority: priorityClass.label, factory: factory))
            }
        }
        self.tasks = tasks
        self.childrenSpawned = Counter(label: "atasker_mp_children_spawned_total", factory: factory)
        self.childrenExited = Counter(label: "atasker_mp_children_exited_total", factory: factory)
        self.children = Gauge(label: "atasker_mp_children", factory: factory)
        self.luaStates = Gauge(label: "atasker_lua_states", factory: factory)
    }

    /// A Lua state of a host on this supervisor opened.
    package func luaStateOpened() {
        self.luaStates.record(self.openLuaStates.wrappingAdd(1, ordering: .relaxed).newValue)
    }

    /// A Lua state of a host on this supervisor closed.
    package func luaStateClosed() {
        self.luaStates.record(self.openLuaStates.wrappingAdd(-1, ordering: .relaxed).newValue)
    }

    /// A child of the process pool was spawned.
    func childSpawned() {
        self.childrenSpawned.increment()
        self.children.record(self.liveChildren.wrappingAdd(1, ordering: .relaxed).newValue)
    }

    /// A child of the process pool ended (or could not be started).
    func childExited() {
        self.childrenExited.increment()
        self.children.record(self.liveChildren.wrappingAdd(-1, ordering: .relaxed).newValue)
    }

    /// The instruments of tasks of `kind` and `priority`.
    package func tasks(_ kind: TaskKind, _ priority: TaskPriority) -> TaskMetrics {
        self.tasks[kind.rawValue * PriorityClass.allCases.count + priority.priorityClass.rawValue]
    }
}

/// The instruments of one kind and priority class of task, which its tasks update as they go.
package final class TaskMetrics: Sendable {
    let submitted: Counter
    let started: Counter
    let completed: Counter
    let failed: Counter
    let canceled: Counter
    let queueWait: Timer
    let run: Timer

    init(kind: String, priority: String, factory: any MetricsFactory) {
        let dimensions = [("kind", kind), ("priority", priority)]
        self.submitted = Counter(label: "atasker_tasks_submitted_total", dimensions: dimensions, factory: factory)
        self.started = Counter(label: "atasker_tasks_started_total", dimensions: dimensions, factory: factory)
        self.completed = Counter(label: "atasker_tasks_completed_total", dimensions: dimensions, factory: factory)
        self.failed = Counter(label: "atasker_tasks_failed_total", dimensions: dimensions, factory: factory)
        self.canceled = Counter(label: "atasker_tasks_canceled_total", dimensions: dimensions, factory: factory)
        self.queueWait = Timer(label: "atasker_task_queue_wait_seconds", dimensions: dimensions, factory: factory)
        self.run = Timer(label: "atasker_task_run_seconds", dimensions: dimensions, factory: factory)
    }

    func taskSubmitted() {
        self.submitted.increment()
    }

    func taskStarted(queuedAt: Double?, at time: Double) {
        self.started.increment()
        if let queuedAt {
            self.queueWait.recordNanoseconds(Self.nanoseconds(from: queuedAt, to: time))
        }
    }

    func taskFinished(_ status: TaskStatus, startedAt: Double?, at time: Double) {
        switch status {
        case .completed: self.completed.increment()
        case .canceled: self.canceled.increment()
        default: self.failed.increment()
        }
        if let startedAt {
            self.run.recordNanoseconds(Self.nanoseconds(from: startedAt, to: time))
        }
    }

    /// Nanoseconds between two ``Monotonic`` times, for a timer.
    static func nanoseconds(from start: Double, to end: Double) -> Int64 {
        let seconds = end - start
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return seconds < 9e9 ? Int64(seconds * 1e9) : Int64.max
    }
}

/// The instruments of one worker, by its `worker` dimension (its name when it was made):
/// `atasker_worker_executions_total`, `atasker_worker_errors_total`, `atasker_worker_skipped_ticks_total`
/// (counters) and, for queue workers, `atasker_worker_queue_depth` (a gauge, sampled each time the worker takes
/// items and at a stop).
package final class WorkerMetrics: Sendable {
    let executions: Counter
    let errors: Counter
    let skipped: Counter
    let queueDepth: Gauge

    init(worker: String, factory: any MetricsFactory) {
        let dimensions = [("worker", worker)]
        self.executions = Counter(label: "atasker_worker_executions_total", dimensions: dimensions, factory: factory)
        self.errors = Counter(label: "atasker_worker_errors_total", dimensions: dimensions, factory: factory)
        self.skipped = Counter(label: "atasker_worker_skipped_ticks_total", dimensions: dimensions, factory: factory)
        self.queueDepth = Gauge(label: "atasker_worker_queue_depth", dimensions: dimensions, factory: factory)
    }

    func executionEnded() {
        self.executions.increment()
    }

    func executionFailed() {
        self.errors.increment()
    }

    func ticksSkipped(_ count: Int) {
        self.skipped.increment(by: Int64(count))
    }

    func queueDepthSampled(_ depth: Int) {
        self.queueDepth.record(depth)
    }
}

extension PriorityClass {
    var label: String {
        switch self {
        case .critical: "critical"
        case .high: "high"
        case .normal: "normal"
        case .low: "low"
        }
    }
}
