import ATasker
internal import CLuaShim
import Glibc
import Logging
import Synchronization

/// Kinds of host handles, as the shim numbers them.
enum ATLKind {
    static let supervisor = Int(ATL_H_SUPERVISOR)
    static let task = Int(ATL_H_TASK)
    static let spawner = Int(ATL_H_SPAWNER)
    static let shared = Int(ATL_H_SHARED)
    static let hostFunction = Int(ATL_H_HOSTFN)
    static let worker = Int(ATL_H_WORKER)
    static let lock = Int(ATL_H_LOCK)
}

/// Function ids of the shim that Swift code outside the `+Shim` files needs.
enum ATLFunction {
    static let sharedGet = Int(ATL_FN_SHARED_GET)
    static let sharedSet = Int(ATL_FN_SHARED_SET)
    static let sharedIncr = Int(ATL_FN_SHARED_INCR)
    static let sharedCas = Int(ATL_FN_SHARED_CAS)
    static let workerStart = Int(ATL_FN_WORKER_START)
    static let workerStop = Int(ATL_FN_WORKER_STOP)
    static let workerRestart = Int(ATL_FN_WORKER_RESTART)
    static let workerIsActive = Int(ATL_FN_WORKER_IS_ACTIVE)
    static let workerIsStarted = Int(ATL_FN_WORKER_IS_STARTED)
    static let workerIsStopped = Int(ATL_FN_WORKER_IS_STOPPED)
    static let workerPut = Int(ATL_FN_WORKER_PUT)
    static let workerTrigger = Int(ATL_FN_WORKER_TRIGGER)
    static let workerIndex = Int(ATL_FN_WORKER_INDEX)
    static let lockerNew = Int(ATL_FN_LOCKER_NEW)
    static let lockAcquire = Int(ATL_FN_LOCK_ACQUIRE)
    static let lockRelease = Int(ATL_FN_LOCK_RELEASE)
    static let lockCritical = Int(ATL_FN_LOCK_CRITICAL)
    static let lockNewIndex = Int(ATL_FN_LOCK_NEWINDEX)
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
            let results = try self.fastDispatch(call) ?? self.dispatch(call)
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
        case exit(Int32)
    }

    private func arguments(_ call: UnsafeMutablePointer<atl_Call>) throws -> [LuaValue] {
        guard call.pointee.argslen > 0, let buffer = call.pointee.argsbuf else { return [] }
        return try LuaValue.decodeAll(
            UnsafeRawBufferPointer(start: buffer.pointee.data, count: buffer.pointee.len),
            knownHandles: UnsafeBufferPointer(start: buffer.pointee.handles, count: buffer.pointee.nhandles))
    }

    private func dispatch(_ call: UnsafeMutablePointer<atl_Call>) throws -> CallResults {
        let fn = Int(call.pointee.fn)
        let object: AnyObject? = call.pointee.`self`.map { Unmanaged<AnyObject>.fromOpaque($0).takeUnretainedValue() }
        if let refused = object as? RefusedHandle, fn != Int(ATL_FN_TOSTRING) {
            throw CallError(message: refused.message)
        }
        if self.isChild, let results = try self.childDispatch(fn, object, { try self.arguments(call) }) {
            return results
        }
        switch fn {
        case Int(ATL_FN_SPAWN):
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
            return .values([.handle(LuaHandle(object: task, kind: Int32(ATLKind.task)))])
        case Int(ATL_FN_BACKGROUND_TASK):
            guard let buffer = call.pointee.argsbuf, buffer.pointee.len > 0 else {
                throw CallError(message: "background_task: no arguments")
            }
            return .values([try self.backgroundTask(EncodedValues(taking: &buffer.pointee).split())])
        case Int(ATL_FN_WAIT_COMPLETED):
            return try self.waitCompleted(self.arguments(call))
        case Int(ATL_FN_SLEEP):
            let seconds = try LuaArguments.seconds(self.arguments(call).first ?? .nil, "sleep", "argument #1") ?? 0
            sleepSeconds(seconds)
            return .none
        case Int(ATL_FN_SHARED):
            let name = try self.arguments(call).first?.stringValue ?? ""
            return .values([.handle(LuaHandle(object: self.sharedTable(named: name), kind: Int32(ATLKind.shared)))])
        case Int(ATL_FN_SHARED_GET), Int(ATL_FN_SHARED_SET), Int(ATL_FN_SHARED_INCR),
            Int(ATL_FN_SHARED_CAS), Int(ATL_FN_SHARED_KEYS):
            guard let table = object as? SharedTable else { throw CallError(message: "not a shared table") }
            let args: [LuaValue]
            do {
                args = try self.arguments(call)
            } catch let error as LuaValueCodecError {
                throw CallError(
                    message: "shared '\(table.name)': \(Self.sharedMethodName(fn)): \(error.message) (a shared table "
                        + "keeps a plain copy of each value)")
            }
            return .values(try self.sharedCall(fn, table, args))
        case Int(ATL_FN_LOG):
            let args = try self.arguments(call)
            self.log(level: args.first?.stringValue ?? "info", message: args.dropFirst().first?.stringValue ?? "")
            return .none
        case Int(ATL_FN_SET_DEBUG):
            let on = try self.arguments(call).first?.boolValue ?? true
            self.logger.withLock { $0.logLevel = on ? .debug : .info }
            return .none
        case Int(ATL_FN_EXIT):
            let code = Int32(truncatingIfNeeded: try self.arguments(call).first?.intValue ?? 0)
            guard let exitHandler = self.exitHandler else {
                throw CallError(
                    message: "os.exit is not allowed in this program (the embedding app did not allow it); "
                        + "return from the script or stop the supervisor instead")
            }
            exitHandler(code)
            return .exit(code)
        case Int(ATL_FN_SUP_INDEX):
            return .values([try self.supervisorField(self.arguments(call).first?.stringValue ?? "")])
        case Int(ATL_FN_SUP_NEWINDEX):
            let args = try self.arguments(call)
            try self.setSupervisorField(args.first?.stringValue ?? "", args.count > 1 ? args[1] : .nil)
            return .none
        case Int(ATL_FN_SUP_SET_THREAD_POOL):
            try self.setThreadPool(self.arguments(call).first ?? .nil)
            return .none
        case Int(ATL_FN_SUP_SET_MP_POOL):
            try self.setProcessPool(self.arguments(call).first ?? .nil)
            return .none
        case Int(ATL_FN_SUP_INFO):
            return .values([self.infoTable()])
        case Int(ATL_FN_SUP_GET_TASK):
            guard let id = try self.arguments(call).first?.intValue, let task = self.supervisor.task(id: Int(id)) else {
                return .values([.nil])
            }
            return .values([.handle(LuaHandle(object: task, kind: Int32(ATLKind.task)))])
        case Int(ATL_FN_SUP_STOP):
            try self.stopSupervisor(self.arguments(call).first ?? .nil)
            return .none
        case Int(ATL_FN_SUP_BLOCK):
            self.supervisor.block()
            return .none
        case Int(ATL_FN_TASK_INDEX):
            guard let task = object as? SupervisorTask else { throw CallError(message: "not a task") }
            let key = try self.arguments(call).first?.stringValue ?? ""
            if key == "result" {
                if let result = task.result as? EncodedValues { return .encoded(result) }
                return .values([.nil])
            }
            return .values([taskField(task, key)])
        case Int(ATL_FN_HOSTFN_CALL):
            guard let function = object as? HostFunction else { throw CallError(message: "not a host function") }
            let args = try self.arguments(call)
            do {
                return .values([try function.body(args)])
            } catch let error as LuaError {
                throw error
            } catch {
                throw HostFunctionFailure(function: function.name, error: error)
            }
        case Int(ATL_FN_BACKGROUND_WORKER):
            guard let buffer = call.pointee.argsbuf, buffer.pointee.len > 0 else {
                throw CallError(message: "background_worker: no arguments")
            }
            return .values([try self.backgroundWorker(EncodedValues(taking: &buffer.pointee).split())])
        case Int(ATL_FN_WORKER_START)...Int(ATL_FN_WORKER_INDEX):
            guard let worker = object as? LuaWorker else { throw CallError(message: "not a worker") }
            return .values(try self.workerCall(fn, worker, WorkerCallArguments(call: call)))
        case Int(ATL_FN_LOCKER_NEW)...Int(ATL_FN_LOCK_NEWINDEX):
            return .values(try self.lockerCall(fn, object as? LuaLocker, self.arguments(call)))
        case ATLAsyncFunction.first...ATLAsyncFunction.last:
            return try self.asyncCall(fn, object, WorkerCallArguments(call: call))
        case Int(ATL_FN_TOSTRING):
            return .values([.string(LuaString(describe(object)))])
        default:
            throw CallError(message: "unknown host function \(fn)")
        }
    }
}

extension HostCore {
    /// The Lua name of a shared table's method, for its errors.
    static func sharedMethodName(_ fn: Int) -> String {
        switch fn {
        case Int(ATL_FN_SHARED_GET): return "get"
        case Int(ATL_FN_SHARED_SET): return "set"
        case Int(ATL_FN_SHARED_INCR): return "incr"
        case Int(ATL_FN_SHARED_CAS): return "cas"
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
