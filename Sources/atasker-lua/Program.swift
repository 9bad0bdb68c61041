import ATasker
import ATaskerJobs
import ATaskerLua
import Glibc
import Logging
import Synchronization

/// One run of `atasker-lua`: the supervisor, the host, the signal thread, and the decision of how to end.
final class Program: Sendable {
    let command: ATaskerLuaCommand
    /// A first SIGINT / SIGTERM that came once the program was ending for another reason.
    private let lateSignal = Atomic<Int32>(0)

    /// The least time that the main state's finalizers get at the end, whatever the stop deadline.
    static let finalizerGrace = 1.0

    init(command: ATaskerLuaCommand) {
        self.command = command
    }

    /// Runs the script and waits for the end; returns the exit status (or never returns, when a signal ends it).
    func run() -> Int32 {
        FatalSignals.install(label: "atasker-lua")
        let notifier = SystemdNotifier.fromEnvironment()  // before any thread: it edits the environment
        let logger = Logger(label: "atasker-lua")
        var configuration = TaskSupervisor.Configuration()
        if let v = self.command.poolSize { configuration.poolSize = v }
        if let v = self.command.reserveNormal { configuration.reserveNormal = v }
        if let v = self.command.reserveHigh { configuration.reserveHigh = v }
        if let v = self.command.minSize { configuration.minSize = v }
        if let v = self.command.maxSize { configuration.maxSize = v }
        configuration.stopTimeout = .seconds(self.command.stopTimeout)
        let supervisor = TaskSupervisor(configuration: configuration, logger: logger)
        let control = ProgramControl()
        let host = LuaHost(
            supervisor: supervisor, logger: logger,
            configuration: .init(
                exitHandler: { code in control.post(.exit(code)) }, allowsBytecode: self.command.allowBytecode,
                memoryLimit: self.command.memoryLimit.flatMap(LuaHost.memorySize)))
        do {
            try JobsModule.install(
                on: host, defaultStore: getenv("ATASKER_STORE").map { String(cString: $0) }, logger: logger)
        } catch {
            writeStandardError("atasker-lua: \(error)\n")
            return 1
        }
        supervisor.start()
        // While the script's top level still runs (it may wait for a task), a signal cannot wait for it to
        // return: the stop starts at once on a thread of its own, and the script's waits end as the work does.
        let scriptRunning = Atomic<Bool>(true)
        let ending = Ending()
        ProgramSignals.startWaiting(control: control, logger: logger) { signal in
            guard scriptRunning.load(ordering: .acquiring) else {
                // The program ends already (it may be closing the main state): it dies by this signal at the end.
                self.lateSignal.store(signal, ordering: .releasing)
                return
            }
            spawnThread {
                _ = ending.once {
                    notifier?.send("STOPPING=1")
                    return self.end(
                        .signal(signal), host: host, supervisor: supervisor, logger: logger, closeHost: false)
                }
            }
        } cancel: {
            Self.cancelOnSecondSignal(supervisor: supervisor, logger: logger)
        } report: {
            Self.reportRunning(host: host, scriptRunning: scriptRunning.load(ordering: .acquiring))
        }

        do {
            try host.run(file: self.command.script, arguments: self.command.scriptArguments)
            if let notifier {
                notifier.send("READY=1")
                notifier.startWatchdog(supervisor: supervisor, logger: logger)
            }
        } catch {
            LuaHost.flushOutput()
            writeStandardError("atasker-lua: \(error.fullMessage)\n")
            control.post(.exit(1))
        }
        scriptRunning.store(false, ordering: .releasing)
        startThread {
            supervisor.waitUntilIdle()
            control.post(.idle)
        }
        let event = control.wait()
        return ending.once {
            notifier?.send("STOPPING=1")
            return self.end(event, host: host, supervisor: supervisor, logger: logger, closeHost: true)
        }
    }

