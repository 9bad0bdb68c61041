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
        #expect(try supervisor.submitProcess(fixtureCall("I")).replyText() == "ignored")
        // Ctrl-C reaches the whole process group; a child ignores it and keeps serving.
        let pid = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
        #expect(kill(pid, SIGINT) == 0)
        #expect(try supervisor.submitProcess(fixtureCall("eafter SIGINT")).replyText() == "after SIGINT")
        #expect(try supervisor.submitProcess(fixtureCall("p")).replyText() == "\(pid)")
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
