import ATasker
internal import CLuaShim

/// The common calls from Lua, answered without the general path's arrays: the arguments are read straight from the
/// call's buffer, and the one result is written straight into its result buffer (see ``CallResultWriter``).
///
/// A loop that reads `kw._worker.executions` or calls `s:incr(k)` pays for one call at every iteration, so these
/// calls skip what the others pay for: decoding the arguments into `[LuaValue]`, a results array, and an
/// ``EncodedValues`` between the results and the buffer. They share their logic with `dispatch`
/// (``sharedKey(_:_:)``, ``SharedTable``'s methods, ``HostCore/workerProperty(_:_:)``), so their results and errors
/// are the same.
extension HostCore {
    /// Answers a call to a shared table (`fn`) when it is `get`, `set` or `incr` and its arguments are plain, or
    /// returns nil to leave it, untouched, to the general path: another call, a process-pool child (which sends
    /// shared-table calls to its parent), an object of another type (a handle refused in a child), or arguments that
    /// ``PlainArguments`` does not read (a table, a function, a handle, a long string, more than three).
    func fastSharedCall(_ fn: atl_Fn, _ call: UnsafeMutablePointer<atl_Call>) throws -> CallResults? {
        guard !self.isChild, let pointer = call.pointee.`self`,
            let table = Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue() as? SharedTable
        else { return nil }
        if fn == .ATL_FN_SHARED_GET, let args = PlainArguments(call) {
            return .value(table.get(try sharedKey(args[0], "get")))
        }
        if fn == .ATL_FN_SHARED_SET, let args = PlainArguments(call) {
            table.set(try sharedKey(args[0], "set"), args[1])
            return CallResults.none
        }
        if fn == .ATL_FN_SHARED_INCR, let args = PlainArguments(call) {
            return .value(try table.increment(try sharedKey(args[0], "incr"), by: args[1]))
        }
        return nil
    }

    /// Answers a call to a worker handle (`fn`) when it reads a property or a state, or returns nil to leave it to
    /// the general path (another call, a child, an object of another type). A scalar `put` never gets here: the shim
    /// hands it to ``fastPut(_:_:)``.
    func fastWorkerCall(_ fn: atl_Fn, _ call: UnsafeMutablePointer<atl_Call>) -> CallResults? {
        guard !self.isChild, let pointer = call.pointee.`self`,
            let lw = Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue() as? LuaWorker
        else { return nil }
        if fn == .ATL_FN_WORKER_INDEX { return .value(Self.workerProperty(lw.worker, Int(call.pointee.field))) }
        if fn == .ATL_FN_WORKER_IS_ACTIVE { return .value(.boolean(lw.worker.isActive)) }
        if fn == .ATL_FN_WORKER_IS_STARTED { return .value(.boolean(lw.worker.isStarted)) }
        if fn == .ATL_FN_WORKER_IS_STOPPED { return .value(.boolean(lw.worker.isStopped)) }
        return nil
    }
}

extension HostCore {
    /// `worker:put(item)` of a scalar item, called by the shim with no call record: puts it into the queue of the
    /// Lua worker `object` when that is a FIFO or LIFO queue of this process, and returns whether it did (false
    /// leaves the call to the general path, which gives the errors).
    func fastPut(_ object: UnsafeMutableRawPointer, _ scalar: atl_Scalar) -> Bool {
        guard !self.isChild, let lw = Unmanaged<AnyObject>.fromOpaque(object).takeUnretainedValue() as? LuaWorker,
            let queue = lw.queue, queue.order != .priority, let item = LuaQueueItem(scalar)
        else { return false }
        if Aloop.current != nil {
            queue.putWithoutWaiting(item)  // a full queue never blocks an aloop's thread
        } else {
            queue.put(item)
        }
        return true
    }
}

