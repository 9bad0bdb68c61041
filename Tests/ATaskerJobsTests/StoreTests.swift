import ATaskerJobs
import ATaskerLua
import Foundation
import Glibc
import Logging
import Synchronization
import Testing

#if Postgres
    import PostgresNIO
#endif

/// A fresh SQLite file in a folder of its own, removed at the end.
func withStoreFile<R>(_ body: (String) throws -> R) throws -> R {
    var template = Array("/tmp/atasker-jobs-test-XXXXXX".utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    defer {
        for suffix in ["", "-wal", "-shm"] { unlink("\(dir)/jobs.db\(suffix)") }
        rmdir(dir)
    }
    return try body("\(dir)/jobs.db")
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

@Suite("Job stores: the same cases on every driver (SQLite; PostgreSQL when ATASKER_TEST_POSTGRES is set)")
struct StoreTests {
    @Test(arguments: StoreKind.available) func migratesOnceAndRefusesANewerSchema(_ kind: StoreKind) throws {
        try withFreshStore(kind) { url in
            let store = try kind.open(url)
            #expect(try store.migrate() == kind.schemaVersion)
            #expect(try store.migrate() == kind.schemaVersion)  // applied once; a second run is a no-op
            let other = try kind.open(url)
            #expect(try other.migrate() == kind.schemaVersion)
        }
    }

    @Test(arguments: StoreKind.available) func putClaimComplete(_ kind: StoreKind) throws {
        try withFreshStore(kind) { url in
            let store = try kind.open(url)
            try store.migrate()
            let payload = try JobPayload.encode(["n": 1])
            let ids = try store.put([
                NewJob(queue: "q", payload: payload, priority: 200, runAt: now()),
                NewJob(queue: "q", payload: payload, priority: 50, runAt: now()),
                NewJob(queue: "q", payload: payload, runAt: now() + 3600),
                NewJob(queue: "other", payload: payload, runAt: now()),
            ])
            #expect(ids.count == 4)
            let claimed = try store.claim(queue: "q", limit: 10, leaseSeconds: 30, owner: "test")
            #expect(claimed.count == 2)  // the delayed one and the other queue's are not taken
            #expect(claimed.map(\.priority) == [50, 200])
            #expect(claimed.allSatisfy { $0.attempt == 1 && $0.lease.fence == 1 })
            let work = try store.work(queue: "q")
            #expect(work.ready == 0 && work.later == 1 && work.running == 2 && work.nextRunAt != nil)
            #expect(try store.complete(claimed[0].lease, result: try JobPayload.encode("ok")))
            #expect(try !store.complete(claimed[0].lease, result: []))  // twice: refused
            let record = try #require(try store.job(id: claimed[0].id))
            #expect(record.state == .completed)
            #expect(try JobPayload.decode(try #require(record.result)) == "ok")
        }
    }

    @Test(arguments: StoreKind.available) func aStaleFenceIsRefused(_ kind: StoreKind) throws {
        try withFreshStore(kind) { url in
            let store = try kind.open(url)
            try store.migrate()
            _ = try store.put([NewJob(queue: "q", payload: try JobPayload.encode(1), runAt: now())])
            let first = try #require(try store.claim(queue: "q", limit: 1, leaseSeconds: 0.05, owner: "a").first)
            // Wait (on the store's own clock) until the lease has run out, then another host claims it.
            var second: ClaimedJob? = nil
            while second == nil {
                second = try store.claim(queue: "q", limit: 1, leaseSeconds: 30, owner: "b").first
            }
            let taken = try #require(second)
            #expect(taken.lease.fence == first.lease.fence + 1)
            #expect(taken.attempt == 2)  // the lost run counted
            #expect(try store.renew([first.lease], leaseSeconds: 30) == [first.lease])
            #expect(try !store.complete(first.lease, result: []))
            #expect(try store.fail(first.lease, error: "x", traceback: nil, retryAt: now()) == .refused)
            #expect(try store.release([first.lease]) == 0)
            #expect(try store.renew([taken.lease], leaseSeconds: 30).isEmpty)
            #expect(try store.complete(taken.lease, result: try JobPayload.encode(2)))
        }
    }

    @Test(arguments: StoreKind.available) func retriesThenDead(_ kind: StoreKind) throws {
        try withFreshStore(kind) { url in
            let store = try kind.open(url)
            try store.migrate()
            _ = try store.put([NewJob(queue: "q", payload: try JobPayload.encode(1), runAt: now(), maxAttempts: 2)])
            let a = try #require(try store.claim(queue: "q", limit: 1, leaseSeconds: 30, owner: "a").first)
            guard case .retry = try store.fail(a.lease, error: "boom", traceback: "tb", retryAt: now()) else {
                Issue.record("expected a retry")
                return
            }
            let b = try #require(try store.claim(queue: "q", limit: 1, leaseSeconds: 30, owner: "a").first)
            #expect(b.attempt == 2)
            #expect(try store.fail(b.lease, error: "boom again", traceback: "tb2", retryAt: now()) == .dead)
            let record = try #require(try store.job(id: b.id))
            #expect(record.state == .dead)
            #expect(record.attempts == 2)
            #expect(record.error == "boom again")
            #expect(record.traceback == "tb2")
            #expect(try store.claim(queue: "q", limit: 1, leaseSeconds: 30, owner: "a").isEmpty)
        }
    }

    @Test(arguments: StoreKind.available) func releaseDoesNotCountAndUniqueKeyRefusesAPendingDuplicate(
        _ kind: StoreKind
    ) throws {
        try withFreshStore(kind) { url in
            let store = try kind.open(url)
            try store.migrate()
            let job = NewJob(queue: "q", payload: try JobPayload.encode(1), runAt: now(), uniqueKey: "k")
            guard case .added(let id) = try store.put([job])[0] else {
                Issue.record("not added")
                return
            }
            #expect(try store.put([job]) == [.duplicate(existing: id)])
            let a = try #require(try store.claim(queue: "q", limit: 1, leaseSeconds: 30, owner: "a").first)
            #expect(try store.put([job]) == [.duplicate(existing: id)])  // running: still refused
            #expect(try store.release([a.lease]) == 1)
            #expect(try store.job(id: id)?.attempts == 0)
            #expect(try store.job(id: id)?.state == .pending)
            let b = try #require(try store.claim(queue: "q", limit: 1, leaseSeconds: 30, owner: "a").first)
            #expect(b.attempt == 1)
            #expect(try store.complete(b.lease, result: []))
            guard case .added = try store.put([job])[0] else {  // done: the key is free again
                Issue.record("a finished job still holds its unique key")
                return
            }
        }
    }

    @Test(arguments: StoreKind.available) func cancelAndPeriodic(_ kind: StoreKind) throws {
        try withFreshStore(kind) { url in
            let store = try kind.open(url)
            try store.migrate()
            guard case .added(let id) = try store.put([NewJob(queue: "q", payload: [1, 0], runAt: now())])[0] else {
                return
            }
            #expect(try store.cancel(id: id))
            #expect(try !store.cancel(id: id))
            #expect(try store.job(id: id)?.state == .canceled)
            let job = NewJob(queue: "q", payload: [1, 0], runAt: now())
            let other = try kind.open(url)  // a second host on the same file
            #expect(try store.putPeriodic(name: "tick", period: 7, job: job) != nil)
            #expect(try other.putPeriodic(name: "tick", period: 7, job: job) == nil)
            #expect(try other.putPeriodic(name: "tick", period: 6, job: job) == nil)
            #expect(try other.putPeriodic(name: "tick", period: 8, job: job) != nil)
        }
    }

}

#if Postgres
    @Suite("PostgreSQL job store", .enabled(if: postgresTestURL != nil, "ATASKER_TEST_POSTGRES is not set"))
    struct PostgresStoreTests {
        @Test("hosts that migrate one new database at once apply each migration once (the advisory lock)")
        func concurrentMigrations() throws {
            try withFreshStore(.postgres) { url in
                let versions = Mutex<[Int]>([])
                let failures = Mutex<[String]>([])
                DispatchQueue.concurrentPerform(iterations: 4) { _ in
                    do {
                        let store = try PostgresJobStore(url: url)
                        let v = try store.migrate()
                        versions.withLock { $0.append(v) }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
                #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
                #expect(versions.withLock { $0 } == Array(repeating: PostgresJobStore.schemaVersion, count: 4))
                try psql(url, "INSERT INTO atasker_schema_migrations VALUES (99, 0)")
                let error = #expect(throws: JobStoreError.self) { try PostgresJobStore(url: url).migrate() }
                #expect(error?.message.contains("schema version 99, newer than this build knows") == true)
            }
        }

        @Test("URLs: user, password, host, port and database; options; a wrong one says what to write")
        func urls() throws {
            let base = try #require(postgresTestURL)
            #expect(throws: Never.self) { try PostgresJobStore(url: base + "?sslmode=disable&connections=2&outage=5") }
            for (url, text) in [
                ("postgres://u@127.0.0.1:99999/db", "the port is not a number from 1 to 65535"),
                ("postgres://u@127.0.0.1/db?sslmode=require", "this build connects without TLS only"),
                ("postgres://u@127.0.0.1/db?pool=3", "unknown option"),
                ("postgres://u:p%zz@127.0.0.1/db", "is not followed by two hex digits"),
                ("postgres:///db", "no host"),
            ] {
                let error = #expect(throws: JobStoreError.self) { try PostgresJobStore(url: url) }
                #expect(error?.message.contains(text) == true, "\(url): \(String(describing: error))")
            }
            // Nobody listens there: the error names the server and what to check, after the URL's outage time.
            let error = #expect(throws: JobStoreError.self) {
                try PostgresJobStore(url: "postgres://u:secret@127.0.0.1:1/db?outage=0.3")
            }
            #expect(error?.message.contains("cannot connect to PostgreSQL at 127.0.0.1:1/db") == true)
            #expect(error?.message.contains("secret") == false, "the password leaked: \(String(describing: error))")
        }

        @Test("a server that stops answering: the call gives the connection up after query_timeout and goes on")
        func aServerThatDoesNotAnswer() throws {
            try withFreshStore(.postgres) { url in
                let store = try PostgresJobStore(url: url + "?connections=1&query_timeout=0.5")
                try store.migrate()
                _ = try store.put([NewJob(queue: "h", payload: try JobPayload.encode(1), runAt: now())])
                let database = String(url[url.index(after: url.lastIndex(of: "/")!)...])
                let pids = try psqlLines(
                    url, "SELECT pid FROM pg_stat_activity WHERE datname = '\(database)' AND pid <> pg_backend_pid()")
                let pid = try #require(pids.first.flatMap { Int32($0) }, "no backend of the store: \(pids)")
                #expect(kill(pid, SIGSTOP) == 0)  // its one connection's server process stops answering
                defer {
                    kill(pid, SIGCONT)
                    kill(pid, SIGTERM)
                }
                // A read: given up after 0.5 s, and run again on a new connection.
                #expect(try store.work(queue: "h").ready == 1)
                let after = try psqlLines(
                    url, "SELECT pid FROM pg_stat_activity WHERE datname = '\(database)' AND pid <> pg_backend_pid()")
                #expect(after.contains { $0 != String(pid) }, "no new connection: \(after)")
            }
        }

        @Test("a NOTIFY from another host's put wakes a subscriber")
        func notifyWakesSubscribers() throws {
            try withFreshStore(.postgres) { url in
                let listening = try PostgresJobStore(url: url)
                try listening.migrate()
                let putting = try PostgresJobStore(url: url)  // another host: its put reaches this one by NOTIFY only
                let woken = Mutex<Int>(0)
                let wake = DispatchSemaphore(value: 0)
                let subscription = listening.subscribe(queue: "n") {
                    woken.withLock { $0 += 1 }
                    wake.signal()
                }
                defer { subscription.cancel() }
                // The first wake-up comes when the listener is connected (it wakes every subscriber then).
                #expect(wake.wait(timeout: .now() + 30) == .success)
                woken.withLock { $0 = 0 }
                _ = try putting.put([NewJob(queue: "n", payload: try JobPayload.encode(1), runAt: now())])
                #expect(wake.wait(timeout: .now() + 30) == .success)
                _ = try putting.put([NewJob(queue: "other", payload: try JobPayload.encode(1), runAt: now())])
                _ = try putting.put([NewJob(queue: "n", payload: try JobPayload.encode(2), runAt: now())])
                #expect(wake.wait(timeout: .now() + 30) == .success)
                #expect(woken.withLock { $0 } == 2, "a put into another queue woke this one")
            }
        }

        /// Invisible until COMMIT, which wakes workers; gone after ROLLBACK; a failing put leaves the app's
        /// transaction usable.
        @Test("a put inside the app's own transaction", .timeLimit(.minutes(2)))
        func putInTheAppsTransaction() async throws {
            let base = try #require(postgresTestURL)
            let suffix = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            let name = "atasker_t_" + suffix
            let plain = "atasker_p_" + suffix  // a database without the schema
            for database in [name, plain] { try psql(base, "CREATE DATABASE \(database)") }
            defer {
                for database in [name, plain] { try? psql(base, "DROP DATABASE IF EXISTS \(database) WITH (FORCE)") }
            }
            let url = replacingDatabase(of: base, with: name)
            let queue = try JobQueue(store: url, name: "tx")
            let store = try #require(queue.store as? PostgresJobStore)
            let logger = Logger(label: "test.app")
            let app = try await appConnection(url, database: name, logger: logger)
            let other = try await appConnection(url, database: plain, logger: logger)
            defer {
                Task {
                    try? await app.close()
                    try? await other.close()
                }
            }
            _ = try await app.query("CREATE TABLE orders (id bigint PRIMARY KEY)", logger: logger).collect()

            let (wakes, wake) = AsyncStream.makeStream(of: Void.self)
            let subscription = store.subscribe(queue: "tx") { wake.yield() }
            defer { subscription.cancel() }
            var woken = wakes.makeAsyncIterator()
            _ = await woken.next()  // the listener is connected (it wakes every subscriber then)

            // Outside a transaction it refuses, saying what to do.
            var error = await #expect(throws: JobStoreError.self) {
                try await queue.put(1, on: app, logger: logger)
            }
            #expect(
                error?.message.contains("no transaction open: BEGIN one first") == true, "\(String(describing: error))")

            // In one: invisible to every other connection until the commit.
            _ = try await app.query("BEGIN", logger: logger).collect()
            _ = try await app.query("INSERT INTO orders VALUES (7)", logger: logger).collect()
            let (id, added) = try await queue.put(["order": 7], uniqueKey: "order:7", on: app, logger: logger)
            #expect(added)
            let again = try await queue.put(["order": 7], uniqueKey: "order:7", on: app, logger: logger)
            #expect(again == (id, false), "the transaction sees its own job's key")
            #expect(try queue.job(id: id) == nil)
            #expect(try queue.work().ready == 0)
            _ = try await app.query("COMMIT", logger: logger).collect()
            _ = await woken.next()  // the NOTIFY comes with the commit
            let record = try #require(try queue.job(id: id))
            #expect(record.state == .pending && record.uniqueKey == "order:7")
            #expect(try JobPayload.decode(record.payload) == ["order": 7])
            let claimed = try store.claim(queue: "tx", limit: 5, leaseSeconds: 30, owner: "test")
            #expect(claimed.map(\.id) == [id])

            // Rolled back: the job goes with the app's row.
            _ = try await app.query("BEGIN", logger: logger).collect()
            _ = try await app.query("INSERT INTO orders VALUES (8)", logger: logger).collect()
            let (gone, _) = try await queue.put(["order": 8], on: app, logger: logger)
            _ = try await app.query("ROLLBACK", logger: logger).collect()
            #expect(try queue.job(id: gone) == nil)
            #expect(try queue.work().ready == 0)

            // A put that fails (no schema on that database) rolls back its savepoint only: the app's transaction
            // goes on and commits its own row.
            _ = try await other.query("BEGIN", logger: logger).collect()
            _ = try await other.query("CREATE TABLE notes (n int)", logger: logger).collect()
            error = await #expect(throws: JobStoreError.self) {
                try await queue.put(1, on: other, logger: logger)
            }
            #expect(error?.message.contains("has no atasker_jobs table") == true, "\(String(describing: error))")
            _ = try await other.query("INSERT INTO notes VALUES (1)", logger: logger).collect()
            _ = try await other.query("COMMIT", logger: logger).collect()
            #expect(try psqlLines(replacingDatabase(of: base, with: plain), "SELECT n FROM notes") == ["1"])

            // A transaction that already failed is named as such.
            _ = try await app.query("BEGIN", logger: logger).collect()
            _ = try? await app.query("SELECT 1/0", logger: logger).collect()
            error = await #expect(throws: JobStoreError.self) {
                try await queue.put(1, on: app, logger: logger)
            }
            #expect(
                error?.message.contains("already failed: roll it back first") == true, "\(String(describing: error))")
            _ = try await app.query("ROLLBACK", logger: logger).collect()

            // Values are checked before anything is sent; a queue in SQLite cannot join the transaction.
            await #expect(throws: JobStoreError.self) {
                try await queue.put(1, maxAttempts: 0, on: app, logger: logger)
            }
            let path = "/tmp/atasker-jobs-tx-\(suffix).db"
            defer { for end in ["", "-wal", "-shm"] { unlink(path + end) } }
            let local = try JobQueue(store: "sqlite://" + path, name: "tx")
            error = await #expect(throws: JobStoreError.self) {
                try await local.put(1, on: app, logger: logger)
            }
            #expect(error?.message.contains("not a PostgreSQL store") == true, "\(String(describing: error))")
        }

        /// A connection of the app's own (not the store's) to `database` of the server in `url`.
        private func appConnection(_ url: String, database: String, logger: Logger) async throws -> PostgresConnection {
            let parts = try #require(URLComponents(string: url))
            let configuration = PostgresConnection.Configuration(
                host: try #require(parts.host), port: parts.port ?? 5432, username: parts.user ?? "postgres",
                password: parts.password, database: database, tls: .disable)
            return try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        }
    }
