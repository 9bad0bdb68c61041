import Synchronization
import Testing

@testable import ATasker

@Suite("Tasks: delays, results, errors, cancel")
struct TaskTests {
    struct Boom: Error, Equatable {
        let code: Int
    }

    @Test("a delayed task is delayed, then starts no earlier than its delay")
    func delay() async throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let before = Monotonic.now()
        let task = supervisor.submit(delay: 0.2, name: "later") { _ in "done" }
        #expect(task.status == .delayed)
        #expect(task.timeQueued == nil)
        #expect(supervisor.task(id: task.id) === task)
        #expect(supervisor.info().delayedCount == 1)
        #expect(!supervisor.isIdle)
        #expect(try await task.value(as: String.self) == "done")
        let queued = try #require(task.timeQueued)
        let started = try #require(task.timeStarted)
        let completed = try #require(task.timeCompleted)
        #expect(queued >= before + 0.2 - 1e-6)
        #expect(started >= queued)
        #expect(completed >= started)
        // The task counts as done once its handlers have run, just after it finished.
        await supervisor.waitUntilIdle()
        #expect(supervisor.task(id: task.id) == nil)
        supervisor.finish()
    }

    @Test("results, errors, value(as:), run, and type mismatches")
    func results() async throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let ok = supervisor.submit { _ in 21 * 2 }
        #expect(try await ok.value(as: Int.self) == 42)
        #expect(ok.status == .completed)
        #expect(ok.result as? Int == 42)
        #expect(ok.error == nil)
        #expect(ok.isFinished)

        let failing = supervisor.submit { _ in throw Boom(code: 7) }
        await #expect(throws: Boom(code: 7)) { try await failing.value(as: Int.self) }
        #expect(failing.status == .failed)
        #expect(failing.error as? Boom == Boom(code: 7))

        do {
            _ = try await ok.value(as: String.self)
            Issue.record("expected a type mismatch")
        } catch let error as TaskError {
            #expect(error.code == .typeMismatch)
        }

        let none = supervisor.submit { _ in nil }
        let optional: Int? = try await none.value()
        #expect(optional == nil)

        let value = try await supervisor.run(priority: .high) { "hello" }
        #expect(value == "hello")
        await #expect(throws: Boom(code: 1)) {
            try await supervisor.run { () throws -> Int in throw Boom(code: 1) }
        }

        // The blocking wait, with and without a timeout.
        let gate = Gate()
        let slow = supervisor.submit { _ in
            gate.wait(); return 1
        }
        #expect(!slow.wait(timeout: 0.02))
        gate.open()
        #expect(slow.wait(timeout: 30))
        #expect(slow.wait(timeout: 0))
        supervisor.finish()
    }

    @Test("task ids are unique and increasing")
    func ids() {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let tasks = (0..<10).map { _ in supervisor.submit { _ in nil } }
        #expect(zip(tasks, tasks.dropFirst()).allSatisfy { $0.id < $1.id })
        #expect(tasks[0].id >= 1)
        supervisor.finish()
    }

    @Test("cancel a queued and a delayed task; a started task is not affected")
    func cancel() async throws {
        let supervisor = TaskSupervisor.started(poolSize: 1)
        let log = EventLog()
        let gate = Gate()
        let blocker = supervisor.submit { _ in
            log.append("blocker")
            gate.wait()
            return nil
        }
        #expect(log.wait(for: "blocker"))
        let queued = supervisor.submit(name: "queued") { _ in
            log.append("queued"); return nil
        }
        let delayed = supervisor.submit(delay: 30, name: "delayed") { _ in
            log.append("delayed"); return nil
        }
        let finished = EventLog()
        queued.onFinish { task in finished.append("\(task.status)") }
        #expect(supervisor.task(id: queued.id) === queued)

        #expect(queued.cancel())
        #expect(!queued.cancel())
        #expect(queued.status == .canceled)
        #expect(finished.all == ["canceled"])
        #expect(supervisor.task(id: queued.id) == nil)
        do {
            _ = try await queued.value(as: Int.self)
            Issue.record("expected cancellation")
        } catch let error as TaskError {
            #expect(error.code == .canceled)
        }

        #expect(delayed.cancel())
        #expect(delayed.status == .canceled)
        #expect(supervisor.info().delayedCount == 0)

        #expect(!blocker.cancel())
        #expect(blocker.status == .started)
        gate.open()
        #expect(blocker.wait(timeout: 30))
        #expect(blocker.status == .completed)
        #expect(!blocker.cancel())
        await supervisor.waitUntilIdle()
        #expect(log.all == ["blocker"])
        supervisor.finish()
    }

    @Test("onFinish runs once, at once when already finished, and before the task counts as done")
    func onFinish() async throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let log = EventLog()
        let gate = Gate()
        let first = supervisor.submit(name: "first") { _ in
            gate.wait()
            return nil
        }
        let followUp = Mutex<SupervisorTask?>(nil)
        first.onFinish { task in
            log.append("handler \(task.status)")
            // Work submitted from a handler keeps the supervisor busy.
            let next = supervisor.submit(name: "second") { _ in
                sleep(seconds: 0.05)
                log.append("second")
                return nil
            }
            followUp.withLock { $0 = next }
        }
        gate.open()
        await supervisor.waitUntilIdle()
        #expect(log.all == ["handler completed", "second"])
        let second = try #require(followUp.withLock { $0 })
        #expect(second.isFinished)

        let late = EventLog()
        first.onFinish { _ in late.append("late") }
        #expect(late.all == ["late"])
        supervisor.finish()
    }
}
