import ATasker
internal import CLuaShim
import Glibc
import Logging
import Synchronization

/// Kinds of host handles, as the shim numbers them (`atl_HandleKind`), for the files that do not import the shim.
enum ATLKind {
    static let supervisor = Int(atl_HandleKind.ATL_H_SUPERVISOR.rawValue)
    static let task = Int(atl_HandleKind.ATL_H_TASK.rawValue)
    static let spawner = Int(atl_HandleKind.ATL_H_SPAWNER.rawValue)
    static let shared = Int(atl_HandleKind.ATL_H_SHARED.rawValue)
    static let hostFunction = Int(atl_HandleKind.ATL_H_HOSTFN.rawValue)
    static let worker = Int(atl_HandleKind.ATL_H_WORKER.rawValue)
    static let lock = Int(atl_HandleKind.ATL_H_LOCK.rawValue)
}

extension HostCore {
    /// The handle kind numbered `kind`, or nil when the shim has none of that number.
    static func handleKind(_ kind: Int) -> atl_HandleKind? {
        shimHandleKind(kind)
    }

    /// The function that `call` asks for, or nil when the shim has none of that number.
    static func function(_ call: UnsafeMutablePointer<atl_Call>) -> atl_Fn? {
        guard let raw = UInt32(exactly: call.pointee.fn) else { return nil }
        return closedEnum(raw, first: .ATL_FN_BACKGROUND_TASK, last: .ATL_FN_JOB_INDEX)
    }
}

/// Function ids of the shim that Swift code outside the `+Shim` files needs.
enum ATLFunction {
    static let sharedGet = Int(atl_Fn.ATL_FN_SHARED_GET.rawValue)
    static let sharedSet = Int(atl_Fn.ATL_FN_SHARED_SET.rawValue)
    static let sharedIncr = Int(atl_Fn.ATL_FN_SHARED_INCR.rawValue)
    static let sharedCas = Int(atl_Fn.ATL_FN_SHARED_CAS.rawValue)
    static let workerStart = Int(atl_Fn.ATL_FN_WORKER_START.rawValue)
    static let workerStop = Int(atl_Fn.ATL_FN_WORKER_STOP.rawValue)
    static let workerRestart = Int(atl_Fn.ATL_FN_WORKER_RESTART.rawValue)
    static let workerIsActive = Int(atl_Fn.ATL_FN_WORKER_IS_ACTIVE.rawValue)
    static let workerIsStarted = Int(atl_Fn.ATL_FN_WORKER_IS_STARTED.rawValue)
    static let workerIsStopped = Int(atl_Fn.ATL_FN_WORKER_IS_STOPPED.rawValue)
    static let workerPut = Int(atl_Fn.ATL_FN_WORKER_PUT.rawValue)
    static let workerTrigger = Int(atl_Fn.ATL_FN_WORKER_TRIGGER.rawValue)
    static let workerIndex = Int(atl_Fn.ATL_FN_WORKER_INDEX.rawValue)
    static let lockerNew = Int(atl_Fn.ATL_FN_LOCKER_NEW.rawValue)
    static let lockAcquire = Int(atl_Fn.ATL_FN_LOCK_ACQUIRE.rawValue)
    static let lockRelease = Int(atl_Fn.ATL_FN_LOCK_RELEASE.rawValue)
    static let lockCritical = Int(atl_Fn.ATL_FN_LOCK_CRITICAL.rawValue)
    static let lockNewIndex = Int(atl_Fn.ATL_FN_LOCK_NEWINDEX.rawValue)
}

/// Properties of a worker handle, as the shim passes them in `atl_Call.field`: the shim's table of their names
/// (`worker_props` in `trampoline.c`) is the only one, and a name not in it reads as nil.
enum ATLWorkerProperty {
    static let name = Int(ATL_P_WORKER_NAME)
    static let kind = Int(ATL_P_WORKER_KIND)
    static let state = Int(ATL_P_WORKER_STATE)
    static let priority = Int(ATL_P_WORKER_PRIORITY)
    static let executions = Int(ATL_P_WORKER_EXECUTIONS)
    static let errors = Int(ATL_P_WORKER_ERRORS)
    static let skipped = Int(ATL_P_WORKER_SKIPPED)
    static let queueDepth = Int(ATL_P_WORKER_QUEUE_DEPTH)
}