extension HostCore {
    /// The tasks and the timeout of `wait_completed({t1, t2, ...}, timeout)` read straight from the call's bytes,
    /// when its first argument is a list of tasks at keys 1, 2, ... in order (as a loop that fills it makes) with
    /// no metatable and its timeout is nil or a number; nil otherwise, to leave the call to the general path
    /// (which also gives the errors). A table of a million tasks then costs no ``LuaTable``.
    func fastWaitArguments(_ call: UnsafeMutablePointer<atl_Call>) throws -> (
        tasks: [SupervisorTask], timeout: Double?
    )? {
        guard let buffer = call.pointee.argsbuf, let start = buffer.pointee.data else { return nil }
        let bytes = UnsafeRawBufferPointer(start: start, count: buffer.pointee.len)
        let handles = UnsafeBufferPointer(start: buffer.pointee.handles, count: buffer.pointee.nhandles)
        let h = CodecTag.header.count
        guard bytes.count > h + 1, bytes.starts(with: CodecTag.header), bytes[h] == 1 || bytes[h] == 2,
            bytes[h + 1] == CodecTag.table
        else { return nil }
        var pos = h + 2
        var tasks: [SupervisorTask] = []
        tasks.reserveCapacity(handles.count)
        let entry = 19  // INT, its 8 bytes, HANDLE, its kind, its 8 bytes
        while pos + entry <= bytes.count, bytes[pos] == CodecTag.integer {
            let key = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: pos + 1, as: Int64.self))
            guard key == tasks.count + 1, bytes[pos + 9] == CodecTag.handle, bytes[pos + 10] == UInt8(ATLKind.task),
                tasks.count < handles.count, let known = handles[tasks.count]
            else { return nil }
            let bits = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: pos + 11, as: UInt64.self))
            guard UInt(bitPattern: known) == UInt(bits),
                let task = Unmanaged<AnyObject>.fromOpaque(known).takeUnretainedValue() as? SupervisorTask
            else { return nil }
            tasks.append(task)
            pos += entry
        }
        // the end of the table, no metatable, then the timeout if there is one
        guard tasks.count == handles.count, pos + 2 <= bytes.count, bytes[pos] == CodecTag.end,
            bytes[pos + 1] == CodecTag.nil
        else { return nil }
        pos += 2
        var timeout: LuaValue = .nil
        if bytes[h] == 2 {
            guard pos < bytes.count else { return nil }
            switch bytes[pos] {
            case CodecTag.nil:
                pos += 1
            case CodecTag.integer, CodecTag.float:
                guard pos + 9 <= bytes.count else { return nil }
                let raw = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: pos + 1, as: UInt64.self))
                timeout =
                    bytes[pos] == CodecTag.integer ? .integer(Int64(bitPattern: raw)) : .number(Double(bitPattern: raw))
                pos += 9
            default:
                return nil
            }
        }
        guard pos == bytes.count else { return nil }
        return (tasks, try LuaArguments.seconds(timeout, "wait_completed", "argument #2 (timeout)"))
    }
}

/// The arguments of a call when there are at most three and all are plain (nil, booleans, numbers, strings shorter
/// than 128 bytes), read from the call's buffer without an array. The buffer is left as it is.
struct PlainArguments {
    private var values: (LuaValue, LuaValue, LuaValue) = (.nil, .nil, .nil)
    /// The number of arguments.
    private(set) var count = 0

    /// The arguments of `call`, or nil when they are not all plain, there are more than three, or the buffer is not
    /// what the shim writes (the general decoder then reports it).
    init?(_ call: UnsafeMutablePointer<atl_Call>) {
        let length = call.pointee.argslen
        guard length > 0 else { return }
        guard let start = call.pointee.args else { return nil }
        let bytes = UnsafeRawBufferPointer(start: start, count: length)
        let count = CodecTag.header.count  // the count is one byte: at most three values
        guard length > count, bytes.starts(with: CodecTag.header), bytes[count] <= 3 else {
            return nil
        }
        var pos = count + 1
        for i in 0..<Int(bytes[count]) {
            guard pos < length else { return nil }
            let tag = bytes[pos]
            pos += 1
            let value: LuaValue
            switch tag {
            case CodecTag.nil: value = .nil
            case CodecTag.false: value = .boolean(false)
            case CodecTag.true: value = .boolean(true)
            case CodecTag.integer, CodecTag.float:
                guard length - pos >= 8 else { return nil }
                let bits = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: pos, as: UInt64.self))
                pos += 8
                value = tag == CodecTag.integer ? .integer(Int64(bitPattern: bits)) : .number(Double(bitPattern: bits))
            case CodecTag.string:
                // A one-byte length: the strings that a key or a short value needs.
                guard pos < length, bytes[pos] < 0x80, length - pos - 1 >= Int(bytes[pos]) else { return nil }
                let l = Int(bytes[pos])
                pos += 1
                value = .string(LuaString(bytes: Array(UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + l)]))))
                pos += l
            default:
                return nil
            }
            switch i {
            case 0: self.values.0 = value
            case 1: self.values.1 = value
            default: self.values.2 = value
            }
        }
        guard pos == length else { return nil }
        self.count = Int(bytes[count])
    }

    /// Argument `i` (from 0), nil beyond the last.
    subscript(i: Int) -> LuaValue {
        switch i {
        case 0: return self.values.0
        case 1: return self.values.1
        case 2: return self.values.2
        default: return .nil
        }
    }
}

