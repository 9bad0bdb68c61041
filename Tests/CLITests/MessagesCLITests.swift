import Foundation
import Testing

@Suite("atasker-lua: errors name the place and speak Lua")
struct MessagesCLITests {
    /// The line of case `name` in the fixture's output.
    private func line(_ run: CLIRun, _ name: String) -> String {
        run.stdout.split(separator: "\n").first { $0.hasPrefix("\(name)\t") }.map(String.init) ?? "(no line)"
    }

    @Test("shared cycles, atasker.g without a key, an uncopyable o=, NUL bytes, an async on_error that raises")
    func messages() throws {
        let run = try CLIRun.run(["Tests/Fixtures/messages.lua"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(line(run, "shared cycle").contains("shared 'msgs': set: a table that contains itself (a cycle)"))
        #expect(!run.stdout.contains("LuaValue"), "\(run.stdout)")
        #expect(line(run, "g clear").hasSuffix("atasker.g:clear(key): the key is missing (nil)"))
        #expect(line(run, "g dot").contains("atasker.g:get: call it with ':'"))
        #expect(line(run, "g nan").contains("atasker.g:set(key): the key is NaN"))
        #expect(line(run, "worker o").contains("background_worker 'mo': cannot copy o.f (a FILE* userdata)"))
        #expect(line(run, "task nul") == "task nul\tTests/Fixtures/messages.lua:19: a\\0b", "\(run.stdout)")
        #expect(line(run, "on_error nul") == "on_error nul\tTests/Fixtures/messages.lua:22: x<NUL>y")
        #expect(line(run, "async on_error raised") == "async on_error raised\taccepted")
        #expect(run.stderr.contains("worker 'maw' failed: on_error failed: Tests/Fixtures/messages.lua:31: second"))
        #expect(run.stderr.contains("while it handled: Tests/Fixtures/messages.lua:30: first"), "\(run.stderr)")
        #expect(!run.stderr.contains("error in error handling"))
    }

    @Test("a worker out of memory: on_error gets 'not enough memory' with the place, thread and async")
    func outOfMemory() throws {
        // a small address space, so that a 2 GiB string cannot be made
        let command =
            "ulimit -v 1500000 && ATASKER_TEST_OOM=1 exec '\(CLIRun.binary)' Tests/Fixtures/messages.lua"
        let run = try CLIRun.run(["-c", command], executable: "/bin/sh")
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(
            line(run, "oom thread").contains("Tests/Fixtures/messages.lua:42: not enough memory in the executor"),
            "\(run.stdout)\n\(run.stderr)")
        #expect(line(run, "oom async") == "oom async\tTests/Fixtures/messages.lua:42: not enough memory")
    }
}
