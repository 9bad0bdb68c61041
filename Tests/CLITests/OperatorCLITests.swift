import Foundation
import Testing

/// What an operator does to a running `atasker-lua` and what it must do in return: end at the stop deadline even
/// when a finalizer never returns, report what runs on SIGUSR1, stop on SIGHUP, speak systemd's notify protocol.
@Suite("atasker-lua: the operator's signals and the end of the program", .serialized)
struct OperatorCLITests {
    @Test("a main-state __gc finalizer that never returns is left behind at the stop deadline, with status 1")
    func finalizerAtExit() throws {
        let started = Date()
        let run = try StopTests.runScript(
            """
            setmetatable({}, {__gc = function() while true do end end})
            print("top level done")
            """, options: ["--stop-timeout", "1"])
        #expect(run.status == 1, "\(run.stderr)")
        #expect(!run.signaled)
        #expect(run.stdout == "top level done\n")
        #expect(run.stderr.contains("a __gc finalizer of the main state has not returned"), "\(run.stderr)")
        // --stop-timeout plus 3 s is the bound the program keeps; more here only for a loaded machine.
        #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test("SIGTERM while a main-state finalizer never returns: the program dies by it at the stop deadline")
    func finalizerAtExitWithSignal() throws {
        for signal in [SIGTERM, SIGINT] {
            let run = try StopTests.runScript(
                """
                setmetatable({}, {__gc = function() print("in the finalizer"); while true do end end})
                """, options: ["--stop-timeout", "1"]
            ) { process, out in
                #expect(out.waitFor("in the finalizer"))
                kill(process.processIdentifier, signal)
            }
            #expect(run.signaled && run.status == signal, "\(run.status) \(run.stderr)")
            #expect(run.stderr.contains("left behind"), "\(run.stderr)")
        }
    }

    @Test("finalizers that return run to the end at the exit, also with --stop-timeout 0")
    func finalizersThatReturn() throws {
        let run = try StopTests.runScript(
            """
            for i = 1, 3 do setmetatable({}, {__gc = function() print("finalized") end}) end
            print("top level done")
            """, options: ["--stop-timeout", "0"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "top level done\nfinalized\nfinalized\nfinalized\n")
        #expect(!run.stderr.contains("left behind"), "\(run.stderr)")
    }

    /// Runs `source` as a script file of its own, with both output collectors while it runs.
    static func runScript(
        _ source: String, options: [String] = [], environment: [String: String] = [:],
        whileRunning: @escaping (Process, Collector, Collector) throws -> Void
    ) throws -> CLIRun {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("atasker-operator-\(getpid())-\(UUID().uuidString).lua").path
        try source.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try CLIRun.run(options + [path], environment: environment, whileRunningWithStreams: whileRunning)
    }

    @Test("SIGUSR1 prints every running execution with how long it has run and its traceback, and the program goes on")
    func usr1Report() throws {
        let run = try Self.runScript(
            """
            local function spin() local x = 0; while true do x = x + 1 end end
            atasker.background_worker{name = "spinner", fn = function()
              atasker.shared("s"):set("spinning", true)
              spin()
            end}:start()
            atasker.background_task(function()
              atasker.shared("s"):set("sleeping", true)
              -- (the runner's Process waits for the sleep too: it holds the socket that Foundation watches)
              os.execute("exec sleep 5 </dev/null >/dev/null 2>&1")
            end, {name = "sleeper"})()
            -- both run before the first report, and the sleeper's C call outlasts both reports on a busy machine
            while not (atasker.shared("s"):get("spinning") and atasker.shared("s"):get("sleeping")) do
              atasker.sleep(0.01)
            end
            print("ready")
            """, options: ["--stop-timeout", "0.2"]
        ) { process, out, err in
            #expect(out.waitFor("ready"))
            kill(process.processIdentifier, SIGUSR1)
            #expect(err.waitFor("in upvalue 'spin'"), "\(err.snapshot())")
            // Again: the first report did not end the program, and the report is taken anew.
            kill(process.processIdentifier, SIGUSR1)
            #expect(err.waitFor("in upvalue 'spin'", occurrences: 2), "\(err.snapshot())")
            // two reports; the first lists both executions (on a loaded machine it may come while the script's top
            // level is still returning, which the line then says, and the sleeper's may have ended by the second)
            let reports = err.snapshot().components(separatedBy: "SIGUSR1: ")
            #expect(reports.count == 3, "\(err.snapshot())")
            #expect(reports.count > 1 && reports[1].hasPrefix("2 Lua executions run now"), "\(err.snapshot())")
            kill(process.processIdentifier, SIGTERM)
        }
        #expect(run.signaled && run.status == SIGTERM, "\(run.stderr)")
        #expect(run.stderr.contains("worker 'spinner' (execution "), "\(run.stderr)")
        #expect(run.stderr.contains("ms, at "), "\(run.stderr)")
        #expect(run.stderr.contains("task 2 (sleeper) (execution"), "\(run.stderr)")
        #expect(run.stderr.contains("in one long C call or a __gc finalizer"), "\(run.stderr)")
    }

    @Test("SIGHUP stops gracefully, as SIGTERM does, and the program dies by it")
    func hangup() throws {
        let run = try Self.runScript(
            """
            atasker.background_worker{name = "w", interval = 0.05, fn = function() end}:start()
            print("ready")
            """
        ) { process, out, _ in
            #expect(out.waitFor("ready"))
            kill(process.processIdentifier, SIGHUP)
        }
        #expect(run.signaled && run.status == SIGHUP, "\(run.stderr)")
        #expect(run.stderr.contains("received SIGHUP: stopping gracefully"), "\(run.stderr)")
    }

    @Test("systemd notify: READY=1 after the top level, WATCHDOG=1 while the supervisor answers, STOPPING=1 at stop")
    func systemdNotify() throws {
        let socket = try NotifySocket()
        var seen: [String] = []
        // The example service of Examples/systemd, as its unit file runs it.
        let run = try CLIRun.run(
            ["Examples/systemd/service.lua"], environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "200000"]
        ) { process, out, _ in
            seen += socket.receive(until: { $0.filter { $0 == "WATCHDOG=1" }.count >= 3 })
            #expect(out.snapshot().hasPrefix("service ready\n"))
            kill(process.processIdentifier, SIGTERM)
            seen += socket.receive(until: { $0.contains("STOPPING=1") })
        }
        #expect(run.signaled && run.status == SIGTERM, "\(run.stderr)")
        #expect(seen.first == "READY=1", "\(seen)")
        #expect(seen.filter { $0 == "WATCHDOG=1" }.count >= 3, "\(seen)")
        #expect(seen.last == "STOPPING=1", "\(seen)")
    }

    @Test("systemd watchdog: no ping while no HIGH task can start (the only thread spins)")
    func systemdWatchdogWedged() throws {
        let socket = try NotifySocket()
        var seen: [String] = []
        let run = try Self.runScript(
            """
            atasker.background_worker{name = "spinner", fn = function() while true do end end}:start()
            """,
            options: ["--pool-size", "1", "--reserve-normal", "0", "--reserve-high", "0", "--stop-timeout", "0.2"],
            environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "200000"]
        ) { process, _, err in
            seen += socket.receive(until: { $0.contains("READY=1") })
            #expect(err.waitFor("did not run its watchdog probe"), "\(err.snapshot())")
            // A healthy program pings about 10 times in this second.
            seen += socket.receive(for: 1.0)
            kill(process.processIdentifier, SIGTERM)
        }
        #expect(run.signaled && run.status == SIGTERM, "\(run.stderr)")
        #expect(seen == ["READY=1"], "\(seen)")
    }
}

