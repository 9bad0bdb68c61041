import Synchronization
import Testing

@testable import ATasker

@Suite("Completion order: handlers, then the supervisor's count, then waiters")
struct CompletionOrderTests {
    @Test("a woken waiter sees the task gone from task(id:) and from info()")
    func waiterSeesTaskGone() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        for _ in 0..<500 {
            let task = supervisor.submit { _ in 1 }
            #expect(task.wait(timeout: 30))
            #expect(supervisor.task(id: task.id) == nil)
            #expect(supervisor.info().threadTasksCount == 0)
        }
        supervisor.finish()
    }

    @Test("a waiter that comes after the task ended, before the supervisor's count, still waits for it")
    func lateWaiterWaitsForTheCount() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        for _ in 0..<2_000 {
            let task = supervisor.submit { _ in 1 }
            // The status is final as soon as the body returned, before the pool thread has taken the
            // supervisor's lock to count the task as done: a wait that begins in between must not return
            // before that.
            while !task.isFinished {}
            #expect(task.wait(timeout: 30))
            #expect(supervisor.task(id: task.id) == nil)
        }
        supervisor.finish()
    }

    @Test("onFinish handlers run before a waiter wakes")
    func handlersBeforeWaiters() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        for _ in 0..<200 {
            let ran = Flag()
            let gate = Gate()
            let task = supervisor.submit { _ in
                gate.wait()
                return 0
            }
            task.onFinish { _ in ran.set() }
            gate.open()
            #expect(task.wait(timeout: 30))
            let handlerRan = ran.isSet
            #expect(handlerRan)
        }
        supervisor.finish()
    }
}

/// A flag that one thread sets and another reads.
private final class Flag: Sendable {
    private let value = Atomic<Bool>(false)

    func set() { self.value.store(true, ordering: .releasing) }

    var isSet: Bool { self.value.load(ordering: .acquiring) }
}
