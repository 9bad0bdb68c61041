import Glibc
import Synchronization
import Testing

@testable import ATasker

@Suite("Process pool: priorities and reserves")
struct ProcessPoolSchedulingTests {
    @Test("busy limits per priority: low N, normal N+reserve, high both reserves, critical always")
    func reserves() throws {
        let service = ProcessService()
        // N = 1, normal reserve 1, high reserve 1: low runs on 1 busy child, normal on 2, high on 3.
        let supervisor = TaskSupervisor.withFixturePool(poolSize: 1, reserveNormal: 1, reserveHigh: 1, service: service)
        func block(_ name: String, _ priority: TaskPriority) -> SupervisorTask {
            supervisor.submitProcess(fixtureCall("rblock:\(name)"), priority: priority, name: name)
        }
        func started(_ names: String...) -> Bool {
            service.events.wait { events in names.allSatisfy { events.contains("started \($0)") } }
        }
        let low1 = block("L1", .low)
        #expect(started("L1"))
        let low2 = block("L2", .low)
        #expect(low2.status == .queued)
        let normal1 = block("N1", .normal)
        #expect(started("N1"))
        let normal2 = block("N2", .normal)
        #expect(normal2.status == .queued)
        _ = block("H1", .high)
        #expect(started("H1"))
        let high2 = block("H2", .high)
        #expect(high2.status == .queued)
        let critical = block("C1", .critical)
        #expect(started("C1"))
        #expect(supervisor.info().processPool?.children.filter(\.busy).count == 4)
        #expect([low2, normal2, high2].allSatisfy { $0.status == .queued })

        // The critical task's child frees up, but three children are busy: high still waits.
        service.open("C1")
        #expect(try critical.replyText() == "released C1")
        #expect(high2.status == .queued)
        service.open("H1")
        #expect(started("H2"))
        #expect(normal2.status == .queued)
        service.open("N1")
        #expect(try normal1.replyText() == "released N1")
        #expect(normal2.status == .queued)
        service.open("L1")
        #expect(started("N2"))
        #expect(try low1.replyText() == "released L1")
        #expect(low2.status == .queued)
        service.open("H2")
        #expect(try high2.replyText() == "released H2")
        #expect(low2.status == .queued)
        service.open("N2")
        #expect(started("L2"))
        service.open("L2")
        #expect(try low2.replyText() == "released L2")
        let order = service.events.all.filter { $0.hasPrefix("started ") }
        #expect(
            order == ["started L1", "started N1", "started H1", "started C1", "started H2", "started N2", "started L2"])
        supervisor.finishProcessPool()
    }

    @Test("a waiting higher priority starts first; FIFO within a priority")
    func order() throws {
        let service = ProcessService()
        let supervisor = TaskSupervisor.withFixturePool(service: service)
        let blocker = supervisor.submitProcess(fixtureCall("rblock:gate"))
        #expect(service.events.wait(for: "started gate"))
        var tasks: [SupervisorTask] = []
        for (name, priority) in [
            ("low-1", TaskPriority.low), ("normal-1", .normal), ("low-2", .low), ("high-1", .high),
            ("normal-2", .normal), ("high-2", .high),
        ] {
            tasks.append(supervisor.submitProcess(fixtureCall("n\(name)"), priority: priority))
        }
        #expect(tasks.allSatisfy { $0.status == .queued })
        service.open("gate")
        #expect(try blocker.replyText() == "released gate")
        for task in tasks {
            #expect(try task.replyText() == "")
        }
        let order = service.events.all.filter { $0.hasPrefix("notify ") }
        #expect(
            order == [
                "notify high-1", "notify high-2", "notify normal-1", "notify normal-2", "notify low-1", "notify low-2",
            ])
        supervisor.finishProcessPool()
    }

    @Test("a critical task gets an extra child at once; extra children are not kept warm")
    func criticalSpawnsExtraChild() throws {
        let service = ProcessService()
        let supervisor = TaskSupervisor.withFixturePool(service: service)
        let blocker = supervisor.submitProcess(fixtureCall("rblock:busy"))
        #expect(service.events.wait(for: "started busy"))
        let urgent = supervisor.submitProcess(fixtureCall("eurgent"), priority: .critical)
        #expect(try urgent.replyText() == "urgent")
        #expect(supervisor.info().processPool?.childrenSpawned == 2)
        // Beyond the pool size and reserves (1 here), the idle extra child is stopped.
        #expect(waitFor { supervisor.info().processPool?.children.count == 1 })
        #expect(supervisor.info().processPool?.childDeaths == 0)
        service.open("busy")
        #expect(try blocker.replyText() == "released busy")
        supervisor.finishProcessPool()
    }
}