/// The arguments of a worker method, read as the method needs them: decoded, split, or taken whole.
struct WorkerCallArguments {
    let call: UnsafeMutablePointer<atl_Call>

    /// The property that an `__index` call reads (one of ``ATLWorkerProperty``), or 0 for a name the shim does not
    /// know.
    var property: Int {
        Int(self.call.pointee.field)
    }

    /// The whole arguments buffer, moved out of the call (no copy), or nil when there are none.
    func takeAll() -> EncodedValues? {
        guard let buffer = self.call.pointee.argsbuf, buffer.pointee.len > 0 else { return nil }
        return EncodedValues(taking: &buffer.pointee)
    }

    /// The first argument on its own, or nil when there is none (or it is nil).
    func first() throws -> EncodedValues? {
        guard let all = self.takeAll() else { return nil }
        let parts = try all.split()
        guard let first = parts.first, (try? first.decode().first?.isNil) != true else { return nil }
        return first
    }

    /// The arguments, decoded.
    func decoded() throws -> [LuaValue] {
        guard let all = self.takeAll() else { return [] }
        return try all.decode()
    }
}

/// The three C callbacks through which the shim reaches Swift. None of them can raise: errors come back as a status
/// and a malloc'd message, and the C trampoline raises them after the callback has returned.
enum HostCallbacks {
    private static let installed: Bool = {
        var callbacks = atl_HostCallbacks()
        callbacks.retain = { pointer in
            guard let pointer else { return }
            _ = Unmanaged<AnyObject>.fromOpaque(pointer).retain()
        }
        callbacks.release = { pointer in
            guard let pointer else { return }
            Unmanaged<AnyObject>.fromOpaque(pointer).release()
        }
        callbacks.call = { call in
            guard let call, let host = call.pointee.host else { return ATL_ERRRUN }
            let core = Unmanaged<HostCore>.fromOpaque(host).takeUnretainedValue()
            return core.handle(call)
        }
        callbacks.put = { host, object, item in
            guard let host, let object, let item else { return 0 }
            let core = Unmanaged<HostCore>.fromOpaque(host).takeUnretainedValue()
            return core.fastPut(object, item.pointee) ? 1 : 0
        }
        atl_set_host_callbacks(&callbacks)
        return true
    }()

    /// Installs the callbacks once per process.
    static func install() {
        _ = self.installed
    }
}

/// An error of a call from Lua, raised in the caller's state. `raw` errors are raised as they are; the others get
/// the caller's `file:line:` in front.
struct CallError: Error {
    var message: String
    var raw = false
}

extension HostCore {
    /// Handles one call from Lua. Runs on the thread of the calling state, outside any Lua frame that could unwind
    /// through it.
    func handle(_ call: UnsafeMutablePointer<atl_Call>) -> Int32 {
        do {
            guard let fn = Self.function(call) else {
                throw CallError(message: "unknown host function \(call.pointee.fn)")
            }
            let results = try self.dispatch(fn, call)
            switch results {
            case .none:
                return ATL_OK
            case .value(let value):
                return try CallResultWriter.write(value, into: &call.pointee.result)
                    ? ATL_OK : fail(call, "not enough memory")
            case .values(let values):
                if values.isEmpty { return ATL_OK }  // no results: nothing to encode
                let encoded = try EncodedValues(values)
                return encoded.append(to: &call.pointee.result) ? ATL_OK : fail(call, "not enough memory")
            case .encoded(let encoded):
                return encoded.append(to: &call.pointee.result) ? ATL_OK : fail(call, "not enough memory")
            case .concatenated(let parts):
                return EncodedValues.concatenate(parts, valueCount: parts.count, into: &call.pointee.result)
                    ? ATL_OK : fail(call, "not enough memory")
            case .list(let parts):
                return EncodedValues.appendList(parts, into: &call.pointee.result)
                    ? ATL_OK : fail(call, "not enough memory")
            case .handle(let object, let kind):
                return CallResultWriter.write(handle: object, kind: kind, into: &call.pointee.result)
                    ? ATL_OK : fail(call, "not enough memory")
            case .exit(let code):
                call.pointee.exitcode = code
                return ATL_EXIT
            }
        } catch let error as CallError {
            call.pointee.error_raw = error.raw ? 1 : 0
            return fail(call, error.message)
        } catch let failure as HostFunctionFailure {
            // the table is raised; the message stays for a caller that cannot take it
            atl_buffer_free(&call.pointee.result)
            if let encoded = try? EncodedValues([.table(failure.table)]), encoded.append(to: &call.pointee.result) {
                call.pointee.error_value = 1
            }
            return fail(call, failure.message)
        } catch let error as LuaError {
            call.pointee.error_raw = 1
            return fail(call, error.fullMessage)
        } catch {
            return fail(call, "\(error)")
        }
    }