extension OperatorCLITests {
    @Test("an interval worker at 100 ms keeps its schedule while the wall clock steps +1 h and back (-1 h)")
    func wallClockSteps() throws {
        // Tests/Fixtures/c/wallclock_step.c, preloaded, steps what CLOCK_REALTIME reads in this process only.
        let library = FileManager.default.temporaryDirectory
            .appendingPathComponent("atasker-wallclock-\(getpid())-\(UUID().uuidString.prefix(8)).so").path
        defer { try? FileManager.default.removeItem(atPath: library) }
        let clang = Process()
        clang.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        clang.arguments = ["clang", "-shared", "-fPIC", "-O2", "-o", library, CLIRun.fixture("c/wallclock_step.c")]
        try clang.run()
        clang.waitUntilExit()
        try #require(clang.terminationStatus == 0, "clang could not build the wall-clock shim")
        let run = try CLIRun.run(
            ["Tests/Fixtures/interval_clock.lua", "10"],
            environment: ["LD_PRELOAD": library, "ATL_WALLCLOCK_STEPS": "3:3600,6:0"], whileRunningWithStreams: nil)
        #expect(run.status == 0, "\(run.stderr)")
        let fields = Dictionary(
            uniqueKeysWithValues: run.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { pair in
                let parts = pair.split(separator: "=")
                return parts.count == 2 ? (String(parts[0]), Double(parts[1]) ?? -1) : nil
            })
        // The step was seen by the script (os.time) ...
        #expect((fields["wallspan"] ?? 0) >= 3600, "\(run.stdout)")
        // ... and not by the schedule: one tick at the start and one every 100 ms of the 10 s (a late execution
        // skips ticks, which still count), no burst, no stall (the bound on the gap is for a loaded machine).
        let ticks = (fields["runs"] ?? 0) + (fields["skipped"] ?? 0)
        #expect((99...103).contains(ticks), "\(run.stdout)")
        #expect((fields["runs"] ?? 0) <= 103, "\(run.stdout)")
        #expect((fields["maxgap"] ?? 99) < 2, "\(run.stdout)")
    }
}

/// A datagram socket that stands for systemd's notify socket, in a temporary folder.
final class NotifySocket {
    let path: String
    private let fd: Int32

    init() throws {
        self.path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("atasker-notify-\(getpid())-\(UUID().uuidString.prefix(8))").path
        self.fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(self.path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(self.fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try #require(self.fd >= 0 && bound == 0, "cannot bind \(self.path): errno \(errno)")
        var timeout = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(self.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(self.fd)
        unlink(self.path)
    }

    /// The messages that come until `done` holds for all received so far (or 30 s pass).
    func receive(until done: ([String]) -> Bool) -> [String] {
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(30)
        while !done(messages) && Date() < deadline {
            if let message = self.next() { messages.append(message) }
        }
        return messages
    }

    /// The messages that come in the next `seconds`.
    func receive(for seconds: Double) -> [String] {
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let message = self.next() { messages.append(message) }
        }
        return messages
    }

    private func next() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(self.fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : nil
    }
}
