public import ATaskerLua

#if Postgres
    public import Logging
    public import PostgresNIO
#endif

/// A durable queue from Swift: what `jobs.queue(name, opts)` is in Lua.
///
/// ```swift
/// let queue = try JobQueue(store: "sqlite:///var/lib/app/jobs.db", name: "emails")
/// let (id, _) = try queue.put(["to": "a@example.org"], delay: 60, uniqueKey: "welcome:a@example.org")
/// let order = Order(id: 7, items: ["apple"])
/// try queue.put(LuaValueEncoder().encode(order))        // a Codable value goes through LuaValueEncoder
/// print(try queue.job(id: id)?.state ?? .dead)
/// ```
public struct JobQueue: Sendable {
    /// The queue's store.
    public let store: any JobStore
    /// The queue's name.
    public let name: String
    /// Seconds that finished jobs are kept.
    public let keep: Double

    /// The queue `name` of the store at `url`, opened (and migrated) once per process, as Lua's `jobs.queue` does.
    public init(store url: String, name: String, keep: Double = 86400) throws {
        self.init(store: try JobStores.store(url), name: name, keep: keep)
    }

    /// The queue `name` of an open store.
    public init(store: any JobStore, name: String, keep: Double = 86400) {
        self.store = store
        self.name = name
        self.keep = keep
    }

    /// Puts a job, as `q:put(value, opts)` does; returns its id and whether it was added (`false`: a pending or
    /// running job holds `uniqueKey`, and its id is returned).
    /// - Parameters:
    ///   - runAt: A wall-clock time (seconds since the epoch); or `delay`, seconds from now.
    /// - Throws: ``JobStoreError`` for a value that is not plain data, or a failing store.
    @discardableResult
    public func put(
        _ value: LuaValue, priority: Int = 100, runAt: Double? = nil, delay: Double? = nil, maxAttempts: Int = 5,
        uniqueKey: String? = nil, timeout: Double? = nil
    ) throws -> (id: Int64, added: Bool) {
        let job = try self.job(
            value, priority: priority, runAt: runAt, delay: delay, maxAttempts: maxAttempts, uniqueKey: uniqueKey,
            timeout: timeout)
        return Self.idAndAdded(try self.store.put([job])[0])
    }

    /// The job that `put` stores, its options checked as `q:put` checks them.
    func job(
        _ value: LuaValue, priority: Int, runAt: Double?, delay: Double?, maxAttempts: Int, uniqueKey: String?,
        timeout: Double?
    ) throws -> NewJob {
        guard maxAttempts >= 1 else { throw JobStoreError("put: maxAttempts must be at least 1, got \(maxAttempts)") }
        if let timeout, !(timeout.isFinite && timeout > 0) {
            throw JobStoreError("put: timeout must be a number of seconds > 0, got \(timeout)")
        }
        let start: Double
        switch (runAt, delay) {
        case (let at?, nil) where at.isFinite: start = at
        case (nil, let d?) where d.isFinite && d >= 0: start = wallClock() + d
        case (nil, nil): start = wallClock()
        default: throw JobStoreError("put: give a finite runAt or a delay >= 0, not both")
        }
        return NewJob(
            queue: self.name, payload: try JobPayload.encode(value, what: "the job's value"), priority: priority,
            runAt: start, maxAttempts: maxAttempts, uniqueKey: uniqueKey, timeout: timeout, keep: self.keep)
    }

    private static func idAndAdded(_ outcome: PutOutcome) -> (id: Int64, added: Bool) {
        switch outcome {
        case .added(let id): return (id, true)
        case .duplicate(let id): return (id, false)
        }
    }

    #if Postgres
        /// Puts a job inside the transaction that the caller has open on `connection` (a connection of its own to
        /// this queue's PostgreSQL database): the job exists, and workers see it, only once the caller commits; a
        /// rollback takes it away with the caller's own rows. See ``PostgresJobStore/put(_:on:logger:)``.
        ///
        /// ```swift
        /// try await client.withTransaction(logger: logger) { connection in
        ///     try await connection.query("INSERT INTO orders (id) VALUES (\(orderID))", logger: logger)
        ///     try await queue.put(["order": .integer(orderID)], on: connection, logger: logger)
        /// }
        /// ```
        /// - Throws: ``JobStoreError`` when the queue's store is not PostgreSQL, when the connection has no
        ///   transaction open, or as ``put(_:priority:runAt:delay:maxAttempts:uniqueKey:timeout:)`` throws.
        @discardableResult
        public func put(
            _ value: LuaValue, priority: Int = 100, runAt: Double? = nil, delay: Double? = nil, maxAttempts: Int = 5,
            uniqueKey: String? = nil, timeout: Double? = nil, on connection: PostgresConnection, logger: Logger
        ) async throws -> (id: Int64, added: Bool) {
            guard let store = self.store as? PostgresJobStore else {
                throw JobStoreError(
                    "put(on:): queue '\(self.name)' is in \(self.store.url), not a PostgreSQL store: a job joins a "
                        + "PostgreSQL transaction only in a store on that database")
            }
            let job = try self.job(
                value, priority: priority, runAt: runAt, delay: delay, maxAttempts: maxAttempts, uniqueKey: uniqueKey,
                timeout: timeout)
            return Self.idAndAdded(try await store.put([job], on: connection, logger: logger)[0])
        }
    #endif

    /// The job with this id (of any queue of the store), or `nil`.
    public func job(id: Int64) throws -> JobRecord? { try self.store.job(id: id) }

    /// Cancels a pending or running job; `false` when it had finished.
    public func cancel(id: Int64) throws -> Bool { try self.store.cancel(id: id) }

    /// What the queue has left to run (on every host).
    public func work() throws -> QueueWork { try self.store.work(queue: self.name) }
}