    /// Stops the supervisor by the library's stop policy (``TaskSupervisor/shutdown(timeout:cancelTasks:)``: what
    /// still runs at the `--stop-timeout` deadline is cancelled, what cannot be is named) and returns the exit
    /// status, or dies by the signal that ended the program. `closeHost`: close the main state (not while the
    /// script runs).
    private func end(
        _ event: ProgramEvent, host: LuaHost, supervisor: TaskSupervisor, logger: Logger, closeHost: Bool
    ) -> Int32 {
        if case .signal = event {
            logger.info("stopping: running work may take up to \(self.command.stopTimeout) s")
        }
        let deadline = Monotonic.now() + self.command.stopTimeout
        let left = supervisor.shutdown(cancelTasks: event != .idle)
        // The main state's `__gc` finalizers run as it closes, where no hook can cancel them: one that never
        // returns is left behind at the stop deadline (with a second at least, so a prompt finalizer always
        // finishes), and the exit status says the end was not clean.
        let closeTimeout = max(deadline - Monotonic.now(), Self.finalizerGrace)
        var abandoned = false
        if left.isEmpty && closeHost && !host.close(timeout: .seconds(closeTimeout)) {
            abandoned = true
            logger.warning(
                "a __gc finalizer of the main state has not returned by the stop deadline (--stop-timeout \(self.command.stopTimeout) s, at least \(Self.finalizerGrace) s for the finalizers) as the program ends: it is left behind (no hook can cancel a finalizer)"
            )
        }
        LuaHost.flushOutput()
        let late = self.lateSignal.load(ordering: .acquiring)
        switch event {
        case .signal(let signal):
            ProgramSignals.reraise(signal)
        case _ where late != 0:
            ProgramSignals.reraise(late)
        case .exit(let code):
            return abandoned && code == 0 ? 1 : code
        case .idle:
            return abandoned ? 1 : 0
        }
    }
}

extension Program {
    /// On the second signal: cancels the Lua code that still runs (see DESIGN.md, "Cancelling running Lua code"),
    /// waits up to ``TaskSupervisor/cancelGrace`` for it to end, and names what cannot be reached: code inside one
    /// long C call or a `__gc` finalizer, left behind as the program ends.
    static func cancelOnSecondSignal(supervisor: TaskSupervisor, logger: Logger) {
        let count = supervisor.cancelRunningCode()
        supervisor.killProcessChildren()
        if count > 0 {
            logger.warning("cancelling the Lua code that still runs on the second signal (\(count) executions)")
        }
        _ = supervisor.stop(wait: .seconds(count > 0 ? 0.5 : 0), cancelTasks: true)  // 0.5: the cancel grace
        for place in supervisor.runningCode() {
            logger.warning(
                "\(place) is stuck in one long C call or a __gc finalizer, where it cannot be cancelled; it is left behind as the program ends"
            )
        }
    }
}

extension Program {
    /// On SIGUSR1: every Lua execution that runs now, with how long it has run and its traceback, on stderr (not
    /// through the log, whose level may hide it); the program goes on.
    static func reportRunning(host: LuaHost, scriptRunning: Bool) {
        let reports = host.executionReports(within: .milliseconds(80))
        var text = "atasker-lua (pid \(getpid())): SIGUSR1: \(reports.count) Lua execution"
        text += reports.count == 1 ? " runs now" : "s run now"
        text += scriptRunning ? " (and the script's top level in the main state)\n" : "\n"
        for report in reports {
            text += report.description + "\n"
        }
        LuaHost.flushOutput()
        writeStandardError(text)
    }
}

/// Ends the program once: the first caller runs the ending, and any later one waits for the process to end by it.
final class Ending: Sendable {
    private let claimed = Atomic<Bool>(false)

    func once(_ body: () -> Int32) -> Int32 {
        guard self.claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else {
            // The first ending exits the process or re-raises its signal; nothing is left to do here.
            while true { pause() }
        }
        return body()
    }
}

/// What ends the program: the first of these to be posted wins.
enum ProgramEvent: Equatable, Sendable {
    case idle
    case exit(Int32)
    case signal(Int32)
}

