internal import CLuaShim

// The Swift side of the value codec: the same wire format as the C codec (described in `atl_codec.h`, whose tags
// and limits it imports), read and written without a Lua state. Decoding trusts nothing: every tag, length, varint,
// reference and checksum is checked, and a malformed buffer throws, naming the byte.

/// Encoded values: the bytes and the host objects that they name (the holder keeps them alive).
struct EncodedBytes {
    var bytes: [UInt8]
    var handles: [AnyObject]
}

/// The codec's tags and limits, as `atl_codec.h` numbers them: that header is the only place that does, for the C
/// codec and for this reader and writer alike.
enum CodecTag {
    static let `nil` = Self.byte(.ATL_T_NIL)
    static let `false` = Self.byte(.ATL_T_FALSE)
    static let `true` = Self.byte(.ATL_T_TRUE)
    static let integer = Self.byte(.ATL_T_INT)
    static let float = Self.byte(.ATL_T_FLOAT)
    static let string = Self.byte(.ATL_T_STRING)
    static let table = Self.byte(.ATL_T_TABLE)
    static let ref = Self.byte(.ATL_T_REF)
    static let function = Self.byte(.ATL_T_FUNCTION)
    static let named = Self.byte(.ATL_T_NAMED)
    static let handle = Self.byte(.ATL_T_HANDLE)
    static let end = Self.byte(.ATL_T_END)

    static let version = UInt8(ATL_CODEC_VERSION)
    /// The bytes that open every buffer: the two magic bytes and the version.
    static let header: [UInt8] = [UInt8(ATL_CODEC_MAGIC0), UInt8(ATL_CODEC_MAGIC1), Self.version]
    /// The longest varint, in bytes.
    static let maxVarint = Int(ATL_CODEC_MAXVARINT)
    /// The deepest nesting of tables and functions (`ATL_CODEC_MAXDEPTH`).
    static let maxDepth = Int(ATL_CODEC_MAXDEPTH)
    /// The most upvalues that one function has.
    static let maxUpvalues = UInt64(ATL_CODEC_MAXUPVALUES)

    /// The tag that starts with `byte`, or nil for a byte that no tag has.
    static func tag(_ byte: UInt8) -> atl_Tag? {
        closedEnum(UInt32(byte), first: .ATL_T_NIL, last: .ATL_T_END)
    }

    /// The upvalue kind that `byte` names, or nil.
    static func upvalueKind(_ byte: UInt8) -> atl_UpKind? {
        closedEnum(UInt32(byte), first: .ATL_UP_VALUE, last: .ATL_UP_SHAREDFWD)
    }

    private static func byte(_ tag: atl_Tag) -> UInt8 {
        UInt8(tag.rawValue)
    }
}

extension LuaValue {
    /// Decodes every value of a buffer written by the codec.
    ///
    /// A shared table is copied to each place that refers to it; a function becomes a ``LuaFunction``
    /// holding its encoded bytes; a handle becomes a ``LuaHandle`` (the buffer's owner keeps its object
    /// alive while this runs).
    ///
    /// A handle's object is only a pointer in the bytes: with `knownHandles` (the host objects that the
    /// buffer retains, `atl_Buffer.handles`), a handle naming any other object is refused as corrupted
    /// instead of being dereferenced; without it, the buffer is trusted to come from this process.
    /// - Throws: ``LuaValueCodecError`` for a malformed buffer, a cyclic table, or a function that
    ///   refers to a value outside itself.
    static func decodeAll(
        _ bytes: UnsafeRawBufferPointer, knownHandles: UnsafeBufferPointer<UnsafeMutableRawPointer?>? = nil
    ) throws -> [LuaValue] {
        var decoder = ValueDecoder(bytes)
        decoder.knownHandles = knownHandles
        return try decoder.decodeAll()
    }