    enum CallResults {
        case none
        /// One value: a plain one is written straight into the call's result buffer.
        case value(LuaValue)
        case values([LuaValue])
        case encoded(EncodedValues)
        case concatenated([EncodedValues])
        /// One value: a list (a table at keys 1, 2, ...) of the first value of each buffer.
        case list([EncodedValues])
        /// One value: a handle of an object, of a kind (`ATL_H_*`), with no ``LuaHandle`` made for it.
        case handle(any AnyObject & Sendable, kind: Int32)
        case exit(Int32)
    }

    private func arguments(_ call: UnsafeMutablePointer<atl_Call>) throws -> [LuaValue] {
        guard call.pointee.argslen > 0, let buffer = call.pointee.argsbuf else { return [] }
        return try LuaValue.decodeAll(
            UnsafeRawBufferPointer(start: buffer.pointee.data, count: buffer.pointee.len),
            knownHandles: UnsafeBufferPointer(start: buffer.pointee.handles, count: buffer.pointee.nhandles))
    }

    /// Every function of the shim, in one exhaustive switch: a new `ATL_FN_*` does not compile until it is handled
    /// here.
    private func dispatch(_ fn: atl_Fn, _ call: UnsafeMutablePointer<atl_Call>) throws -> CallResults {
        let object: AnyObject? = call.pointee.`self`.map { Unmanaged<AnyObject>.fromOpaque($0).takeUnretainedValue() }
        if let refused = object as? RefusedHandle, fn != .ATL_FN_TOSTRING {
            throw CallError(message: refused.message)
        }
        if self.isChild, let results = try self.childDispatch(fn, object, { try self.arguments(call) }) {
            return results
        }
        switch fn {
        case .ATL_FN_SPAWN:
            guard let function = object as? TaskFunction else { throw CallError(message: "not a task function") }
            // The arguments were encoded once by the caller; the task keeps that buffer as it is.
            var arguments: EncodedValues? = nil
            if let buffer = call.pointee.argsbuf, buffer.pointee.len > 0 {
                arguments = EncodedValues(taking: &buffer.pointee)
            }
            if function.inProcess {
                try self.checkProcessCallSize(function, arguments: arguments)
            }
            let task = self.spawn(function, arguments: arguments)
            return .handle(task, kind: Int32(ATLKind.task))
        case .ATL_FN_BACKGROUND_TASK:
            guard let buffer = call.pointee.argsbuf, buffer.pointee.len > 0 else {
                throw CallError(message: "background_task: no arguments")
            }
            return .values([try self.backgroundTask(EncodedValues(taking: &buffer.pointee).split())])
        case .ATL_FN_WAIT_COMPLETED:
            if let objects = call.pointee.objs {
                // a list of task handles: their objects, unretained (the list holds them), and the timeout
                var tasks: [SupervisorTask] = []
                tasks.reserveCapacity(call.pointee.nobjs)
                for index in 0..<call.pointee.nobjs {
                    guard let object = objects[index],
                        let task = Unmanaged<AnyObject>.fromOpaque(object).takeUnretainedValue() as? SupervisorTask
                    else {
                        throw CallError(
                            message: "bad argument #1 to 'wait_completed' (item \(index + 1) is not an atasker.Task)")
                    }
                    tasks.append(task)
                }
                let timeout = try LuaArguments.seconds(
                    self.arguments(call).first ?? .nil, "wait_completed", "argument #2 (timeout)")
                return try self.waitCompleted(tasks, single: false, timeout: timeout)
            }
            if let (tasks, timeout) = try self.fastWaitArguments(call) {
                return try self.waitCompleted(tasks, single: false, timeout: timeout)
            }
            return try self.waitCompleted(self.arguments(call))
        case .ATL_FN_SLEEP:
            let seconds = try LuaArguments.seconds(self.arguments(call).first ?? .nil, "sleep", "argument #1") ?? 0
            sleepSeconds(seconds)
            return .none
        case .ATL_FN_SHARED:
            let name = try self.arguments(call).first?.stringValue ?? ""
            return .values([.handle(LuaHandle(object: self.sharedTable(named: name), kind: Int32(ATLKind.shared)))])
        case .ATL_FN_SHARED_GET, .ATL_FN_SHARED_SET, .ATL_FN_SHARED_INCR, .ATL_FN_SHARED_CAS, .ATL_FN_SHARED_KEYS:
            if let results = try self.fastSharedCall(fn, call) { return results }
            guard let table = object as? SharedTable else { throw CallError(message: "not a shared table") }
            let args: [LuaValue]
            do {
                args = try self.arguments(call)
            } catch let error as LuaValueCodecError {
                throw CallError(
                    message: "shared '\(table.name)': \(Self.sharedMethodName(fn)): \(error.message) (a "
                        + "shared table keeps a plain copy of each value)")
            }
            return .values(try self.sharedCall(Int(fn.rawValue), table, args))
        case .ATL_FN_LOG:
            let args = try self.arguments(call)
            self.log(level: args.first?.stringValue ?? "info", message: args.dropFirst().first?.stringValue ?? "")
            return .none
        case .ATL_FN_SET_DEBUG:
            let on = try self.arguments(call).first?.boolValue ?? true
            self.logger.withLock { $0.logLevel = on ? .debug : .info }
            return .none
        case .ATL_FN_EXIT:
            let code = Int32(truncatingIfNeeded: try self.arguments(call).first?.intValue ?? 0)
            guard let exitHandler = self.exitHandler else {
                throw CallError(
                    message: "os.exit is not allowed in this program (the embedding app did not allow it); "
                        + "return from the script or stop the supervisor instead")
            }
            exitHandler(code)
            return .exit(code)
        case .ATL_FN_SUP_INDEX:
            return .values([try self.supervisorField(self.arguments(call).first?.stringValue ?? "")])
        case .ATL_FN_SUP_NEWINDEX:
            let args = try self.arguments(call)
            try self.setSupervisorField(args.first?.stringValue ?? "", args.count > 1 ? args[1] : .nil)
            return .none
        case .ATL_FN_SUP_SET_THREAD_POOL:
            try self.setThreadPool(self.arguments(call).first ?? .nil)
            return .none
        case .ATL_FN_SUP_SET_MP_POOL:
            try self.setProcessPool(self.arguments(call).first ?? .nil)
            return .none
        case .ATL_FN_SUP_INFO:
            return .values([self.infoTable()])
        case .ATL_FN_SUP_GET_TASK:
            guard let id = try self.arguments(call).first?.intValue, let task = self.supervisor.task(id: Int(id)) else {
                return .values([.nil])
            }
            return .values([.handle(LuaHandle(object: task, kind: Int32(ATLKind.task)))])
        case .ATL_FN_SUP_STOP:
            try self.stopSupervisor(self.arguments(call).first ?? .nil)
            return .none
        case .ATL_FN_SUP_BLOCK:
            self.supervisor.block()
            return .none
        case .ATL_FN_TASK_INDEX:
            guard let task = object as? SupervisorTask else { throw CallError(message: "not a task") }
            let key = try self.arguments(call).first?.stringValue ?? ""
            if key == "result" {
                if let result = task.result as? EncodedValues { return .encoded(result) }
                return .values([.nil])
            }
            return .values([taskField(task, key)])
        case .ATL_FN_HOSTFN_CALL:
            guard let function = object as? HostFunction else { throw CallError(message: "not a host function") }
            let args = try self.arguments(call)
            do {
                return .values([try function.body(args)])
            } catch let error as LuaError {
                throw error
            } catch {
                throw HostFunctionFailure(function: function.name, error: error)
            }
        case .ATL_FN_BACKGROUND_WORKER:
            guard let buffer = call.pointee.argsbuf, buffer.pointee.len > 0 else {
                throw CallError(message: "background_worker: no arguments")
            }
            return .values([try self.backgroundWorker(EncodedValues(taking: &buffer.pointee).split())])
        case .ATL_FN_WORKER_START, .ATL_FN_WORKER_STOP, .ATL_FN_WORKER_RESTART, .ATL_FN_WORKER_IS_ACTIVE,
            .ATL_FN_WORKER_IS_STARTED, .ATL_FN_WORKER_IS_STOPPED, .ATL_FN_WORKER_PUT, .ATL_FN_WORKER_TRIGGER,
            .ATL_FN_WORKER_INDEX:
            if let results = self.fastWorkerCall(fn, call) { return results }
            guard let worker = object as? LuaWorker else { throw CallError(message: "not a worker") }
            return .values(try self.workerCall(Int(fn.rawValue), worker, WorkerCallArguments(call: call)))
        case .ATL_FN_LOCKER_NEW, .ATL_FN_LOCK_ACQUIRE, .ATL_FN_LOCK_RELEASE, .ATL_FN_LOCK_CRITICAL, .ATL_FN_LOCK_INDEX,
            .ATL_FN_LOCK_NEWINDEX:
            return .values(try self.lockerCall(Int(fn.rawValue), object as? LuaLocker, self.arguments(call)))
        case .ATL_FN_SUP_CREATE_ALOOP, .ATL_FN_SUP_GET_ALOOP, .ATL_FN_SUP_SET_DEFAULT_ALOOP, .ATL_FN_SUP_START_ALOOP,
            .ATL_FN_SUP_STOP_ALOOP, .ATL_FN_ALOOP_BACKGROUND_TASK, .ATL_FN_ALOOP_RUN, .ATL_FN_ALOOP_START,
            .ATL_FN_ALOOP_STOP, .ATL_FN_ALOOP_IS_ACTIVE, .ATL_FN_ALOOP_INDEX, .ATL_FN_SUP_CREATE_SCHEDULER,
            .ATL_FN_SUP_CREATE_ASYNC_JOB, .ATL_FN_SUP_CANCEL_ASYNC_JOB, .ATL_FN_SCHED_CREATE_JOB,
            .ATL_FN_SCHED_CANCEL_JOB, .ATL_FN_SCHED_INDEX, .ATL_FN_JOB_CANCEL, .ATL_FN_JOB_INDEX:
            return try self.asyncCall(Int(fn.rawValue), object, WorkerCallArguments(call: call))
        case .ATL_FN_TOSTRING:
            return .values([.string(LuaString(describe(object)))])
        }
    }
}

