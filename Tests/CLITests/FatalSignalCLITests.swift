import Foundation
import Testing

/// Fatal signals as a C program has them: a child or the host itself dies by the signal, with one line on stderr.
@Suite("atasker-lua: fatal signals kill, as in a C program", .serialized)
struct FatalSignalCLITests {
    static func name(_ signal: Int32) -> String {
        [
            SIGQUIT: "QUIT", SIGSEGV: "SEGV", SIGABRT: "ABRT", SIGILL: "ILL", SIGBUS: "BUS", SIGFPE: "FPE",
            SIGTRAP: "TRAP",
        ][
            signal] ?? "?"
    }

    @Test(
        "a child killed by a fatal signal fails its task naming the signal, and is replaced",
        arguments: [SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE])
    func childKilled(signal: Int32) throws {
        var child: Int32 = 0
        let run = try CLIRun.run(["Tests/Fixtures/mp_crash.lua"], timeout: 120) { _, out in
            #expect(out.waitFor("child pid "), "the child never started")
            child = ProcessPoolCLITests.childPID(out)
            // never kill(0, ...): that would signal this test process's whole group
            guard child > 0 else {
                Issue.record("no child pid in: \(out.snapshot())")
                return
            }
            kill(child, signal)
        }
        let name = Self.name(signal)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(
            run.stdout.contains("failed:\ttrue\tfailed\t") && run.stdout.contains("was killed by SIG\(name)"),
            "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.hasSuffix("after: ok\n"), "\(run.stdout)")
        // one line from the child, not the Swift runtime's crash report
        #expect(run.stderr.contains("atasker pool child (pid \(child)): killed by SIG\(name), sent by pid"))
        #expect(!run.stderr.contains("Backtracing"), "\(run.stderr)")
    }

    @Test(
        "the host killed by a fatal signal from outside dies by it at once",
        arguments: [SIGQUIT, SIGSEGV, SIGABRT, SIGILL, SIGBUS, SIGFPE, SIGTRAP])
    func hostKilled(signal: Int32) throws {
        var sentAt = Date()
        let run = try CLIRun.run(["Tests/Fixtures/signal_wait.lua", "30"], timeout: 60) { process, out in
            #expect(out.waitFor("task started"), "the script never started")
            sentAt = Date()
            kill(process.processIdentifier, signal)
        }
        #expect(run.signaled && run.status == signal, "status \(run.status): \(run.stderr)")
        #expect(Date().timeIntervalSince(sentAt) < 10)
        #expect(run.stderr.contains("killed by SIG\(Self.name(signal)), sent by pid"))
        #expect(!run.stderr.contains("Backtracing"), "\(run.stderr)")
    }
}

@Suite("atasker-lua: the process pool's frame limit")
struct ProcessFrameLimitCLITests {
    @Test("an mp argument or upvalue over 256 MiB is refused at the call; the pool goes on")
    func overTheLimit() throws {
        let run = try CLIRun.run(["Tests/Fixtures/mp_limit.lua"], timeout: 120)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let refusal = "over the process pool's limit of 256 MiB per call"
        #expect(run.stdout.contains("argument\tfalse\tmp task: its arguments and function take 258 MiB, \(refusal)"))
        #expect(run.stdout.contains("upvalue\tfalse\tmp task: its arguments and function take 258 MiB, \(refusal)"))
        #expect(run.stdout.hasSuffix("small\t3\n"), "\(run.stdout)\n\(run.stderr)")
    }
}

@Suite("atasker-lua: a second Ctrl-C with a busy child")
struct SecondSignalCLITests {
    @Test("the second SIGINT kills the pool's children at once instead of waiting for the pool's stop timeout")
    func secondSignalKillsChildren() throws {
        var child: Int32 = 0
        var secondAt = Date()
        let run = try CLIRun.run(["--stop-timeout", "60", "Tests/Fixtures/mp_busy.lua"], timeout: 120) {
            process, out in
            #expect(out.waitFor("child pid "), "the child never started")
            child = ProcessPoolCLITests.childPID(out)
            kill(process.processIdentifier, SIGINT)
            usleep(200_000)
            secondAt = Date()
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.signaled && run.status == SIGINT, "status \(run.status): \(run.stderr)")
        // the pool's own stop timeout is 5 s: well under it, on a busy machine too
        #expect(Date().timeIntervalSince(secondAt) < 4, "\(run.stderr)")
        #expect(ProcessPoolCLITests.waitGone(child, timeout: 2), "child \(child) outlived its parent")
    }
}
