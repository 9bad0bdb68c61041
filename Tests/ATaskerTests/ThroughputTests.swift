import Synchronization
import Testing

@testable import ATasker

@Suite("Throughput smoke test")
struct ThroughputTests {
    @Test("200,000 trivial tasks complete")
    func manyTasks() throws {
        let supervisor = TaskSupervisor(configuration: .init(timeoutWarning: 600, timeoutCritical: 600))
        supervisor.start()
        let completed = Atomic<Int>(0)
        let count = 200_000
        let started = Monotonic.now()
        for _ in 0..<count {
            supervisor.submit { _ in
                completed.add(1, ordering: .relaxed)
                return nil
            }
        }
        supervisor.waitUntilIdle()
        let elapsed = Monotonic.now() - started
        #expect(completed.load(ordering: .relaxed) == count)
        print(
            "throughput: \(Int(Double(count) / elapsed)) tasks/s (\(count) tasks in \(TaskSupervisor.format(elapsed)) s)"
        )
        #expect(elapsed < 120)
        supervisor.finish()
    }
}
