#if Postgres
    import ATasker
    import ATaskerLua
    import Glibc
    import Logging
    import NIOCore
    import NIOPosix
    import PostgresNIO
    import Synchronization

    /// The connections of one PostgreSQL store in this process, and the bridge from the store's synchronous calls to
    /// postgres-nio.
    ///
    /// The bridge: every statement is sent with postgres-nio's `EventLoopFuture` API, whose work runs on SwiftNIO's
    /// event-loop threads, and the calling thread blocks on the future (`wait()`, a condition variable: no spinning).
    /// The callers are the job runner's own thread, the pool threads of Lua tasks and the ack flusher (a supervisor
    /// task on a pool thread), never Swift concurrency's cooperative threads (``PeriodicJob`` moves its store call to
    /// a thread of its own) and never an event loop, so no `await` is needed and none of the cooperative pool's few
    /// threads is held.
    ///
    /// Up to `connections` connections are open at once; a call takes an idle one, opens one, or waits for one to be
    /// handed back. A connection that broke is dropped; the next call opens another, trying again with backoff (0.05 s
    /// doubling to 2 s) for up to the URL's `outage` seconds before it fails.
    final class PostgresConnections: Sendable {
        let url: String
        let config: PostgresStoreURL
        private let configuration: PostgresConnection.Configuration
        private let group: any EventLoopGroup
        private let logger: Logger
        private let state = ConditionLock(PoolState())
        private let nextID = Atomic<Int>(1)

        struct PoolState: Sendable {
            var idle: [PostgresConnection] = []
            var open = 0
            var closed = false
        }

        init(url: String, config: PostgresStoreURL, logger: Logger) {
            self.url = url
            self.config = config
            var configuration = PostgresConnection.Configuration(
                host: config.host, port: config.port, username: config.user, password: config.password,
                database: config.database, tls: .disable)
            configuration.options.connectTimeout = .milliseconds(Int64(config.connectTimeout * 1000))
            self.configuration = configuration
            self.group = MultiThreadedEventLoopGroup.singleton
            self.logger = logger
        }

        /// Opens one connection now, trying again with backoff until `deadline` (monotonic seconds).
        func connect(until deadline: Double, for what: String) throws(JobStoreError) -> PostgresConnection {
            var delay = 0.05
            while true {
                let id = self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
                do {
                    let future = PostgresConnection.connect(
                        on: self.group.next(), configuration: self.configuration, id: id, logger: self.logger)
                    guard let connection = try waitFor(future, seconds: self.config.connectTimeout + 5) else {
                        future.whenSuccess { PostgresConnections.close($0) }
                        throw JobStoreError("no answer within \(seconds(self.config.connectTimeout + 5))")
                    }
                    return connection
                } catch {
                    let now = Monotonic.now()
                    if now + delay > deadline {
                        throw JobStoreError(
                            "store \(self.url): \(what): cannot connect to PostgreSQL at \(self.config.place) "
                                + "(tried for \(seconds(self.config.outage))): \(describe(error)); is the server up, "
                                + "and are the URL's user, password and database right?")
                    }
                    self.logger.debug(
                        "store \(self.url): connecting to \(self.config.place) failed (\(describe(error))); trying again in \(seconds(delay))"
                    )
                    pause(delay)
                    delay = min(delay * 2, 2)
                }
            }
        }

        /// Takes a connection: an idle one, a new one (while fewer than `connections` are open), or the next one handed
        /// back.
        private func acquire(until deadline: Double, for what: String) throws(JobStoreError) -> PostgresConnection {
            self.state.lock()
            while true {
                if self.state.lockedValue.closed {
                    self.state.unlock()
                    throw JobStoreError("store \(self.url): \(what): the store was closed")
                }
                if let connection = self.state.lockedValue.idle.popLast() {
                    if connection.isClosed {
                        self.state.lockedValue.open -= 1
                        continue
                    }
                    self.state.unlock()
                    return connection
                }
                if self.state.lockedValue.open < self.config.connections {
                    self.state.lockedValue.open += 1
                    self.state.unlock()
                    do {
                        return try self.connect(until: deadline, for: what)
                    } catch {
                        self.state.withLock { $0.open -= 1 }
                        self.state.broadcast()
                        throw error
                    }
                }
                if !self.state.wait(until: deadline) && Monotonic.now() >= deadline {
                    self.state.unlock()
                    throw JobStoreError(
                        "store \(self.url): \(what): all \(self.config.connections) connections were busy for "
                            + "\(seconds(self.config.outage)); raise connections= in the store URL")
                }
            }
        }

        /// Hands a connection back (or drops it, when it broke).
        private func release(_ connection: PostgresConnection, broken: Bool) {
            let close = self.state.withLock { s -> Bool in
                if broken || connection.isClosed || s.closed {
                    s.open -= 1
                    return true
                }
                s.idle.append(connection)
                return false
            }
            if close { Self.close(connection) }
            self.state.broadcast()
        }

        /// Closes the idle connections and refuses further calls.
        func close() {
            let idle = self.state.withLock { s -> [PostgresConnection] in
                s.closed = true
                s.open -= s.idle.count
                defer { s.idle = [] }
                return s.idle
            }
            self.state.broadcast()
            for connection in idle { Self.close(connection) }
        }

        /// Closes `connection`, keeping it alive until it is closed (postgres-nio asserts that).
        static func close(_ connection: PostgresConnection) {
            connection.close().whenComplete { _ in _ = connection }
        }

        /// How a call may be tried again when its connection breaks.
        enum Retry {
            /// A read, or a write whose second run does no harm: tried again on a new connection.
            case safe
            /// A write whose outcome is unknown once it was sent: the error says so.
            case unsafe
        }

        /// Runs `body` on a connection as one transaction (`BEGIN` ... `COMMIT`). A connection that breaks before the
        /// commit was sent is replaced and the transaction run again (PostgreSQL rolled it back); one that breaks during
        /// the commit fails the call with an error saying that the outcome is unknown.
        func transaction<R>(_ what: String, _ body: (PostgresSession) throws(JobStoreError) -> R) throws(JobStoreError)
            -> R
        {
            try self.run(what, retry: .safe, transaction: true, body)
        }

        /// Runs `body` on a connection, each of its statements committed on its own.
        func statements<R>(_ what: String, retry: Retry, _ body: (PostgresSession) throws(JobStoreError) -> R)
            throws(JobStoreError) -> R
        {
            try self.run(what, retry: retry, transaction: false, body)
        }

        private func run<R>(
            _ what: String, retry: Retry, transaction: Bool, _ body: (PostgresSession) throws(JobStoreError) -> R
        ) throws(JobStoreError) -> R {
            let deadline = Monotonic.now() + self.config.outage
            var delay = 0.05
            var retried = false
            while true {
                let connection = try self.acquire(until: deadline, for: what)
                let session = PostgresSession(
                    connection: connection, logger: self.logger, url: self.url, what: what,
                    timeout: self.config.queryTimeout)
                session.isRetry = retried
                var committing = false
                do {
                    if transaction { try session.execute("BEGIN") }
                    let result = try body(session)
                    if transaction {
                        committing = true
                        try session.execute("COMMIT")
                    }
                    self.release(connection, broken: false)
                    return result
                } catch {
                    var broken = connection.isClosed || session.connectionBroke
                    if !broken && transaction && !committing {
                        // A statement failed: the transaction is aborted; end it so the connection can be used again.
                        // A rollback that fails too means the connection is gone.
                        do { try session.execute("ROLLBACK") } catch { broken = true }
                    }
                    self.release(connection, broken: broken)
                    guard broken else { throw error }
                    if committing || (!transaction && retry == .unsafe) {
                        throw JobStoreError(
                            "store \(self.url): \(what): the connection to \(self.config.place) broke after the change "
                                + "was sent, so it may or may not have been made (\(error.message)); look at the job "
                                + "before doing it again")
                    }
                    guard Monotonic.now() + delay <= deadline else { throw error }
                    self.logger.debug(
                        "store \(self.url): \(what): the connection broke (\(error.message)); trying again on a new one"
                    )
                    pause(delay)
                    delay = min(delay * 2, 2)
                    retried = true
                }
            }
        }
    }

    /// One connection while a call uses it.
    final class PostgresSession {
        let connection: PostgresConnection
        let logger: Logger
        let url: String
        let what: String
        /// Whether this is a second (or later) run of the call, after its connection broke.
        var isRetry = false
        /// Whether a statement failed because the connection broke (not a statement's own error).
        private(set) var connectionBroke = false

        let timeout: Double

        init(connection: PostgresConnection, logger: Logger, url: String, what: String, timeout: Double) {
            self.timeout = timeout
            self.connection = connection
            self.logger = logger
            self.url = url
            self.what = what
        }

        /// Runs one statement with its binds and returns its rows.
        @discardableResult
        func query(_ sql: String, _ binds: PostgresBindings = PostgresBindings()) throws(JobStoreError) -> [PostgresRow]
        {
            do {
                let future = self.connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: self.logger)
                guard let result = try waitFor(future, seconds: self.timeout) else {
                    // No answer: a server that hangs, or (seen when the server restarts) a query that
                    // postgres-nio lost with its closed connection. Either way the connection is given up.
                    let closed = self.connection.isClosed
                    self.connectionBroke = true
                    PostgresConnections.close(self.connection)
                    throw JobStoreError(
                        "store \(self.url): \(self.what): no answer from PostgreSQL within \(seconds(self.timeout)) "
                            + (closed ? "(the connection had closed)" : "(the server did not answer)")
                            + "; the connection is dropped (query_timeout= in the store URL sets the wait)")
                }
                return Array(result.rows)
            } catch {
                if let error = error as? PSQLError {
                    if let state = error.serverInfo?[.sqlState] {
                        // Connection exceptions (08...) and the server shutting down (57P01-57P03): the server
                        // ends the connection after it.
                        if state.hasPrefix("08") || state.hasPrefix("57P0") { self.connectionBroke = true }
                    } else if error.code != .tooManyParameters {
                        self.connectionBroke = true
                    }
                }
                throw JobStoreError("store \(self.url): \(self.what): \(describe(error))")
            }
        }

        /// Runs one statement without binds.
        func execute(_ sql: String) throws(JobStoreError) {
            try self.query(sql)
        }

        /// Runs one statement and returns how many rows it returned.
        func count(_ sql: String, _ binds: PostgresBindings) throws(JobStoreError) -> Int {
            try self.query(sql, binds).count
        }
    }

    /// Binds built up in order: `$1`, `$2`, ...
    struct Binds {
        var bindings = PostgresBindings()

        mutating func add(_ value: Int64) { self.bindings.append(value) }
        mutating func add(_ value: Double) { self.bindings.append(value) }
        mutating func add(_ value: String) { self.bindings.append(value) }
        mutating func add(_ value: Double?) { self.bindings.append(value) }
        mutating func add(_ value: String?) { self.bindings.append(value) }
        mutating func add(bytes: [UInt8]) { self.bindings.append(ByteBuffer(bytes: bytes)) }
        mutating func add(_ values: [Int64]) { self.bindings.append(values) }
        mutating func add(bytes values: [[UInt8]]) { self.bindings.append(values.map { ByteBuffer(bytes: $0) }) }
    }

    /// A column of a row, decoded; a value of the wrong type (a store changed by hand) is an error naming the column.
    extension PostgresRow {
        func column<T: PostgresDecodable>(_ index: Int, _ type: T.Type, what: String) throws(JobStoreError) -> T {
            var cells = self.makeIterator()
            var cell: PostgresCell? = nil
            for _ in 0...index { cell = cells.next() }
            guard let cell else { throw JobStoreError("\(what): the row has no column \(index)") }
            do {
                return try cell.decode(T.self, context: .default)
            } catch {
                throw JobStoreError(
                    "\(what): column '\(cell.columnName)' cannot be read as \(T.self): \(describe(error))")
            }
        }
    }

    /// What went wrong, from PostgreSQL's message when the server sent one (postgres-nio's own text of its errors hides
    /// it).
    func describe(_ error: any Error) -> String {
        if let error = error as? JobStoreError { return error.message }
        if let error = error as? PSQLError {
            if let info = error.serverInfo {
                var text = "PostgreSQL: \(info[.message] ?? "error")"
                if let state = info[.sqlState] { text += " (SQLSTATE \(state))" }
                if let detail = info[.detail] { text += ": \(detail)" }
                return text
            }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        if let error = error as? PostgresDecodingError { return "\(error.code) of a \(error.postgresType) value" }
        return "\(error)"
    }

    /// Waits on this thread for `future` for up to `seconds`: its value, or `nil` when the time ran out. A condition
    /// variable, not a poll: the future's callback (on its event loop) sets the result and signals.
    func waitFor<T: Sendable>(_ future: EventLoopFuture<T>, seconds: Double) throws -> T? {
        let box = ConditionLock<Result<T, any Error>?>(nil)
        future.whenComplete { result in
            box.withLock { $0 = result }
            box.broadcast()
        }
        let deadline = Monotonic.now() + seconds
        box.lock()
        while box.lockedValue == nil {
            if !box.wait(until: deadline) && Monotonic.now() >= deadline { break }
        }
        let result = box.lockedValue
        box.unlock()
        return try result?.get()
    }

    /// Sleeps the calling thread (a backoff before reconnecting; never on a cooperative thread).
    func pause(_ seconds: Double) {
        var left = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        while true {
            let asked = left
            guard nanosleep([asked], &left) != 0 && errno == EINTR else { return }
        }
    }
#endif
