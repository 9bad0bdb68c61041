/// A Lua value that can be copied between Lua states, the host and other processes.
///
/// `LuaValue` mirrors what the codec copies: nil, booleans, integers and floats (kept apart, as
/// `math.type` does), binary-safe strings, tables (with their metatable), and two opaque cases — Lua
/// functions, which travel as their encoded bytecode, and handles of host objects. A `LuaValue` is a
/// tree: a table that refers to itself cannot be represented, and a table shared by two parents is
/// copied into both.
///
/// ```swift
/// let job: LuaValue = ["id": 7, "tags": ["a", "b"], "ratio": 0.5]
/// let id = job.tableValue?["id"].intValue  // 7
/// ```
public enum LuaValue: Sendable, Hashable {
    /// `nil`.
    case `nil`
    /// `true` or `false`.
    case boolean(Bool)
    /// An integer (`math.type(v) == "integer"`).
    case integer(Int64)
    /// A float (`math.type(v) == "float"`).
    case number(Double)
    /// A byte string.
    case string(LuaString)
    /// A table, copied by value.
    case table(LuaTable)
    /// A Lua function (or a module value that travels by name), opaque to Swift.
    case function(LuaFunction)
    /// A handle of a host object (a worker, a task, a shared table, ...).
    case handle(LuaHandle)

    /// Whether the value is `nil`.
    public var isNil: Bool {
        if case .nil = self { return true }
        return false
    }

    /// The value's truth in Lua: false only for `nil` and `false`.
    public var boolValue: Bool {
        switch self {
        case .nil: return false
        case .boolean(let b): return b
        default: return true
        }
    }

    /// The integer, or a float with an exact integer value; otherwise nil.
    public var intValue: Int64? {
        switch self {
        case .integer(let i): return i
        case .number(let d): return LuaValue.exactInteger(d)
        default: return nil
        }
    }

    /// The number as a `Double` (integers convert); otherwise nil.
    public var doubleValue: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .number(let d): return d
        default: return nil
        }
    }

    /// The string decoded as UTF-8 (invalid bytes are replaced); nil for other values.
    public var stringValue: String? {
        if case .string(let s) = self { return s.string }
        return nil
    }

    /// The table; nil for other values.
    public var tableValue: LuaTable? {
        if case .table(let t) = self { return t }
        return nil
    }

    /// `d` as an `Int64` when it is integral and in range, as Lua converts float keys.
    static func exactInteger(_ d: Double) -> Int64? {
        // -2^63 is exact; 2^63 is the first value out of range.
        guard d.rounded(.towardZero) == d, d >= -9_223_372_036_854_775_808.0, d < 9_223_372_036_854_775_808.0
        else { return nil }
        return Int64(d)
    }

    /// The value used as a table key: integral floats become integers, as in Lua.
    var normalizedKey: LuaValue {
        if case .number(let d) = self, let i = LuaValue.exactInteger(d) { return .integer(i) }
        return self
    }
}

extension LuaValue: ExpressibleByNilLiteral {
    /// `nil`.
    public init(nilLiteral: ()) { self = .nil }
}

extension LuaValue: ExpressibleByBooleanLiteral {
    /// A boolean.
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
}

extension LuaValue: ExpressibleByIntegerLiteral {
    /// An integer.
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

extension LuaValue: ExpressibleByFloatLiteral {
    /// A float.
    public init(floatLiteral value: Double) { self = .number(value) }
}

extension LuaValue: ExpressibleByStringLiteral {
    /// A string.
    public init(stringLiteral value: String) { self = .string(LuaString(value)) }
}

extension LuaValue: ExpressibleByArrayLiteral {
    /// A table with the elements at keys 1...n.
    public init(arrayLiteral elements: LuaValue...) { self = .table(LuaTable(array: elements)) }
}

extension LuaValue: ExpressibleByDictionaryLiteral {
    /// A table with these keys and values (`nil` keys and values are skipped, as Lua skips them).
    public init(dictionaryLiteral elements: (LuaValue, LuaValue)...) {
        var table = LuaTable()
        for (key, value) in elements { table[key] = value }
        self = .table(table)
    }
}

extension LuaValue: CustomStringConvertible {
    /// A Lua-like rendering: `nil`, `true`, `42`, `2.5`, `"text"`, `{1, 2, x = 3}`.
    public var description: String {
        switch self {
        case .nil: return "nil"
        case .boolean(let b): return b ? "true" : "false"
        case .integer(let i): return String(i)
        case .number(let d):
            if d.isNaN { return d.sign == .minus ? "-nan" : "nan" }
            if d.isInfinite { return d < 0 ? "-inf" : "inf" }
            if let i = LuaValue.exactInteger(d) { return "\(i).0" }
            return String(d)
        case .string(let s): return "\"\(s.string)\""
        case .table(let t): return t.description
        case .function(let f): return f.description
        case .handle(let h): return h.description
        }
    }
}

/// A Lua string: bytes, not necessarily UTF-8.
public struct LuaString: Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The bytes of the string.
    public var bytes: [UInt8]

    /// The UTF-8 bytes of `s`.
    public init(_ s: String) { self.bytes = Array(s.utf8) }

    /// The given bytes (any values, including zero bytes).
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// A string literal, as UTF-8.
    public init(stringLiteral value: String) { self.init(value) }

    /// The bytes decoded as UTF-8; invalid sequences become U+FFFD.
    public var string: String { String(decoding: self.bytes, as: UTF8.self) }

    /// The same as ``string``.
    public var description: String { self.string }
}

