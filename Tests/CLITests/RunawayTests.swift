import Foundation
import Testing

/// Runaway Lua code in the real binary: cancelled at a worker's stop deadline, at the program's stop deadline, on a
/// second SIGINT, or reported by `run_timeout`; code stuck in one long C call is named and left behind.
@Suite("atasker-lua: cancelling runaway code")
struct RunawayTests {
    @Test("stop{wait=T} cancels a bare loop, a pcall loop and a loop in a coroutine; the pool goes on")
    func workerStop() throws {
        let run = try CLIRun.run(["Tests/Fixtures/runaway.lua"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "bare\ttrue\t1\nguarded\ttrue\t1\nnested\ttrue\t1\ntask\t42\ndone\n")
        #expect(run.stderr.contains("worker 'bare' cancelled at Tests/Fixtures/runaway.lua:10"), "\(run.stderr)")
        #expect(run.stderr.contains("worker 'guarded' cancelled at Tests/Fixtures/runaway.lua:1"), "\(run.stderr)")
        #expect(run.stderr.contains("worker 'nested' cancelled at Tests/Fixtures/runaway.lua:25"), "\(run.stderr)")
    }

    @Test("thread count and RSS come back after runaway workers are cancelled, round after round")
    func resourcesComeBack() throws {
        let run = try CLIRun.run(["Tests/Fixtures/runaway_rss.lua", "30"])
        #expect(run.status == 0, "\(run.stderr)")
        let numbers = run.stdout.split(separator: "\n").map {
            $0.split(separator: "\t").dropFirst().compactMap { Int($0) }
        }
        try #require(numbers.count == 2 && numbers.allSatisfy { $0.count == 2 }, "\(run.stdout)")
        let (threadsBefore, rssBefore) = (numbers[0][0], numbers[0][1])
        let (threadsAfter, rssAfter) = (numbers[1][0], numbers[1][1])
        #expect(threadsAfter <= threadsBefore + 4, "\(run.stdout)")
        #expect(rssAfter <= rssBefore + 16 * 1024, "\(run.stdout)")
        #expect(run.stderr.components(separatedBy: "cancelled at").count - 1 == 4 * 31)
    }

    @Test("run_timeout logs the Lua traceback; cancel_on_timeout cancels the execution")
    func runTimeout() throws {
        let run = try CLIRun.run(["Tests/Fixtures/runaway_timeout.lua"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("slow done"))
        #expect(run.stdout.contains("stuck run 2"))
        #expect(
            run.stderr.contains(
                "worker 'slow' runs longer than run_timeout (0.2 s), at Tests/Fixtures/runaway_timeout.lua:"),
            "\(run.stderr)")
        #expect(run.stderr.contains("Tests/Fixtures/runaway_timeout.lua:14: in function"), "\(run.stderr)")
        #expect(
            run.stderr.contains("worker 'stuck' cancelled at Tests/Fixtures/runaway_timeout.lua:24"), "\(run.stderr)")
    }

    @Test("the stop deadline cancels running loops")
    func stopDeadline() throws {
        let started = Date()
        let run = try CLIRun.run(["--stop-timeout", "0.3", "Tests/Fixtures/runaway_cli.lua"]) { process, stdout in
            #expect(stdout.waitFor("running"))
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.signaled)
        #expect(run.status == SIGINT)
        #expect(Date().timeIntervalSince(started) < 15)
        #expect(run.stderr.contains("worker 'spin' cancelled at Tests/Fixtures/runaway_cli.lua:12"), "\(run.stderr)")
        #expect(run.stderr.contains("cancelled at Tests/Fixtures/runaway_cli.lua:17"), "\(run.stderr)")
        #expect(!run.stderr.contains("left behind"), "\(run.stderr)")
    }

    @Test("a second SIGINT cancels running loops at once")
    func secondSignal() throws {
        var sent = Date()
        let run = try CLIRun.run(["--stop-timeout", "60", "Tests/Fixtures/runaway_cli.lua"]) { process, stdout in
            #expect(stdout.waitFor("running"))
            kill(process.processIdentifier, SIGINT)
            usleep(200_000)
            sent = Date()
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.signaled)
        #expect(run.status == SIGINT)
        #expect(Date().timeIntervalSince(sent) < 10)
        #expect(run.stderr.contains("received SIGINT again: cancelling running work"), "\(run.stderr)")
        #expect(run.stderr.contains("worker 'spin' cancelled at"), "\(run.stderr)")
    }