    /// Checks a buffer that came from another process without building its values: well formed, and with no
    /// function and no handle in it (cycles and shared tables are fine). Such a buffer is safe to decode in any
    /// state: it makes the decoder load no bytecode.
    /// - Throws: ``LuaValueCodecError`` naming the byte of the first problem.
    static func checkPlain(_ bytes: UnsafeRawBufferPointer) throws {
        var decoder = ValueDecoder(bytes)
        decoder.knownHandles = UnsafeBufferPointer(start: nil, count: 0)
        decoder.plainOnly = true
        let count = try decoder.header()
        for _ in 0..<count {
            try decoder.skip(spanBase: decoder.objects.count)
        }
        if decoder.pos != bytes.count { throw decoder.corrupted("trailing bytes after the last value") }
    }

    /// Splits a buffer into its top-level values, each as a buffer of its own (header, one value), without
    /// building them: a value keeps its cycles, metatables and functions.
    ///
    /// - Throws: ``LuaValueCodecError`` for a malformed buffer, or a value that shares an object with an earlier
    ///   one (it could not stand alone).
    static func splitFirst(
        _ bytes: UnsafeRawBufferPointer, knownHandles: UnsafeBufferPointer<UnsafeMutableRawPointer?>? = nil
    ) throws -> (EncodedBytes, EncodedBytes?) {
        var decoder = ValueDecoder(bytes)
        decoder.knownHandles = knownHandles
        return try decoder.splitFirst()
    }

    static func splitAll(
        _ bytes: UnsafeRawBufferPointer, knownHandles: UnsafeBufferPointer<UnsafeMutableRawPointer?>? = nil
    ) throws -> [EncodedBytes] {
        var decoder = ValueDecoder(bytes)
        decoder.knownHandles = knownHandles
        return try decoder.splitAll()
    }

    /// Encodes `values` in the codec's format.
    /// - Throws: ``LuaValueCodecError`` for a nil or NaN table key, or nesting deeper than 100 levels.
    static func encodeAll(_ values: [LuaValue]) throws -> EncodedBytes {
        var encoder = ValueEncoder()
        encoder.bytes.reserveCapacity(64)
        encoder.bytes += CodecTag.header
        encoder.varint(UInt64(values.count))
        for value in values {
            try encoder.value(value)
        }
        return EncodedBytes(bytes: encoder.bytes, handles: encoder.handles)
    }
}

/// FNV-1a, 64 bits: the checksum of function bytecode.
func codecChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01b3
    }
    return h
}

/// A host object taken from a buffer, seen as `Sendable` (host objects are, by contract).
private func hostObject(_ pointer: UnsafeRawPointer) -> any AnyObject & Sendable {
    let object = Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue()
    // `Sendable` is a marker protocol: the existential has the same layout as `AnyObject`.
    return unsafeBitCast(object, to: (any AnyObject & Sendable).self)
}

/// Appends `v` as the codec's varint (unsigned LEB128).
func appendVarint(_ v: UInt64, to bytes: inout [UInt8]) {
    var v = v
    while v >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
        v >>= 7
    }
    bytes.append(UInt8(v))
}

private struct ValueEncoder {
    var bytes: [UInt8] = []
    var handles: [AnyObject] = []
    var depth = 0

    mutating func varint(_ v: UInt64) {
        appendVarint(v, to: &self.bytes)
    }

