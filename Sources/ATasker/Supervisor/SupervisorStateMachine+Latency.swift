extension SupervisorStateMachine {
    /// Arms the one latency timer for the oldest waiting task that has not been checked yet.
    ///
    /// Only one timer is armed at a time, whatever the number of waiting tasks; it is not cancelled
    /// when the queue empties (that would cost a timer operation per task), it just finds nothing to
    /// report when it fires.
    mutating func armLatencyTimer(_ effects: inout Effects) {
        guard self.isDispatching, self.latencyTimer == nil,
            let deadline = self.queue.nextLatencyDeadline(
                warning: self.warningThreshold,
                critical: self.criticalThreshold
            )
        else {
            return
        }
        let id = TimerID.next()
        self.latencyTimer = id
        effects.latencyTimer = (id, deadline)
    }

    /// The latency timer fired: report waiting tasks that are late, then re-arm.
    mutating func latencyTimerFired(_ id: TimerID, now: Double, effects: inout Effects) {
        guard self.latencyTimer == id else {
            return
        }
        self.latencyTimer = nil
        var late: [(task: SupervisorTask, level: LatencyLevel)] = []
        self.queue.collectLate(now: now, warning: self.warningThreshold, critical: self.criticalThreshold, into: &late)
        for (task, level) in late where task.claimLatencyReport(level) {
            effects.reports.append(
                LatencyReport(
                    task: task,
                    level: level,
                    latency: now - task.queuedTime,
                    started: false,
                    handler: level == .warning ? self.warningHandler : self.criticalHandler
                )
            )
        }
        self.armLatencyTimer(&effects)
    }
}