/// A Lua table: keys and values, and an optional metatable.
///
/// Keys follow Lua's rules: an integral float key becomes an integer key (`t[2.0]` is `t[2]`),
/// and setting a key to `nil` removes it.
public struct LuaTable: Sendable, Hashable, CustomStringConvertible {
    /// The entries; no value is `nil`.
    public var entries: [LuaValue: LuaValue]
    // An array gives the indirection that a recursive stored property needs.
    private var metatableStorage: [LuaTable]

    /// The metatable, copied with the table (so objects keep their methods).
    public var metatable: LuaTable? {
        get { self.metatableStorage.first }
        set { self.metatableStorage = newValue.map { [$0] } ?? [] }
    }

    /// An empty table.
    public init() {
        self.entries = [:]
        self.metatableStorage = []
    }

    /// A sequence: `array[0]` at key 1, and so on.
    public init(array: [LuaValue]) {
        self.init()
        for (i, value) in array.enumerated() where !value.isNil {
            self.entries[.integer(Int64(i + 1))] = value
        }
    }

    /// A table with string keys.
    public init(_ dict: [String: LuaValue]) {
        self.init()
        for (key, value) in dict where !value.isNil {
            self.entries[.string(LuaString(key))] = value
        }
    }

    /// The value at `key`, `nil` when absent. Setting `nil` removes the key; a `nil` or NaN key is
    /// ignored when setting (Lua raises there) and gives `nil` when reading.
    public subscript(key: LuaValue) -> LuaValue {
        get { self.entries[key.normalizedKey] ?? .nil }
        set {
            let key = key.normalizedKey
            if key.isNil { return }
            if case .number(let d) = key, d.isNaN { return }
            // (`nil` here would be `LuaValue.nil`, through ExpressibleByNilLiteral: remove explicitly.)
            if newValue.isNil {
                self.entries.removeValue(forKey: key)
            } else {
                self.entries[key] = newValue
            }
        }
    }

    /// The value at a string key.
    public subscript(key: String) -> LuaValue {
        get { self[.string(LuaString(key))] }
        set { self[.string(LuaString(key))] = newValue }
    }

    /// The sequence at keys 1, 2, ... up to the first missing key.
    public var array: [LuaValue] {
        var result: [LuaValue] = []
        var i: Int64 = 1
        while let value = self.entries[.integer(i)] {
            result.append(value)
            i += 1
        }
        return result
    }

    /// A Lua-like rendering: the sequence first, then the other keys.
    public var description: String {
        let seq = self.array
        var parts = seq.map(\.description)
        let rest = self.entries.filter { key, _ in
            if case .integer(let i) = key, i >= 1, i <= Int64(seq.count) { return false }
            return true
        }
        var others: [String] = []
        for (key, value) in rest {
            if case .string(let s) = key, LuaTable.isIdentifier(s.bytes) {
                others.append("\(s.string) = \(value)")
            } else {
                others.append("[\(key)] = \(value)")
            }
        }
        parts += others.sorted()
        return "{" + parts.joined(separator: ", ") + "}"
    }

    private static func isIdentifier(_ b: [UInt8]) -> Bool {
        func letter(_ c: UInt8) -> Bool { c == 95 || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
        guard let first = b.first, letter(first) else { return false }
        return b.allSatisfy { letter($0) || ($0 >= 48 && $0 <= 57) }
    }
}

/// A Lua function as it travels between states: opaque to Swift.
///
/// It holds the encoded bytes of one function value — its bytecode (with debug information), the
/// values of its upvalues and what they refer to — and keeps alive the host objects that those
/// bytes name. It may also stand for a value that travels by name, such as `table.insert`. Two
/// `LuaFunction`s are equal when their bytes are equal.
public final class LuaFunction: Sendable, Hashable, CustomStringConvertible {
    /// The encoded span: one value, self-contained (its references point inside it).
    let span: [UInt8]
    /// Host objects named by `span`, kept alive with it.
    let handles: [any AnyObject & Sendable]

    init(span: [UInt8], handles: [any AnyObject & Sendable]) {
        self.span = span
        self.handles = handles
    }

    public static func == (lhs: LuaFunction, rhs: LuaFunction) -> Bool {
        lhs === rhs || lhs.span == rhs.span
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.span)
    }

    /// `function: <N bytes>`.
    public var description: String { "function: <\(self.span.count) bytes>" }
}

/// A handle of a host object (a worker, a task, a shared table, a lock, ...), copied by reference.
///
/// The handle keeps its object alive. Two handles are equal when they name the same object.
public final class LuaHandle: Sendable, Hashable, CustomStringConvertible {
    /// The host object.
    public let object: any AnyObject & Sendable
    /// The kind of handle (one of the shim's `ATL_H_*` values).
    public let kind: Int32

    /// A handle of `object`, of the given kind.
    public init(object: any AnyObject & Sendable, kind: Int32) {
        self.object = object
        self.kind = kind
    }

    public static func == (lhs: LuaHandle, rhs: LuaHandle) -> Bool {
        lhs.object === rhs.object && lhs.kind == rhs.kind
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(self.object))
        hasher.combine(self.kind)
    }

    /// `handle: <kind>`.
    public var description: String { "handle: \(self.kind) \(type(of: self.object))" }
}

/// An error of the value codec: a value that cannot be represented, or a malformed buffer.
public struct LuaValueCodecError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, and where (`at byte N`).
    public var message: String

    /// An error with this message.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { self.message }
}