    mutating func u64(_ v: UInt64) {
        for i in 0..<8 { self.bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    mutating func value(_ value: LuaValue) throws {
        switch value {
        case .nil: self.bytes.append(CodecTag.nil)
        case .boolean(let b): self.bytes.append(b ? CodecTag.true : CodecTag.false)
        case .integer(let i):
            self.bytes.append(CodecTag.integer)
            self.u64(UInt64(bitPattern: i))
        case .number(let d):
            self.bytes.append(CodecTag.float)
            self.u64(d.bitPattern)
        case .string(let s):
            self.bytes.append(CodecTag.string)
            self.varint(UInt64(s.bytes.count))
            self.bytes += s.bytes
        case .table(let t):
            try self.table(t)
        case .function(let f):
            // A span is self-contained: its references are relative and point inside it.
            self.bytes += f.span
            self.handles += f.handles.map { $0 as AnyObject }
        case .handle(let h):
            self.bytes.append(CodecTag.handle)
            self.bytes.append(UInt8(truncatingIfNeeded: h.kind))
            let pointer = Unmanaged.passUnretained(h.object as AnyObject).toOpaque()
            self.u64(UInt64(UInt(bitPattern: pointer)))
            self.handles.append(h.object)
        }
    }

    mutating func table(_ t: LuaTable) throws {
        guard self.depth < CodecTag.maxDepth else {
            throw LuaValueCodecError("value nested deeper than \(CodecTag.maxDepth) levels")
        }
        self.depth += 1
        defer { self.depth -= 1 }
        self.bytes.append(CodecTag.table)
        for (key, value) in t.entries {
            if key.isNil { throw LuaValueCodecError("cannot encode a table with a nil key") }
            if case .number(let d) = key, d.isNaN {
                throw LuaValueCodecError("cannot encode a table with a NaN key")
            }
            if value.isNil { continue }
            try self.value(key)
            try self.value(value)
        }
        self.bytes.append(CodecTag.end)
        if let meta = t.metatable {
            try self.table(meta)
        } else {
            self.bytes.append(CodecTag.nil)
        }
    }
}

private struct ValueDecoder {
    enum Object {
        case building  // a table being decoded: a reference to it is a cycle
        case table(LuaTable)
        case function(LuaFunction)
        case skippedTable  // inside a function's span
        case skippedFunction(upvalues: Int)
    }

    let base: UnsafeRawBufferPointer
    var pos = 0
    var objects: [Object] = []
    var depth = 0
    /// The objects that a handle may name, or nil to trust the buffer.
    var knownHandles: UnsafeBufferPointer<UnsafeMutableRawPointer?>?
    /// The next of `knownHandles` that a HANDLE tag must name.
    var handleIndex = 0
    /// Host objects met while skipping a function's span.
    var spanHandles: [any AnyObject & Sendable] = []
    /// Refuse functions and handles (values from another process).
    var plainOnly = false

    init(_ base: UnsafeRawBufferPointer) {
        self.base = base
    }

    var remaining: Int { self.base.count - self.pos }

    func corrupted(_ what: String, at pos: Int? = nil) -> LuaValueCodecError {
        LuaValueCodecError("corrupted buffer: \(what) at byte \(pos ?? self.pos)")
    }

    func truncated(_ what: String) -> LuaValueCodecError {
        LuaValueCodecError("truncated buffer: \(what) at byte \(self.pos)")
    }

    mutating func need(_ n: Int, _ what: String) throws {
        if self.remaining < n { throw self.truncated(what) }
    }

    mutating func byte(_ what: String) throws -> UInt8 {
        try self.need(1, what)
        defer { self.pos += 1 }
        return self.base[self.pos]
    }

    mutating func varint(_ what: String) throws -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<CodecTag.maxVarint {
            try self.need(1, what)
            let c = self.base[self.pos]
            if i == CodecTag.maxVarint - 1 && c > 1 { throw self.corrupted("varint overflow") }
            self.pos += 1
            v |= UInt64(c & 0x7F) << (7 * UInt64(i))
            if c & 0x80 == 0 { return v }
        }
        throw self.corrupted("varint too long")  // not reached: the 10th byte has no continuation bit
    }

    /// A varint length that must fit in the remaining bytes.
    mutating func length(_ what: String) throws -> Int {
        let l = try self.varint(what)
        if l > UInt64(self.remaining) { throw self.truncated(what) }
        return Int(l)
    }

    mutating func u64(_ what: String) throws -> UInt64 {
        try self.need(8, what)
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = (v << 8) | UInt64(self.base[self.pos + i]) }
        self.pos += 8
        return v
    }

    mutating func enter() throws {
        if self.depth >= CodecTag.maxDepth {
            throw LuaValueCodecError(
                "corrupted buffer: value nested deeper than \(CodecTag.maxDepth) levels at byte \(self.pos)")
        }
        self.depth += 1
    }

    /// Reads the header (magic, version, value count) and returns the count.
    mutating func header() throws -> UInt64 {
        let magic = CodecTag.header.count - 1
        try self.need(CodecTag.header.count, "header")
        if !self.base.starts(with: CodecTag.header.prefix(magic)) { throw self.corrupted("not an atasker-lua buffer") }
        if self.base[magic] != CodecTag.version { throw self.corrupted("unsupported format version", at: magic) }
        self.pos = CodecTag.header.count
        let count = try self.varint("value count")
        if count > UInt64(self.remaining) { throw self.truncated("fewer values than declared") }
        return count
    }

