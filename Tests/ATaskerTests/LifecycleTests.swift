import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import ATasker

@Suite("Lifecycle: stop, idleness, service")
struct LifecycleTests {
    @Test("stop with a deadline returns the tasks still running; submit after stop fails")
    func stopDeadline() async throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let log = EventLog()
        let gate = Gate()
        let stuck = supervisor.submit(name: "stuck") { _ in
            log.append("stuck")
            gate.wait()
            return nil
        }
        let quick = supervisor.submit(name: "quick") { _ in 1 }
        #expect(log.wait(for: "stuck"))
        #expect(quick.wait(timeout: 30))
        let started = Monotonic.now()
        let left = await supervisor.stop(wait: .seconds(0.2))
        #expect(Monotonic.now() - started >= 0.19)
        #expect(left.map(\.name) == ["stuck"])
        #expect(supervisor.isStopped)

        let refused = supervisor.submit { _ in 1 }
        #expect(refused.status == .failed)
        let error = try #require(refused.error as? TaskError)
        #expect(error.code == .supervisorStopped)

        gate.open()
        #expect(stuck.wait(timeout: 30))
        #expect(await supervisor.stop(wait: .forever).isEmpty)
        #expect(await supervisor.stop(wait: .seconds(1)).isEmpty)
    }

    @Test("stop without cancel runs queued tasks; with cancelTasks cancels queued and delayed ones")
    func stopCancel() throws {
        do {
            let supervisor = TaskSupervisor.started(poolSize: 1)
            let gate = Gate()
            let log = EventLog()
            supervisor.submit { _ in
                log.append("blocker"); gate.wait(); return nil
            }
            #expect(log.wait(for: "blocker"))
            let queued = supervisor.submit { _ in
                log.append("queued"); return nil
            }
            gate.open()
            #expect(supervisor.stop(wait: .forever).isEmpty)
            #expect(queued.status == .completed)
        }
        do {
            let supervisor = TaskSupervisor.started(poolSize: 1)
            let gate = Gate()
            let log = EventLog()
            let blocker = supervisor.submit { _ in
                log.append("blocker"); gate.wait(); return nil
            }
            #expect(log.wait(for: "blocker"))
            let queued = (0..<3).map { index in
                supervisor.submit { _ in
                    log.append("q\(index)"); return nil
                }
            }
            let delayed = supervisor.submit(delay: 30) { _ in
                log.append("delayed"); return nil
            }
            let left = supervisor.stop(wait: .none, cancelTasks: true)
            #expect(left.map(\.id) == [blocker.id])
            #expect(queued.allSatisfy { $0.status == .canceled })
            #expect(delayed.status == .canceled)
            gate.open()
            #expect(supervisor.stop(wait: .seconds(30)).isEmpty)
            #expect(log.all == ["blocker"])
            #expect(supervisor.info().threadsCount == 0 || eventually { supervisor.info().threadsCount == 0 })
        }
    }

    @Test("block returns when the supervisor is stopped")
    func block() async throws {
        let supervisor = TaskSupervisor.started(poolSize: 1)
        let log = EventLog()
        let blocked = Task.detached {
            supervisor.block()
            log.append("unblocked")
        }
        sleep(seconds: 0.05)
        #expect(log.all.isEmpty)
        await supervisor.stop()
        await blocked.value
        #expect(log.all == ["unblocked"])
    }

    @Test("waitUntilIdle waits for tasks and retained activity")
    func idle() async throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        #expect(supervisor.isIdle)
        await supervisor.waitUntilIdle()  // returns at once
        supervisor.retainActivity()
        #expect(!supervisor.isIdle)
        let log = EventLog()
        let waiting = Task.detached {
            supervisor.waitUntilIdle()
            log.append("idle")
        }
        let task = supervisor.submit { _ in
            sleep(seconds: 0.02); return nil
        }
        #expect(task.wait(timeout: 30))
        sleep(seconds: 0.05)
        #expect(log.all.isEmpty)  // activity is still retained
        supervisor.releaseActivity()
        await waiting.value
        #expect(log.all == ["idle"])
        #expect(supervisor.isIdle)

        // waitUntilIdle returns when the supervisor stops, even if a worker stays active.
        supervisor.retainActivity()
        let stopped = Task.detached { await supervisor.waitUntilIdle() }
        await supervisor.stop(wait: .none)
        await stopped.value
        supervisor.releaseActivity()
    }

    @Test("run as a Service in a ServiceGroup shuts down gracefully")
    func service() async throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2))
        let group = ServiceGroup(services: [supervisor], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        // A task submitted before start runs once the service has started the supervisor.
        let answer = supervisor.submit { _ in 42 }
        #expect(try await answer.value(as: Int.self) == 42)
        #expect(supervisor.isStarted)
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(supervisor.isStopped)
        #expect(supervisor.submit { _ in 1 }.status == .failed)
    }

    @Test("info reports sizes and counts")
    func info() {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 3, reserveNormal: 2, reserveHigh: 1))
        var info = supervisor.info()
        #expect(!info.started && !info.active)
        #expect(info.threadPoolSize == 3 && info.threadReserveNormal == 2 && info.threadReserveHigh == 1)
        #expect(info.threadMaxSize == 6)
        #expect(info.threadMinSize == 0)
        #expect(info.queued.count == 4)
        supervisor.start()
        supervisor.setTimeouts(warning: 1, critical: 2)
        supervisor.setPollDelay(0.5)
        info = supervisor.info()
        #expect(info.started && info.active)
        #expect(info.timeoutWarning == 1 && info.timeoutCritical == 2 && info.pollDelay == 0.5)
        #expect(!info.id.isEmpty)
        #expect(TaskSupervisor.Configuration().poolSize == TaskSupervisor.Configuration.defaultPoolSize)
        #expect(TaskSupervisor.Configuration(poolSize: 0).effectiveMaxSize == nil)
        supervisor.finish()
        #expect(!supervisor.info().active)
    }
}
