import Testing

@testable import ATaskerLua

/// Host object used for handle tests.
private final class Probe: Sendable {}

private func roundTrip(_ values: [LuaValue]) throws -> [LuaValue] {
    let encoded = try LuaValue.encodeAll(values)
    return try encoded.bytes.withUnsafeBytes { try LuaValue.decodeAll($0) }
}

/// Decodes untrusted bytes: no handle may be dereferenced.
private func decode(_ bytes: [UInt8]) throws -> [LuaValue] {
    let none: [UnsafeMutableRawPointer?] = []
    return try bytes.withUnsafeBytes { raw in
        try none.withUnsafeBufferPointer { try LuaValue.decodeAll(raw, knownHandles: $0) }
    }
}

/// `LuaValue` and the Swift side of the codec, without Lua.
@Suite("LuaValue codec (Swift side)")
struct CodecTests {
    @Test("every case survives a round trip")
    func everyCase() throws {
        let probe = Probe()
        let handle = LuaHandle(object: probe, kind: 2)
        var meta = LuaTable()
        meta["__name"] = "Point"
        var point = LuaTable(["x": 1, "y": 2.5])
        point.metatable = meta
        let values: [LuaValue] = [
            .nil, true, false, 0, 42, -7, .integer(.min), .integer(.max), 2.5, -0.0, .number(.infinity),
            "hello", .string(LuaString(bytes: [0, 1, 255, 0])), [1, 2, 3], ["a": [1, ["b": "c"]], "n": .nil],
            .table(point), .handle(handle),
        ]
        let back = try roundTrip(values)
        #expect(back.count == values.count)
        // `n = nil` is not stored in a table, so compare with what the table holds.
        #expect(back == values)
        #expect(back[15].tableValue?.metatable?["__name"] == "Point")
        guard case .handle(let h) = back[16] else {
            Issue.record("expected a handle")
            return
        }
        #expect(h.object === probe && h.kind == 2)
        let encoded = try LuaValue.encodeAll([.handle(handle)])
        #expect(encoded.handles.count == 1 && encoded.handles[0] === probe)
    }

    @Test("NaN survives; integers and floats stay apart")
    func numbers() throws {
        let back = try roundTrip([.number(.nan), 3, 3.0, .number(-0.0)])
        #expect(back[0].doubleValue?.isNaN == true)
        #expect(back[1] == .integer(3) && back[2] == .number(3.0) && back[1] != back[2])
        #expect(back[3].doubleValue?.sign == .minus)
        #expect(LuaValue.number(3.0).intValue == 3 && LuaValue.number(3.5).intValue == nil)
        #expect(LuaValue.integer(4).doubleValue == 4.0)
    }

    @Test("table keys follow Lua: integral floats become integers, nil removes")
    func keys() throws {
        var t = LuaTable()
        t[.number(2.0)] = "two"
        t[1] = "one"
        t[.number(2.5)] = "x"
        #expect(t[2] == "two" && t.entries[.integer(2)] == "two")
        #expect(t.array == ["one", "two"])
        t[1] = .nil
        #expect(t.array.isEmpty && t.entries.count == 2)
        t[.nil] = 1
        t[.number(.nan)] = 1
        #expect(t.entries.count == 2)
        let literal: LuaValue = [1, 2, 3]
        #expect(literal.tableValue?.array == [1, 2, 3])
    }

    @Test("accessors and descriptions")
    func accessors() {
        #expect(LuaValue.nil.isNil && !LuaValue.nil.boolValue && !LuaValue.boolean(false).boolValue)
        #expect(LuaValue.integer(0).boolValue && LuaValue.string("").boolValue)
        #expect(LuaValue.string("é").stringValue == "é")
        #expect(LuaString(bytes: [0xff]).string == "\u{FFFD}")
        #expect(LuaValue.integer(1).description == "1" && LuaValue.number(1).description == "1.0")
        let t: LuaValue = [1, "a"]
        #expect(t.description == "{1, \"a\"}")
        let d: LuaValue = ["x": 1]
        #expect(d.description == "{x = 1}")
    }

    @Test("nested and mixed tables; a shared table is copied to both places")
    func nested() throws {
        let inner: LuaValue = ["k": "v"]
        let outer: LuaValue = [.integer(1): inner, "again": inner, .boolean(true): [1.5, [2, [3]]]]
        let back = try roundTrip([outer])
        #expect(back == [outer])
    }

