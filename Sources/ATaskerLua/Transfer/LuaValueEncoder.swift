/// Encodes a Swift `Encodable` value as a ``LuaValue``, so an app passes its own structs to Lua (`put`, a host
/// function's result, `run(string:)`'s arguments).
///
/// A struct or dictionary with string keys becomes a table with those keys, an array a sequence `{1, 2, ...}`,
/// integers Lua integers, floating-point numbers Lua floats, strings and booleans themselves. An optional that is
/// `nil` is left out of its table (Lua tables hold no `nil`). An integer outside Lua's 64-bit range, or a key that
/// is not a string or an integer, is an `EncodingError`.
///
/// ```swift
/// struct Job: Codable { var id: Int; var tags: [String] }
/// let value = try LuaValueEncoder().encode(Job(id: 7, tags: ["a"]))   // {id = 7, tags = {"a"}}
/// ```
public struct LuaValueEncoder: Sendable {
    /// A new encoder.
    public init() {}

    /// The Lua form of `value`.
    public func encode(_ value: some Encodable) throws -> LuaValue {
        try encodeNode(value, at: []).value
    }
}

/// A value being built: a scalar, or a table whose fields are nodes of their own, filled in any order by nested
/// containers and turned into a ``LuaValue`` at the end.
private final class Node {
    var scalar: LuaValue = .nil
    var isTable = false
    var fields: [(key: LuaValue, node: Node)] = []
    var sequenceCount = 0

    init() {}

    init(_ scalar: LuaValue) {
        self.scalar = scalar
    }

    func becomeTable() {
        self.isTable = true
    }

    func add(_ node: Node, at key: LuaValue) {
        self.fields.append((key, node))
    }

    /// The next key of a sequence: 1, 2, ...
    func nextIndex() -> LuaValue {
        self.sequenceCount += 1
        return .integer(Int64(self.sequenceCount))
    }

    var value: LuaValue {
        guard self.isTable else { return self.scalar }
        var table = LuaTable()
        for (key, node) in self.fields {
            table[key] = node.value
        }
        return .table(table)
    }
}

/// A coding key of a sequence's position or a table's key, for the coding paths of ``LuaValueEncoder`` and
/// ``LuaValueDecoder``.
struct LuaCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

private struct ValueEncoder: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    let node: Node

    init(codingPath: [any CodingKey], node: Node = Node()) {
        self.codingPath = codingPath
        self.node = node
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        self.node.becomeTable()
        return KeyedEncodingContainer(KeyedContainer<Key>(codingPath: self.codingPath, node: self.node))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        self.node.becomeTable()
        return UnkeyedContainer(codingPath: self.codingPath, node: self.node)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleContainer(codingPath: self.codingPath, node: self.node)
    }
}

/// The node of `value` at `path`: a scalar, or what the value's own `encode(to:)` builds.
private func encodeNode(_ value: some Encodable, at path: [any CodingKey]) throws -> Node {
    if let scalar = try scalarValue(value, path: path) { return Node(scalar) }
    let encoder = ValueEncoder(codingPath: path)
    try value.encode(to: encoder)
    return encoder.node
}

/// The Lua value of a scalar, or `nil` when `value` is not one.
private func scalarValue(_ value: some Encodable, path: [any CodingKey]) throws -> LuaValue? {
    func integer(_ v: some BinaryInteger) throws -> LuaValue {
        guard let i = Int64(exactly: v) else {
            throw EncodingError.invalidValue(
                v, .init(codingPath: path, debugDescription: "\(v) is out of the range of a Lua integer"))
        }
        return .integer(i)
    }
    switch value {
    case let v as Bool: return .boolean(v)
    case let v as String: return .string(LuaString(v))
    case let v as Double: return .number(v)
    case let v as Float: return .number(Double(v))
    case let v as Int: return .integer(Int64(v))
    case let v as Int8: return .integer(Int64(v))
    case let v as Int16: return .integer(Int64(v))
    case let v as Int32: return .integer(Int64(v))
    case let v as Int64: return .integer(v)
    case let v as UInt8: return .integer(Int64(v))
    case let v as UInt16: return .integer(Int64(v))
    case let v as UInt32: return .integer(Int64(v))
    case let v as UInt: return try integer(v)
    case let v as UInt64: return try integer(v)
    default: return nil
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let codingPath: [any CodingKey]
    let node: Node

    /// A key's Lua form: its integer when it has one (dictionaries keyed by Int), else its string.
    private func luaKey(_ key: Key) -> LuaValue {
        key.intValue.map { .integer(Int64($0)) } ?? .string(LuaString(key.stringValue))
    }

    mutating func encodeNil(forKey key: Key) throws {}

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        self.node.add(try encodeNode(value, at: self.codingPath + [key]), at: self.luaKey(key))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        ValueEncoder(codingPath: self.codingPath + [key], node: self.child(key)).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        ValueEncoder(codingPath: self.codingPath + [key], node: self.child(key)).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        ValueEncoder(codingPath: self.codingPath, node: self.child(LuaCodingKey(stringValue: "super")))
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        ValueEncoder(codingPath: self.codingPath + [key], node: self.child(key))
    }

    private func child(_ key: any CodingKey) -> Node {
        let child = Node()
        self.node.add(child, at: key.intValue.map { .integer(Int64($0)) } ?? .string(LuaString(key.stringValue)))
        return child
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let codingPath: [any CodingKey]
    let node: Node
    var count: Int { self.node.sequenceCount }

    private var nextPath: [any CodingKey] { self.codingPath + [LuaCodingKey(intValue: self.count)] }

    mutating func encodeNil() throws {
        // A hole would end the sequence: Lua's sequences hold no nil.
        throw EncodingError.invalidValue(
            Any?.none as Any, .init(codingPath: self.nextPath, debugDescription: "a Lua sequence cannot hold nil"))
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let child = try encodeNode(value, at: self.nextPath)
        if !child.isTable && child.scalar.isNil {
            try self.encodeNil()  // an optional that is nil
        }
        self.node.add(child, at: self.node.nextIndex())
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
        -> KeyedEncodingContainer<NestedKey>
    {
        ValueEncoder(codingPath: self.nextPath, node: self.child()).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        ValueEncoder(codingPath: self.nextPath, node: self.child()).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        ValueEncoder(codingPath: self.nextPath, node: self.child())
    }

    private func child() -> Node {
        let child = Node()
        self.node.add(child, at: self.node.nextIndex())
        return child
    }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let codingPath: [any CodingKey]
    let node: Node

    mutating func encodeNil() throws { self.node.scalar = .nil }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let encoded = try encodeNode(value, at: self.codingPath)
        self.node.scalar = encoded.scalar
        self.node.isTable = encoded.isTable
        self.node.fields = encoded.fields
        self.node.sequenceCount = encoded.sequenceCount
    }
}