/// A one-shot latch: the first posted event is kept, and `wait` returns it.
final class ProgramControl: @unchecked Sendable {
    // protected by `mutex`
    private var event: ProgramEvent?
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    init() {
        pthread_mutex_init(&self.mutex, nil)
        pthread_cond_init(&self.condition, nil)
    }

    func post(_ event: ProgramEvent) {
        pthread_mutex_lock(&self.mutex)
        if self.event == nil {
            self.event = event
            pthread_cond_broadcast(&self.condition)
        }
        pthread_mutex_unlock(&self.mutex)
    }

    func wait() -> ProgramEvent {
        pthread_mutex_lock(&self.mutex)
        while self.event == nil {
            pthread_cond_wait(&self.condition, &self.mutex)
        }
        let event = self.event!
        pthread_mutex_unlock(&self.mutex)
        return event
    }
}

/// SIGINT, SIGTERM and SIGHUP (a stop), SIGUSR1 (a report): blocked in every thread, and waited for by one.
enum ProgramSignals {
    static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGUSR1] {
            sigaddset(&set, signal)
        }
        return set
    }

    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGHUP: "SIGHUP"
        case SIGUSR1: "SIGUSR1"
        default: "signal \(signal)"
        }
    }

    /// Signals that keep their default action (the program dies by them at once): SIGUSR2, SIGALRM, SIGPIPE.
    static let defaultActionSignals: [Int32] = [SIGUSR2, SIGALRM, SIGPIPE]

    /// Gives ``defaultActionSignals`` their default action and unblocks them, so that what they do does not
    /// depend on what started the program: a launcher (a test runner, a supervisor) may leave them ignored or
    /// blocked, and then `kill -HUP` would be pending for ever while the README says it ends the program.
    static func resetDefaultActions() {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in self.defaultActionSignals {
            Glibc.signal(signal, SIG_DFL)
            sigaddset(&set, signal)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    static func block() {
        var set = self.signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for the signals of ``signalSet()`` on a thread of its own. SIGUSR1 runs `report` on a thread of its
    /// own. The first SIGINT / SIGTERM / SIGHUP posts a graceful stop and calls `first`; the next one runs `cancel`
    /// (what still runs is cancelled, or named) and then dies by that signal.
    static func startWaiting(
        control: ProgramControl, logger: Logger, first: @escaping @Sendable (Int32) -> Void,
        cancel: @escaping @Sendable () -> Void, report: @escaping @Sendable () -> Void
    ) {
        startThread {
            var set = self.signalSet()
            var count = 0
            while true {
                var signal: Int32 = 0
                guard sigwait(&set, &signal) == 0 else { continue }
                if signal == SIGUSR1 {
                    spawnThread(report)
                    continue
                }
                count += 1
                let name = self.name(signal)
                if count == 1 {
                    logger.info(
                        "received \(name): stopping gracefully (a second signal cancels running work and quits)")
                    control.post(.signal(signal))
                    first(signal)
                } else {
                    logger.warning(
                        "received \(name) again: cancelling running work and quitting without waiting for it")
                    cancel()
                    LuaHost.flushOutput()
                    self.reraise(signal)
                }
            }
        }
    }

    /// Dies by `signal` with its default action, so that the parent sees a death by signal.
    static func reraise(_ signal: Int32) -> Never {
        Glibc.signal(signal, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        raise(signal)
        _exit(128 + signal)
    }
}

/// Starts one of the program's own threads (the signal waiter, the idle waiter); the program cannot run without it.
func startThread(_ body: @escaping @Sendable () -> Void) {
    // Out of threads (a pool far too large for the system): a clear error and exit status 1, never a trap.
    if !spawnThread(inlineOnFailure: false, body) {
        LuaHost.flushOutput()
        writeStandardError(
            "atasker-lua: cannot start a thread of the program: the system refuses more threads (lower the pool's "
                + "min_size / max_size)\n")
        exit(1)
    }
}
