import Glibc
import Synchronization
import Testing

@testable import ATasker

@Suite("Process pool: calls, definitions, services, children")
struct ProcessPoolTests {
    @Test("an echo call round-trips and the task behaves like a thread task")
    func echo() throws {
        let supervisor = TaskSupervisor.withFixturePool()
        let task = supervisor.submitProcess(fixtureCall("ehello"), name: "echo")
        #expect(try task.replyText() == "hello")
        #expect(task.status == .completed)
        #expect(task.name == "echo")
        let queued = try #require(task.timeQueued)
        let started = try #require(task.timeStarted)
        let completed = try #require(task.timeCompleted)
        #expect(queued <= started && started <= completed)
        supervisor.waitUntilIdle()
        #expect(supervisor.task(id: task.id) == nil)
        let info = try #require(supervisor.info().processPool)
        #expect(info.childrenSpawned == 1)
        #expect(info.childDeaths == 0)
        #expect(info.children.count == 1)
        #expect(info.children.first?.tasksRun == 1)
        #expect(info.children.first?.busy == false)
        #expect(info.queuedCount == 0 && info.runningCount == 0)
        #expect(info.brokenCause == nil)
        // A warm child takes the next call.
        let pid = try supervisor.submitProcess(fixtureCall("p")).replyText()
        #expect(try supervisor.submitProcess(fixtureCall("p")).replyText() == pid)
        // Large payloads cross in both directions.
        let big = String(repeating: "abcdefgh", count: 300_000)
        #expect(try supervisor.submitProcess(fixtureCall("e" + big)).replyText() == big)
        supervisor.finishProcessPool()
    }

    @Test("replies go through the transform; failures become remoteFailure")
    func transforms() async throws {
        let supervisor = TaskSupervisor.withFixturePool()
        let upper = supervisor.submitProcess(fixtureCall("eabc")) { reply in
            guard case .success(let bytes) = reply else {
                throw TestFailure(message: "not a success")
            }
            return String(decoding: bytes, as: UTF8.self).uppercased()
        }
        #expect(try await upper.value(as: String.self) == "ABC")

        let failing = supervisor.submitProcess(fixtureCall("fbad input"))
        let error = try failing.poolError()
        guard case .remoteFailure(let bytes) = error else {
            Issue.record("expected remoteFailure, got \(error)")
            return
        }
        #expect(String(decoding: bytes, as: UTF8.self) == "bad input")
        #expect("\(error)".contains("bad input"))

        let thrown = supervisor.submitProcess(fixtureCall("eok")) { _ in throw TestFailure(message: "no thanks") }
        #expect(thrown.wait(timeout: 60))
        #expect(thrown.error as? TestFailure == TestFailure(message: "no thanks"))
        supervisor.finishProcessPool()
    }

    @Test("definitions are sent once per child")
    func definitionsOnce() throws {
        let supervisor = TaskSupervisor.withFixturePool()
        func definition(_ key: UInt64) -> ProcessDefinition {
            ProcessDefinition(key: key, payload: Array("definition \(key)".utf8))
        }
        let first = supervisor.submitProcess(fixtureCall("d", definitions: [definition(1), definition(2)]))
        #expect(try first.replyText() == "new=2 known=1,2")
        let second = supervisor.submitProcess(fixtureCall("d", definitions: [definition(2), definition(3)]))
        #expect(try second.replyText() == "new=1 known=1,2,3")
        let third = supervisor.submitProcess(
            fixtureCall("d", definitions: [definition(1), definition(3), definition(3)]))
        #expect(try third.replyText() == "new=0 known=1,2,3")
        // A new child gets them again.
        _ = try supervisor.submitProcess(fixtureCall("x1")).poolError()
        let fresh = supervisor.submitProcess(fixtureCall("d", definitions: [definition(1), definition(2)]))
        #expect(try fresh.replyText() == "new=2 known=1,2")
        supervisor.finishProcessPool()
    }