    mutating func decodeAll() throws -> [LuaValue] {
        let count = try self.header()
        var values: [LuaValue] = []
        values.reserveCapacity(Int(count))
        for _ in 0..<count {
            values.append(try self.value())
        }
        if self.pos != self.base.count { throw self.corrupted("trailing bytes after the last value") }
        return values
    }

    /// The first value on its own, and the others together in one buffer (nil when there are none): they may
    /// refer to each other, never to the first value (the shim encodes them so, `ATL_CODEC_FIRSTALONE`).
    mutating func splitFirst() throws -> (EncodedBytes, EncodedBytes?) {
        let count = try self.header()
        guard count > 0 else { throw self.corrupted("no value") }
        var start = self.pos
        self.spanHandles = []
        try self.skip(spanBase: self.objects.count)
        let first = EncodedBytes(
            bytes: [0x41, 0x4C, CodecTag.version, 1] + self.base[start..<self.pos],
            handles: self.spanHandles.map { $0 as AnyObject })
        guard count > 1 else {
            if self.pos != self.base.count { throw self.corrupted("trailing bytes after the last value") }
            return (first, nil)
        }
        start = self.pos
        self.spanHandles = []
        let restBase = self.objects.count
        for _ in 1..<count { try self.skip(spanBase: restBase) }
        if self.pos != self.base.count { throw self.corrupted("trailing bytes after the last value") }
        var bytes: [UInt8] = [0x41, 0x4C, CodecTag.version]
        appendVarint(UInt64(count - 1), to: &bytes)
        bytes += self.base[start..<self.pos]
        let rest = EncodedBytes(bytes: bytes, handles: self.spanHandles.map { $0 as AnyObject })
        self.spanHandles = []
        return (first, rest)
    }

    mutating func splitAll() throws -> [EncodedBytes] {
        let count = try self.header()
        var parts: [EncodedBytes] = []
        for _ in 0..<count {
            let start = self.pos
            self.spanHandles = []
            try self.skip(spanBase: self.objects.count)
            var bytes: [UInt8] = CodecTag.header + [1]
            bytes += self.base[start..<self.pos]
            parts.append(EncodedBytes(bytes: bytes, handles: self.spanHandles.map { $0 as AnyObject }))
        }
        self.spanHandles = []
        if self.pos != self.base.count { throw self.corrupted("trailing bytes after the last value") }
        return parts
    }

    /// Decodes one value into a `LuaValue`.
    mutating func value() throws -> LuaValue {
        let start = self.pos
        let tag = CodecTag.tag(try self.byte("value"))
        switch tag {
        case .ATL_T_NIL: return .nil
        case .ATL_T_FALSE: return .boolean(false)
        case .ATL_T_TRUE: return .boolean(true)
        case .ATL_T_INT: return .integer(Int64(bitPattern: try self.u64("integer")))
        case .ATL_T_FLOAT: return .number(Double(bitPattern: try self.u64("float")))
        case .ATL_T_STRING:
            let l = try self.length("string")
            defer { self.pos += l }
            return .string(LuaString(bytes: Array(self.base[self.pos..<(self.pos + l)])))
        case .ATL_T_TABLE:
            return .table(try self.table())
        case .ATL_T_REF:
            let id = try self.reference(spanBase: 0)
            switch self.objects[id] {
            case .building:
                throw LuaValueCodecError(
                    "a table that contains itself (a cycle) cannot be held as a plain value; store its parts "
                        + "without the cycle")
            case .table(let t): return .table(t)
            case .function(let f): return .function(f)
            case .skippedTable, .skippedFunction:
                throw LuaValueCodecError(
                    "a table that is also an upvalue of a function in the same value cannot be held as a plain "
                        + "value; pass the function and the table apart")
            }
        case .ATL_T_FUNCTION, .ATL_T_NAMED:
            self.pos = start
            let myID = self.objects.count
            self.spanHandles = []
            try self.skip(spanBase: myID)
            let span = Array(self.base[start..<self.pos])
            let f = LuaFunction(span: span, handles: self.spanHandles)
            self.spanHandles = []
            if tag == .ATL_T_FUNCTION { self.objects[myID] = .function(f) }
            return .function(f)
        case .ATL_T_HANDLE:
            return .handle(try self.handle())
        case .ATL_T_END:
            throw self.corrupted("unexpected end of table", at: start)
        case nil:
            throw self.corrupted("unknown tag", at: start)
        }
    }

