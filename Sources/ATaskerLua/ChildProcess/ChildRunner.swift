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
    private var functions: [UInt64: EncodedValues] = [:]

    init(core: HostCore) throws {
        self.core = core
        self.state = try core.openState(isMain: false)
    }

    deinit {
        self.state.close()
    }

    func call(definitions: [ProcessDefinition], payload: [UInt8]) -> ProcessReply {
        defer { atl_output_flush() }
        do {
            for definition in definitions {
                self.functions[definition.key] = try self.values(definition.payload[...])
            }
            let (id, argumentBytes) = try ChildWire.readCall(payload)
            guard let function = self.functions[id] else {
                throw LuaError(code: .runtime, fullMessage: "mp child: function \(id) was never sent to this child")
            }
            let arguments = try argumentBytes.map { try self.values($0) }
            switch try self.state.runTask(functionID: id, function: function, arguments: arguments) {
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
        switch descriptor.kind {
        case ATLKind.shared:
            return self.sharedTable(named: descriptor.label)
        case ATLKind.hostFunction:
            let registered = self.settings.withLock { $0.hostFunctions.first { $0.name == descriptor.label } }
            return registered
                ?? RefusedHandle(
                    kind: descriptor.kind,
                    label: "host function '\(descriptor.label)' (not registered in this child)")
        default:
            return RefusedHandle(kind: descriptor.kind, label: descriptor.label)
        }
    }

    /// Calls from Lua that work differently in a process-pool child: shared tables and the log go through the
    /// parent; what lives in the parent (the supervisor, workers, locks, tasks) is refused. Returns nil for calls
    /// that work as they do anywhere.
    func childDispatch(_ fn: Int, _ object: AnyObject?, _ arguments: () throws -> [LuaValue]) throws
        -> CallResults?
    {
        switch fn {
        case Int(ATL_FN_SHARED_GET), Int(ATL_FN_SHARED_SET), Int(ATL_FN_SHARED_INCR), Int(ATL_FN_SHARED_CAS),
            Int(ATL_FN_SHARED_KEYS):
            guard let table = object as? SharedTable else { throw CallError(message: "not a shared table") }
            let args = try arguments()
            guard args.allSatisfy(ChildWire.isPlain) else {
                throw CallError(
                    message: "shared '\(table.name)': an mp child sends values to its parent, so they must be plain "
                        + "(no functions, no handles)")
            }
            let answer = try ProcessChild.request(
                ChildWire.plain([.string("shared"), .integer(Int64(fn)), .string(LuaString(table.name))] + args))
            let values = try ChildWire.readPlain(answer)
            guard let ok = values.first else { throw CallError(message: "shared: empty answer from the parent") }
            if !ok.boolValue {
                throw CallError(message: values.dropFirst().first?.stringValue ?? "shared: failed in the parent")
            }
            return .values(Array(values.dropFirst()))
        case Int(ATL_FN_LOG):
            let args = try arguments()
            try ProcessChild.notify(
                ChildWire.plain([
                    .string("log"), args.first ?? .string("info"),
                    .string(LuaString("[mp child \(getpid())] " + (args.dropFirst().first?.stringValue ?? ""))),
                ]))
            return CallResults.none
        case Int(ATL_FN_BACKGROUND_TASK), Int(ATL_FN_SPAWN), Int(ATL_FN_WAIT_COMPLETED), Int(ATL_FN_BACKGROUND_WORKER),
            Int(ATL_FN_SUP_INDEX)...Int(ATL_FN_TASK_INDEX), Int(ATL_FN_WORKER_START)...Int(ATL_FN_WORKER_INDEX),
            Int(ATL_FN_LOCKER_NEW)...Int(ATL_FN_LOCK_NEWINDEX):
            throw CallError(
                message: "\(Self.childRefusedName(fn)) is not available in an mp child process: tasks, workers, locks "
                    + "and the supervisor live in the parent; return a value and act on it there")
        default:
            return nil
        }
    }

    private static func childRefusedName(_ fn: Int) -> String {
        switch fn {
        case Int(ATL_FN_BACKGROUND_TASK), Int(ATL_FN_SPAWN): return "background_task"
        case Int(ATL_FN_WAIT_COMPLETED): return "wait_completed"
        case Int(ATL_FN_BACKGROUND_WORKER): return "background_worker"
        case Int(ATL_FN_TASK_INDEX): return "a task handle"
        case Int(ATL_FN_WORKER_START)...Int(ATL_FN_WORKER_INDEX): return "a worker handle"
        case Int(ATL_FN_LOCKER_NEW)...Int(ATL_FN_LOCK_NEWINDEX): return "atasker.Locker"
        default: return "atasker.supervisor"
        }
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
                    (Int(ATL_FN_SHARED_GET)...Int(ATL_FN_SHARED_KEYS)).contains(Int(fn))
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