    @Test("tables nested deeper than 100 levels are refused")
    func depth() throws {
        func nest(_ n: Int) -> LuaValue {
            var v: LuaValue = [1]
            for _ in 1..<n { v = [v] }
            return v
        }
        #expect(try roundTrip([nest(100)]) == [nest(100)])
        #expect(throws: LuaValueCodecError.self) { try LuaValue.encodeAll([nest(101)]) }
        // A crafted buffer 101 tables deep.
        func crafted(_ n: Int) -> [UInt8] {
            var b: [UInt8] = [0x41, 0x4C, 1, 1]
            for i in 0..<n { b += i < n - 1 ? [6, 2] : [6] }
            for _ in 0..<n { b += [11, 0] }
            return b
        }
        #expect(try decode(crafted(100)).count == 1)
        let error = #expect(throws: LuaValueCodecError.self) { try decode(crafted(101)) }
        #expect(error?.message.contains("nested deeper than 100 levels") == true)
    }

    @Test("binary strings with zero bytes")
    func binaryStrings() throws {
        let bytes: [UInt8] = Array(0...255) + [0, 0]
        let back = try roundTrip([.string(LuaString(bytes: bytes)), .string(LuaString(bytes: []))])
        #expect(back[0] == .string(LuaString(bytes: bytes)) && back[1] == "")
    }

    @Test("every truncation and every single-byte change is handled without a crash")
    func corruption() throws {
        let values: [LuaValue] = [1, 2.5, "str", ["a": [1, [2]], "b": true], .table(LuaTable(array: ["x", "y"]))]
        let good = try LuaValue.encodeAll(values).bytes
        for n in 0..<good.count {
            #expect(throws: LuaValueCodecError.self) { try decode(Array(good[0..<n])) }
        }
        var accepted = 0
        for i in 0..<good.count {
            for x: UInt8 in [1, 0x80, 0xFF, 0x10] {
                var bad = good
                bad[i] ^= x
                if (try? decode(bad)) != nil { accepted += 1 }  // a changed number or letter is valid
            }
        }
        #expect(accepted < good.count * 4)
        #expect(throws: LuaValueCodecError.self) { try decode(good + [0]) }
        // A handle that the buffer does not hold is refused, never dereferenced.
        let forged: [UInt8] = [0x41, 0x4C, 1, 1, 10, 2, 0x10, 0, 0, 0, 0, 0, 0, 0]
        let e = #expect(throws: LuaValueCodecError.self) { try decode(forged) }
        #expect(e?.message.contains("does not hold") == true)
        #expect(throws: LuaValueCodecError.self) { try decode([0x41, 0x4C, 2, 0]) }
        #expect(throws: LuaValueCodecError.self) { try decode([0x41, 0x4C, 1, 1, 7, 1]) }  // REF to nothing
        #expect(throws: LuaValueCodecError.self) {
            try decode([0x41, 0x4C, 1, 1, 5] + [UInt8](repeating: 0xFF, count: 10) + [1])  // varint overflow
        }
    }

    @Test("a cycle is refused; a reference to a finished table is a copy")
    func cycles() throws {
        // { [1] = <self> }: TABLE INT 1 REF 1 END NIL
        let cyclic: [UInt8] = [0x41, 0x4C, 1, 1, 6, 3, 1, 0, 0, 0, 0, 0, 0, 0, 7, 1, 11, 0]
        let error = #expect(throws: LuaValueCodecError.self) { try decode(cyclic) }
        #expect(error?.message.hasPrefix("a table that contains itself (a cycle)") == true)
        // t = {}, then { t, t }: two values, the second a REF to the first.
        let shared: [UInt8] = [0x41, 0x4C, 1, 2, 6, 11, 0, 7, 1]
        #expect(try decode(shared) == [[:], [:]])
    }

    @Test("function spans are kept verbatim and checked")
    func functionSpans() throws {
        // A fake function: bytecode "xyz", its checksum, no upvalues.
        let code: [UInt8] = Array("xyz".utf8)
        let sum = code.withUnsafeBytes { codecChecksum($0) }
        var span: [UInt8] = [8, 3] + code
        for i in 0..<8 { span.append(UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i)))) }
        span.append(0)
        let buffer: [UInt8] = [0x41, 0x4C, 1, 2] + span + [7, 1]  // the function, then a REF to it
        let values = try decode(buffer)
        guard case .function(let f) = values[0], case .function(let g) = values[1] else {
            Issue.record("expected functions")
            return
        }
        #expect(f === g && f.span == span)
        #expect(try LuaValue.encodeAll([values[0]]).bytes == [0x41, 0x4C, 1, 1] + span)
        var bad = buffer
        bad[7] ^= 1  // a byte of the bytecode
        let error = #expect(throws: LuaValueCodecError.self) { try decode(bad) }
        #expect(error?.message.contains("checksum") == true)
        // A function whose upvalue refers to a table outside it.
        var outside: [UInt8] = [0x41, 0x4C, 1, 2, 6, 11, 0] + span
        outside[outside.count - 1] = 1
        outside += [0, 7, 2]
        let e2 = #expect(throws: LuaValueCodecError.self) { try decode(outside) }
        #expect(e2?.message.contains("refers to a table held elsewhere") == true)
    }
}