    mutating func table() throws -> LuaTable {
        try self.enter()
        defer { self.depth -= 1 }
        let id = self.objects.count
        self.objects.append(.building)
        var t = LuaTable()
        while true {
            try self.need(1, "table entry")
            if self.base[self.pos] == CodecTag.end {
                self.pos += 1
                break
            }
            let keyPos = self.pos
            let key = try self.value()
            if key.isNil { throw self.corrupted("nil table key", at: keyPos) }
            if case .number(let d) = key, d.isNaN { throw self.corrupted("NaN table key", at: keyPos) }
            let value = try self.value()
            t[key] = value
        }
        let metaPos = self.pos
        let metaTag = self.pos < self.base.count ? self.base[self.pos] : CodecTag.nil
        switch try self.value() {
        case .nil: break
        case .table(let meta): t.metatable = meta
        // a metatable that a module holds (an `atasker.Error`'s): Swift keeps the fields, not the metatable
        case .function where metaTag == CodecTag.named: break
        default: throw self.corrupted("metatable is not a table", at: metaPos)
        }
        self.objects[id] = .table(t)
        return t
    }

    mutating func handle() throws -> LuaHandle {
        try self.need(9, "handle")
        let kind = self.base[self.pos]
        self.pos += 1
        let bits = try self.u64("handle")
        guard shimHandleKind(Int(kind)) != nil, let pointer = UnsafeRawPointer(bitPattern: UInt(bits))
        else { throw self.corrupted("bad handle", at: self.pos - 9) }
        // The encoders retain one object per HANDLE tag, in the order of the tags: the k-th tag must name the
        // k-th object that the buffer holds.
        if let known = self.knownHandles {
            guard self.handleIndex < known.count, UnsafeRawPointer(known[self.handleIndex]) == pointer else {
                throw self.corrupted("a handle that the buffer does not hold", at: self.pos - 9)
            }
            self.handleIndex += 1
        }
        return LuaHandle(object: hostObject(pointer), kind: Int32(kind))
    }

    /// Reads a REF distance and returns the object id, which must be at least `spanBase`.
    mutating func reference(spanBase: Int) throws -> Int {
        let at = self.pos
        let dist = try self.varint("reference")
        guard dist >= 1, dist <= UInt64(self.objects.count) else {
            throw self.corrupted("reference to an unknown object", at: at)
        }
        let id = self.objects.count - Int(dist)
        if id < spanBase {
            throw LuaValueCodecError(
                "a function that refers to a table held elsewhere in the same value cannot be held as a plain "
                    + "value; pass the function and the table apart")
        }
        return id
    }

