import Foundation
import Testing

@Suite("atasker-lua, the command line", .serialized)
struct CLITests {
    @Test("--version prints the version and exits 0")
    func version() throws {
        let run = try CLIRun.run(["--version"])
        #expect(run.status == 0)
        #expect(run.stdout.contains("atasker-lua 0.1.0"))
    }

    @Test("--help prints the usage and the options and exits 0")
    func help() throws {
        let run = try CLIRun.run(["--help"])
        #expect(run.status == 0)
        #expect(run.stdout.contains("USAGE: atasker-lua"))
        #expect(run.stdout.contains("--pool-size"))
        #expect(run.stdout.contains("--stop-timeout"))
    }

    @Test("a usage error exits 2 with a message")
    func usageErrors() throws {
        let missing = try CLIRun.run([])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("Missing expected argument"))
        let badOption = try CLIRun.run(["--no-such-option", "x.lua"])
        #expect(badOption.status == 2)
        let badValue = try CLIRun.run(["--pool-size=-3", CLIRun.fixture("args.lua")])
        #expect(badValue.status == 2)
        #expect(badValue.stderr.contains("--pool-size must be >= 0"))
        let badLevel = try CLIRun.run(["--log-level", "loud", CLIRun.fixture("args.lua")])
        #expect(badLevel.status == 2)
    }

    @Test("a missing script exits 1 and names the file")
    func missingFile() throws {
        let run = try CLIRun.run(["Tests/Fixtures/no_such_script.lua"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("cannot open Tests/Fixtures/no_such_script.lua"))
    }

    @Test("a syntax error exits 1 with file:line and runs nothing")
    func syntaxError() throws {
        let run = try CLIRun.run(["Tests/Fixtures/syntax_error.lua"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("Tests/Fixtures/syntax_error.lua:2:"))
        #expect(!run.stdout.contains("this never runs"))
    }

    @Test("a precompiled (bytecode) script is refused: files load as text only")
    func bytecodeRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("atasker-bytecode-\(getpid()).luac")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let write = try CLIRun.run(["Tests/Fixtures/write_bytecode.lua", path])
        #expect(write.status == 0, "\(write.stderr)")
        let run = try CLIRun.run([path])
        #expect(run.status == 1)
        #expect(run.stderr.contains("attempt to load a binary chunk"), "\(run.stderr)")
        #expect(!run.stdout.contains("bytecode ran"))
    }

    @Test("a runtime error at top level exits 1 with file:line and a traceback")
    func runtimeError() throws {
        let run = try CLIRun.run(["Tests/Fixtures/runtime_error.lua"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("Tests/Fixtures/runtime_error.lua:2: boom at the top"))
        #expect(run.stderr.contains("stack traceback:"))
        #expect(run.stderr.contains("runtime_error.lua:4:"))
    }

    @Test("a task's error raised by wait_completed names the task's line")
    func taskError() throws {
        let run = try CLIRun.run(["Tests/Fixtures/task_error.lua"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("task_error.lua:3: failed inside the task"))
    }

    @Test("wait_completed of a table of tasks returns one list of their results, in order, from sync and async code")
    func waitList() throws {
        let run = try CLIRun.run(["Tests/Fixtures/wait_list.lua"])
        #expect(run.status == 0, "\(run.stderr)")
        let expected = [
            "loop: 2 4 nil 8 {5,6} nil 14 16 nil {10,11}", "backwards: 2 4 nil", "hashed: 2", "empty: 0",
            "not a task: bad argument #1 to 'wait_completed' (item 2 is not an atasker.Task)",
            "another handle: bad argument #1 to 'wait_completed' (item 2 is not an atasker.Task)", "a hole: table",
            "nan timeout: wait_completed: argument #2 (timeout) must be a number of seconds >= 0 and <= 1e9 (got nan)",
            "same task twice: 2 2", "async: 2 4 nil 8",
        ]
        #expect(run.stdout.split(separator: "\n").map(String.init) == expected, "\(run.stdout)")
    }

    @Test("script arguments reach `arg`, options after the script included")
    func arguments() throws {
        let run = try CLIRun.run(["--pool-size", "2", "Tests/Fixtures/args.lua", "one", "--two", "-x", "three four"])
        #expect(run.status == 0)
        #expect(run.stdout == "Tests/Fixtures/args.lua\n4\none\n--two\n-x\nthree four\n")
    }

    @Test("os.exit(code) stops the program with that status")
    func exitCode() throws {
        let run = try CLIRun.run(["Tests/Fixtures/exit_code.lua"])
        #expect(run.status == 3)
        #expect(!run.signaled)
        #expect(run.stdout == "before exit\n")
    }

    @Test(
        "SIGINT stops gracefully: running work finishes, then the program dies by SIGINT", arguments: [SIGINT, SIGTERM])
    func signals(_ signal: Int32) throws {
        let run = try CLIRun.run(["Tests/Fixtures/signal_wait.lua", "0.5"]) { process, stdout in
            #expect(stdout.waitFor("task started"))
            kill(process.processIdentifier, signal)
        }
        #expect(run.signaled)
        #expect(run.status == signal)
        #expect(run.stdout.contains("task done"))
    }

    @Test("the program waits for its tasks, then exits 0")
    func waitsForTasks() throws {
        let run = try CLIRun.run(["Tests/Fixtures/signal_wait.lua", "0.2"])
        #expect(run.status == 0)
        #expect(run.stdout == "task started\ntask done\n")
    }

    @Test("the ported atasker tests pass in Lua")
    func portedTests() throws {
        let run = try CLIRun.run(["Tests/Fixtures/port_atasker.lua"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("passed, 0 failed"))
        #expect(!run.stdout.contains("FAIL"))
    }

    @Test("Lua workers: the ported atasker worker tests and the workers' rules")
    func workers() throws {
        let run = try CLIRun.run(["Tests/Fixtures/workers.lua"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("passed, 0 failed"), "\(run.stdout)")
        #expect(run.stdout.hasSuffix("last worker done\n"))
    }

    @Test("atasker's helpers: Locker, FunctionCollection, TaskCollection")
    func helpers() throws {
        let run = try CLIRun.run(["Tests/Fixtures/helpers.lua"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("passed, 0 failed"), "\(run.stdout)")
        #expect(run.stderr.contains("test (broken is fine!) locking broken"))
    }

    @Test("every example prints what its header says")
    func examples() throws {
        let folder = CLIRun.packageRoot.appendingPathComponent("Examples")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".lua") }
        #expect(!files.isEmpty)
        for file in files.sorted() {
            let path = "Examples/\(file)"
            let expected = try expectedOutput(of: folder.appendingPathComponent(file).path)
            // The PostgreSQL example runs on a new database of the test server, as a host would with --store.
            var bench: JobsBench? = nil
            if file == "durable_postgres.lua" {
                guard postgresTestURL != nil else {
                    print("note: \(path) is not run: ATASKER_TEST_POSTGRES is not set")
                    continue
                }
                bench = try JobsBench(.postgres)
            }
            let environment = bench.map { ["ATASKER_STORE": $0.url] } ?? [:]
            let run = try CLIRun.run([path], environment: environment, whileRunningWithStreams: nil)
            #expect(run.status == 0, "\(path): \(run.stderr)")
            #expect(run.stdout == expected, "\(path)")
        }
    }
}

/// The lines after `-- Prints:` in a Lua example's header comment, each `--   line`.
func expectedOutput(of path: String) throws -> String {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var lines: [String] = []
    var inBlock = false
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        guard line.hasPrefix("--") else { break }
        if line.trimmingCharacters(in: .whitespaces) == "-- Prints:" {
            inBlock = true
            continue
        }
        if inBlock {
            guard line.hasPrefix("--   ") else { break }
            lines.append(String(line.dropFirst(5)))
        }
    }
    return lines.map { $0 + "\n" }.joined()
}

@Suite("atasker-lua: the supervisor, stopping, and the Swift example", .serialized)
struct CLISupervisorTests {
    @Test("the supervisor's API from Lua; a task that stops the supervisor ends the program")
    func supervisorFixture() throws {
        let run = try CLIRun.run(["--log-level", "debug", "Tests/Fixtures/supervisor.lua"], timeout: 20)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("passed, 0 failed"), "\(run.stdout)")
        #expect(!run.stdout.contains("never runs"))
        #expect(run.stderr.contains("an info line from Lua 42"))
        #expect(run.stderr.contains("a debug line"))
        #expect(!run.stderr.contains("a hidden debug line"))
        #expect(run.stderr.contains("started in") || run.stderr.contains("not started after"), "\(run.stderr)")
    }

    @Test("work still running at the stop deadline is named in the log, and the program still ends")
    func stopDeadline() throws {
        let started = Date()
        let run = try CLIRun.run(["--stop-timeout", "0.3", "Tests/Fixtures/signal_wait.lua", "30"]) {
            process, stdout in
            #expect(stdout.waitFor("task started"))
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.signaled)
        #expect(run.status == SIGINT)
        #expect(Date().timeIntervalSince(started) < 15)
        #expect(run.stderr.contains("still runs at the stop deadline"), "\(run.stderr)")
        #expect(!run.stdout.contains("task done"))
    }

    @Test("a second SIGINT quits at once")
    func secondSignal() throws {
        let run = try CLIRun.run(["--stop-timeout", "30", "Tests/Fixtures/signal_wait.lua", "30"]) {
            process, stdout in
            #expect(stdout.waitFor("task started"))
            kill(process.processIdentifier, SIGINT)
            usleep(200_000)
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.signaled)
        #expect(run.status == SIGINT)
        #expect(run.stderr.contains("quitting without waiting"), "\(run.stderr)")
    }

    @Test("the Swift embedding example prints what its header says")
    func swiftExample() throws {
        let binary = URL(fileURLWithPath: CLIRun.binary).deletingLastPathComponent()
            .appendingPathComponent("EmbedSwift").path
        let header = try String(
            contentsOf: CLIRun.packageRoot.appendingPathComponent("Examples/EmbedSwift/main.swift"), encoding: .utf8)
        let expected = header.split(separator: "\n").drop { !$0.hasPrefix("// Prints:") }.dropFirst()
            .prefix { $0.hasPrefix("//   ") }.map { String($0.dropFirst(5)) + "\n" }.joined()
        #expect(!expected.isEmpty)
        let run = try CLIRun.run([], executable: binary)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == expected)
    }
}
