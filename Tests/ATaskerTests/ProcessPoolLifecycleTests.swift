import Glibc
import Synchronization
import Testing

@testable import ATasker

@Suite("Process pool: stop, reconfiguration, leaks, orphans")
struct ProcessPoolLifecycleTests {
    @Test("stop waits for process tasks, then stops every child and reaps it")
    func stopReapsChildren() throws {
        let service = ProcessService()
        let supervisor = TaskSupervisor.withFixturePool(poolSize: 3, service: service)
        let blockers = (0..<3).map { supervisor.submitProcess(fixtureCall("rblock:b\($0)")) }
        #expect(service.events.wait { events in (0..<3).allSatisfy { events.contains("started b\($0)") } })
        let pids = supervisor.processChildPIDs
        #expect(pids.count == 3)
        let queued = supervisor.submitProcess(fixtureCall("elast"))
        #expect(queued.status == .queued)
        // Release the blockers a moment after stop began waiting for them.
        let release = PoolThread.spawn(name: "release") {
            sleep(seconds: 0.1)
            for index in 0..<3 {
                service.open("b\(index)")
            }
        }
        #expect(release)
        let left = supervisor.stop(wait: .seconds(30))
        #expect(left.isEmpty)
        for blocker in blockers {
            #expect(blocker.status == .completed)
        }
        // Without cancelTasks a queued process task still runs.
        #expect(try queued.replyText() == "last")
        #expect(supervisor.info().processPool?.children.isEmpty == true)
        for pid in pids {
            #expect(processIsGone(pid))
            #expect(!ProcessSystem.isUnreapedChild(pid))
        }
        guard case .stopped = try supervisor.submitProcess(fixtureCall("e")).poolError() else {
            Issue.record("a submission after stop should fail with .stopped")
            return
        }
        supervisor.finishProcessPool()
    }

    @Test("stop with cancelTasks cancels queued process tasks; a child that does not stop is killed")
    func stopCancelsAndKills() throws {
        let supervisor = TaskSupervisor.withFixturePool { configuration in
            configuration.stopTimeout = 0.3
        }
        let pid = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        let sleeper = supervisor.submitProcess(fixtureCall("s60000"))
        let queued = supervisor.submitProcess(fixtureCall("enever"))
        let started = Monotonic.now()
        let left = supervisor.stop(wait: .seconds(0.2), cancelTasks: true)
        #expect(left.map(\.id) == [sleeper.id])
        #expect(queued.status == .canceled)
        #expect(Monotonic.now() - started < 10)
        // Asked to stop after its call, it did not finish in time: killed and reaped.
        guard case .childKilled(pid, SIGKILL) = try sleeper.poolError() else {
            Issue.record("expected childKilled(SIGKILL), got \(String(describing: sleeper.error))")
            return
        }
        #expect(processIsGone(pid))
        #expect(!ProcessSystem.isUnreapedChild(pid))
        supervisor.finishProcessPool()
    }

    @Test("stop without waiting stops the children once the last process task ends")
    func stopWithoutWaiting() throws {
        let service = ProcessService()
        let supervisor = TaskSupervisor.withFixturePool(service: service)
        let blocker = supervisor.submitProcess(fixtureCall("rblock:late"))
        #expect(service.events.wait(for: "started late"))
        let pid = try #require(supervisor.processChildPIDs.first)
        #expect(supervisor.stop(wait: .none).map(\.id) == [blocker.id])
        #expect(!processIsGone(pid))
        service.open("late")
        #expect(try blocker.replyText() == "released late")
        #expect(waitFor { processIsGone(pid) && !ProcessSystem.isUnreapedChild(pid) })
        supervisor.finishProcessPool()
    }

    @Test("process tasks wait for start(); idle children stay warm")
    func beforeStart() throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2))
        supervisor.setProcessPool(.fixture(poolSize: 2))
        let early = supervisor.submitProcess(fixtureCall("eearly"))
        #expect(early.status == .queued)
        #expect(supervisor.info().processPool?.childrenSpawned == 0)
        supervisor.start()
        #expect(try early.replyText() == "early")
        let pid = try supervisor.submitProcess(fixtureCall("p")).replyText()
        sleep(seconds: 0.1)
        #expect(try supervisor.submitProcess(fixtureCall("p")).replyText() == pid)
        #expect(supervisor.info().processPool?.childrenSpawned == 1)
        supervisor.finishProcessPool()
    }

    @Test("a new program or hello retires the old children when idle")
    func reconfigure() throws {
        let supervisor = TaskSupervisor.withFixturePool()
        let old = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        // Sizes only: the warm child stays.
        supervisor.setProcessPool(.fixture(poolSize: 2))
        #expect(supervisor.processPoolConfiguration?.poolSize == 2)
        #expect(try supervisor.submitProcess(fixtureCall("p")).replyText() == "\(old)")
        supervisor.setProcessPool(.fixture(poolSize: 2) { $0.hello = Array("v2".utf8) })
        #expect(try supervisor.submitProcess(fixtureCall("h")).replyText() == "v2")
        #expect(try supervisor.submitProcess(fixtureCall("p")).replyText() != "\(old)")
        #expect(waitFor { processIsGone(old) && !ProcessSystem.isUnreapedChild(old) })
        #expect(supervisor.info().processPool?.childDeaths == 0)
        supervisor.finishProcessPool()
    }

    @Test("descriptors and threads stay constant across 200 respawns")
    func noLeaksAcrossRespawns() throws {
        let parent = try FixtureParent(["parent-respawn", "200"])
        let line = try #require(parent.readLine(startingWith: "failures="))
        let status = parent.wait()
        #expect(status == 0)
        let fields = Dictionary(
            uniqueKeysWithValues: line.split(separator: " ").map { field in
                let parts = field.split(separator: "=", maxSplits: 1)
                return (String(parts[0]), String(parts[1]))
            })
        #expect(fields["failures"] == "200", "\(line)")
        #expect(fields["spawned"] == "202", "\(line)")
        for key in ["fds", "threads"] {
            let counts = try #require(fields[key]).split(separator: "-").map { $0.trimmingPrefix(">") }
            #expect(counts.count == 2 && counts[0] == counts[1], "\(key) changed: \(line)")
        }
    }

    @Test("children die within a second or two when their parent is killed")
    func orphansDie() throws {
        let parent = try FixtureParent(["parent-sleep"])
        let line = try #require(parent.readLine(startingWith: "child "))
        let child = try #require(Int32(line.dropFirst(6)))
        #expect(!processIsGone(child))
        #expect(kill(parent.pid, SIGKILL) == 0)
        _ = parent.wait()
        let killed = Monotonic.now()
        #expect(waitFor(timeout: 10) { processIsGone(child) })
        #expect(Monotonic.now() - killed < 2)
    }
}
