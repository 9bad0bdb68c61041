import Foundation
import Testing

/// Signals that the host does not handle (neither a stop nor a report) and that are not fatal: the host dies by them
/// as a C program does, never hangs, and its pool children go with it whatever they run.
@Suite("atasker-lua: other signals to the host, and children of a killed host", .serialized)
struct HostSignalCLITests {
    @Test(
        "SIGUSR2, SIGPIPE and SIGALRM end the host at once by the signal, as their default action",
        arguments: [SIGUSR2, SIGPIPE, SIGALRM])
    func defaultAction(signal: Int32) throws {
        var sentAt = Date()
        let run = try CLIRun.run(["Tests/Fixtures/signal_wait.lua", "30"], timeout: 60) { process, out in
            #expect(out.waitFor("task started"), "the script never started")
            sentAt = Date()
            kill(process.processIdentifier, signal)
        }
        #expect(run.signaled && run.status == signal, "signal \(signal): status \(run.status): \(run.stderr)")
        #expect(Date().timeIntervalSince(sentAt) < 10)
        #expect(!run.stdout.contains("task done"), "\(run.stdout)")
    }

    @Test("a child that spins in Lua (no host call to return from) goes within seconds of its parent's SIGKILL")
    func busyChildOfKilledParent() throws {
        var child: Int32 = 0
        let run = try CLIRun.run(["Tests/Fixtures/mp_spin.lua"], timeout: 60) { process, out in
            #expect(out.waitFor("child pid "), "the child never started")
            child = ProcessPoolCLITests.childPID(out)
            kill(process.processIdentifier, SIGKILL)
        }
        #expect(run.signaled && run.status == SIGKILL)
        #expect(child > 0)
        #expect(ProcessPoolCLITests.waitGone(child, timeout: 5), "child \(child) outlived its killed parent")
    }
}