    @Test("code stuck in one long C call is named with its place, and the program exits at its deadline")
    func stuckInC() throws {
        // Opening a FIFO that no one writes blocks in one C call (open(2)) for ever.
        let fifo = FileManager.default.temporaryDirectory.appendingPathComponent("runaway-\(getpid()).fifo").path
        unlink(fifo)
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        var sent = Date()
        let run = try CLIRun.run(["--stop-timeout", "0.3", "Tests/Fixtures/runaway_cli.lua", "stuck", fifo]) {
            process, stdout in
            #expect(stdout.waitFor("running"))
            sent = Date()
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.signaled)
        #expect(run.status == SIGINT)
        #expect(Date().timeIntervalSince(sent) < 5)
        #expect(!run.stdout.contains("open returned"))
        #expect(
            run.stderr.contains("at Tests/Fixtures/runaway_cli.lua:23 is stuck in one long C call"), "\(run.stderr)")
        #expect(run.stderr.contains("worker 'spin' cancelled at"), "\(run.stderr)")
    }

    @Test("run_timeout cancels a worker and a task that loop in xpcall's message handler")
    func handlerTimeout() throws {
        let run = try CLIRun.run(["Tests/Fixtures/runaway_handler.lua", "timeout"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("handler run 2\n"), "\(run.stdout)")
        #expect(
            run.stdout.contains(
                "task\tfalse\tfailed\ttask 2 (handler task) cancelled at Tests/Fixtures/runaway_handler.lua:18"),
            "\(run.stdout)")
        #expect(!run.stdout.contains("not reached"))
        #expect(
            run.stderr.contains("worker 'handler' cancelled at Tests/Fixtures/runaway_handler.lua:18"), "\(run.stderr)")
        #expect(!run.stderr.contains("stuck"), "\(run.stderr)")
    }

    @Test("stop{wait=T} cancels a loop in a message handler and loops that catch the cancel error and go on")
    func handlerStop() throws {
        let run = try CLIRun.run(["Tests/Fixtures/runaway_handler.lua", "stop"])
        #expect(run.status == 0, "\(run.stderr)")
        let names = ["handler", "handler_pcall", "pcall", "xpcall", "caught", "recursive", "coroutine"]
        #expect(run.stdout == names.map { "\($0)\ttrue\t1\n" }.joined(), "\(run.stdout)\n\(run.stderr)")
        for name in names {
            #expect(
                run.stderr.contains("worker '\(name)' cancelled at Tests/Fixtures/runaway_handler.lua:"),
                "\(name): \(run.stderr)")
        }
        #expect(run.stderr.contains("worker 'handler' cancelled at Tests/Fixtures/runaway_handler.lua:18"))
        #expect(!run.stderr.contains("stuck"), "\(run.stderr)")
    }

    @Test("stop{wait=T} cancels a loop in a function without line information (stripped bytecode)")
    func strippedStop() throws {
        let run = try CLIRun.run(["--allow-bytecode", "Tests/Fixtures/runaway_handler.lua", "stripped"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "stripped\ttrue\t1\n", "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains("worker 'stripped' cancelled at"), "\(run.stderr)")
        #expect(!run.stderr.contains("stuck"), "\(run.stderr)")
    }

    @Test("the stop deadline after one SIGINT cancels a worker and a task that loop in a message handler")
    func handlerSignal() throws {
        let run = try CLIRun.run(["--stop-timeout", "0.3", "Tests/Fixtures/runaway_handler.lua", "signal"]) {
            process, stdout in
            #expect(stdout.waitFor("running"))
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.signaled && run.status == SIGINT, "\(run.status): \(run.stderr)")
        #expect(
            run.stderr.contains("worker 'handler' cancelled at Tests/Fixtures/runaway_handler.lua:18"), "\(run.stderr)")
        #expect(
            run.stderr.contains("task 2 (handler task) cancelled at Tests/Fixtures/runaway_handler.lua:18"),
            "\(run.stderr)")
        #expect(!run.stderr.contains("stuck"), "\(run.stderr)")
        #expect(!run.stderr.contains("left behind"), "\(run.stderr)")
    }
}
