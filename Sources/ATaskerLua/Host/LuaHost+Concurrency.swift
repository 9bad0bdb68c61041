import ATasker

/// The host from Swift concurrency: the same calls as the blocking ones, run on a thread of their own, so that a
/// script that runs for a while (or waits for its tasks) never holds a thread of the cooperative pool.
extension LuaHost {
    /// Runs the file at `path` in the main state, as the blocking `run(file:arguments:)` does, and suspends the
    /// calling task meanwhile.
    /// - Throws: ``LuaError`` for a missing file, a syntax error, or an error at top level.
    @discardableResult
    public func run(file path: String, arguments: [String] = []) async throws(LuaError) -> Completion {
        try await Self.offThread { () throws(LuaError) in try self.run(file: path, arguments: arguments) }
    }

    /// Runs `code` in the main state and returns its results, as the blocking `run(string:name:)` does, suspending
    /// the calling task meanwhile.
    /// - Throws: ``LuaError`` for a syntax error, an error in the chunk, or a result that cannot be copied.
    @discardableResult
    public func run(string code: String, name: String = "=(string)") async throws(LuaError) -> [LuaValue] {
        try await Self.offThread { () throws(LuaError) in try self.run(string: code, name: name) }
    }

    /// Suspends until no task of the supervisor is pending and no worker is active, or the supervisor stops.
    public func waitUntilIdle() async {
        await self.supervisor.waitUntilIdle()
    }

    /// Runs `body` on a thread of its own and returns what it returned.
    private static func offThread<R: Sendable>(
        _ body: @escaping @Sendable () throws(LuaError) -> R
    ) async throws(LuaError) -> R {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<R, LuaError>, Never>) in
            let run: @Sendable () -> Void = {
                continuation.resume(returning: Result { () throws(LuaError) in try body() })
            }
            if !PoolThread.spawn(name: "atasker-host", run) {
                run()  // no thread to be had: run here rather than fail
            }
        }
        return try result.get()
    }
}