extension HostCore {
    /// The Lua name of a shared table's method, for its errors.
    static func sharedMethodName(_ fn: atl_Fn) -> String {
        switch fn {
        case .ATL_FN_SHARED_GET: return "get"
        case .ATL_FN_SHARED_SET: return "set"
        case .ATL_FN_SHARED_INCR: return "incr"
        case .ATL_FN_SHARED_CAS: return "cas"
        default: return "keys"
        }
    }
}

/// Sets `call.error` to a malloc'd copy of `message`.
private func fail(_ call: UnsafeMutablePointer<atl_Call>, _ message: String) -> Int32 {
    call.pointee.error = strdup(message)
    return ATL_ERRRUN
}

/// Sleeps the calling thread (`atasker.sleep` outside async code). A cancel of the running execution interrupts
/// the sleep (its signal ends `nanosleep` with EINTR), so that the hook raises as soon as Lua runs again.
func sleepSeconds(_ seconds: Double) {
    // Callers check their argument (``LuaArguments``); the clamp keeps `Int(seconds)` from trapping whatever comes.
    guard seconds > 0 else { return }
    let seconds = min(seconds, LuaArguments.maxSeconds)
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR {
        if atl_exec_cancel_pending() != 0 { return }
        request = remaining
    }
}

private func describe(_ object: AnyObject?) -> String {
    switch object {
    case let task as SupervisorTask:
        return "atasker.Task \(task.id) (\(task.status.rawValue))"
    case let shared as SharedTable:
        return "atasker.Shared '\(shared.name)'"
    case let function as TaskFunction:
        return "atasker.TaskFunction \(function.name ?? String(function.id))"
    case let function as HostFunction:
        return "atasker.HostFunction \(function.name)"
    case is HostCore:
        return "atasker.Supervisor"
    case let locker as LuaLocker:
        return "atasker.Locker '\(locker.mod)'"
    case let refused as RefusedHandle:
        return "atasker handle: \(refused.label) (of the parent process)"
    case let lw as LuaWorker:
        let info = lw.worker.info()
        return
            "atasker.Worker '\(info.name)' (\(info.kind == .background ? "plain" : info.kind.rawValue), \(info.state.rawValue))"
    default:
        return describeAsync(object) ?? "atasker handle"
    }
}
