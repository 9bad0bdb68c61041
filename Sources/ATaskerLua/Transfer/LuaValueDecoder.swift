/// Decodes a Swift `Decodable` value from a ``LuaValue``: what a Lua task returned, an item a Lua queue worker got,
/// the arguments of a host function.
///
/// A table decodes as a struct or a dictionary (string keys; integer keys for a dictionary keyed by `Int`) or, by
/// its sequence `{1, 2, ...}`, as an array; a float with an integer value decodes as an integer, an integer as a
/// float. A missing key decodes as `nil` for an optional. A value of the wrong type, or a number that does not fit,
/// is a `DecodingError` naming its coding path.
///
/// ```swift
/// struct Job: Codable { var id: Int; var tags: [String] }
/// let job = try LuaValueDecoder().decode(Job.self, from: value)
/// ```
public struct LuaValueDecoder: Sendable {
    /// A new decoder.
    public init() {}

    /// Decodes a `T` from `value`.
    public func decode<T: Decodable>(_ type: T.Type, from value: LuaValue) throws -> T {
        try decodeValue(type, from: value, at: [])
    }
}

private func mismatch(_ type: Any.Type, _ value: LuaValue, _ path: [any CodingKey]) -> DecodingError {
    DecodingError.typeMismatch(
        type, .init(codingPath: path, debugDescription: "expected \(type), found a Lua \(value.typeName)"))
}

/// Decodes a scalar directly, anything else through its `init(from:)`.
private func decodeValue<T: Decodable>(_ type: T.Type, from value: LuaValue, at path: [any CodingKey]) throws -> T {
    if let scalar = try decodeScalar(type, from: value, at: path) { return scalar }
    return try T(from: ValueDecoder(value: value, codingPath: path))
}

private func decodeScalar<T>(_ type: T.Type, from value: LuaValue, at path: [any CodingKey]) throws -> T? {
    func integer<I: FixedWidthInteger>(_: I.Type) throws -> I {
        guard let i = value.intValue else { throw mismatch(I.self, value, path) }
        guard let exact = I(exactly: i) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: path, debugDescription: "\(i) does not fit in \(I.self)"))
        }
        return exact
    }
    switch type {
    case is Bool.Type:
        guard case .boolean(let b) = value else { throw mismatch(Bool.self, value, path) }
        return b as? T
    case is String.Type:
        guard case .string(let s) = value else { throw mismatch(String.self, value, path) }
        return s.string as? T
    case is Double.Type:
        guard let d = value.doubleValue else { throw mismatch(Double.self, value, path) }
        return d as? T
    case is Float.Type:
        guard let d = value.doubleValue else { throw mismatch(Float.self, value, path) }
        return Float(d) as? T
    case is Int.Type: return try integer(Int.self) as? T
    case is Int8.Type: return try integer(Int8.self) as? T
    case is Int16.Type: return try integer(Int16.self) as? T
    case is Int32.Type: return try integer(Int32.self) as? T
    case is Int64.Type: return try integer(Int64.self) as? T
    case is UInt.Type: return try integer(UInt.self) as? T
    case is UInt8.Type: return try integer(UInt8.self) as? T
    case is UInt16.Type: return try integer(UInt16.self) as? T
    case is UInt32.Type: return try integer(UInt32.self) as? T
    case is UInt64.Type: return try integer(UInt64.self) as? T
    default: return nil
    }
}

private struct ValueDecoder: Decoder {
    let value: LuaValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func table(_ type: Any.Type) throws -> LuaTable {
        guard let table = self.value.tableValue else { throw mismatch(type, self.value, self.codingPath) }
        return table
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(
            KeyedContainer<Key>(table: try self.table([String: LuaValue].self), codingPath: self.codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        UnkeyedContainer(items: try self.table([LuaValue].self).array, codingPath: self.codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleContainer(value: self.value, codingPath: self.codingPath)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let table: LuaTable
    let codingPath: [any CodingKey]

    var allKeys: [Key] {
        self.table.entries.keys.compactMap { key in
            switch key {
            case .string(let s): return Key(stringValue: s.string)
            case .integer(let i): return Int(exactly: i).flatMap { Key(intValue: $0) }
            default: return nil
            }
        }
    }

    private func value(_ key: Key) -> LuaValue {
        if let i = key.intValue {
            let value = self.table[.integer(Int64(i))]
            if !value.isNil { return value }
        }
        return self.table[key.stringValue]
    }

    func contains(_ key: Key) -> Bool { !self.value(key).isNil }

    func decodeNil(forKey key: Key) throws -> Bool { self.value(key).isNil }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let value = self.value(key)
        if value.isNil {
            throw DecodingError.keyNotFound(
                key, .init(codingPath: self.codingPath, debugDescription: "no key '\(key.stringValue)' in the table"))
        }
        return try decodeValue(type, from: value, at: self.codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try ValueDecoder(value: self.value(key), codingPath: self.codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ValueDecoder(value: self.value(key), codingPath: self.codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        ValueDecoder(value: self.table["super"], codingPath: self.codingPath)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        ValueDecoder(value: self.value(key), codingPath: self.codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let items: [LuaValue]
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0

    init(items: [LuaValue], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { self.items.count }
    var isAtEnd: Bool { self.currentIndex >= self.items.count }

    private mutating func next(_ type: Any.Type) throws -> (LuaValue, [any CodingKey]) {
        let path = self.codingPath + [LuaCodingKey(intValue: self.currentIndex)]
        guard !self.isAtEnd else {
            throw DecodingError.valueNotFound(
                type, .init(codingPath: path, debugDescription: "the sequence has \(self.items.count) items"))
        }
        defer { self.currentIndex += 1 }
        return (self.items[self.currentIndex], path)
    }

    mutating func decodeNil() throws -> Bool { false }  // a sequence holds no nil

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (value, path) = try self.next(type)
        return try decodeValue(type, from: value, at: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        let (value, path) = try self.next(LuaTable.self)
        return try ValueDecoder(value: value, codingPath: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (value, path) = try self.next(LuaTable.self)
        return try ValueDecoder(value: value, codingPath: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let (value, path) = try self.next(LuaValue.self)
        return ValueDecoder(value: value, codingPath: path)
    }
}

private struct SingleContainer: SingleValueDecodingContainer {
    let value: LuaValue
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { self.value.isNil }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try decodeValue(type, from: self.value, at: self.codingPath)
    }
}
