import CSQLite
import Foundation
import Synchronization
import Testing

/// The stores that the durable-jobs tests of the binary run on: SQLite always; PostgreSQL when ATASKER_TEST_POSTGRES
/// has a server's URL (scripts/test starts a throwaway cluster and sets it).
enum StoreKind: String, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static let available: [StoreKind] = {
        if postgresTestURL != nil { return [.sqlite, .postgres] }
        print("note: ATASKER_TEST_POSTGRES is not set: the durable-jobs CLI tests run on SQLite only")
        return [.sqlite]
    }()

    var testDescription: String { self.rawValue }
}

/// The test server's URL, or `nil`.
let postgresTestURL: String? = {
    guard let url = ProcessInfo.processInfo.environment["ATASKER_TEST_POSTGRES"], !url.isEmpty else { return nil }
    return url
}()

/// Runs `sql` with psql on the database of `url`.
func psql(_ url: String, _ sql: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
    process.arguments = ["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]
    let err = Pipe()
    process.standardError = err
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    if process.terminationStatus != 0 { throw CLIError("psql \(sql): \(message)") }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `url` with its database replaced by `name` (and no options).
func replacingDatabase(of url: String, with name: String) -> String {
    let scheme = url.range(of: "://")!
    let rest = url[scheme.upperBound...]
    let host = rest.firstIndex(of: "/").map { rest[..<$0] } ?? rest[...]
    return String(url[..<scheme.upperBound]) + host + "/" + name
}

/// One store of its own (an SQLite file in a temporary folder, or a new database on the PostgreSQL test server), and
/// host processes of the real binary on it (`Tests/Fixtures/jobs.lua`).
final class JobsBench: @unchecked Sendable {
    let kind: StoreKind
    let dir: URL
    let url: String
    /// The PostgreSQL server's URL and the database made for this bench.
    private let server: (url: String, database: String)?

    /// `options`: a PostgreSQL URL's query (`query_timeout=5`).
    init(_ kind: StoreKind = .sqlite, server: String? = nil, options: String = "") throws {
        self.kind = kind
        self.dir = FileManager.default.temporaryDirectory.appendingPathComponent("atasker-jobs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.dir, withIntermediateDirectories: true)
        switch kind {
        case .sqlite:
            self.url = "sqlite://" + self.dir.appendingPathComponent("jobs.db").path
            self.server = nil
        case .postgres:
            let base = try #require(server ?? postgresTestURL)
            let name = "atasker_cli_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            try psql(base, "CREATE DATABASE \(name)")
            self.url = replacingDatabase(of: base, with: name) + (options.isEmpty ? "" : "?" + options)
            self.server = (base, name)
        }
    }

    deinit {
        if let server { try? psql(server.url, "DROP DATABASE IF EXISTS \(server.database) WITH (FORCE)") }
        try? FileManager.default.removeItem(at: self.dir)
    }

    /// `jobs.lua` with `arguments`, run to its end.
    func run(_ arguments: [String], extra: [String] = [], timeout: Double = 60) throws -> CLIRun {
        try CLIRun.run(["--store", self.url] + extra + ["Tests/Fixtures/jobs.lua"] + arguments, timeout: timeout)
    }

    /// A host running `jobs.lua` with `arguments`, left running; the store comes from ATASKER_STORE.
    func start(_ arguments: [String], extra: [String] = [], fixture: String = "jobs.lua") throws -> Host {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLIRun.binary)
        process.arguments = extra + ["Tests/Fixtures/\(fixture)"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["ATASKER_STORE": self.url]) { $1 }
        process.currentDirectoryURL = CLIRun.packageRoot
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return Host(
            process: process, out: Collector(out.fileHandleForReading), err: Collector(err.fileHandleForReading))
    }

    struct Host {
        let process: Process
        let out: Collector
        let err: Collector

        /// Waits for the end (killing the host after `timeout`) and returns its status and whether a signal ended it.
        func wait(timeout: Double = 60) -> (status: Int32, signaled: Bool) {
            let deadline = Date().addingTimeInterval(timeout)
            while self.process.isRunning && Date() < deadline { usleep(10_000) }
            if self.process.isRunning {
                Issue.record("host \(self.process.processIdentifier) did not end within \(timeout) s")
                kill(self.process.processIdentifier, SIGKILL)
            }
            self.process.waitUntilExit()
            return (self.process.terminationStatus, self.process.terminationReason == .uncaughtSignal)
        }
    }

    /// Each job's state and attempts, from `jobs.lua status`, and its summary line.
    func status() throws -> (jobs: [Int: (state: String, attempts: Int, rest: String)], summary: String) {
        let run = try self.run(["status"])
        #expect(run.status == 0, "status: \(run.stderr)")
        var jobs: [Int: (String, Int, String)] = [:]
        var summary = ""
        for line in run.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 4).map(String.init)
            if parts.first == "job", parts.count >= 4, let id = Int(parts[1]), let attempts = Int(parts[3]) {
                jobs[id] = (parts[2], attempts, parts.count > 4 ? parts[4] : "")
            } else if parts.first == "summary" {
                summary = String(line)
            }
        }
        return (jobs, summary)
    }

    /// Runs `sql` on the store directly (to damage a row as a bug or a bad disk would); `postgres` is the same for
    /// PostgreSQL, where SQL differs.
    func execute(_ sql: String, postgres: String? = nil) throws {
        if self.kind == .postgres {
            try psql(self.url, postgres ?? sql)
            return
        }
        var db: OpaquePointer? = nil
        #expect(sqlite3_open(String(self.url.dropFirst("sqlite://".count)), &db) == SQLITE_OK)
        sqlite3_busy_timeout(db, 10_000)
        #expect(sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK)
        sqlite3_close(db)
    }
}

