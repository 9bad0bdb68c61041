import ATasker
internal import CLuaShim
import Glibc
import Logging
import Synchronization

/// The Lua side of a process-pool child: one Lua state that runs the calls the parent sends, one at a time.
///
/// A function arrives once (a definition) and is kept here by its id, with the child's own objects for the handles
/// it names; each call decodes only its arguments. The state caches loaded functions as a pool thread's state does,
/// and gives each call a fresh `_ENV`.
final class ChildRunner: ProcessChildHandler {
    let core: HostCore
    private let state: LuaState
    private var functions: [UInt64: (function: EncodedValues, memoryLimit: Int)] = [:]

    init(core: HostCore) throws {
        self.core = core
        let limit = core.settings.withLock { $0.processMemoryLimit }
        self.state = try core.openState(isMain: false, memoryLimit: limit, label: "mp child")
    }

    deinit {
        self.state.close()
    }

    func call(definitions: [ProcessDefinition], payload: [UInt8]) -> ProcessReply {
        defer { atl_output_flush() }
        do {
            for definition in definitions {
                let (limit, transfer) = try ChildWire.readDefinition(definition.payload[...])
                self.functions[definition.key] = (try self.values(transfer), limit)
            }
            let (id, argumentBytes) = try ChildWire.readCall(payload)
            guard let (function, limit) = self.functions[id] else {
                throw LuaError(code: .runtime, fullMessage: "mp child: function \(id) was never sent to this child")
            }
            let arguments = try argumentBytes.map { try self.values($0) }
            let outcome = try self.state.withRunMemoryLimit(limit, label: "mp child \(getpid())") {
                () throws(LuaError) in
                try self.state.runTask(functionID: id, function: function, arguments: arguments)
            }
            switch outcome {
            case .values(let result):
                return .success(result.map { $0.withBytes { Array($0) } } ?? ChildWire.plain([.nil]))
            case .exit(let code):
                // os.exit in a child ends that child: the parent fails the task with the exit status.
                LuaHost.flushOutput()
                exit(code)
            }
        } catch let error as LuaError {
            return .failure(
                ChildWire.plain([.integer(Int64(error.code.rawValue)), .string(LuaString(error.fullMessage))]))
        } catch {
            return .failure(
                ChildWire.plain([.integer(Int64(LuaError.Code.runtime.rawValue)), .string(LuaString("\(error)"))]))
        }
    }

    /// Values from the parent, with this child's objects for the handles that they name.
    private func values(_ transfer: ArraySlice<UInt8>) throws -> EncodedValues {
        let (descriptors, bytes) = try ChildWire.readTransfer(transfer)
        let objects: [AnyObject] = descriptors.map { self.core.childObject(for: $0) }
        return try EncodedValues(EncodedBytes(bytes: bytes, handles: objects))
    }
}

extension HostCore {
    /// The object of this child that stands for a handle of the parent.
    func childObject(for descriptor: ChildWire.HandleDescriptor) -> AnyObject {
        switch Self.handleKind(descriptor.kind) {
        case .ATL_H_SHARED:
            return self.sharedTable(named: descriptor.label)
        case .ATL_H_HOSTFN:
            let registered = self.settings.withLock { $0.hostFunctions.first { $0.name == descriptor.label } }
            return registered
                ?? RefusedHandle(
                    kind: descriptor.kind,
                    label: "host function '\(descriptor.label)' (not registered in this child)")
        case .ATL_H_SUPERVISOR, .ATL_H_TASK, .ATL_H_SPAWNER, .ATL_H_WORKER, .ATL_H_LOCK, .ATL_H_ALOOP, .ATL_H_JOBSCHED,
            .ATL_H_JOB, nil:
            return RefusedHandle(kind: descriptor.kind, label: descriptor.label)
        }
    }