    /// Validates one value inside a function's span, without building it; references must stay at or
    /// after object `spanBase`.
    mutating func skip(spanBase: Int) throws {
        let start = self.pos
        switch CodecTag.tag(try self.byte("value")) {
        case .ATL_T_NIL, .ATL_T_FALSE, .ATL_T_TRUE: break
        case .ATL_T_INT: _ = try self.u64("integer")
        case .ATL_T_FLOAT: _ = try self.u64("float")
        case .ATL_T_STRING: self.pos += try self.length("string")
        case .ATL_T_TABLE:
            try self.enter()
            defer { self.depth -= 1 }
            self.objects.append(.skippedTable)
            while true {
                try self.need(1, "table entry")
                if self.base[self.pos] == CodecTag.end {
                    self.pos += 1
                    break
                }
                let keyPos = self.pos
                try self.skip(spanBase: spanBase)
                if self.base[keyPos] == CodecTag.nil { throw self.corrupted("nil table key", at: keyPos) }
                if self.base[keyPos] == CodecTag.float {
                    let bits = UnsafeRawBufferPointer(rebasing: self.base[(keyPos + 1)..<(keyPos + 9)])
                    var v: UInt64 = 0
                    for i in (0..<8).reversed() { v = (v << 8) | UInt64(bits[i]) }
                    if Double(bitPattern: v).isNaN { throw self.corrupted("NaN table key", at: keyPos) }
                }
                try self.skip(spanBase: spanBase)
            }
            let metaPos = self.pos
            try self.need(1, "metatable")
            let metaTag = self.base[self.pos]
            try self.skip(spanBase: spanBase)
            if metaTag != CodecTag.nil && metaTag != CodecTag.table && metaTag != CodecTag.ref
                && metaTag != CodecTag.named
            {
                throw self.corrupted("metatable is not a table", at: metaPos)
            }
        case .ATL_T_REF:
            _ = try self.reference(spanBase: spanBase)
        case .ATL_T_FUNCTION:
            if self.plainOnly { throw self.corrupted("a function where only plain values are accepted", at: start) }
            try self.skipFunction(spanBase: spanBase)
        case .ATL_T_NAMED:
            let lmod = try self.length("module name")
            let mod = self.pos
            self.pos += lmod
            let lfield = try self.length("field name")
            let field = self.pos
            self.pos += lfield
            if lmod == 0 || self.base[mod..<(mod + lmod)].contains(0) || self.base[field..<(field + lfield)].contains(0)
            {
                throw self.corrupted("bad module name")
            }
        case .ATL_T_HANDLE:
            self.spanHandles.append(try self.handle().object)
        case .ATL_T_END:
            throw self.corrupted("unexpected end of table", at: start)
        case nil:
            throw self.corrupted("unknown tag", at: start)
        }
    }

    mutating func skipFunction(spanBase: Int) throws {
        try self.enter()
        defer { self.depth -= 1 }
        let len = try self.length("function bytecode")
        let code = self.pos
        self.pos += len
        let sum = try self.u64("function checksum")
        if sum != codecChecksum(UnsafeRawBufferPointer(rebasing: self.base[code..<(code + len)])) {
            throw self.corrupted("function bytecode fails its checksum", at: code)
        }
        let myID = self.objects.count
        self.objects.append(.skippedFunction(upvalues: 0))
        let nupsAt = self.pos
        let nups = try self.varint("upvalue count")
        guard nups <= CodecTag.maxUpvalues else {
            throw self.corrupted("upvalue count does not match the function", at: nupsAt)
        }
        self.objects[myID] = .skippedFunction(upvalues: Int(nups))
        for index in 0..<Int(nups) {
            let i = index + 1
            let kindAt = self.pos
            switch CodecTag.upvalueKind(try self.byte("upvalue")) {
            case .ATL_UP_VALUE:
                try self.skip(spanBase: spanBase)
            case .ATL_UP_SHARED, .ATL_UP_SHAREDFWD:
                // SHARED: a function before this one; SHAREDFWD: one after it, nested in an earlier upvalue of
                // this one
                let forward = CodecTag.upvalueKind(self.base[kindAt]) == .ATL_UP_SHAREDFWD
                let dist = try self.varint("upvalue reference")
                let n = try self.varint("upvalue index")
                let known = forward ? dist > 0 && dist < UInt64(self.objects.count - myID) : dist <= UInt64(myID)
                guard known else {
                    throw self.corrupted("shared upvalue of an unknown function", at: kindAt)
                }
                let id = forward ? myID + Int(dist) : myID - Int(dist)
                if id < spanBase {
                    throw LuaValueCodecError(
                        "a function that shares an upvalue with another function of the same value cannot be held "
                            + "as a plain value; pass the functions apart")
                }
                guard case .skippedFunction(let count) = self.objects[id] else {
                    throw self.corrupted("shared upvalue of something not a function", at: kindAt)
                }
                if n < 1 || n > UInt64(count) || (dist == 0 && n >= UInt64(i)) {
                    throw self.corrupted("bad shared upvalue index", at: kindAt)
                }
            case nil:
                throw self.corrupted("bad upvalue kind", at: kindAt)
            }
        }
    }
}