/// Writes the one result of a call into its result buffer, in the codec's format (see `atl_codec.h`).
enum CallResultWriter {
    /// Appends `handle` to `out` as a buffer of one value (the buffer retains its object), with no array or
    /// ``EncodedValues`` between: a task's submission returns one. Returns false when memory ran out.
    static func write(_ handle: LuaHandle, into out: UnsafeMutablePointer<atl_Buffer>) -> Bool {
        self.write(handle: handle.object, kind: handle.kind, into: out)
    }

    /// ``write(_:into:)`` for a handle of `object` of `kind`, with no ``LuaHandle`` made for it.
    static func write(handle: any AnyObject & Sendable, kind: Int32, into out: UnsafeMutablePointer<atl_Buffer>)
        -> Bool
    {
        let object = Unmanaged.passUnretained(handle as AnyObject).toOpaque()
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        return withUnsafeMutableBytes(of: &scratch) { raw -> Bool in
            var n = 0
            for b in CodecTag.header {
                raw[n] = b
                n += 1
            }
            raw[n] = 1  // one value
            raw[n + 1] = CodecTag.handle
            raw[n + 2] = UInt8(truncatingIfNeeded: kind)
            raw.storeBytes(of: UInt64(UInt(bitPattern: object)).littleEndian, toByteOffset: n + 3, as: UInt64.self)
            n += 11
            return atl_buffer_append(out, raw.baseAddress, n) == ATL_OK && atl_buffer_add_handle(out, object) == ATL_OK
        }
    }

    /// Appends `value` to `out` as a buffer of one value: a plain value (nil, a boolean, a number, a string) straight,
    /// any other through ``EncodedValues``. Returns false when memory ran out.
    /// - Throws: ``LuaValueCodecError`` for a value that cannot be encoded.
    static func write(_ value: LuaValue, into out: UnsafeMutablePointer<atl_Buffer>) throws -> Bool {
        switch value {
        case .table, .function:
            return try EncodedValues([value]).append(to: out)
        case .handle(let handle):
            return self.write(handle, into: out)
        default:
            break
        }
        // The header, the tag and a number or a string's length: at most 4 + 1 + 10 bytes.
        var scratch: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &scratch) { raw -> Bool in
            let h = CodecTag.header.count
            for (i, b) in CodecTag.header.enumerated() { raw[i] = b }
            raw[h] = 1
            let tag = h + 1
            var n = tag + 1
            switch value {
            case .boolean(let b):
                raw[tag] = b ? CodecTag.true : CodecTag.false
            case .integer(let i):
                raw[tag] = CodecTag.integer
                raw.storeBytes(of: UInt64(bitPattern: i).littleEndian, toByteOffset: n, as: UInt64.self)
                n += 8
            case .number(let d):
                raw[tag] = CodecTag.float
                raw.storeBytes(of: d.bitPattern.littleEndian, toByteOffset: n, as: UInt64.self)
                n += 8
            case .string(let s):
                raw[tag] = CodecTag.string
                var length = UInt64(s.bytes.count)
                while length >= 0x80 {
                    raw[n] = UInt8(truncatingIfNeeded: length) | 0x80
                    length >>= 7
                    n += 1
                }
                raw[n] = UInt8(length)
                n += 1
                guard atl_buffer_append(out, raw.baseAddress, n) == ATL_OK else { return false }
                return s.bytes.withUnsafeBytes { atl_buffer_append(out, $0.baseAddress, $0.count) == ATL_OK }
            default:
                raw[tag] = CodecTag.nil
            }
            return atl_buffer_append(out, raw.baseAddress, n) == ATL_OK
        }
    }
}
