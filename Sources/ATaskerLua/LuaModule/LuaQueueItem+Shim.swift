internal import CLuaShim

/// One item in the queue of a Lua queue worker.
///
/// The common item of a hot queue, a number, a boolean or a short string, travels as itself: a `put` of one costs no
/// buffer, no ``EncodedValues`` and no allocation at all (each of those would be freed on the worker's thread, which
/// makes every put of a long burst take fresh memory). Any other value travels as its encoded bytes, as before.
/// The executor sees the same value either way.
enum LuaQueueItem: Sendable {
    case integer(Int64)
    case number(Double)
    case boolean(Bool)
    /// A string of at most ``shortStringMax`` bytes: the bytes in order from the low byte of the first word, then
    /// zeros, with the count in the high byte of the second word.
    case shortString(UInt64, UInt64)
    case encoded(EncodedValues)

    /// The longest string kept as itself.
    static let shortStringMax = 15

    /// The item that the shim read from a `put` call's argument; nil for a type it does not name.
    init?(_ scalar: atl_Scalar) {
        guard let tag = UInt8(exactly: scalar.type) else { return nil }
        switch tag {
        case CodecTag.integer: self = .integer(Int64(bitPattern: scalar.bits))
        case CodecTag.float: self = .number(Double(bitPattern: scalar.bits))
        case CodecTag.true: self = .boolean(true)
        case CodecTag.false: self = .boolean(false)
        case CodecTag.string:
            guard scalar.len <= Self.shortStringMax else { return nil }
            var s = scalar.s
            self = withUnsafeBytes(of: &s) { Self.short(UnsafeRawBufferPointer(rebasing: $0[..<scalar.len])) }
        default:
            return nil
        }
    }

    /// An item of encoded bytes (one value).
    init(encoded: EncodedValues) {
        self = .encoded(encoded)
    }

    /// A copy of `value` (from Swift).
    /// - Throws: ``LuaValueCodecError`` for a value that cannot be copied.
    init(_ value: LuaValue) throws {
        switch value {
        case .integer(let i): self = .integer(i)
        case .number(let d): self = .number(d)
        case .boolean(let b): self = .boolean(b)
        case .string(let s) where s.bytes.count <= Self.shortStringMax:
            self = s.bytes.withUnsafeBytes { Self.short($0) }
        default: self = .encoded(try EncodedValues([value]))
        }
    }

    private static func short(_ bytes: UnsafeRawBufferPointer) -> Self {
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { raw in
            raw.copyMemory(from: bytes)
            raw[15] = UInt8(bytes.count)
        }
        return .shortString(UInt64(littleEndian: words.0), UInt64(littleEndian: words.1))
    }

    /// The item as a buffer of one value, for the paths that keep encoded values (an async or mp worker).
    func encodedValues() throws -> EncodedValues {
        if case .encoded(let encoded) = self { return encoded }
        return try self.withBuffer { buffer in
            var copy = atl_Buffer()
            guard atl_buffer_append(&copy, buffer.pointee.data, buffer.pointee.len) == ATL_OK else {
                atl_buffer_free(&copy)
                throw LuaError(code: .memory, fullMessage: "not enough memory")
            }
            return EncodedValues(taking: &copy)
        }
    }

    /// The first value of a priority queue's `{priority, value}` item, when it is an integer that fits an `Int`.
    var priority: Int? {
        guard case .encoded(let encoded) = self, let p = try? encoded.decode().first?.tableValue?[1].intValue else {
            return nil
        }
        return Int(exactly: p)
    }

    /// Calls `body` with a buffer of the codec that holds the item: a scalar's bytes are written on the stack, in the
    /// format of the shim's encoder, so the shim reads them as it reads any buffer.
    func withBuffer<R>(_ body: (UnsafePointer<atl_Buffer>) throws -> R) rethrows -> R {
        if case .encoded(let encoded) = self {
            return try encoded.withBuffer(body)
        }
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        return try withUnsafeMutableBytes(of: &scratch) { raw in
            var buffer = atl_Buffer()
            buffer.data = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            buffer.len = self.writeScalar(into: raw)
            buffer.cap = raw.count
            return try body(&buffer)
        }
    }

    /// The room that ``writeScalar(into:)`` needs.
    static let scalarBytes = 24

    /// Writes a scalar item as a buffer of one value into `raw` (``scalarBytes`` long) and returns its length;
    /// 0 for an encoded item, which has bytes of its own.
    func writeScalar(into raw: UnsafeMutableRawBufferPointer) -> Int {
        switch self {
        case .encoded:
            return 0
        case .integer(let i):
            return Self.write(CodecTag.integer, UInt64(bitPattern: i), into: raw)
        case .number(let d):
            return Self.write(CodecTag.float, d.bitPattern, into: raw)
        case .boolean(let b):
            return Self.write(b ? CodecTag.true : CodecTag.false, nil, into: raw)
        case .shortString(let low, let high):
            let n = Self.writeHead(CodecTag.string, into: raw)
            var words = (low.littleEndian, high.littleEndian)
            return withUnsafeBytes(of: &words) { string in
                let length = Int(string[15])
                raw[n] = UInt8(length)
                UnsafeMutableRawBufferPointer(rebasing: raw[(n + 1)...]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: string[..<length]))
                return n + 1 + length
            }
        }
    }

    /// Writes the header, a count of one and `tag`; returns the bytes written.
    private static func writeHead(_ tag: UInt8, into raw: UnsafeMutableRawBufferPointer) -> Int {
        var n = 0
        for b in CodecTag.header {
            raw[n] = b
            n += 1
        }
        raw[n] = 1
        raw[n + 1] = tag
        return n + 2
    }

    private static func write(_ tag: UInt8, _ bits: UInt64?, into raw: UnsafeMutableRawBufferPointer) -> Int {
        let n = Self.writeHead(tag, into: raw)
        guard let bits else { return n }
        raw.storeBytes(of: bits.littleEndian, toByteOffset: n, as: UInt64.self)
        return n + 8
    }
}
