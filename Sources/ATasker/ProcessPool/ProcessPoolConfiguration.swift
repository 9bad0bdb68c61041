import Glibc

/// Settings of the process pool of a ``TaskSupervisor`` (see ``TaskSupervisor/setProcessPool(_:)``).
///
/// The pool runs ``ProcessCall``s in child processes of ``executable``. Its admission rules are the thread
/// pool's, counted in busy children: with N = ``poolSize``, a low-priority task starts while fewer than N
/// children are busy, a normal one while fewer than N + ``reserveNormal``, a high one while fewer than
/// N + ``reserveNormal`` + ``reserveHigh``, and a critical one always starts at once (on an extra child if
/// needed).
///
/// ```swift
/// var pool = ProcessPoolConfiguration(poolSize: 2, reserveNormal: 0, reserveHigh: 0)
/// pool.arguments = ["--child"]
/// pool.hello = Array("worker v1".utf8)
/// supervisor.setProcessPool(pool)
/// ```
public struct ProcessPoolConfiguration: Sendable {
    /// The pool size N. Default: the number of online processors. `0` means no limit.
    public var poolSize: Int

    /// Extra busy children allowed for normal and more urgent tasks. Default: 5.
    public var reserveNormal: Int

    /// Extra busy children allowed for high and critical tasks, beyond ``reserveNormal``. Default: 5.
    public var reserveHigh: Int

    /// The program to spawn. Default: the running program (the real path of `/proc/self/exe`, read when
    /// the configuration is created), which must call ``ProcessChild/runIfChild(_:)`` first thing in `main`.
    public var executable: String

    /// The children's `argv[1...]` (`argv[0]` is ``executable``). Default: none.
    public var arguments: [String]

    /// Variables set in the children on top of the parent's environment. Default: none.
    public var environment: [String: String]

    /// The first frame every child gets, handed to its handler factory. Default: empty.
    public var hello: [UInt8]

    /// Start-up failures (a child that dies or reports a failure before it is ready) within
    /// ``startupFailureWindow`` that break the pool. Default: 5.
    ///
    /// A broken pool fails its queued tasks and new submissions at once with
    /// ``ProcessPoolError/broken(cause:)`` and spawns nothing until ``TaskSupervisor/setProcessPool(_:)`` is
    /// called again.
    public var startupFailureLimit: Int = 5

    /// The window of ``startupFailureLimit``, in seconds. Default: 10.
    public var startupFailureWindow: Double = 10

    /// How long a stopping pool waits for its children to exit after asking them to stop, in seconds, before
    /// it kills them with `SIGKILL`. Default: 5.
    public var stopTimeout: Double = 5

    /// Called in the parent just before each spawn (the Lua side flushes buffered output there).
    public var beforeSpawn: (@Sendable () -> Void)?

    /// Answers a child's ``ProcessChild/request(_:)`` (and receives ``ProcessChild/notify(_:)`` payloads, with
    /// `isNotify` true; its return value is then ignored).
    ///
    /// It runs on the parent thread that serves that child, while the child waits; it may be called from
    /// several such threads at once. `nil`: requests fail in the child.
    public var service: (@Sendable (_ payload: [UInt8], _ isNotify: Bool) -> [UInt8])?

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - poolSize: The pool size N; `nil` for the number of online processors; `0` for no limit.
    ///   - reserveNormal: The normal reserve. Default: 5.
    ///   - reserveHigh: The high reserve. Default: 5.
    public init(poolSize: Int? = nil, reserveNormal: Int = 5, reserveHigh: Int = 5) {
        self.poolSize = max(0, poolSize ?? Self.onlineProcessors)
        self.reserveNormal = max(0, reserveNormal)
        self.reserveHigh = max(0, reserveHigh)
        self.executable = Self.currentExecutable
        self.arguments = []
        self.environment = [:]
        self.hello = []
    }

    /// The number of online processors (`sysconf(_SC_NPROCESSORS_ONLN)`, at least 1).
    static var onlineProcessors: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// The real path of the running program, or `/proc/self/exe` if it cannot be resolved.
    static var currentExecutable: String {
        guard let resolved = realpath("/proc/self/exe", nil) else {
            return "/proc/self/exe"
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Whether children of `self` and of `other` are interchangeable (same program, arguments, environment
    /// and hello).
    func spawnsSameChildren(as other: ProcessPoolConfiguration) -> Bool {
        self.executable == other.executable && self.arguments == other.arguments
            && self.environment == other.environment && self.hello == other.hello
    }

    /// How many children may be busy while a task of `priorityClass` starts (`Int.max`: no limit).
    func busyLimit(for priorityClass: PriorityClass) -> Int {
        priorityClass.busyLimit(
            poolSize: self.poolSize, reserveNormal: self.reserveNormal, reserveHigh: self.reserveHigh)
    }

    /// The most idle children kept warm: N + both reserves (`Int.max` when the pool size is unlimited).
    var warmLimit: Int {
        self.poolSize == 0 ? Int.max : self.poolSize + self.reserveNormal + self.reserveHigh
    }
}
