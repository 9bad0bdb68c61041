import Glibc
import Synchronization
import Testing

@testable import ATasker

@Suite("Process pool: child deaths, timeouts, protocol errors, crash loops")
struct ProcessPoolFaultTests {
    /// Checks that the pool replaced the dead child: the next call runs in another, live process.
    private func expectReplaced(_ supervisor: TaskSupervisor, dead pid: Int32) throws {
        let next = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        #expect(next != pid)
        #expect(processIsGone(pid))
        #expect(!ProcessSystem.isUnreapedChild(pid))
    }

    @Test("a child that exits fails its task with the status, and is replaced")
    func exitStatus() throws {
        let supervisor = TaskSupervisor.withFixturePool()
        let pid = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        let task = supervisor.submitProcess(fixtureCall("x3"), name: "crasher")
        let error = try task.poolError()
        guard case .childExited(let dead, let status) = error else {
            Issue.record("expected childExited, got \(error)")
            return
        }
        #expect(dead == pid && status == 3)
        #expect("\(error)".contains("\(pid)") && "\(error)".contains("status 3") && "\(error)".contains("replaces"))
        try self.expectReplaced(supervisor, dead: pid)
        let info = try #require(supervisor.info().processPool)
        #expect(info.childDeaths == 1 && info.childrenSpawned == 2)
        supervisor.finishProcessPool()
    }

    @Test("a child killed by a signal fails its task naming the signal")
    func signals() throws {
        let service = ProcessService()
        let supervisor = TaskSupervisor.withFixturePool(service: service)
        let pid = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        let error = try supervisor.submitProcess(fixtureCall("k\(SIGTERM)")).poolError()
        guard case .childKilled(pid, SIGTERM) = error else {
            Issue.record("expected childKilled(\(pid), SIGTERM), got \(error)")
            return
        }
        #expect("\(error)".contains("SIGTERM"))
        try self.expectReplaced(supervisor, dead: pid)

        // Killed from outside while it runs a call.
        let second = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        let sleeper = supervisor.submitProcess(fixtureCall("w60000"))
        #expect(service.events.wait(for: "notify sleeping \(second)"))
        let killed = Monotonic.now()
        #expect(kill(second, SIGKILL) == 0)
        let killError = try sleeper.poolError()
        #expect(Monotonic.now() - killed < 5)
        guard case .childKilled(second, SIGKILL) = killError else {
            Issue.record("expected childKilled(\(second), SIGKILL), got \(killError)")
            return
        }
        #expect("\(killError)".contains("SIGKILL"))
        try self.expectReplaced(supervisor, dead: second)
        supervisor.finishProcessPool()
    }

    @Test("a child that closes its descriptor is killed and reaped")
    func connectionClosed() throws {
        let supervisor = TaskSupervisor.withFixturePool()
        let pid = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        let error = try supervisor.submitProcess(fixtureCall("c")).poolError()
        guard case .connectionClosed(pid) = error else {
            Issue.record("expected connectionClosed(\(pid)), got \(error)")
            return
        }
        try self.expectReplaced(supervisor, dead: pid)
        supervisor.finishProcessPool()
    }

    @Test("a child's death is seen even while a grandchild holds its socket open")
    func grandchildHoldsSocket() throws {
        let supervisor = TaskSupervisor.withFixturePool()
        let pid = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        let started = Monotonic.now()
        guard case .childExited(pid, 9) = try supervisor.submitProcess(fixtureCall("z")).poolError() else {
            Issue.record("expected childExited(\(pid), 9)")
            return
        }
        // The grandchild sleeps for 3 seconds: the death was noticed without waiting for it.
        #expect(Monotonic.now() - started < 2.5)
        try self.expectReplaced(supervisor, dead: pid)
        supervisor.finishProcessPool()
    }

    @Test(
        "a bad frame from a child is a protocol error: the child is killed and replaced",
        arguments: ["g", "G", "T", "t"]
    )
    func protocolErrors(opcode: String) throws {
        let supervisor = TaskSupervisor.withFixturePool()
        let pid = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        let error = try supervisor.submitProcess(fixtureCall(opcode)).poolError()
        guard case .protocolError(pid, let detail) = error else {
            Issue.record("expected protocolError(\(pid)), got \(error)")
            return
        }
        let expected = ["g": "checksum", "G": "length", "T": "type", "t": "truncated"][opcode]!
        #expect(detail.contains(expected), "\(detail)")
        #expect("\(error)".contains("protocol error"))
        try self.expectReplaced(supervisor, dead: pid)
        supervisor.finishProcessPool()
    }

    @Test("a timeout kills the child, also a stopped (SIGSTOP) one")
    func timeouts() throws {
        let supervisor = TaskSupervisor.withFixturePool()
        let pid = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        let started = Monotonic.now()
        let error = try supervisor.submitProcess(fixtureCall("S"), timeout: 0.3).poolError()
        #expect(Monotonic.now() - started >= 0.3)
        guard case .timedOut(pid, 0.3) = error else {
            Issue.record("expected timedOut(\(pid), 0.3), got \(error)")
            return
        }
        #expect("\(error)".contains("0.3 seconds") && "\(error)".contains("SIGKILL"))
        try self.expectReplaced(supervisor, dead: pid)

        let sleeper = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        guard case .timedOut(sleeper, _) = try supervisor.submitProcess(fixtureCall("s60000"), timeout: 0.2).poolError()
        else {
            Issue.record("expected a timeout")
            return
        }
        try self.expectReplaced(supervisor, dead: sleeper)
        // A call that ends in time is not affected by its timeout.
        #expect(try supervisor.submitProcess(fixtureCall("s10"), timeout: 30).replyText() == "slept")
        supervisor.finishProcessPool()
    }

