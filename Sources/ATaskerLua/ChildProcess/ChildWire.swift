import ATasker

/// What the Lua side puts in the payloads of the process pool's frames (the frames themselves, with their length
/// and checksum, are ``ATasker``'s).
///
/// A payload that carries Lua values is a *transfer*: the handles that the values name, each as its kind and a
/// label, then the codec's bytes. A host object cannot cross processes; the child makes an object of its own for
/// each handle, in the same order (a shared table by name, which works through the parent; anything else one that
/// refuses every use with a message naming it), and its states match the codec's handle tags to them by order.
///
/// - call: `u64 function id` + transfer of the arguments (no values: no arguments);
/// - definition of function `id`: varint memory limit of each run (0: none), then transfer of the function (sent
///   once to each child);
/// - success reply: the codec's bytes of the result, which the child encodes without functions or handles;
/// - failure reply: codec values `(error code, full message)`;
/// - hello: codec value `{path=, cpath=, debug=}`;
/// - request or notify from a child: codec values `(operation, ...)`.
enum ChildWire {
    /// A handle as a child sees it.
    struct HandleDescriptor: Equatable {
        var kind: Int
        var label: String
    }

    /// A malformed payload (never expected between a parent and its own child).
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    // MARK: - Transfers

    /// The transfer of `values` (handles described by their objects).
    static func transfer(_ values: EncodedValues) -> [UInt8] {
        var out: [UInt8] = []
        let descriptors = values.handleObjects.map(describe)
        appendVarint(UInt64(descriptors.count), to: &out)
        for descriptor in descriptors {
            out.append(UInt8(truncatingIfNeeded: descriptor.kind))
            let label = Array(descriptor.label.utf8)
            appendVarint(UInt64(label.count), to: &out)
            out += label
        }
        values.withBytes { out += $0 }
        return out
    }

    /// Reads a transfer: the descriptors and the codec's bytes (which start at `start` + the descriptors).
    static func readTransfer(_ bytes: ArraySlice<UInt8>) throws -> (handles: [HandleDescriptor], bytes: [UInt8]) {
        var reader = Reader(bytes)
        let count = try reader.varint()
        guard count <= UInt64(bytes.count) else { throw Malformed(description: "too many handles") }
        var handles: [HandleDescriptor] = []
        for _ in 0..<count {
            let kind = Int(try reader.byte())
            let length = try reader.varint()
            let label = try reader.take(length)
            handles.append(HandleDescriptor(kind: kind, label: String(decoding: label, as: UTF8.self)))
        }
        return (handles, Array(reader.rest))
    }

    /// How the child will know a host object of the parent.
    static func describe(_ object: AnyObject) -> HandleDescriptor {
        switch object {
        case let shared as SharedTable:
            return HandleDescriptor(kind: ATLKind.shared, label: shared.name)
        case let worker as LuaWorker:
            return HandleDescriptor(kind: ATLKind.worker, label: "worker '\(worker.worker.name)'")
        case let locker as LuaLocker:
            return HandleDescriptor(kind: ATLKind.lock, label: "Locker '\(locker.mod)'")
        case let task as SupervisorTask:
            return HandleDescriptor(kind: ATLKind.task, label: "task \(task.id)")
        case let function as TaskFunction:
            return HandleDescriptor(
                kind: ATLKind.spawner, label: "background_task starter \(function.name ?? String(function.id))")
        case let function as HostFunction:
            return HandleDescriptor(kind: ATLKind.hostFunction, label: function.name)
        case is HostCore:
            return HandleDescriptor(kind: ATLKind.supervisor, label: "the supervisor")
        case let refused as RefusedHandle:
            return HandleDescriptor(kind: refused.kind, label: refused.label)
        default:
            return HandleDescriptor(kind: ATLKind.task, label: "an atasker handle")
        }
    }

    // MARK: - Calls

