import DequeModule

extension ProcessPoolStateMachine {
    // MARK: - Events from a child's thread

    /// The child's process exists.
    mutating func childSpawned(_ serial: Int, pid: Int32, pidDescriptor: Int32) {
        self.spawned += 1
        self.children[serial]?.pid = pid
        self.children[serial]?.pidDescriptor = pidDescriptor
    }

    /// The child reported ready. Returns `false` if it was ready already (a protocol error).
    mutating func childReady(_ serial: Int, now: Double, effects: inout Effects) -> Bool {
        guard var child = self.children[serial], !child.wasReady else {
            return false
        }
        child.wasReady = true
        self.releaseStartingSlot(&child)
        if child.phase == .starting {
            child.phase = .ready
        }
        self.children[serial] = child
        if child.phase == .ready {
            self.becameIdle(serial, now: now, effects: &effects)
        }
        self.dispatch(now: now, effects: &effects)
        return true
    }

    /// The child reported a start-up failure (it exits next).
    mutating func childStartupFailed(_ serial: Int, message: String) -> Bool {
        guard self.children[serial]?.wasReady == false else {
            return false
        }
        self.children[serial]?.startupMessage = message
        return true
    }

    /// Replies arrived, in order. Returns `false` if one does not answer the first outstanding call (a
    /// protocol error); the ones before it are handled.
    mutating func replies(
        _ serial: Int,
        _ replies: [(callID: UInt64, reply: ProcessReply)],
        now: Double,
        effects: inout Effects
    ) -> Bool {
        guard var child = self.children[serial] else {
            return true
        }
        let wasBusy = !child.inflight.isEmpty
        var valid = true
        for (callID, reply) in replies {
            guard let head = child.inflight.first, head.callID == callID, child.killCause == nil else {
                valid = false
                break
            }
            child.inflight.removeFirst()
            self.running -= 1
            child.tasksRun += 1
            let duration = now - child.headStarted
            child.averageCallTime = child.averageCallTime.map { $0 + (duration - $0) / 8 } ?? duration
            if let timer = child.headTimer {
                effects.cancelTimers.append(timer)
                child.headTimer = nil
            }
            effects.finished.append((head.entry, .reply(reply)))
            if !child.inflight.isEmpty {
                self.startHead(&child, now: now, effects: &effects)
            }
        }
        self.children[serial] = child
        if wasBusy && child.inflight.isEmpty {
            self.busyCount -= 1
            // A child that broke the protocol is killed by the caller instead.
            if valid {
                self.becameIdle(serial, now: now, effects: &effects)
            }
        }
        self.dispatch(now: now, effects: &effects)
        self.checkAutomaticShutdown(now: now, effects: &effects)
        return valid
    }

    /// A ready child has nothing outstanding: keep it for the next task, or stop it if it is of an old
    /// generation or the pool is shutting down. (``dispatch(now:effects:)`` then stops idle children beyond
    /// the warm limit, once it has given them what waits.)
    mutating func becameIdle(_ serial: Int, now: Double, effects: inout Effects) {
        guard let child = self.children[serial], child.phase == .ready else {
            return
        }
        if child.generation != self.generation || self.shuttingDown {
            self.requestStop(serial, now: now, effects: &effects)
        } else {
            self.idle.append(serial)
        }
    }

    /// Stops the longest-idle children while more children are warm (idle or busy) than the pool keeps:
    /// extra children started for critical tasks, or after the pool shrank.
    mutating func trimIdle(now: Double, effects: inout Effects) {
        while let serial = self.idle.first, self.idle.count + self.busyCount > self.configuration.warmLimit {
            self.requestStop(serial, now: now, effects: &effects)
        }
    }

    /// Asks a child to stop: its thread sends the `stop` frame and kills it at the deadline.
    mutating func requestStop(_ serial: Int, now: Double, effects: inout Effects) {
        guard var child = self.children[serial], child.phase != .stopping else {
            return
        }
        self.releaseStartingSlot(&child)
        child.phase = .stopping
        child.stopDeadline = now + max(0, self.configuration.stopTimeout)
        self.children[serial] = child
        self.idle.removeAll { $0 == serial }
        effects.wakes.append(child.connection)
    }

    mutating func releaseStartingSlot(_ child: inout Child) {
        if child.holdsStartingSlot {
            child.holdsStartingSlot = false
            self.startingCount -= 1
        }
    }

    /// The child's thread takes a stop request: the deadline, once, if the child must stop.
    mutating func takeStopRequest(_ serial: Int) -> Double? {
        guard var child = self.children[serial], child.phase == .stopping, !child.stopTaken,
            let deadline = child.stopDeadline
        else {
            return nil
        }
        child.stopTaken = true
        self.children[serial] = child
        return deadline
    }

    /// Marks every child that is not being killed yet as killed at the stop deadline; returns where to send
    /// the signals.
    mutating func markKillAll() -> [KillTarget] {
        self.children.keys.sorted().compactMap { self.markKill($0, cause: .stopTimeout) }
    }

    /// Records why the pool kills a child (the first reason wins) and returns where to send the signals, or
    /// `nil` if the child is gone or already being killed.
    mutating func markKill(_ serial: Int, cause: KillCause) -> KillTarget? {
        guard var child = self.children[serial], child.killCause == nil, child.pidDescriptor >= 0 else {
            return nil
        }
        child.killCause = cause
        self.children[serial] = child
        return KillTarget(pidDescriptor: child.pidDescriptor, group: child.reaping ? nil : child.pid)
    }

