/// Faults of the process pool, as a failed task's ``SupervisorTask/error``.
///
/// Each ``description`` names the child's pid, the cause (an exit status, or a signal by name such as
/// `SIGKILL`) and what happened next. Only the task that the child was running fails; a new child replaces
/// the dead one when a task needs it.
///
/// ```swift
/// do {
///     let bytes: [UInt8] = try await task.value()
/// } catch ProcessPoolError.childKilled(let pid, let signal) {
///     print("child \(pid) died of signal \(signal)")
/// }
/// ```
public enum ProcessPoolError: Error, Sendable, CustomStringConvertible {
    /// The child exited with this status while it ran the task.
    case childExited(pid: Int32, status: Int32)
    /// The child was killed by this signal while it ran the task.
    case childKilled(pid: Int32, signal: Int32)
    /// The child closed its protocol descriptor while it ran the task; it was then killed and reaped.
    case connectionClosed(pid: Int32)
    /// The task ran longer than its timeout (seconds from its start); the child was killed with `SIGKILL`.
    case timedOut(pid: Int32, seconds: Double)
    /// The child sent a frame that breaks the protocol (a bad length, checksum or type, or a truncated
    /// frame); it was killed.
    case protocolError(pid: Int32, detail: String)
    /// The pool is broken by a start-up crash loop (see ``ProcessPoolConfiguration/startupFailureLimit``);
    /// `cause` is the last start-up failure.
    case broken(cause: String)
    /// The pool or the supervisor stopped before the task ran.
    case stopped
    /// The child's handler answered ``ProcessReply/failure(_:)`` and the task had no transform.
    case remoteFailure([UInt8])
    /// The call takes more bytes than one frame of the protocol holds (``ProcessCall/maximumSize``); it was not
    /// sent.
    case callTooLarge(bytes: Int, limit: Int)

    /// A message for people: the pid, the cause and what happens next.
    public var description: String {
        switch self {
        case .childExited(let pid, let status):
            return "pool child \(pid) exited with status \(status) while running the task; a new child replaces it"
        case .childKilled(let pid, let signal):
            return
                "pool child \(pid) was killed by \(Self.signalName(signal)) while running the task; a new child replaces it"
        case .connectionClosed(let pid):
            return
                "pool child \(pid) closed its connection while running the task; it was killed and a new child replaces it"
        case .timedOut(let pid, let seconds):
            return
                "the task timed out after \(Self.format(seconds)) seconds in pool child \(pid); the child was killed with SIGKILL and a new child replaces it"
        case .protocolError(let pid, let detail):
            return
                "protocol error from pool child \(pid): \(detail); the child was killed and a new child replaces it"
        case .broken(let cause):
            return
                "the process pool is broken: \(cause); no child is started until the pool is set again (setProcessPool; set_mp_pool in Lua)"
        case .stopped:
            return "the process pool was stopped before the task ran"
        case .remoteFailure(let bytes):
            return "the call failed in the pool child: \(Self.text(bytes))"
        case .callTooLarge(let bytes, let limit):
            return
                "the call takes \(Self.mebibytes(bytes)) MiB, over the process pool's limit of \(Self.mebibytes(limit)) MiB per call (arguments and the function's upvalues); pass large data another way, such as a file"
        }
    }

    /// A signal's name, `SIGKILL` or `SIGRTMIN+4`, or `signal N` when it has none.
    static func signalName(_ signal: Int32) -> String {
        ProcessSystem.signalName(signal) ?? "signal \(signal)"
    }

    /// The bytes as text when they are UTF-8, else their size.
    static func text(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) {
            return text
        }
        return "\(bytes.count) bytes"
    }

    /// Whole mebibytes, rounded up.
    static func mebibytes(_ bytes: Int) -> String {
        "\((bytes >> 20) + (bytes & ((1 << 20) - 1) == 0 ? 0 : 1))"
    }

    /// Seconds without trailing noise: `1.5`, `0.25`, `2`.
    static func format(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds < 1e15 else { return "\(seconds)" }
        let milliseconds = Int((max(0, seconds) * 1000).rounded())
        if milliseconds % 1000 == 0 {
            return "\(milliseconds / 1000)"
        }
        var fraction = "\(milliseconds % 1000)"
        while fraction.count < 3 {
            fraction = "0" + fraction
        }
        while fraction.hasSuffix("0") {
            fraction.removeLast()
        }
        return "\(milliseconds / 1000).\(fraction)"
    }
}