    @Test("requests and notifications reach the parent's service")
    func service() throws {
        let service = ProcessService()
        let supervisor = TaskSupervisor.withFixturePool(service: service)
        #expect(try supervisor.submitProcess(fixtureCall("rping:42")).replyText() == "pong:42")
        #expect(try supervisor.submitProcess(fixtureCall("nhello there")).replyText() == "")
        #expect(service.events.wait(for: "notify hello there"))
        supervisor.finishProcessPool()

        // Without a service, a request fails in the child.
        let bare = TaskSupervisor.withFixturePool()
        let refused = bare.submitProcess(fixtureCall("rping:1"))
        guard case .remoteFailure(let bytes) = try refused.poolError() else {
            Issue.record("expected remoteFailure")
            return
        }
        #expect(String(decoding: bytes, as: UTF8.self).contains("no service"))
        bare.finishProcessPool()
    }

    @Test("a child gets fds 0-3 only, the pool's environment and arguments, SIGINT ignored")
    func childEnvironment() throws {
        let supervisor = TaskSupervisor.withFixturePool { configuration in
            configuration.environment = ["ATASKER_TEST_VALUE": "forty two"]
            configuration.hello = Array("greetings".utf8)
        }
        #expect(try supervisor.submitProcess(fixtureCall("F")).replyText() == "0,1,2,3")
        #expect(try supervisor.submitProcess(fixtureCall("EATASKER_TEST_VALUE")).replyText() == "forty two")
        #expect(try supervisor.submitProcess(fixtureCall("EATASKER_PROCESS_CHILD")).replyText() == "<unset>")
        #expect(try supervisor.submitProcess(fixtureCall("h")).replyText() == "greetings")
        #expect(try supervisor.submitProcess(fixtureCall("D\(SIGINT)")).replyText() == "ignored")
        // Every other signal has its default action, whatever the parent installed, and none is blocked.
        #expect(try supervisor.submitProcess(fixtureCall("D\(SIGUSR2)")).replyText() == "default")
        #expect(try supervisor.submitProcess(fixtureCall("D\(SIGPIPE)")).replyText() == "default")
        #expect(try supervisor.submitProcess(fixtureCall("M")).replyText() == "")
        // Ctrl-C reaches the whole process group; a child ignores it and keeps serving.
        let pid = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        #expect(kill(pid, SIGINT) == 0)
        #expect(try supervisor.submitProcess(fixtureCall("eafter SIGINT")).replyText() == "after SIGINT")
        #expect(try supervisor.submitProcess(fixtureCall("p")).replyText() == "\(pid)")
        supervisor.finishProcessPool()
    }

    @Test("signals the parent ignores are reset to their default in a child")
    func signalDefaults() throws {
        // SIGUSR2 is not used by anything else in the test process.
        let previous = signal(SIGUSR2, SIG_IGN)
        defer { signal(SIGUSR2, previous) }
        let supervisor = TaskSupervisor.withFixturePool()
        #expect(try supervisor.submitProcess(fixtureCall("D\(SIGUSR2)")).replyText() == "default")
        supervisor.finishProcessPool()
    }

    @Test("a child gets no other child's descriptor; beforeSpawn runs before each spawn")
    func isolation() throws {
        let service = ProcessService()
        let spawns = Atomic<Int>(0)
        let supervisor = TaskSupervisor.withFixturePool(poolSize: 3, service: service) { configuration in
            configuration.beforeSpawn = { spawns.add(1, ordering: .relaxed) }
        }
        let first = supervisor.submitProcess(fixtureCall("rblock:first"))
        #expect(service.events.wait(for: "started first"))
        let second = supervisor.submitProcess(fixtureCall("rblock:second"))
        #expect(service.events.wait(for: "started second"))
        #expect(try supervisor.submitProcess(fixtureCall("F")).replyText() == "0,1,2,3")
        #expect(spawns.load(ordering: .relaxed) == 3)
        #expect(supervisor.info().processPool?.childrenSpawned == 3)
        service.open("first")
        service.open("second")
        _ = try first.replyText()
        _ = try second.replyText()
        supervisor.finishProcessPool()
    }