#endif

@Suite("Job payloads")
struct JobPayloadTests {
    @Test func payloadRoundTripAndRefusals() throws {
        let value: LuaValue = [
            "s": .string(LuaString(bytes: [0, 255, 10])), "i": .integer(-5), "f": 2.0, "b": true,
            "nested": ["list": [1, 2, 3], "big": .number(1e300), "inf": .number(.infinity)],
        ]
        #expect(try JobPayload.decode(try JobPayload.encode(value)) == value)
        let nan = try JobPayload.decode(try JobPayload.encode(.number(.nan)))
        #expect(nan.doubleValue?.isNaN == true)
        var withMeta = LuaTable()
        withMeta.metatable = LuaTable()
        #expect(throws: JobStoreError.self) { try JobPayload.encode(["x": .table(withMeta)]) }
        var deep: LuaValue = 1
        for _ in 0...JobPayload.maxDepth { deep = [deep] }
        #expect(throws: JobStoreError.self) { try JobPayload.encode(deep) }
        for bad: [UInt8] in [
            [], [9], [1], [1, 5, 200], [1, 6, 100], [1, 77], [1, 3, 1], [1, 0, 0], [1, 5, 0xFF, 0xFF],
        ] {
            #expect(throws: JobStoreError.self) { try JobPayload.decode(bad) }
        }
    }
}