/// The ids in lines `prefix ID ...` of `text`, with how often each came.
func idCounts(_ text: String, _ prefix: String) -> [Int: Int] {
    var counts: [Int: Int] = [:]
    for line in text.split(separator: "\n") where line.hasPrefix(prefix + " ") {
        let parts = line.split(separator: " ")
        if parts.count > 1, let id = Int(parts[1]) { counts[id, default: 0] += 1 }
    }
    return counts
}

@Suite("atasker-lua: durable jobs on SQLite and PostgreSQL", .serialized)
struct JobsCLITests {
    @Test(
        "a host SIGKILLed mid-job: the next host takes its jobs once their leases run out, and every job is done",
        arguments: StoreKind.available)
    func sigkillMidJob(_ kind: StoreKind) throws {
        let bench = try JobsBench(kind)
        #expect(try bench.run(["put-special", "20"]).status == 0)
        let first = try bench.start(["serve", "A", "4", "1"])
        #expect(first.out.waitFor("holding 1"), "the holder never started: \(first.err.snapshot())")
        kill(first.process.processIdentifier, SIGKILL)
        let killed = first.wait()
        #expect(killed.signaled && killed.status == SIGKILL)
        let second = try bench.run(["work", "B", "4", "1"])
        #expect(second.status == 0, "\(second.stderr)")
        let (jobs, summary) = try bench.status()
        #expect(summary == "summary completed=21 pending=0 running=0 dead=1 canceled=0", "\(summary)")
        #expect(jobs[1]?.state == "completed" && jobs[1]?.attempts == 2, "the held job: \(String(describing: jobs[1]))")
        #expect(jobs[1]?.rest.contains("by=B") == true)
        // Every plain job ran to its end once, in A before the kill or in B; but for those that A had claimed and
        // not yet acked when it died (at most its 4 slots, the holder's among them): at least once, they ran again
        // in B after their lease, as attempt 2. No acked job ran again.
        let done = idCounts(first.out.snapshot() + second.stdout, "done")
        for id in 3...22 { #expect(done[id] == 1 || done[id] == 2, "job \(id) done \(done[id] ?? 0) times") }
        let twice = done.filter { $0.value == 2 }.map(\.key)
        #expect(twice.count <= 3, "jobs run twice: \(twice)")
        for id in twice {
            #expect(
                jobs[id]?.attempts == 2 && jobs[id]?.rest.contains("by=B") == true,
                "\(id): \(String(describing: jobs[id]))")
        }
    }

