import Foundation
import Testing

@Suite("atasker-lua, the process pool", .serialized)
struct ProcessPoolCLITests {
    @Test("mp tasks and workers: the ported atasker tests, faults of children, refusals")
    func processPool() throws {
        let run = try CLIRun.run(["Tests/Fixtures/mp.lua"], timeout: 120)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("passed, 0 failed"), "\(run.stdout)")
        #expect(run.stdout.contains("printed by a child\n"), "\(run.stdout)")
        #expect(run.stderr.contains("hello from the child log"), "\(run.stderr)")
    }

    @Test("Ctrl-C with a child running: the program stops, the child is killed at the stop deadline and reaped")
    func interruptWithChild() throws {
        var child: Int32 = 0
        let started = Date()
        let run = try CLIRun.run(["--stop-timeout", "1", "Tests/Fixtures/mp_signal.lua"], timeout: 60) {
            process, out in
            #expect(out.waitFor("child pid "), "the child never started")
            child = Self.childPID(out)
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.signaled && run.status == SIGINT, "status \(run.status): \(run.stderr)")
        #expect(Date().timeIntervalSince(started) < 20)
        #expect(child > 0)
        #expect(Self.isGone(child), "child \(child) outlived its parent")
    }

    @Test("a parent killed with SIGKILL takes its children with it within a second or two")
    func parentKilled() throws {
        var child: Int32 = 0
        var killedAt = Date()
        let run = try CLIRun.run(["Tests/Fixtures/mp_signal.lua"], timeout: 60) { process, out in
            #expect(out.waitFor("child pid "), "the child never started")
            child = Self.childPID(out)
            killedAt = Date()
            kill(process.processIdentifier, SIGKILL)
        }
        #expect(run.signaled && run.status == SIGKILL)
        #expect(child > 0)
        // The collector saw the end of stdout: no process holds the pipe any more, the child included.
        #expect(Date().timeIntervalSince(killedAt) < 5, "the child held the output open")
        #expect(Self.waitGone(child, timeout: 2), "child \(child) outlived its killed parent")
    }

    /// The pid that the child printed ("child pid N").
    static func childPID(_ out: Collector) -> Int32 {
        _ = out.waitFor("\n", timeout: 5)
        let text = out.snapshot()
        guard let range = text.range(of: "child pid ") else { return 0 }
        let digits = text[range.upperBound...].prefix { $0.isNumber }
        return Int32(digits) ?? 0
    }

    /// The process is gone, or a zombie of a parent that is gone (no reaper in some containers).
    static func isGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        guard let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state == "Z" || state == "X"
    }

    static func waitGone(_ pid: Int32, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if isGone(pid) { return true }
            usleep(20_000)
        }
        return isGone(pid)
    }
}
