import Foundation
import Testing

@Suite("atasker-lua: async workers, aloops and async jobs")
struct AsyncCLITests {
    @Test("the ported atasker aloop and async tests, and the rules of async code, pass in Lua")
    func asyncFixture() throws {
        let run = try CLIRun.run(["Tests/Fixtures/async.lua"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("passed, 0 failed"), "\(run.stdout)")
        #expect(!run.stdout.contains("FAIL"))
        // the cancelled execution names the worker and the line where it waited
        #expect(run.stderr.contains("worker 'longsleep' cancelled at Tests/Fixtures/async.lua:"), "\(run.stderr)")
    }

    @Test("a coroutine that never yields is reported with its worker's name and traceback, then cancelled, twice")
    func neverYielding() throws {
        let run = try CLIRun.run(["Tests/Fixtures/async_block.lua"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(
            run.stdout == "ticks before\tok\nticks after\tok\nerrors\t1\nerrors\t2\nticks again\tok\n",
            "\(run.stdout)\n\(run.stderr)")
        #expect(
            run.stderr.contains("worker 'spinner' has not yielded for 0.2"), "\(run.stderr)")
        #expect(run.stderr.contains("holds aloop 'default'"))
        #expect(run.stderr.contains("stack traceback:\n\tTests/Fixtures/async_block.lua:28: in local 'busy'"))
        #expect(run.stderr.contains("worker 'spinner' cancelled at Tests/Fixtures/async_block.lua:28"))
    }

    @Test("SIGINT: async code that waits is cancelled at the stop deadline, and the program dies by SIGINT")
    func signalCancelsWaitingCoroutines() throws {
        let started = Date()
        let run = try CLIRun.run(["--stop-timeout", "0.5", "Tests/Fixtures/async_signal.lua"]) { process, stdout in
            #expect(stdout.waitFor("waiting"))
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.signaled)
        #expect(run.status == SIGINT)
        #expect(Date().timeIntervalSince(started) < 20)
        #expect(run.stderr.contains("worker 'sleeper' cancelled at Tests/Fixtures/async_signal.lua:8"), "\(run.stderr)")
        #expect(run.stderr.contains("cancelled at Tests/Fixtures/async_signal.lua:13"), "\(run.stderr)")
    }

    @Test("the program waits for async workers and aloop tasks, then exits 0")
    func waitsForAsyncWork() throws {
        let run = try CLIRun.run(["Examples/async_workers.lua"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "consumed 1 2 3 4 5\naloop task: 42\njob runs: 3\n")
    }
}
