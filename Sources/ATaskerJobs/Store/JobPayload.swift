public import ATaskerLua

/// The format of jobs' values and results in a store: plain data only — nil, booleans, integers and floats (kept
/// apart), binary strings and tables of them (no metatables, no functions, no handles) — so no code ever comes out
/// of a database. It is versioned on its own (its first byte), apart from the in-process codec, since a store
/// outlives the binary that wrote it.
public enum JobPayload {
    static let version: UInt8 = 1
    /// Values nested deeper are refused both ways (as the in-process codec does).
    public static let maxDepth = 100

    private enum Tag: UInt8 {
        case `nil` = 0, `false` = 1, `true` = 2, integer = 3, float = 4, string = 5, table = 6
    }

    /// The bytes of `value`.
    /// - Parameter what: How the error names the value (`"the job's value"`).
    /// - Throws: ``JobStoreError`` naming the path of a value that is not plain data.
    public static func encode(_ value: LuaValue, what: String = "the value") throws -> [UInt8] {
        var out: [UInt8] = [Self.version]
        try Self.write(value, into: &out, path: what, depth: 0)
        return out
    }

    private static func write(_ value: LuaValue, into out: inout [UInt8], path: String, depth: Int) throws {
        guard depth <= Self.maxDepth else {
            throw JobStoreError("\(path) is nested deeper than \(Self.maxDepth) levels")
        }
        switch value {
        case .nil: out.append(Tag.nil.rawValue)
        case .boolean(let b): out.append(b ? Tag.true.rawValue : Tag.false.rawValue)
        case .integer(let i):
            out.append(Tag.integer.rawValue)
            Self.append64(UInt64(bitPattern: i), &out)
        case .number(let d):
            out.append(Tag.float.rawValue)
            Self.append64(d.bitPattern, &out)
        case .string(let s):
            out.append(Tag.string.rawValue)
            Self.appendVarint(UInt64(s.bytes.count), &out)
            out.append(contentsOf: s.bytes)
        case .table(let t):
            if t.metatable != nil {
                throw JobStoreError(
                    "\(path) has a metatable: a job carries plain data (copy the fields into a plain table)")
            }
            out.append(Tag.table.rawValue)
            Self.appendVarint(UInt64(t.entries.count), &out)
            // Sorted, so one value always gives the same bytes.
            for (key, item) in t.entries.sorted(by: { Self.order($0.key, $1.key) }) {
                let name = Self.keyPath(path, key)
                try Self.write(key, into: &out, path: "a key of \(path)", depth: depth + 1)
                try Self.write(item, into: &out, path: name, depth: depth + 1)
            }
        case .function:
            throw JobStoreError(
                "\(path) is a function: jobs are data, never code (name the work by the worker that runs it)")
        case .handle(let h):
            throw JobStoreError(
                "\(path) is a handle (\(h.description)): jobs are data that another host can read; pass an id")
        }
    }

    private static func keyPath(_ path: String, _ key: LuaValue) -> String {
        switch key {
        case .string(let s): return "\(path).\(s.string)"
        default: return "\(path)[\(key)]"
        }
    }

    private static func order(_ a: LuaValue, _ b: LuaValue) -> Bool {
        func rank(_ v: LuaValue) -> Int {
            switch v {
            case .boolean: return 0
            case .integer, .number: return 1
            case .string: return 2
            default: return 3
            }
        }
        let (ra, rb) = (rank(a), rank(b))
        if ra != rb { return ra < rb }
        switch (a, b) {
        case (.boolean(let x), .boolean(let y)): return !x && y
        case (.string(let x), .string(let y)): return x.bytes.lexicographicallyPrecedes(y.bytes)
        default:
            let (x, y) = (a.doubleValue ?? 0, b.doubleValue ?? 0)
            if x != y { return x < y }
            return a.description < b.description
        }
    }

    private static func append64(_ v: UInt64, _ out: inout [UInt8]) {
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    private static func appendVarint(_ v: UInt64, _ out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// The value of `bytes`.
    /// - Throws: ``JobStoreError`` saying what is wrong and at which byte (the bytes are never trusted).
    public static func decode(_ bytes: [UInt8]) throws -> LuaValue {
        var reader = Reader(bytes: bytes)
        guard let first = bytes.first else { throw JobStoreError("the stored value is empty") }
        guard first == Self.version else {
            throw JobStoreError("the stored value has format \(first); this build reads format \(Self.version)")
        }
        reader.at = 1
        let value = try reader.value(depth: 0)
        guard reader.at == bytes.count else {
            throw JobStoreError("the stored value has \(bytes.count - reader.at) bytes after its end")
        }
        return value
    }

    private struct Reader {
        let bytes: [UInt8]
        var at = 0

        mutating func byte() throws -> UInt8 {
            guard self.at < self.bytes.count else { throw JobStoreError("the stored value is cut short") }
            defer { self.at += 1 }
            return self.bytes[self.at]
        }

        mutating func u64() throws -> UInt64 {
            guard self.bytes.count - self.at >= 8 else { throw JobStoreError("the stored value is cut short") }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(self.bytes[self.at + i]) << (8 * UInt64(i)) }
            self.at += 8
            return v
        }

        mutating func varint() throws -> UInt64 {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = try self.byte()
                guard shift < 64 else { throw JobStoreError("a length at byte \(self.at - 1) is too long") }
                v |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return v }
                shift += 7
            }
        }

        mutating func value(depth: Int) throws -> LuaValue {
            guard depth <= JobPayload.maxDepth else {
                throw JobStoreError("the stored value is nested deeper than \(JobPayload.maxDepth) levels")
            }
            let position = self.at
            guard let tag = Tag(rawValue: try self.byte()) else {
                throw JobStoreError("the stored value has an unknown tag \(self.bytes[position]) at byte \(position)")
            }
            switch tag {
            case .nil: return .nil
            case .false: return .boolean(false)
            case .true: return .boolean(true)
            case .integer: return .integer(Int64(bitPattern: try self.u64()))
            case .float: return .number(Double(bitPattern: try self.u64()))
            case .string:
                let n = try self.varint()
                guard n <= UInt64(self.bytes.count - self.at) else {
                    throw JobStoreError("a string at byte \(position) is longer than the stored value")
                }
                let s = Array(self.bytes[self.at..<self.at + Int(n)])
                self.at += Int(n)
                return .string(LuaString(bytes: s))
            case .table:
                let n = try self.varint()
                // Each entry takes at least two bytes: a count beyond that is a lie.
                guard n <= UInt64(self.bytes.count - self.at) / 2 else {
                    throw JobStoreError("a table at byte \(position) claims more entries than the value holds")
                }
                var table = LuaTable()
                for _ in 0..<n {
                    let keyAt = self.at
                    let key = try self.value(depth: depth + 1)
                    let item = try self.value(depth: depth + 1)
                    switch key {
                    case .nil: throw JobStoreError("a table key at byte \(keyAt) is nil")
                    case .number(let d) where d.isNaN: throw JobStoreError("a table key at byte \(keyAt) is NaN")
                    default: break
                    }
                    if item.isNil { throw JobStoreError("a table value at byte \(self.at) is nil") }
                    table[key] = item
                }
                return .table(table)
            }
        }
    }
}