    @Test(
        "a host SIGKILLed while it holds its only job: the next host runs it, and every other job exactly once",
        arguments: StoreKind.available)
    func sigkillHoldingOneJob(_ kind: StoreKind) throws {
        let bench = try JobsBench(kind)
        #expect(try bench.run(["put-special", "20"]).status == 0)
        let first = try bench.start(["serve", "A", "1", "1"])  // one slot: the holder, claimed first
        #expect(first.out.waitFor("holding 1"), "the holder never started: \(first.err.snapshot())")
        kill(first.process.processIdentifier, SIGKILL)
        _ = first.wait()
        let second = try bench.run(["work", "B", "4", "1"])
        #expect(second.status == 0, "\(second.stderr)")
        let (jobs, summary) = try bench.status()
        #expect(summary == "summary completed=21 pending=0 running=0 dead=1 canceled=0", "\(summary)")
        #expect(jobs[1]?.attempts == 2 && jobs[1]?.rest.contains("by=B") == true)
        let done = idCounts(first.out.snapshot() + second.stdout, "done")
        for id in 3...22 { #expect(done[id] == 1 && jobs[id]?.attempts == 1, "job \(id) done \(done[id] ?? 0) times") }
    }

    @Test(
        "a host SIGSTOPped past its lease: another host completes the job, and the late ack is refused",
        arguments: StoreKind.available)
    func sigstopPastLease(_ kind: StoreKind) throws {
        let bench = try JobsBench(kind)
        let gate = bench.dir.appendingPathComponent("gate").path
        #expect(try bench.run(["put-special", "0"]).status == 0)
        let stalled = try bench.start(["serve", "A", "1", "1", gate])
        #expect(stalled.out.waitFor("holding 1"), "the holder never started: \(stalled.err.snapshot())")
        kill(stalled.process.processIdentifier, SIGSTOP)
        // B claims job 1 once A's lease has run out, and completes it (the gate is open for B's attempt).
        _ = FileManager.default.createFile(atPath: gate, contents: Data())
        let other = try bench.run(["work", "B", "2", "1"])
        #expect(other.status == 0, "\(other.stderr)")
        #expect(other.stdout.contains("done 1 B"))
        kill(stalled.process.processIdentifier, SIGCONT)
        #expect(
            stalled.err.waitFor("the lease was lost"), "A's late ack was not refused: \(stalled.err.snapshot())")
        kill(stalled.process.processIdentifier, SIGTERM)
        _ = stalled.wait()
        let (jobs, _) = try bench.status()
        #expect(
            jobs[1]?.state == "completed" && jobs[1]?.rest.contains("by=B") == true, "\(String(describing: jobs[1]))")
        #expect(jobs[2]?.state == "dead" && jobs[2]?.attempts == 3, "\(String(describing: jobs[2]))")
    }

    @Test(
        "a job that always fails is dead after max_attempts, with its last error and traceback",
        arguments: StoreKind.available)
    func deadAfterMaxAttempts(_ kind: StoreKind) throws {
        let bench = try JobsBench(kind)
        let gate = bench.dir.appendingPathComponent("gate").path
        _ = FileManager.default.createFile(atPath: gate, contents: Data())
        #expect(try bench.run(["put-special", "2"]).status == 0)
        let run = try bench.run(["work", "A", "2", "5", gate])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("job 2 is dead after attempt 3 of 3"), "\(run.stderr)")
        let (jobs, summary) = try bench.status()
        #expect(summary == "summary completed=3 pending=0 running=0 dead=1 canceled=0", "\(summary)")
        let dead = try #require(jobs[2])
        #expect(dead.state == "dead" && dead.attempts == 3)
        #expect(dead.rest.contains("error=Tests/Fixtures/jobs.lua:"), "\(dead.rest)")
        #expect(dead.rest.contains("job 2 always fails") && dead.rest.contains("traceback=yes"), "\(dead.rest)")
    }

    @Test(
        "a row whose stored value cannot be decoded: that job is dead with a clear error, the others are done",
        arguments: StoreKind.available)
    func undecodablePayload(_ kind: StoreKind) throws {
        let bench = try JobsBench(kind)
        #expect(try bench.run(["put", "5"]).status == 0)
        try bench.execute(
            "UPDATE atasker_jobs SET payload = x'01067f' WHERE id = 3",
            postgres: "UPDATE atasker_jobs SET payload = '\\x01067f'::bytea WHERE id = 3")
        let run = try bench.run(["work", "A", "2", "5"])
        #expect(run.status == 0, "\(run.stderr)")
        let (jobs, summary) = try bench.status()
        #expect(summary == "summary completed=4 pending=0 running=0 dead=1 canceled=0", "\(summary)")
        #expect(jobs[3]?.state == "dead")
        #expect(jobs[3]?.rest.contains("its stored value cannot be decoded") == true, "\(String(describing: jobs[3]))")
        #expect(jobs[3]?.rest.contains("value_error=") == true)
    }

    @Test("four host processes on one store do every job exactly once, to completion", arguments: StoreKind.available)
    func fourHosts(_ kind: StoreKind) throws {
        let bench = try JobsBench(kind)
        #expect(try bench.run(["put", "400"]).status == 0)
        let hosts = try ["A", "B", "C", "D"].map { try bench.start(["work", $0, "4", "10"]) }
        var output = ""
        for host in hosts {
            let end = host.wait(timeout: 120)
            #expect(end.status == 0 && !end.signaled, "\(host.err.snapshot())")
            output += host.out.snapshot()
        }
        let done = idCounts(output, "done")
        #expect(done.count == 400)
        #expect(done.values.allSatisfy { $0 == 1 }, "some job ran twice")
        let (jobs, summary) = try bench.status()
        #expect(summary == "summary completed=400 pending=0 running=0 dead=0 canceled=0", "\(summary)")
        #expect(jobs.values.allSatisfy { $0.attempts == 1 })
    }

    @Test(
        "a job that runs longer than its lease keeps it (renewed), and another host does not take it",
        arguments: StoreKind.available)
    func leaseRenewed(_ kind: StoreKind) throws {
        let bench = try JobsBench(kind)
        // The job runs for 2.7 leases: renewed every third of a lease, it is never lost, even on a busy machine.
        #expect(try bench.run(["put-sleep", "4"]).status == 0)
        let owner = try bench.start(["work", "A", "1", "1.5"])
        #expect(owner.out.waitFor("start 1 1 A"), "\(owner.err.snapshot())")
        // B looks at the queue while A runs the job: it waits for it to end, as the job is running.
        let other = try bench.run(["work", "B", "1", "1.5"])
        #expect(other.status == 0, "\(other.stderr)")
        #expect(owner.wait().status == 0, "\(owner.err.snapshot())")
        #expect(!other.stdout.contains("start 1"), "B took a job whose lease A renewed: \(other.stdout)")
        let (jobs, _) = try bench.status()
        #expect(jobs[1]?.state == "completed" && jobs[1]?.attempts == 1, "\(String(describing: jobs[1]))")
        #expect(jobs[1]?.rest.contains("by=A") == true)
    }

    @Test(
        "a graceful stop: a job that finishes within --stop-timeout is completed, one that does not is given back",
        arguments: StoreKind.available)
    func gracefulStopReleases(_ kind: StoreKind) throws {
        let bench = try JobsBench(kind)
        #expect(try bench.run(["put-special", "1"]).status == 0)
        let host = try bench.start(["serve", "A", "4", "30"], extra: ["--stop-timeout", "1"])
        #expect(host.out.waitFor("holding 1"), "the holder never started: \(host.err.snapshot())")
        #expect(host.out.waitFor("done 3 A"), "\(host.err.snapshot())")
        kill(host.process.processIdentifier, SIGTERM)
        let end = host.wait()
        #expect(end.signaled && end.status == SIGTERM)
        let (jobs, _) = try bench.status()
        // Given back at once (not left leased for 30 s), and the lost run does not count as an attempt.
        #expect(jobs[1]?.state == "pending" && jobs[1]?.attempts == 0, "\(String(describing: jobs[1]))")
        #expect(jobs[3]?.state == "completed")
    }
}