    /// Calls from Lua that work differently in a process-pool child: shared tables and the log go through the
    /// parent; what lives in the parent (the supervisor, workers, locks, tasks) is refused. Returns nil for calls
    /// that work as they do anywhere.
    func childDispatch(_ fn: atl_Fn, _ object: AnyObject?, _ arguments: () throws -> [LuaValue]) throws
        -> CallResults?
    {
        switch fn {
        case .ATL_FN_SHARED_GET, .ATL_FN_SHARED_SET, .ATL_FN_SHARED_INCR, .ATL_FN_SHARED_CAS, .ATL_FN_SHARED_KEYS:
            guard let table = object as? SharedTable else { throw CallError(message: "not a shared table") }
            let args = try arguments()
            guard args.allSatisfy(ChildWire.isPlain) else {
                throw CallError(
                    message: "shared '\(table.name)': an mp child sends values to its parent, so they must be plain "
                        + "(no functions, no handles)")
            }
            let answer = try ProcessChild.request(
                ChildWire.plain(
                    [.string("shared"), .integer(Int64(fn.rawValue)), .string(LuaString(table.name))] + args))
            let values = try ChildWire.readPlain(answer)
            guard let ok = values.first else { throw CallError(message: "shared: empty answer from the parent") }
            if !ok.boolValue {
                throw CallError(message: values.dropFirst().first?.stringValue ?? "shared: failed in the parent")
            }
            return .values(Array(values.dropFirst()))
        case .ATL_FN_LOG:
            let args = try arguments()
            try ProcessChild.notify(
                ChildWire.plain([
                    .string("log"), args.first ?? .string("info"),
                    .string(LuaString("[mp child \(getpid())] " + (args.dropFirst().first?.stringValue ?? ""))),
                ]))
            return CallResults.none
        case .ATL_FN_BACKGROUND_TASK, .ATL_FN_SPAWN:
            throw Self.childRefused("background_task")
        case .ATL_FN_WAIT_COMPLETED:
            throw Self.childRefused("wait_completed")
        case .ATL_FN_BACKGROUND_WORKER:
            throw Self.childRefused("background_worker")
        case .ATL_FN_SUP_INDEX, .ATL_FN_SUP_NEWINDEX, .ATL_FN_SUP_SET_THREAD_POOL, .ATL_FN_SUP_SET_MP_POOL,
            .ATL_FN_SUP_INFO, .ATL_FN_SUP_GET_TASK, .ATL_FN_SUP_STOP, .ATL_FN_SUP_BLOCK:
            throw Self.childRefused("atasker.supervisor")
        case .ATL_FN_TASK_INDEX:
            throw Self.childRefused("a task handle")
        case .ATL_FN_WORKER_START, .ATL_FN_WORKER_STOP, .ATL_FN_WORKER_RESTART, .ATL_FN_WORKER_IS_ACTIVE,
            .ATL_FN_WORKER_IS_STARTED, .ATL_FN_WORKER_IS_STOPPED, .ATL_FN_WORKER_PUT, .ATL_FN_WORKER_TRIGGER,
            .ATL_FN_WORKER_INDEX:
            throw Self.childRefused("a worker handle")
        case .ATL_FN_LOCKER_NEW, .ATL_FN_LOCK_ACQUIRE, .ATL_FN_LOCK_RELEASE, .ATL_FN_LOCK_CRITICAL, .ATL_FN_LOCK_INDEX,
            .ATL_FN_LOCK_NEWINDEX:
            throw Self.childRefused("atasker.Locker")
        case .ATL_FN_SLEEP, .ATL_FN_SHARED, .ATL_FN_SET_DEBUG, .ATL_FN_EXIT, .ATL_FN_HOSTFN_CALL, .ATL_FN_TOSTRING:
            return nil  // as anywhere
        case .ATL_FN_SUP_CREATE_ALOOP, .ATL_FN_SUP_GET_ALOOP, .ATL_FN_SUP_SET_DEFAULT_ALOOP, .ATL_FN_SUP_START_ALOOP,
            .ATL_FN_SUP_STOP_ALOOP, .ATL_FN_ALOOP_BACKGROUND_TASK, .ATL_FN_ALOOP_RUN, .ATL_FN_ALOOP_START,
            .ATL_FN_ALOOP_STOP, .ATL_FN_ALOOP_IS_ACTIVE, .ATL_FN_ALOOP_INDEX, .ATL_FN_SUP_CREATE_SCHEDULER,
            .ATL_FN_SUP_CREATE_ASYNC_JOB, .ATL_FN_SUP_CANCEL_ASYNC_JOB, .ATL_FN_SCHED_CREATE_JOB,
            .ATL_FN_SCHED_CANCEL_JOB, .ATL_FN_SCHED_INDEX, .ATL_FN_JOB_CANCEL, .ATL_FN_JOB_INDEX:
            return nil  // 'asyncCall' refuses them in a child with its own message
        }
    }

    private static func childRefused(_ name: String) -> CallError {
        CallError(
            message: "\(name) is not available in an mp child process: tasks, workers, locks and the supervisor live "
                + "in the parent; return a value and act on it there")
    }

    /// Whether `fn`, from a child's request, is a method of a shared table.
    private static func isSharedTableMethod(_ fn: Int64) -> Bool {
        let methods: [atl_Fn] = [
            .ATL_FN_SHARED_GET, .ATL_FN_SHARED_SET, .ATL_FN_SHARED_INCR, .ATL_FN_SHARED_CAS, .ATL_FN_SHARED_KEYS,
        ]
        return methods.contains { Int64($0.rawValue) == fn }
    }

    /// The parent's answer to a child's `request` or `notify` (``ProcessPoolConfiguration/service``).
    func serveChild(_ payload: [UInt8], isNotify: Bool) -> [UInt8] {
        do {
            let values = try ChildWire.readPlain(payload)
            switch values.first?.stringValue {
            case "log":
                self.log(
                    level: values.dropFirst().first?.stringValue ?? "info",
                    message: values.dropFirst(2).first?.stringValue ?? "")
                return []
            case "shared":
                guard values.count >= 3, let fn = values[1].intValue, let name = values[2].stringValue,
                    Self.isSharedTableMethod(fn)
                else {
                    throw ChildWire.Malformed(description: "bad shared request")
                }
                let results = try self.sharedCall(Int(fn), self.sharedTable(named: name), Array(values.dropFirst(3)))
                guard results.allSatisfy(ChildWire.isPlain) else {
                    throw CallError(
                        message: "shared '\(name)': the value holds a function or a handle, which cannot be sent to "
                            + "an mp child process")
                }
                return ChildWire.plain([.boolean(true)] + results)
            default:
                throw ChildWire.Malformed(description: "unknown request")
            }
        } catch let error as CallError {
            return ChildWire.plain([.boolean(false), .string(LuaString(error.message))])
        } catch {
            return ChildWire.plain([.boolean(false), .string(LuaString("\(error)"))])
        }
    }
}