    @Test("the default configuration; ProcessChild outside a child")
    func defaults() throws {
        let configuration = ProcessPoolConfiguration()
        #expect(configuration.poolSize == Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #expect(configuration.reserveNormal == 5 && configuration.reserveHigh == 5)
        #expect(configuration.executable == ProcessPoolConfiguration.currentExecutable)
        #expect(configuration.executable.hasPrefix("/"))
        #expect(configuration.arguments.isEmpty && configuration.environment.isEmpty && configuration.hello.isEmpty)
        #expect(configuration.startupFailureLimit == 5 && configuration.startupFailureWindow == 10)
        #expect(configuration.stopTimeout == 5)
        #expect(TaskSupervisor().processPoolConfiguration == nil)
        #expect(TaskSupervisor().info().processPool == nil)
        #expect(!ProcessChild.isChild)
        #expect(throws: ProcessChildError.self) { try ProcessChild.request([1]) }
        #expect(throws: ProcessChildError.self) { try ProcessChild.notify([1]) }
        ProcessChild.runIfChild { _ in throw TestFailure(message: "not a child") }
    }

    @Test("a child waiting for a response keeps the calls pipelined meanwhile, in order")
    func requestWithPipelinedCalls() throws {
        let service = ProcessService()
        let supervisor = TaskSupervisor.withFixturePool(service: service)
        supervisor.processPoolSlot.withLock { $0 }?.state.withLock {
            $0.pipelineThreshold = 1000
            $0.pipelineNeedsBacklog = false
        }
        #expect(try supervisor.submitProcess(fixtureCall("ewarm")).replyText() == "warm")
        let blocked = supervisor.submitProcess(fixtureCall("rblock:answer"))
        #expect(service.events.wait(for: "started answer"))
        let behind = (0..<5).map { supervisor.submitProcess(fixtureCall("n\($0)")) }
        #expect(behind.allSatisfy { $0.status == .started })
        #expect(supervisor.info().processPool?.children.first?.outstandingCalls == 6)
        service.open("answer")
        #expect(try blocked.replyText() == "released answer")
        for task in behind {
            #expect(try task.replyText() == "")
        }
        #expect(service.events.all.filter { $0.hasPrefix("notify") } == (0..<5).map { "notify \($0)" })
        supervisor.finishProcessPool()
    }

    @Test("a child's standard output passes through to the parent's")
    func standardOutput() throws {
        let parent = try FixtureParent(["parent-print"])
        let output = parent.readAll()
        let status = parent.wait()
        #expect(status == 0, "the parent fixture ended with wait status \(status): \(output)")
        #expect(output.contains("child says hello\n"))
        #expect(output.contains("parent says done"))
    }

    @Test("a queued process task can be cancelled; process tasks count for info and idleness")
    func cancelQueued() throws {
        let service = ProcessService()
        let supervisor = TaskSupervisor.withFixturePool(service: service)
        let blocker = supervisor.submitProcess(fixtureCall("rblock:one"))
        #expect(service.events.wait(for: "started one"))
        let waiting = supervisor.submitProcess(fixtureCall("eqqq"))
        #expect(waiting.status == .queued)
        #expect(supervisor.info().tasks == 2)
        #expect(supervisor.info().threadTasks.isEmpty)
        #expect(supervisor.info().processPool?.queuedCount == 1)
        #expect(supervisor.info().processPool?.runningCount == 1)
        #expect(!supervisor.isIdle)
        #expect(supervisor.task(id: waiting.id) === waiting)
        #expect(waiting.cancel())
        #expect(waiting.status == .canceled)
        #expect(!waiting.cancel())
        #expect(!blocker.cancel())
        service.open("one")
        #expect(try blocker.replyText() == "released one")
        supervisor.waitUntilIdle()
        #expect(supervisor.isIdle)
        #expect(supervisor.info().tasks == 0)
        supervisor.finishProcessPool()
    }
}