    /// The child's thread is about to reap the child: returns the process group to kill (once), and from then
    /// on ``markKill(_:cause:)`` names no group.
    mutating func beginReap(_ serial: Int) -> Int32? {
        guard var child = self.children[serial], !child.reaping, child.pid > 0 else {
            return nil
        }
        child.reaping = true
        self.children[serial] = child
        return child.pid
    }

    /// A call's timeout expired: returns where to send the signals if that call is still the one running.
    mutating func timeoutExpired(_ serial: Int, callID: UInt64, seconds: Double) -> KillTarget? {
        guard let child = self.children[serial], child.inflight.first?.callID == callID else {
            return nil
        }
        return self.markKill(serial, cause: .timedOut(seconds))
    }

    /// The child's process ended (or never started): fail the call it was running, put the calls pipelined
    /// behind it back at the front of the queue, count start-up failures, and dispatch again.
    mutating func childDied(_ serial: Int, ending: Ending, now: Double, effects: inout Effects) {
        guard var child = self.children.removeValue(forKey: serial) else {
            return
        }
        self.releaseStartingSlot(&child)
        self.idle.removeAll { $0 == serial }
        if let timer = child.headTimer {
            effects.cancelTimers.append(timer)
        }
        let pid = child.pid
        let stopRequested = child.phase == .stopping
        let spawned: Bool
        if case .notSpawned = ending {
            spawned = false
        } else {
            spawned = true
        }
        // A child that we asked to stop and that had nothing outstanding did not die: it was stopped.
        if spawned && !(stopRequested && child.inflight.isEmpty) {
            self.deaths += 1
        }
        if !child.wasReady && !stopRequested {
            self.recordStartupFailure(self.startupCause(child, ending: ending), effects: &effects)
        }
        if !child.inflight.isEmpty {
            self.busyCount -= 1
            let head = child.inflight.removeFirst()
            self.running -= 1
            let error = Self.error(for: child, ending: ending)
            effects.finished.append((head.entry, .error(error)))
            effects.warnings.append("\(head.entry.task) failed: \(error)")
            // The calls pipelined behind it never started.
            for inflight in child.inflight.reversed() {
                self.running -= 1
                if self.shuttingDown {
                    effects.finished.append((inflight.entry, .error(ProcessPoolError.stopped)))
                } else if let cause = self.brokenCause {
                    effects.finished.append((inflight.entry, .error(ProcessPoolError.broken(cause: cause))))
                } else if inflight.entry.task.transition(from: .started, to: .queued) {
                    self.queue.prepend(inflight.entry)
                    self.queuedIDs.insert(inflight.entry.task.id)
                }
            }
        } else if !stopRequested && child.wasReady {
            effects.warnings.append(
                "idle pool child \(pid) \(Self.endingText(ending)); a new child replaces it when needed")
        }
        self.dispatch(now: now, effects: &effects)
        self.checkAutomaticShutdown(now: now, effects: &effects)
        self.checkShutdownFinished(&effects)
    }

    private static func error(for child: Child, ending: Ending) -> any Error {
        let pid = child.pid
        switch child.killCause {
        case .timedOut(let seconds):
            return ProcessPoolError.timedOut(pid: pid, seconds: seconds)
        case .protocolError(let detail):
            return ProcessPoolError.protocolError(pid: pid, detail: detail)
        case .connectionClosed:
            return ProcessPoolError.connectionClosed(pid: pid)
        case .stopTimeout, nil:
            switch ending {
            case .reaped(.exited(let status)):
                return ProcessPoolError.childExited(pid: pid, status: status)
            case .reaped(.signaled(let signal)):
                return ProcessPoolError.childKilled(pid: pid, signal: signal)
            case .notSpawned:
                return ProcessPoolError.stopped
            }
        }
    }

    private static func endingText(_ ending: Ending) -> String {
        switch ending {
        case .reaped(.exited(let status)):
            return "exited with status \(status)"
        case .reaped(.signaled(let signal)):
            return "was killed by \(ProcessPoolError.signalName(signal))"
        case .notSpawned(let message):
            return "could not be started: \(message)"
        }
    }

    private func startupCause(_ child: Child, ending: Ending) -> String {
        if let message = child.startupMessage {
            return "pool child \(child.pid) failed to start: \(message)"
        }
        if case .protocolError(let detail) = child.killCause {
            return "pool child \(child.pid) broke the protocol during start-up: \(detail)"
        }
        if case .notSpawned(let message) = ending {
            return "cannot start \(self.configuration.executable): \(message)"
        }
        return "pool child \(child.pid) (\(self.configuration.executable)) \(Self.endingText(ending)) during start-up"
    }

    /// Counts a start-up failure; too many within the window break the pool.
    mutating func recordStartupFailure(_ cause: String, effects: inout Effects) {
        let now = Monotonic.now()
        while let oldest = self.startupFailures.first, oldest < now - self.configuration.startupFailureWindow {
            self.startupFailures.removeFirst()
        }
        self.startupFailures.append(now)
        effects.warnings.append(cause)
        guard self.brokenCause == nil, self.startupFailures.count >= max(1, self.configuration.startupFailureLimit)
        else {
            return
        }
        self.brokenCause = cause
        effects.warnings.append(
            "the process pool is broken after \(self.startupFailures.count) start-up failures within \(ProcessPoolError.format(self.configuration.startupFailureWindow)) seconds; queued tasks fail"
        )
        self.failQueued(with: ProcessPoolError.broken(cause: cause), effects: &effects)
    }

    mutating func failQueued(with error: any Error, effects: inout Effects) {
        for entry in self.queue.removeAll() {
            self.queuedIDs.remove(entry.task.id)
            effects.finished.append((entry, .error(error)))
        }
    }
}