    /// The payload of the definition of `function`, whose runs may add at most `memoryLimit` bytes to the child's
    /// state (0: no limit of their own).
    static func definition(_ function: EncodedValues, memoryLimit: Int) -> [UInt8] {
        var out: [UInt8] = []
        appendVarint(UInt64(max(0, memoryLimit)), to: &out)
        return out + transfer(function)
    }

    /// Reads a definition: the memory limit of each run and the function's transfer.
    static func readDefinition(_ payload: ArraySlice<UInt8>) throws -> (memoryLimit: Int, transfer: ArraySlice<UInt8>) {
        var reader = Reader(payload)
        let limit = try reader.varint()
        guard limit <= UInt64(MemorySize.maximum) else { throw Malformed(description: "bad memory limit") }
        return (Int(limit), reader.rest)
    }

    /// The payload of a call of function `id` with `arguments`.
    static func call(function id: UInt64, arguments: EncodedValues?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 + (arguments?.count ?? 0))
        putU64(&out, id)
        if let arguments { out += transfer(arguments) }
        return out
    }

    /// Reads a call: the function id and the arguments' transfer (nil: no arguments).
    static func readCall(_ payload: [UInt8]) throws -> (function: UInt64, arguments: ArraySlice<UInt8>?) {
        guard payload.count >= 8 else { throw Malformed(description: "short call") }
        var id: UInt64 = 0
        for i in 0..<8 { id |= UInt64(payload[i]) << (8 * UInt64(i)) }
        return (id, payload.count > 8 ? payload[8...] : nil)
    }

    // MARK: - Values in plain codec bytes

    /// Codec bytes of plain values (no functions, no handles).
    static func plain(_ values: [LuaValue]) -> [UInt8] {
        (try? LuaValue.encodeAll(values).bytes) ?? []
    }

    /// Decodes plain values that came from another process, refusing functions and handles.
    static func readPlain(_ bytes: [UInt8]) throws -> [LuaValue] {
        let values = try bytes.withUnsafeBytes {
            try LuaValue.decodeAll($0, knownHandles: UnsafeBufferPointer(start: nil, count: 0))
        }
        for value in values where !isPlain(value) {
            throw Malformed(description: "a function or handle in values from another process")
        }
        return values
    }

    /// Whether `value` holds no function and no handle (tables are acyclic in ``LuaValue``).
    static func isPlain(_ value: LuaValue) -> Bool {
        switch value {
        case .function, .handle: return false
        case .table(let table):
            if let meta = table.metatable, !isPlain(.table(meta)) { return false }
            return table.entries.allSatisfy { isPlain($0.key) && isPlain($0.value) }
        default: return true
        }
    }

    // MARK: - Bytes

    static func putU64(_ out: inout [UInt8], _ value: UInt64) {
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }

    struct Reader {
        var bytes: ArraySlice<UInt8>

        init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

        var rest: ArraySlice<UInt8> { self.bytes }

        mutating func byte() throws -> UInt8 {
            guard let b = self.bytes.first else { throw Malformed(description: "truncated payload") }
            self.bytes = self.bytes.dropFirst()
            return b
        }

        mutating func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = try self.byte()
                guard shift < 64 else { throw Malformed(description: "bad varint") }
                value |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return value }
                shift += 7
            }
        }

        mutating func take(_ count: UInt64) throws -> ArraySlice<UInt8> {
            guard count <= UInt64(self.bytes.count) else { throw Malformed(description: "truncated payload") }
            let part = self.bytes.prefix(Int(count))
            self.bytes = self.bytes.dropFirst(Int(count))
            return part
        }
    }
}

/// A handle of the parent that cannot work in a process-pool child (a worker, a lock, a task...): every use
/// raises a message that names it.
final class RefusedHandle: Sendable {
    let kind: Int
    let label: String

    init(kind: Int, label: String) {
        self.kind = kind
        self.label = label
    }

    var message: String {
        "\(self.label) cannot be used in an mp child process: it lives in the parent; "
            + "return a value and act on it there (process_result, callback)"
    }
}
