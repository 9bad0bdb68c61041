import Synchronization

/// The aloops of one supervisor, by name, and which of them is the default.
final class AloopRegistry: Sendable {
    struct State: Sendable {
        /// In creation order.
        var aloops: [Aloop] = []
        var defaultAloop: Aloop?
    }

    let state = Mutex(State())

    init() {}
}

extension TaskSupervisor {
    /// The name of the aloop that ``defaultAloop(creating:)`` makes when none was set.
    public static let defaultAloopName = "default"

    /// Creates an aloop (atasker's `create_aloop`).
    ///
    /// - Parameters:
    ///   - name: A name unique among the supervisor's aloops; its thread is called `aloop-<name>`.
    ///   - start: Whether to start its thread now. Default: `true`.
    ///   - isDefault: Whether it becomes the default aloop (where async workers and tasks run when they name
    ///     none). Default: `false`.
    /// - Returns: The aloop.
    /// - Throws: ``AloopError`` with ``AloopError/Code/nameInUse`` if the name is taken, or
    ///   ``AloopError/Code/supervisorStopped`` after a stop.
    @discardableResult
    public func createAloop(named name: String, start: Bool = true, isDefault: Bool = false) throws -> Aloop {
        guard !self.isStopped else {
            throw AloopError(.supervisorStopped, "cannot create aloop \"\(name)\": the supervisor was stopped")
        }
        let aloop = try self.aloopRegistry.state.withLock { state -> Aloop in
            guard !state.aloops.contains(where: { $0.name == name }) else {
                throw AloopError(.nameInUse, "the supervisor has an aloop called \"\(name)\" already")
            }
            let aloop = Aloop(name: name, supervisor: self)
            state.aloops.append(aloop)
            if isDefault {
                state.defaultAloop = aloop
            }
            return aloop
        }
        if start {
            try aloop.start()
        }
        return aloop
    }

    /// The aloop with this name (atasker's `get_aloop`), or `nil`.
    ///
    /// - Parameter name: An aloop's ``Aloop/name``.
    public func aloop(named name: String) -> Aloop? {
        self.aloopRegistry.state.withLock { state in state.aloops.first { $0.name == name } }
    }

    /// The supervisor's aloops, in creation order.
    public var aloops: [Aloop] {
        self.aloopRegistry.state.withLock { $0.aloops }
    }

    /// The default aloop, if one was set (see ``setDefaultAloop(named:)``) or made (see
    /// ``defaultAloop(creating:)``).
    public var defaultAloop: Aloop? {
        self.aloopRegistry.state.withLock { $0.defaultAloop }
    }

    /// Makes the aloop with this name the default (atasker's `set_default_aloop`).
    ///
    /// - Parameter name: An aloop's name.
    /// - Throws: ``AloopError`` with ``AloopError/Code/notFound`` if there is none.
    public func setDefaultAloop(named name: String) throws {
        try self.aloopRegistry.state.withLock { state in
            guard let aloop = state.aloops.first(where: { $0.name == name }) else {
                throw AloopError(.notFound, "the supervisor has no aloop called \"\(name)\"")
            }
            state.defaultAloop = aloop
        }
    }

    /// The default aloop; when none is set and `creating` is true, one called ``defaultAloopName`` is made,
    /// started and set (or the aloop of that name, if it exists, becomes the default).
    ///
    /// - Parameter creating: Whether to make the default aloop when there is none.
    /// - Returns: The default aloop, or `nil` when there is none and `creating` is false.
    /// - Throws: ``AloopError`` if it must be made after a stop, or its thread cannot start.
    public func defaultAloop(creating: Bool) throws -> Aloop? {
        let (aloop, made) = try self.aloopRegistry.state.withLock { state -> (Aloop?, Bool) in
            if let existing = state.defaultAloop {
                return (existing, false)
            }
            guard creating else {
                return (nil, false)
            }
            if let named = state.aloops.first(where: { $0.name == Self.defaultAloopName }) {
                state.defaultAloop = named
                return (named, false)
            }
            guard !self.isStopped else {
                throw AloopError(.supervisorStopped, "cannot create the default aloop: the supervisor was stopped")
            }
            let aloop = Aloop(name: Self.defaultAloopName, supervisor: self)
            state.aloops.append(aloop)
            state.defaultAloop = aloop
            return (aloop, true)
        }
        if made, let aloop {
            try aloop.start()
        }
        return aloop
    }

    /// Starts the aloop with this name (atasker's `start_aloop`).
    ///
    /// - Parameter name: An aloop's name.
    /// - Throws: ``AloopError`` with ``AloopError/Code/notFound`` if there is none, or what
    ///   ``Aloop/start()`` throws.
    public func startAloop(named name: String) throws {
        guard let aloop = self.aloop(named: name) else {
            throw AloopError(.notFound, "the supervisor has no aloop called \"\(name)\"")
        }
        try aloop.start()
    }

    /// Stops the aloop with this name (atasker's `stop_aloop`; see ``Aloop/stop(wait:cancelTasks:)``).
    ///
    /// - Parameters:
    ///   - name: An aloop's name.
    ///   - wait: How long to wait for it. Default: ``StopWait/forever``.
    ///   - cancelTasks: Whether to cancel its work at once. Default: `false`.
    /// - Returns: Whether it is stopped when the call returns.
    /// - Throws: ``AloopError`` with ``AloopError/Code/notFound`` if there is none.
    @discardableResult
    public func stopAloop(named name: String, wait: StopWait = .forever, cancelTasks: Bool = false) throws -> Bool {
        guard let aloop = self.aloop(named: name) else {
            throw AloopError(.notFound, "the supervisor has no aloop called \"\(name)\"")
        }
        return aloop.stop(wait: wait, cancelTasks: cancelTasks)
    }

    /// Stops every aloop: all are asked first; then, when `waiting`, they are waited for together until the
    /// deadline (`nil`: for ever; at the deadline each cancels its work left). Returns whether all are stopped.
    @discardableResult
    func stopAloops(until deadline: Double?, cancelTasks: Bool, waiting: Bool) -> Bool {
        let aloops = self.aloops
        for aloop in aloops {
            aloop.stop(wait: .none, cancelTasks: cancelTasks)
        }
        guard waiting else {
            return aloops.allSatisfy(\.isStopped)
        }
        var allStopped = true
        for aloop in aloops {
            let wait: StopWait = deadline.map { .seconds(max(0, $0 - Monotonic.now())) } ?? .forever
            allStopped = aloop.stop(wait: wait) && allStopped
        }
        return allStopped
    }
}