/// Buffers written by the C codec, decoded in Swift.
@Suite("LuaValue codec (buffers from Lua)")
struct CodecCrossLanguageTests {
    private func run(_ code: String) throws -> [LuaValue] {
        // A bare state: no host behind it, which is enough to run plain Lua code.
        let state = try LuaState(
            options: .init(host: nil, supervisor: nil, isMain: true, packagePath: nil, packageCPath: nil))
        defer { state.close() }
        guard case .values(let encoded) = try state.runString(code, name: "t") else {
            Issue.record("unexpected os.exit")
            return []
        }
        guard let encoded else { return [] }
        return try encoded.withBytes { raw in try LuaValue.decodeAll(raw) }
    }

    @Test("scalars, strings and tables from Lua")
    func fromLua() throws {
        let values = try self.run("return 1, 2.5, 'x', {a={1,2}}, nil, true, 'a\\0b', 3.0")
        #expect(values.count == 8)
        #expect(values[0] == .integer(1) && values[1] == .number(2.5) && values[2] == "x")
        #expect(values[3] == ["a": [1, 2]])
        #expect(values[4] == .nil && values[5] == true)
        #expect(values[6] == .string(LuaString(bytes: [97, 0, 98])) && values[7] == .number(3.0))
    }

    @Test("metatables, shared tables, cycles and functions from Lua")
    func structures() throws {
        let values = try self.run(
            "local s = {1}; return setmetatable({}, {__index = {k = 1}}), {s, s}, function(x) return x end")
        #expect(values[0].tableValue?.metatable?["__index"] == ["k": 1])
        #expect(values[1] == [[1], [1]])
        guard case .function = values[2] else {
            Issue.record("expected a function")
            return
        }
        #expect(throws: LuaValueCodecError.self) { try self.run("local t = {}; t.t = t; return t") }
    }

    @Test("sibling closures of one chunk decode as separate functions")
    func siblings() throws {
        // Both closures share the chunk's `_ENV`, which travels by name (`_G`) in each of them, so neither refers
        // to the other and each can be decoded, kept and sent on its own.
        let values = try self.run(
            "local function a() return tostring(1) end; local function b() return type(2) end; return a, b")
        guard values.count == 2, case .function(let a) = values[0], case .function(let b) = values[1] else {
            Issue.record("expected two functions")
            return
        }
        #expect(a !== b && a != b)
        #expect(try LuaValue.encodeAll([values[1]]).bytes == [0x41, 0x4C, 1, 1] + b.span)
        // The second one, alone, still runs in another state.
        let state = try LuaState(
            options: .init(host: nil, supervisor: nil, isMain: false, packagePath: nil, packageCPath: nil))
        defer { state.close() }
        let outcome = try state.runTask(functionID: 1, function: try EncodedValues([values[1]]), arguments: nil)
        guard case .values(let result?) = outcome else {
            Issue.record("expected a result")
            return
        }
        #expect(try result.withBytes { try LuaValue.decodeAll($0) } == ["number"])
    }

    @Test("a module required after a first encoding travels by name")
    func lateModule() throws {
        let state = try LuaState(
            options: .init(host: nil, supervisor: nil, isMain: true, packagePath: nil, packageCPath: nil))
        defer { state.close() }
        func run(_ code: String) throws -> [LuaValue] {
            guard case .values(let encoded?) = try state.runString(code, name: "t") else { return [] }
            return try encoded.withBytes { try LuaValue.decodeAll($0) }
        }
        #expect(try run("return {1, 2, 3}") == [[1, 2, 3]])  // builds the state's cache of named values
        let values = try run(
            """
            package.preload.late = function() return {f = function() return 1 end} end
            local late = require 'late'
            return {late, function() end}, late.f
            """)
        // The module table, met before any function, is named too: the encoding starts over when the function
        // shows that the cache is out of date.
        guard values.count == 2, case .function(let m) = values[0].tableValue?[1] else {
            Issue.record("expected the module by name")
            return
        }
        #expect(m.span == [9, 4] + Array("late".utf8) + [0])
        // NAMED 'late' 'f'.
        guard case .function(let f) = values[1] else {
            Issue.record("expected a function")
            return
        }
        #expect(f.span == [9, 4] + Array("late".utf8) + [1] + Array("f".utf8))
    }

    @Test("a function from Lua goes back to Lua unchanged")
    func functionBack() throws {
        let values = try self.run("local n = 41; return function() return n + 1 end")
        let encoded = try LuaValue.encodeAll(values)
        // The span is re-emitted verbatim: the whole buffer is identical to Lua's.
        let again = try encoded.bytes.withUnsafeBytes { try LuaValue.decodeAll($0) }
        #expect(again == values)
    }
}