    @Test("a burst with crashing tasks: every task ends, exactly the crashing ones fail", arguments: [false, true])
    func burst(pipelined: Bool) throws {
        let supervisor = TaskSupervisor.withFixturePool(poolSize: 2)
        if pipelined {
            supervisor.processPoolSlot.withLock { $0 }?.state.withLock { $0.pipelineThreshold = 1000 }
        }
        let tasks = (0..<200).map { index in
            supervisor.submitProcess(fixtureCall(index % 9 == 4 ? "x5" : "e\(index)"))
        }
        for (index, task) in tasks.enumerated() {
            #expect(task.wait(timeout: 120), "task \(index) did not end")
            if index % 9 == 4 {
                guard case .childExited(_, 5) = try task.poolError() else {
                    Issue.record("task \(index) should have failed with status 5: \(String(describing: task.error))")
                    continue
                }
            } else {
                #expect(try task.replyText() == "\(index)")
            }
        }
        let info = try #require(supervisor.info().processPool)
        #expect(info.childDeaths == (0..<200).filter { $0 % 9 == 4 }.count)
        #expect(info.queuedCount == 0 && info.runningCount == 0)
        supervisor.finishProcessPool()
    }

    @Test("calls pipelined behind a call whose child dies go back to the queue and run")
    func pipelinedRequeue() throws {
        let supervisor = TaskSupervisor.withFixturePool()
        supervisor.processPoolSlot.withLock { $0 }?.state.withLock {
            $0.pipelineThreshold = 1000
            $0.pipelineNeedsBacklog = false
        }
        #expect(try supervisor.submitProcess(fixtureCall("ewarm")).replyText() == "warm")
        let slow = supervisor.submitProcess(fixtureCall("s500"))
        let crash = supervisor.submitProcess(fixtureCall("x7"))
        // Its timeout counts from the start of its own call, not from when it was sent.
        let timed = supervisor.submitProcess(fixtureCall("e-timed"), timeout: 0.3)
        let behind = (0..<4).map { supervisor.submitProcess(fixtureCall("e\($0)")) }
        #expect(supervisor.info().processPool?.children.first?.outstandingCalls == 7)
        #expect(behind.allSatisfy { $0.status == .started })
        #expect(try slow.replyText() == "slept")
        guard case .childExited(_, 7) = try crash.poolError() else {
            Issue.record("the crashing call should fail with status 7")
            return
        }
        #expect(try timed.replyText() == "-timed")
        for (index, task) in behind.enumerated() {
            #expect(try task.replyText() == "\(index)")
        }
        #expect(supervisor.info().processPool?.childDeaths == 1)
        supervisor.finishProcessPool()
    }

    @Test("a start-up crash loop breaks the pool; setProcessPool repairs it")
    func crashLoop() throws {
        let supervisor = TaskSupervisor.withFixturePool { configuration in
            configuration.hello = Array("exit:1".utf8)
            configuration.startupFailureLimit = 3
        }
        let queued = (0..<3).map { supervisor.submitProcess(fixtureCall("e\($0)")) }
        for task in queued {
            guard case .broken(let cause) = try task.poolError() else {
                Issue.record("expected broken")
                continue
            }
            #expect(cause.contains("exited with status 1 during start-up"), "\(cause)")
        }
        let info = try #require(supervisor.info().processPool)
        #expect(info.childrenSpawned == 3)
        #expect(info.brokenCause?.contains("status 1") == true)
        // New submissions fail at once, and nothing is spawned.
        let refused = supervisor.submitProcess(fixtureCall("e"))
        #expect(refused.status == .failed)
        guard case .broken = try refused.poolError() else {
            Issue.record("expected broken")
            return
        }
        #expect(supervisor.info().processPool?.childrenSpawned == 3)

        // A start-up failure that the child reports.
        supervisor.setProcessPool(
            .fixture { configuration in
                configuration.hello = Array("fail:no database".utf8)
                configuration.startupFailureLimit = 2
            })
        guard case .broken(let reported) = try supervisor.submitProcess(fixtureCall("e")).poolError() else {
            Issue.record("expected broken")
            return
        }
        #expect(reported.contains("no database"), "\(reported)")

        supervisor.setProcessPool(.fixture())
        #expect(supervisor.info().processPool?.brokenCause == nil)
        #expect(try supervisor.submitProcess(fixtureCall("eback")).replyText() == "back")
        supervisor.finishProcessPool()
    }

    @Test("a program that cannot be spawned breaks the pool with the reason")
    func missingExecutable() throws {
        let supervisor = TaskSupervisor.withFixturePool { configuration in
            configuration.executable = "/nonexistent/atasker-child"
            configuration.startupFailureLimit = 2
        }
        guard case .broken(let cause) = try supervisor.submitProcess(fixtureCall("e")).poolError() else {
            Issue.record("expected broken")
            return
        }
        #expect(cause.contains("/nonexistent/atasker-child") && cause.contains("No such file"), "\(cause)")
        supervisor.finishProcessPool()
    }
}