/// A PostgreSQL cluster of a test's own (scripts/pg-cluster), for a test that restarts it: the other tests' server
/// stays up.
final class OwnPostgres: @unchecked Sendable {
    let dir: String
    let url: String

    init() throws {
        self.dir = FileManager.default.temporaryDirectory.appendingPathComponent("atasker-pg-\(UUID().uuidString)").path
        let run = try Self.script(["start", self.dir])
        guard run.status == 0 else { throw CLIError("scripts/pg-cluster start: \(run.err)") }
        self.url = run.out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    deinit { _ = try? Self.script(["stop", self.dir]) }

    /// `restart` (`pg_ctl restart -m fast`: every connection breaks; returns once the server is up again), `down`
    /// or `up`.
    func control(_ command: String) throws {
        let run = try Self.script([command, self.dir])
        if run.status != 0 { throw CLIError("scripts/pg-cluster \(command): \(run.err)") }
    }

    private static func script(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let run = try CLIRun.run(
            arguments, timeout: 120, executable: CLIRun.packageRoot.appendingPathComponent("scripts/pg-cluster").path)
        return (run.status, run.stdout, run.stderr)
    }
}

@Suite(
    "atasker-lua: durable jobs on PostgreSQL", .serialized,
    .enabled(if: postgresTestURL != nil, "ATASKER_TEST_POSTGRES is not set (scripts/test sets it)"))
struct PostgresJobsCLITests {
    @Test("PostgreSQL restarted under load: hosts reconnect, a put during an outage waits for it, no job is lost")
    func restartUnderLoad() throws {
        let server = try OwnPostgres()
        // A statement that postgres-nio loses with a connection that the restart closed is given up after 5 s
        // (query_timeout) and run again.
        let bench = try JobsBench(.postgres, server: server.url, options: "query_timeout=5")
        #expect(try bench.run(["put-sleeping", "200", "0.1"]).status == 0)
        let hosts = try ["A", "B"].map { try bench.start(["work", $0, "4", "3"]) }
        #expect(hosts[0].out.waitFor("done ", occurrences: 10, timeout: 90), "\(hosts[0].err.snapshot())")
        try server.control("restart")
        #expect(hosts[1].out.waitFor("done ", occurrences: 30, timeout: 90), "\(hosts[1].err.snapshot())")
        // An outage of 2 s with a put inside it: the put waits for the server (the URL's outage time, 30 s), then
        // adds its jobs; the hosts wait too and go on.
        try server.control("down")
        let late = try bench.start(["put-sleeping", "30", "0.1"])
        usleep(2_000_000)  // the outage's length is what this waits for
        try server.control("up")
        let put = late.wait(timeout: 90)
        #expect(put.status == 0 && !put.signaled, "the put during the outage: \(late.err.snapshot())")
        #expect(idCounts(late.out.snapshot(), "put").count == 30)
        var output = ""
        for host in hosts {
            let end = host.wait(timeout: 180)
            #expect(end.status == 0 && !end.signaled, "\(host.err.snapshot())")
            output += host.out.snapshot()
        }
        // The hosts may have ended before the late put's jobs came: a third one takes what is left.
        let rest = try bench.run(["work", "C", "4", "3"])
        #expect(rest.status == 0, "\(rest.stderr)")
        output += rest.stdout
        let (jobs, summary) = try bench.status()
        #expect(summary == "summary completed=230 pending=0 running=0 dead=0 canceled=0", "\(summary)")
        let done = idCounts(output, "done")
        #expect(
            (1...230).allSatisfy { (done[$0] ?? 0) >= 1 }, "jobs never done: \((1...230).filter { done[$0] == nil })")
        // At least once: a job whose ack broke with the connection ran again after its lease, as a new attempt.
        for (id, n) in done where n > 1 { #expect((jobs[id]?.attempts ?? 0) >= n, "job \(id): \(n) runs") }
        #expect(
            hosts.contains { $0.err.snapshot().contains("the wake-up connection closed") }, "no host saw the restart")
    }
}

