import Foundation
import Testing

/// Bad numbers and misspelt options from Lua (issue 12, defects 0, 8, 11 and 13): each is a Lua error that names
/// the function and the argument or option, never a crash of the host and never accepted silently.
@Suite struct BadInputCLITests {
    @Test("every function that takes a number refuses NaN, infinities and out-of-range values with a clear error")
    func badNumbersAreErrors() throws {
        let run = try CLIRun.run([CLIRun.fixture("bad_numbers.lua")])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(!run.signaled, "the host died by a signal: \(run.stderr)")
        #expect(!run.stdout.contains("ACCEPTED"), "\(run.stdout)")
        #expect(!run.stdout.contains("BADMESSAGE"), "\(run.stdout)")
        // "DONE <checked> <problems>": hundreds of cases ran, none of them a problem.
        let done = run.stdout.split(separator: "\n").first { $0.hasPrefix("DONE ") }
        let fields = done?.split(separator: " ") ?? []
        #expect(fields.count == 3 && (Int(fields[1]) ?? 0) > 300 && fields[2] == "0", "\(run.stdout)\(run.stderr)")
    }

    @Test("a negative --stop-timeout is a usage error (exit 2) that names the option")
    func negativeStopTimeout() throws {
        let run = try CLIRun.run(["--stop-timeout", "-1", CLIRun.fixture("args.lua")])
        #expect(run.status == 2)
        #expect(run.stderr.contains("--stop-timeout must be a number of seconds >= 0"), "\(run.stderr)")
        let sizes = try CLIRun.run(["--min-size", "8", "--max-size", "4", CLIRun.fixture("args.lua")])
        #expect(sizes.status == 2)
        #expect(sizes.stderr.contains("--min-size"), "\(sizes.stderr)")
    }

    @Test("i= is interval=, background_worker{...}(fn) makes the worker, w:start{...} passes its table")
    func ataskerForms() throws {
        let script = """
            local n = 0
            local w = atasker.background_worker{name = "decorated", i = 0.01}(function(kw)
              n = n + 1
              if n == 3 then print("THREE " .. tostring(kw[1]) .. " " .. kw.key); return false end
            end)
            assert(w.kind == "interval", w.kind)
            w:start{"first", key = "v"}
            """
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("atasker-forms-\(getpid()).lua").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try CLIRun.run([path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("THREE first v"), "\(run.stdout)\(run.stderr)")
    }
}
