#if Postgres
    import ATasker
    import ATaskerLua
    import Logging
    import NIOCore
    import PostgresNIO
    import Synchronization

    /// The wake-ups of a PostgreSQL store: one connection of its own that LISTENs to the channel of puts, started by
    /// the first subscription and closed after the last is cancelled.
    ///
    /// A thread of its own connects, listens, wakes every subscriber (a put may have come while it was away) and then
    /// blocks until the connection closes (a future, not a poll); when the server went away it reconnects with backoff
    /// (0.1 s doubling to 5 s) for as long as there are subscribers. Notifications arrive on an event loop and only
    /// call the wake-ups, which take no lock that waits on the store.
    final class PostgresListener: Sendable {
        private let connections: PostgresConnections
        private let logger: Logger
        private let state = Mutex(ListenState())
        private let nextID = Atomic<UInt64>(1)

        struct ListenState: Sendable {
            var subscribers: [String: [UInt64: @Sendable () -> Void]] = [:]
            /// Whether the thread runs (it ends when there are no subscribers left).
            var running = false
            var connection: PostgresConnection?
            var stopped = false
        }

        init(connections: PostgresConnections, logger: Logger) {
            self.connections = connections
            self.logger = logger
        }

        func subscribe(queue: String, _ wake: @escaping @Sendable () -> Void) -> any JobStoreSubscription {
            let id = self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
            let start = self.state.withLock { s -> Bool in
                s.subscribers[queue, default: [:]][id] = wake
                guard !s.running && !s.stopped else { return false }
                s.running = true
                return true
            }
            if start { _ = spawnThread { self.loop() } }
            return PostgresSubscription(listener: self, queue: queue, id: id)
        }

        fileprivate func unsubscribe(queue: String, id: UInt64) {
            let close = self.state.withLock { s -> PostgresConnection? in
                s.subscribers[queue]?[id] = nil
                if s.subscribers[queue]?.isEmpty == true { s.subscribers[queue] = nil }
                return s.subscribers.isEmpty ? s.connection : nil
            }
            if let close { PostgresConnections.close(close) }
        }

        /// Ends the thread and refuses to start it again.
        func stop() {
            let close = self.state.withLock { s -> PostgresConnection? in
                s.stopped = true
                return s.connection
            }
            if let close { PostgresConnections.close(close) }
        }

        /// Calls the wake-ups of `queue`'s subscribers.
        func wake(_ queue: String) {
            let calls = self.state.withLock { $0.subscribers[queue].map { Array($0.values) } ?? [] }
            for call in calls { call() }
        }

        private func wakeAll() {
            let calls = self.state.withLock { $0.subscribers.values.flatMap(\.values) }
            for call in calls { call() }
        }

        /// Whether the thread should go on; when not, it is marked ended under the same lock.
        private func shouldRun() -> Bool {
            self.state.withLock { s -> Bool in
                if s.stopped || s.subscribers.isEmpty {
                    s.running = false
                    s.connection = nil
                    return false
                }
                return true
            }
        }

        private func loop() {
            var delay = 0.1
            var lostAt: Double? = nil
            while self.shouldRun() {
                let connection: PostgresConnection
                do {
                    connection = try self.connections.connect(until: Monotonic.now() + 1, for: "listen")
                } catch {
                    if lostAt == nil { lostAt = Monotonic.now() }
                    self.logger.warning(
                        "store \(self.connections.url): the wake-up connection cannot reach the server (\(error)); trying again in \(seconds(delay)); workers poll meanwhile"
                    )
                    pause(delay)
                    delay = min(delay * 2, 5)
                    continue
                }
                let keep = self.state.withLock { s -> Bool in
                    guard !s.stopped && !s.subscribers.isEmpty else { return false }
                    s.connection = connection
                    return true
                }
                guard keep else {
                    PostgresConnections.close(connection)
                    continue
                }
                connection.addListener(channel: PostgresSchema.channel) { [weak self] _, notification in
                    self?.wake(notification.payload)
                }
                do {
                    // postgres-nio sent LISTEN for the listener above; this one returns once the server listens.
                    let listen = connection.query("LISTEN \(unescaped: PostgresSchema.channel)", logger: self.logger)
                    if try waitFor(listen, seconds: self.connections.config.queryTimeout) == nil {
                        throw JobStoreError(
                            "no answer to LISTEN within \(seconds(self.connections.config.queryTimeout))")
                    }
                    delay = 0.1
                    if let lost = lostAt {
                        self.logger.info(
                            "store \(self.connections.url): the wake-up connection is back after \(seconds(Monotonic.now() - lost))"
                        )
                        lostAt = nil
                    }
                    // Whatever was put while this host did not listen.
                    self.wakeAll()
                } catch {
                    self.logger.warning("store \(self.connections.url): LISTEN failed: \(describe(error))")
                }
                // Blocks this thread (ours) until the connection closes: the server went away, or the last subscriber
                // left.
                try? connection.closeFuture.wait()
                PostgresConnections.close(connection)
                if lostAt == nil { lostAt = Monotonic.now() }
                if self.shouldRun() {
                    self.logger.warning(
                        "store \(self.connections.url): the wake-up connection closed; reconnecting (workers poll meanwhile)"
                    )
                    self.wakeAll()
                    pause(delay)
                    delay = min(delay * 2, 5)
                }
            }
        }
    }

    private struct PostgresSubscription: JobStoreSubscription {
        let listener: PostgresListener
        let queue: String
        let id: UInt64

        func cancel() { self.listener.unsubscribe(queue: self.queue, id: self.id) }
    }
#endif
