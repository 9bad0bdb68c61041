internal import CLuaShim
import Glibc

/// Values in the codec's binary format, with a reference on every host object that they name.
///
/// The buffer is written once and then only read, so one instance may be read from any thread.
final class EncodedValues {
    // protected by immutability: written in `init`, freed in `deinit`. Kept behind a pointer so that threads reading
    // it at once make no Swift access to a stored property (`withBuffer` hands out its address).
    private let storage: UnsafeMutablePointer<atl_Buffer>

    fileprivate var buffer: atl_Buffer { self.storage.pointee }

    /// Takes over `buffer` (a C buffer filled by the shim) and leaves it empty.
    init(taking buffer: inout atl_Buffer) {
        self.storage = UnsafeMutablePointer<atl_Buffer>.allocate(capacity: 1)
        self.storage.initialize(to: buffer)
        buffer = atl_Buffer()
    }

    /// Encodes `values` with the Swift side of the codec.
    convenience init(_ values: [LuaValue]) throws {
        try self.init(try LuaValue.encodeAll(values))
    }

    /// Copies bytes made by the Swift side of the codec, and retains the host objects that they name.
    convenience init(_ encoded: EncodedBytes) throws {
        var buffer = atl_Buffer()
        var ok = encoded.bytes.withUnsafeBytes { raw in
            atl_buffer_append(&buffer, raw.baseAddress, raw.count) == ATL_OK
        }
        for object in encoded.handles where ok {
            ok = atl_buffer_add_handle(&buffer, Unmanaged.passUnretained(object).toOpaque()) == ATL_OK
        }
        if !ok {
            atl_buffer_free(&buffer)
            throw LuaError(code: .memory, fullMessage: "not enough memory")
        }
        self.init(taking: &buffer)
    }

    /// One buffer with the values of `parts`, in order (each part must stand alone, as ``split()`` makes them).
    convenience init(concatenating parts: [EncodedValues]) throws {
        var buffer = atl_Buffer()
        let count = parts.reduce(0) { $0 + $1.valueCount }
        guard Self.concatenate(parts, valueCount: count, into: &buffer) else {
            atl_buffer_free(&buffer)
            throw LuaError(code: .memory, fullMessage: "not enough memory")
        }
        self.init(taking: &buffer)
    }

    /// The number of values, from the header.
    var valueCount: Int {
        let buffer = self.storage.pointee
        var n = 0
        var shift = 0
        var i = 3
        while i < buffer.len {
            let byte = buffer.data[i]
            n |= Int(byte & 0x7F) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
            i += 1
        }
        return n
    }

    deinit {
        atl_buffer_free(self.storage)
        self.storage.deinitialize(count: 1)
        self.storage.deallocate()
    }

    /// The number of bytes.
    var count: Int { Int(self.buffer.len) }

    /// The host objects that the values name, in the order of their handle tags.
    var handleObjects: [AnyObject] {
        let buffer = self.storage.pointee
        return (0..<Int(buffer.nhandles)).compactMap { i in
            buffer.handles[i].map { Unmanaged<AnyObject>.fromOpaque($0).takeUnretainedValue() }
        }
    }