@Suite("atasker-lua: the atasker.jobs API")
struct JobsAPICLITests {
    func run(_ bench: JobsBench, _ arguments: [String]) throws -> CLIRun {
        try CLIRun.run(["--store", bench.url, "Tests/Fixtures/jobs_api.lua"] + arguments)
    }

    @Test("misuse is an error at the caller's line that names the option and what to do")
    func misuse() throws {
        let bench = try JobsBench()
        let run = try self.run(bench, ["misuse"])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let errors = lines.filter { $0.hasPrefix("error ") }
        #expect(errors.count == 33, "\(run.stdout)")
        // Each one at the line of the call in the script.
        for line in errors {
            #expect(line.contains("Tests/Fixtures/jobs_api.lua:"), "\(line)")
        }
        for (label, text) in [
            ("function value", "the job's value.cb is a function: jobs are data, never code"),
            ("metatable", "has a metatable: a job carries plain data"),
            ("misspelt option", "unknown option \"dealy\" (options are: priority, run_at, delay"),
            ("nan delay", "option 'delay' must be a number of seconds >= 0 and <= 1e9, got -nan"),
            ("huge delay", "got inf"), ("both times", "not both"),
            ("fractional attempts", "option 'max_attempts' must be an integer from 1 to 1000000, got 1.5"),
            ("huge priority", "got 1e+300"), ("dot call", "call put as a method of a queue: q:put(...)"),
            ("postgres", "this build connects without TLS only: write sslmode=disable"),
            ("unknown url", "unknown kind of store URL"),
            ("worker misspelt", "unknown option 'concurency'"), ("worker no fn", "option 'fn' must be a function"),
            ("worker fn with a file", "cannot copy upvalue 'fh'"), ("worker name taken", "already exists"),
            ("periodic nan every", "option 'every' must be a number of seconds >= 0.001 and <= 1e9"),
            ("put_many holes", "no holes"),
            ("periodic no every", "jobs.periodic \"p\": give option 'every' (seconds in a period) or 'cron'"),
            ("periodic bad cron", "jobs.periodic \"p\": cron field 2 (hour) \"25\": 25 is out of range 0-23"),
            ("periodic both", "give 'every' or 'cron', not both"),
            ("periodic tz", "option 'tz' must be \"utc\" or \"local\", got \"Mars\""),
            ("periodic tz every", "option 'tz' goes with 'cron'"),
        ] {
            // A build without the Postgres trait (scripts/sanitize --ci) refuses every postgres:// URL instead.
            let texts = label == "postgres" ? [text, "this build has no PostgreSQL driver"] : [text]
            #expect(
                errors.contains { line in line.hasPrefix("error \(label): ") && texts.contains { line.contains($0) } },
                "\(label): \(errors.first { $0.hasPrefix("error \(label): ") } ?? "missing")")
        }
        #expect(lines.contains("put_many\t3\ttrue\t2"), "\(run.stdout)")
        #expect(lines.contains("info\t3"), "\(run.stdout)")
    }

    @Test("finished jobs are deleted once their keep time has passed")
    func keep() throws {
        let bench = try JobsBench()
        let first = try self.run(bench, ["keep", "run"])
        #expect(first.status == 0, "\(first.stderr)")
        let second = try self.run(bench, ["keep", "look"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("job 1: gone"), "\(first.stdout) \(second.stdout)")
    }

    @Test("a job that stops its own worker: the stop asks, the job ends, and the program exits")
    func stopFromInside() throws {
        let bench = try JobsBench()
        let run = try self.run(bench, ["stop-inside"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("stop from inside returned\tfalse"), "\(run.stdout)")
    }

    @Test(
        "a job put by another process wakes a worker at once, not at its next poll (30 s)",
        arguments: StoreKind.available)
    func wakeAcrossProcesses(_ kind: StoreKind) throws {
        let bench = try JobsBench(kind)
        #expect(try self.run(bench, ["put-one", "other"]).status == 0)  // the file exists, as its WAL does
        let host = try bench.start(["slow-poll"], fixture: "jobs_api.lua")
        #expect(host.out.waitFor("ready"), "\(host.err.snapshot())")
        let started = Date()
        #expect(try self.run(bench, ["put-one", "sp"]).status == 0)
        #expect(host.out.waitFor("ran ", timeout: 20), "\(host.err.snapshot())")
        #expect(Date().timeIntervalSince(started) < 20)
        #expect(host.wait().status == 0, "\(host.err.snapshot())")
    }

    @Test("a job cancelled while it runs: its ack is refused and it does not run again")
    func cancelRunning() throws {
        let bench = try JobsBench()
        let run = try self.run(bench, ["cancel-running"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("cancel\ttrue"), "\(run.stdout)")
        #expect(run.stdout.contains("state canceled, result nil, lost 1"), "\(run.stdout)")
        #expect(!run.stdout.contains("attempt 2"), "\(run.stdout)")
    }

    @Test("a queue without a store says how to name one")
    func noStore() throws {
        let run = try CLIRun.run(["Tests/Fixtures/jobs_api.lua", "no-store"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(
            run.stdout.contains("no store: pass {store = 'sqlite:///path/file.db'}, or run atasker-lua with --store"))
    }

    @Test("jobs run on the thread pool, an aloop and the process pool; cancel, timeout and an unstorable result")
    func kinds() throws {
        let bench = try JobsBench()
        let run = try self.run(bench, ["kinds"])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = Set(run.stdout.split(separator: "\n").map(String.init))
        for expected in [
            "cancel\ttrue\tfalse", "queue\tk\t0\t0\t0", "queue\tka\t0\t0\t0", "queue\tkm\t0\t0\t0",
            "job 1 k completed 10 here", "job 3 k completed 30 here", "job 4 k canceled - -",
            "job 7 ka completed 10 here", "job 9 ka completed 30 here", "job 10 km completed 10 child",
        ] {
            #expect(lines.contains(expected), "missing '\(expected)' in \(run.stdout)")
        }
        #expect(lines.contains { $0.hasPrefix("job 5 k dead - job 5 timed out after 0.3 s") }, "\(run.stdout)")
        #expect(
            lines.contains {
                $0.hasPrefix("job 6 k dead - job 6: its result cannot be stored: the result is a function")
            },
            "\(run.stdout)")
    }

    @Test("a periodic job is put once per period across hosts", arguments: StoreKind.available)
    func periodicOncePerPeriod(_ kind: StoreKind) throws {
        let bench = try JobsBench(kind)
        let hosts = try (0..<3).map { _ in
            try bench.start(["periodic", "3600"], fixture: "jobs_api.lua")
        }
        var puts = 0
        for host in hosts {
            let end = host.wait()
            #expect(end.status == 0, "\(host.err.snapshot())")
            let out = host.out.snapshot()
            #expect(out.contains("handled period "), "\(out)")
            if out.contains(", put 1") { puts += 1 }
        }
        #expect(puts == 1, "periods put by the three hosts: \(puts)")
        // A cron schedule: each fire time is put once across the hosts (all three start within one minute, or
        // two minutes if a minute ends meanwhile), and the period is the fire time itself.
        let cronHosts = try (0..<3).map { i in
            try bench.start(["periodic-cron", "* * * * *"] + (i == 0 ? ["local"] : []), fixture: "jobs_api.lua")
        }
        var periods: [Int: Int] = [:]
        for host in cronHosts {
            let end = host.wait()
            #expect(end.status == 0, "\(host.err.snapshot())")
            let out = host.out.snapshot()
            let words = out.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\n" })
            let period = try #require(words.firstIndex(of: "period").flatMap { Int(words[$0 + 1]) }, "\(out)")
            let put = try #require(words.firstIndex(of: "put").flatMap { Int(words[$0 + 1]) }, "\(out)")
            let next = try #require(words.firstIndex(of: "next").flatMap { Int(words[$0 + 1]) }, "\(out)")
            #expect(period % 60 == 0 && next % 60 == 0 && next > period, "\(out)")
            periods[period, default: 0] += put
        }
        #expect(periods.count <= 2 && periods.values.allSatisfy { $0 == 1 }, "puts per fire time: \(periods)")
        let short = try self.run(bench, ["periodic-run", "0.2", "3"])
        #expect(short.status == 0, "\(short.stderr)")
        #expect(short.stdout.contains("put 3, completed 3"), "\(short.stdout)")
    }
}
