import Synchronization
import Testing

@testable import ATasker

/// Counts executions that overlap: `enter` when one begins, `leave` when it ends.
final class OverlapDetector: Sendable {
    private let inside = Atomic<Int>(0)
    private let overlapCount = Atomic<Int>(0)

    func enter() {
        if self.inside.wrappingAdd(1, ordering: .acquiringAndReleasing).oldValue != 0 {
            self.overlapCount.wrappingAdd(1, ordering: .relaxed)
        }
    }

    func leave() {
        self.inside.wrappingSubtract(1, ordering: .acquiringAndReleasing)
    }

    var overlaps: Int {
        self.overlapCount.load(ordering: .relaxed)
    }
}

/// A list of values appended from any thread.
final class Recorder<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])

    func append(_ value: Value) {
        self.values.withLock { $0.append(value) }
    }

    var all: [Value] {
        self.values.withLock { $0 }
    }
}

/// A reference set after creation (for an executor that needs its own worker).
final class Box<Value: Sendable>: Sendable {
    private let storage = Mutex<Value?>(nil)

    var value: Value? {
        get { self.storage.withLock { $0 } }
        set { self.storage.withLock { $0 = newValue } }
    }
}

extension Worker {
    /// The number of pool tasks the worker has submitted.
    var tasksSubmitted: Int {
        self.core.withLock { $0.tasksSubmitted }
    }
}

extension TaskSupervisor {
    /// The leak check of worker tests: every worker is stopped, then the supervisor finishes.
    func finishWorkers() {
        #expect(self.stopWorkers(wait: .seconds(30)), "workers still running at the end of a test")
        for worker in self.workers {
            #expect(worker.isStopped, "\(worker) still running at the end of a test")
        }
        #expect(self.info().activity == 0, "activity retained at the end of a test")
        self.finish()
    }
}
