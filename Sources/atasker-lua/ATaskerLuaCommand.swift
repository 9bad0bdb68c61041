import ATasker
import ATaskerJobs
import ATaskerLua
import ArgumentParser
import Glibc
import Logging

/// `atasker-lua [options] script.lua [script args...]`: runs a Lua script on a task supervisor until no task is
/// pending and no worker is active, or until SIGINT / SIGTERM.
@main
struct ATaskerLuaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atasker-lua",
        abstract: "Run Lua 5.4 background tasks and workers on a thread pool with priorities.",
        discussion: """
            The script runs in the main Lua state; its background tasks run on pool threads, each with a Lua state of
            its own. The program exits when no task is pending and no worker is active (status 0), on a script error
            (status 1, with file:line and a traceback), on a usage error (status 2), or on SIGINT / SIGTERM: running
            work may finish within --stop-timeout, then the program dies by the same signal (130 / 143 in a shell).
            Arguments after the script reach it in the table `arg`, as with the standalone `lua`.
            """,
        version: "atasker-lua 0.1.0 (Lua 5.4)"
    )

    @Option(
        name: .long, parsing: .unconditional,
        help: "Thread pool size; 0 means unlimited. (default: 5 × the number of cores)")
    var poolSize: Int?

    @Option(name: .long, parsing: .unconditional, help: "Extra threads for NORMAL and more urgent tasks. (default: 5)")
    var reserveNormal: Int?

    @Option(name: .long, parsing: .unconditional, help: "Extra threads for HIGH and CRITICAL tasks. (default: 5)")
    var reserveHigh: Int?

    @Option(name: .long, parsing: .unconditional, help: "Threads kept ready. (default: 0)")
    var minSize: Int?

    @Option(
        name: .long, parsing: .unconditional,
        help: "Most threads (CRITICAL tasks may exceed it). (default: pool size + reserves)")
    var maxSize: Int?

    @Option(
        name: .long, parsing: .unconditional, help: "Seconds that running work may take to finish once a stop is asked."
    )
    var stopTimeout: Double = 10

    @Flag(
        name: .long,
        help:
            "Let Lua code load binary chunks (trusted bytecode only: Lua 5.4 does not verify it). (default: text only)")
    var allowBytecode = false

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Bytes that the main state may hold: 64M, 512k, 1G (units of 1024) or a number of bytes. (default: no limit)",
            valueName: "size"))
    var memoryLimit: String?

    @Option(
        name: .long,
        help:
            "The store of durable queues (atasker.jobs) that name none: sqlite:///path/file.db or postgres://user:password@host:port/db. (default: $ATASKER_STORE)"
    )
    var store: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Argument(help: "The Lua script to run.")
    var script: String

    @Argument(parsing: .captureForPassthrough, help: "Arguments for the script (in `arg`).")
    var scriptArguments: [String] = []

    func validate() throws {
        guard Logger.Level(rawValue: self.logLevel) != nil else {
            throw ValidationError("unknown log level '\(self.logLevel)'")
        }
        for (name, value) in [
            ("pool-size", self.poolSize), ("reserve-normal", self.reserveNormal),
            ("reserve-high", self.reserveHigh), ("min-size", self.minSize), ("max-size", self.maxSize),
        ] {
            if let value, value < 0 { throw ValidationError("--\(name) must be >= 0") }
            if let value, value > 4096 { throw ValidationError("--\(name) must be <= 4096") }
        }
        if let minSize = self.minSize, let maxSize = self.maxSize, minSize > maxSize {
            throw ValidationError("--min-size (\(minSize)) must not be above --max-size (\(maxSize))")
        }
        if let text = self.memoryLimit, LuaHost.memorySize(text) == nil {
            throw ValidationError(
                "--memory-limit must be a size from 1 byte to 1T, such as 64M, 512k or 1G (units of 1024), or a number "
                    + "of bytes (got '\(text)')")
        }
        if let store = self.store, store.isEmpty {
            throw ValidationError("--store must be a store URL, such as sqlite:///path/file.db")
        }
        guard self.stopTimeout >= 0, self.stopTimeout <= 1e9, self.stopTimeout.isFinite else {
            throw ValidationError("--stop-timeout must be a number of seconds >= 0 and <= 1e9")
        }
    }

    static func main() {
        // A process-pool child of a running atasker-lua serves its parent and never returns from this call.
        LuaHost.runChildIfNeeded { host in
            try JobsModule.install(
                on: host, defaultStore: getenv("ATASKER_STORE").map { String(cString: $0) },
                logger: Logger(label: "atasker-lua"))
        }
        // Before any thread exists, so that every thread inherits the mask and only the signal thread sees them.
        ProgramSignals.resetDefaultActions()
        ProgramSignals.block()
        let command: ATaskerLuaCommand
        do {
            command = try Self.parse()
        } catch {
            let code = Self.exitCode(for: error)
            let message = Self.fullMessage(for: error)
            if code == .success {
                print(message)
                Glibc.exit(0)
            }
            writeStandardError(message + "\n")
            // ArgumentParser says 64 (EX_USAGE); the contract says 2, as most Unix tools do.
            Glibc.exit(code == .validationFailure ? 2 : code.rawValue)
        }
        // The store reaches the process pool's children (and what the script starts) through the environment.
        if let store = command.store { setenv("ATASKER_STORE", store, 1) }
        let level = Logger.Level(rawValue: command.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = CLILogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        let status = Program(command: command).run()
        Glibc.exit(status)
    }
}

func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(2, raw.baseAddress! + offset, raw.count - offset)
            if n <= 0 { break }
            offset += n
        }
    }
}
