import ATasker
import Glibc
import Logging
import Synchronization

/// `atasker.Locker{mod=, timeout=, relative=}`: a lock that every state of the host can use (a host handle), as
/// atasker's `Locker`. Reentrant by default (`relative=true`, a Python `RLock`): the thread that holds it may take
/// it again. A call that cannot take it within `timeout` seconds runs the `critical` handler and fails.
final class LuaLocker: Sendable {
    let mod: String
    let timeout: Double
    let reentrant: Bool
    let critical = Mutex<TaskFunction?>(nil)
    private let lock = OwnedLock()

    init(mod: String, timeout: Double, reentrant: Bool) {
        self.mod = mod
        self.timeout = timeout
        self.reentrant = reentrant
    }

    /// Takes the lock within `timeout` seconds (the locker's own by default); false when it could not.
    func acquire(timeout: Double?) -> Bool {
        self.lock.acquire(timeout: timeout ?? self.timeout, reentrant: self.reentrant)
    }

    /// Releases the lock that the calling thread holds.
    func release() throws {
        guard self.lock.release() else {
            throw CallError(message: "Locker '\(self.mod)': release of a lock that this thread does not hold")
        }
    }
}

/// A mutex with an owner thread and a count, waited on with a timeout on the monotonic clock.
final class OwnedLock: @unchecked Sendable {
    // protected by `mutex`
    private var owner: pthread_t?
    private var count = 0
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(self.mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(self.condition, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(self.condition)
        pthread_mutex_destroy(self.mutex)
        self.condition.deallocate()
        self.mutex.deallocate()
    }

    func acquire(timeout: Double, reentrant: Bool) -> Bool {
        let me = pthread_self()
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        // Callers check their argument (``LuaArguments``); the clamp keeps `Int(whole)` from trapping.
        let timeout = timeout.isNaN ? 0 : min(max(timeout, 0), LuaArguments.maxSeconds)
        let whole = timeout.rounded(.down)
        deadline.tv_sec += Int(whole)
        deadline.tv_nsec += Int((timeout - whole) * 1e9)
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        pthread_mutex_lock(self.mutex)
        defer { pthread_mutex_unlock(self.mutex) }
        while let owner = self.owner {
            if reentrant && pthread_equal(owner, me) != 0 {
                self.count += 1
                return true
            }
            if pthread_cond_timedwait(self.condition, self.mutex, &deadline) == ETIMEDOUT {
                if self.owner == nil { break }
                return false
            }
        }
        self.owner = me
        self.count = 1
        return true
    }

    func release() -> Bool {
        pthread_mutex_lock(self.mutex)
        defer { pthread_mutex_unlock(self.mutex) }
        guard let owner = self.owner, pthread_equal(owner, pthread_self()) != 0 else { return false }
        self.count -= 1
        if self.count == 0 {
            self.owner = nil
            pthread_cond_signal(self.condition)
        }
        return true
    }
}

extension HostCore {
    /// `atasker.Locker{...}` and the lock's methods.
    func lockerCall(_ fn: Int, _ locker: LuaLocker?, _ args: [LuaValue]) throws -> [LuaValue] {
        switch fn {
        case ATLFunction.lockerNew:
            let opts = args.first?.tableValue ?? LuaTable()
            try LuaArguments.refuseUnknown(opts, ["mod", "timeout", "relative"], "Locker")
            let timeout = try LuaArguments.seconds(opts["timeout"], "Locker", "timeout") ?? 5
            let relative = try LuaArguments.boolean(opts["relative"], "Locker", "relative") ?? true
            let mod = try LuaArguments.string(opts["mod"], "Locker", "mod") ?? "main"
            let locker = LuaLocker(mod: mod, timeout: timeout, reentrant: relative)
            return [.handle(LuaHandle(object: locker, kind: Int32(ATLKind.lock)))]
        case ATLFunction.lockAcquire:
            guard let locker else { throw CallError(message: "not a Locker") }
            let timeout = try LuaArguments.seconds(args.first ?? .nil, "lock:acquire", "argument #1 (timeout)")
            return [.boolean(locker.acquire(timeout: timeout))]
        case ATLFunction.lockRelease:
            guard let locker else { throw CallError(message: "not a Locker") }
            try locker.release()
            return []
        case ATLFunction.lockCritical:
            guard let locker else { throw CallError(message: "not a Locker") }
            self.currentLogger.critical("\(locker.mod) locking broken")
            if let handler = locker.critical.withLock({ $0 }) {
                // The handler runs in a pool state, as every function handed to the API does; the caller waits.
                let task = self.supervisor.submit(priority: .critical, name: "critical of Locker '\(locker.mod)'") {
                    [self] _ in
                    self.runCallback(handler, arguments: nil)
                    return nil
                }
                task.wait(timeout: nil)
            }
            return []
        case ATLFunction.lockNewIndex:
            guard let locker else { throw CallError(message: "not a Locker") }
            guard args.first?.stringValue == "critical" else {
                throw CallError(message: "Locker: only the field 'critical' can be set")
            }
            switch args.count > 1 ? args[1] : .nil {
            case .nil:
                locker.critical.withLock { $0 = nil }
            case .function(let f):
                let function = TaskFunction(
                    id: self.makeFunctionID(), function: try EncodedValues([.function(f)]), priority: .critical,
                    delay: nil, name: "critical", callback: nil)
                locker.critical.withLock { $0 = function }
            default:
                throw CallError(message: "Locker: critical must be a function or nil")
            }
            return []
        default:
            guard let locker else { throw CallError(message: "not a Locker") }
            switch args.first?.stringValue ?? "" {
            case "mod": return [.string(LuaString(locker.mod))]
            case "timeout": return [.number(locker.timeout)]
            case "relative": return [.boolean(locker.reentrant)]
            case "critical": return [try locker.critical.withLock { $0 }?.function.decode().first ?? .nil]
            default: return [.nil]
            }
        }
    }
}
