import Foundation
import Testing

@Suite("atasker-lua: memory limits")
struct MemoryCLITests {
    @Test(
        "memory_limit on workers, tasks, pools, aloop tasks and mp children: the error, the limit held, the rest goes on"
    )
    func limits() throws {
        let run = try CLIRun.run([CLIRun.fixture("memory.lua")], timeout: 120)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("lua: 10 passed, 0 failed"), "\(run.stdout)\n\(run.stderr)")
        #expect(!run.stdout.contains("FAIL"), "\(run.stdout)")
        // The worker without on_error logs its errors with its name; the worker whose state cannot open says why.
        #expect(run.stderr.contains("worker 'qhog' failed: "), "\(run.stderr)")
        #expect(
            run.stderr.contains("worker 'tiny': not enough memory (the memory limit is 1000 bytes"), "\(run.stderr)")
    }

    @Test(
        "--memory-limit caps the main state: a caught error leaves it usable, an uncaught one exits 1 naming the limit")
    func mainState() throws {
        let caught = try CLIRun.run(["--memory-limit", "2M", CLIRun.fixture("memory_main.lua")])
        #expect(caught.status == 0, "\(caught.stderr)")
        #expect(caught.stdout.contains("limit 2097152"))
        #expect(caught.stdout.contains("caught false not enough memory"))
        #expect(caught.stdout.contains("peak within the limit true"))
        #expect(caught.stdout.contains("task 42"))
        let uncaught = try CLIRun.run(["--memory-limit=2048k", CLIRun.fixture("memory_main.lua"), "uncaught"])
        #expect(uncaught.status == 1)
        #expect(uncaught.stdout.contains("task 42"))
        #expect(
            uncaught.stderr.contains("not enough memory: the main state reached its memory limit of 2097152 bytes"),
            "\(uncaught.stderr)")
        let none = try CLIRun.run([CLIRun.fixture("memory_main.lua"), "limit-only"])
        #expect(none.status == 0)
        #expect(none.stdout.contains("limit nil"))
        let tiny = try CLIRun.run(["--memory-limit", "8k", CLIRun.fixture("memory_main.lua")])
        #expect(tiny.status == 1)
        #expect(tiny.stderr.contains("the main Lua state: not enough memory (the memory limit is 8192 bytes"))
    }

    @Test("bad --memory-limit values are usage errors that name the option")
    func badValues() throws {
        for value in ["0", "-1", "nan", "1e300", "64X", "12parsecs", "", "2T", "0.1"] {
            let run = try CLIRun.run(["--memory-limit", value, CLIRun.fixture("args.lua")])
            #expect(run.status == 2, "\(value): \(run.stderr)")
            #expect(run.stderr.contains("--memory-limit must be a size"), "\(value): \(run.stderr)")
        }
        let help = try CLIRun.run(["--help"])
        #expect(help.stdout.contains("--memory-limit <size>"))
    }
}