    /// Calls `body` with the bytes.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: self.buffer.data, count: Int(self.buffer.len)))
    }

    /// Calls `body` with the C buffer (bytes and the host objects it holds), for the shim's decoder.
    func withBuffer<R>(_ body: (UnsafePointer<atl_Buffer>) throws -> R) rethrows -> R {
        try body(UnsafePointer(self.storage))
    }

    /// A copy of the buffer's description (its pointers, not its bytes), valid while this object lives: for a call
    /// that takes many buffers at once.
    var bufferDescription: atl_Buffer { self.storage.pointee }

    /// Each value as a buffer of its own, without decoding (cycles, metatables and functions stay as they are).
    func split() throws -> [EncodedValues] {
        let buffer = self.storage.pointee
        return try LuaValue.splitAll(
            UnsafeRawBufferPointer(start: buffer.data, count: buffer.len),
            knownHandles: UnsafeBufferPointer(start: buffer.handles, count: buffer.nhandles)
        ).map { try EncodedValues($0) }
    }

    /// The first value on its own and the others in one buffer, without decoding (see `ATL_CODEC_FIRSTALONE`).
    func splitFirst() throws -> (EncodedValues, EncodedValues?) {
        let buffer = self.storage.pointee
        let (first, rest) = try LuaValue.splitFirst(
            UnsafeRawBufferPointer(start: buffer.data, count: buffer.len),
            knownHandles: UnsafeBufferPointer(start: buffer.handles, count: buffer.nhandles))
        return (try EncodedValues(first), try rest.map { try EncodedValues($0) })
    }

    /// The values, decoded on the Swift side.
    func decode() throws -> [LuaValue] {
        let buffer = self.storage.pointee
        return try LuaValue.decodeAll(
            UnsafeRawBufferPointer(start: buffer.data, count: buffer.len),
            knownHandles: UnsafeBufferPointer(start: buffer.handles, count: buffer.nhandles))
    }

    /// Appends the bytes to `out` and retains the handles for it. Returns false when memory ran out.
    func append(to out: UnsafeMutablePointer<atl_Buffer>) -> Bool {
        self.appendBody(to: out, skippingHeader: false)
    }

    fileprivate func appendBody(to out: UnsafeMutablePointer<atl_Buffer>, skippingHeader: Bool) -> Bool {
        let skip = skippingHeader ? self.headerLength : 0
        guard atl_buffer_append(out, self.buffer.data.map { $0 + skip }, Int(self.buffer.len) - skip) == ATL_OK else {
            return false
        }
        for i in 0..<Int(self.buffer.nhandles) {
            guard atl_buffer_add_handle(out, self.buffer.handles[i]) == ATL_OK else { return false }
        }
        return true
    }

    /// What the first value is, in the terms that a call checking an option needs.
    enum Kind: Equatable {
        case `nil`, `false`, `true`, function, other
    }

    /// The kind of the first value (`nil` when there is none), read from its tag: a function is not decoded. Only a
    /// value that travels by name (a module's function or table) is decoded to tell which.
    var kind: Kind {
        get throws {
            let at = self.headerLength
            guard self.valueCount > 0, at < Int(self.buffer.len) else { return .nil }
            switch self.buffer.data[at] {
            case CodecTag.nil: return .nil
            case CodecTag.false: return .false
            case CodecTag.true: return .true
            case CodecTag.function: return .function
            case CodecTag.named:
                if case .function = try self.decode().first ?? .nil { return .function }
                return .other
            default: return .other
            }
        }
    }

    /// The length of the header: two magic bytes, the version byte and the varint count.
    fileprivate var headerLength: Int {
        var i = CodecTag.header.count
        while i < Int(self.buffer.len), self.buffer.data[i] & 0x80 != 0 { i += 1 }
        return i + 1
    }

    /// Writes the values of several buffers as one buffer into `out`.
    ///
    /// The codec's references point backwards by distance, so a value that is complete in its own buffer stays
    /// correct when other values come before it.
    static func concatenate(_ parts: [EncodedValues], valueCount: Int, into out: UnsafeMutablePointer<atl_Buffer>)
        -> Bool
    {
        var header = CodecTag.header
        appendVarint(UInt64(valueCount), to: &header)
        guard header.withUnsafeBytes({ atl_buffer_append(out, $0.baseAddress, $0.count) }) == ATL_OK else {
            return false
        }
        for part in parts where !part.appendBody(to: out, skippingHeader: true) {
            return false
        }
        return true
    }
}

extension EncodedValues {
    /// Writes one value into `out`: a list whose item `i` is the first value of `parts[i - 1]` (a buffer of no
    /// values, or whose first value is nil, leaves a hole). It is a table's encoding made of the parts' bytes as
    /// they are: the codec's references point backwards by distance, so each part stays correct inside it.
    static func appendList(_ parts: [EncodedValues], into out: UnsafeMutablePointer<atl_Buffer>) -> Bool {
        var head = CodecTag.header
        head.append(1)  // one value
        head.append(CodecTag.table)
        guard head.withUnsafeBytes({ atl_buffer_append(out, $0.baseAddress, $0.count) }) == ATL_OK else {
            return false
        }
        var key: (UInt8, UInt64) = (CodecTag.integer, 0)
        for (i, part) in parts.enumerated() {
            let buffer = part.buffer
            let at = part.headerLength
            guard part.valueCount >= 1, at < Int(buffer.len), buffer.data[at] != CodecTag.nil else { continue }
            key.1 = UInt64(i + 1).littleEndian
            let wrote = withUnsafeBytes(of: &key) { raw in
                // the tag, then the eight bytes of the integer (the tuple's padding is skipped)
                atl_buffer_append(out, raw.baseAddress, 1) == ATL_OK
                    && atl_buffer_append(out, raw.baseAddress! + MemoryLayout<(UInt8, UInt64)>.offset(of: \.1)!, 8)
                        == ATL_OK
            }
            guard wrote, part.appendFirstValue(to: out) else { return false }
        }
        let tail = [CodecTag.end, CodecTag.nil]  // no metatable
        return tail.withUnsafeBytes { atl_buffer_append(out, $0.baseAddress, $0.count) } == ATL_OK
    }

    /// Appends the bytes of this buffer's only value, and the host objects it names, to `out`.
    private func appendFirstValue(to out: UnsafeMutablePointer<atl_Buffer>) -> Bool {
        if self.valueCount == 1 {
            return self.appendBody(to: out, skippingHeader: true)
        }
        // (several values: a task's result is one, so this is not the common case)
        guard let first = try? self.splitFirst().0 else { return false }
        return first.appendBody(to: out, skippingHeader: true)
    }
}

/// Immutable after `init`; its bytes are only read, and the host objects it retains are released in `deinit`.
extension EncodedValues: @unchecked Sendable {}