@Suite("JobQueue: durable queues from Swift")
struct JobQueueTests {
    struct Order: Codable, Equatable {
        var id: Int
        var items: [String]
    }

    @Test(arguments: StoreKind.available) func putFromSwiftReadTheRecord(_ kind: StoreKind) throws {
        try withFreshStore(kind) { url in
            let queue = try JobQueue(store: url, name: "orders", keep: 60)
            let order = Order(id: 7, items: ["apple", "pear"])
            let (id, added) = try queue.put(try LuaValueEncoder().encode(order), delay: 30, uniqueKey: "order:7")
            #expect(added)
            #expect(try queue.put("again", uniqueKey: "order:7") == (id, false))
            let record = try #require(try queue.job(id: id))
            #expect(record.state == .pending && record.uniqueKey == "order:7")
            #expect(try LuaValueDecoder().decode(Order.self, from: try JobPayload.decode(record.payload)) == order)
            #expect(try queue.work().later == 1)
            #expect(throws: JobStoreError.self) { try queue.put(1, delay: .nan) }
            #expect(throws: JobStoreError.self) { try queue.put(1, runAt: 5, delay: 1) }
            #expect(throws: JobStoreError.self) { try queue.put(1, maxAttempts: 0) }
            #expect(try queue.cancel(id: id))
        }
    }
}
