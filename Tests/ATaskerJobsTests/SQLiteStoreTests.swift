import ATaskerJobs
import ATaskerLua
import Glibc
import Testing

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

@Suite("SQLite job store")
struct SQLiteStoreTests {
    @Test func migratesOnceAndRefusesANewerSchema() throws {
        try withStoreFile { path in
            let store = try SQLiteJobStore(url: "sqlite://" + path)
            #expect(try store.migrate() == SQLiteJobStore.schemaVersion)
            #expect(try store.migrate() == SQLiteJobStore.schemaVersion)  // applied once; a second run is a no-op
            let other = try SQLiteJobStore(path: path)
            #expect(try other.migrate() == SQLiteJobStore.schemaVersion)
        }
    }

    @Test func putClaimComplete() throws {
        try withStoreFile { path in
            let store = try SQLiteJobStore(path: path)
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

    @Test func aStaleFenceIsRefused() throws {
        try withStoreFile { path in
            let store = try SQLiteJobStore(path: path)
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

    @Test func retriesThenDead() throws {
        try withStoreFile { path in
            let store = try SQLiteJobStore(path: path)
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

    @Test func releaseDoesNotCountAndUniqueKeyRefusesAPendingDuplicate() throws {
        try withStoreFile { path in
            let store = try SQLiteJobStore(path: path)
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

    @Test func cancelAndPeriodic() throws {
        try withStoreFile { path in
            let store = try SQLiteJobStore(path: path)
            try store.migrate()
            guard case .added(let id) = try store.put([NewJob(queue: "q", payload: [1, 0], runAt: now())])[0] else {
                return
            }
            #expect(try store.cancel(id: id))
            #expect(try !store.cancel(id: id))
            #expect(try store.job(id: id)?.state == .canceled)
            let job = NewJob(queue: "q", payload: [1, 0], runAt: now())
            let other = try SQLiteJobStore(path: path)  // a second host on the same file
            #expect(try store.putPeriodic(name: "tick", period: 7, job: job) != nil)
            #expect(try other.putPeriodic(name: "tick", period: 7, job: job) == nil)
            #expect(try other.putPeriodic(name: "tick", period: 6, job: job) == nil)
            #expect(try other.putPeriodic(name: "tick", period: 8, job: job) != nil)
        }
    }

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

    @Test func putFromSwiftReadTheRecord() throws {
        try withStoreFile { path in
            let queue = try JobQueue(store: "sqlite://" + path, name: "orders", keep: 60)
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
