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

/// The two codecs against each other: what the C encoder writes from a Lua state, the Swift reader reads as the same
/// values (and the Swift writer writes again byte for byte); what the Swift writer writes, a Lua state decodes as the
/// same values.
@Suite("LuaValue codec (C and Swift against each other)")
struct CodecBothWaysTests {
    /// The values of `code`, as the C encoder writes them.
    private func encodedByLua(_ code: String) throws -> EncodedValues {
        let state = try LuaState(
            options: .init(host: nil, supervisor: nil, isMain: true, packagePath: nil, packageCPath: nil))
        defer { state.close() }
        guard case .values(let encoded?) = try state.runString(code, name: "t") else {
            throw LuaValueCodecError("no values")
        }
        return encoded
    }

    /// Runs the Lua function of `code` in a fresh state with `arguments` (written by the Swift writer) and returns its
    /// first result, read back by the Swift reader.
    private func runInLua(_ code: String, _ arguments: [LuaValue]) throws -> LuaValue {
        let function = try self.encodedByLua(code)
        let state = try LuaState(
            options: .init(host: nil, supervisor: nil, isMain: false, packagePath: nil, packageCPath: nil))
        defer { state.close() }
        let outcome = try state.runTask(functionID: 1, function: function, arguments: try EncodedValues(arguments))
        guard case .values(let result?) = outcome else { throw LuaValueCodecError("no result") }
        return try result.withBytes { try LuaValue.decodeAll($0) }.first ?? .nil
    }

    private static let scalars = """
        return nil, true, false, math.mininteger, math.maxinteger, 0, -1, 0.0, -0.0, 0/0, math.huge, -math.huge,
          2.5, 1e308, 5e-324, '', 'a\\0b\\0', string.rep('x', 300)
        """

    @Test("scalars from the C encoder: the same values in Swift, and the same bytes from the Swift writer")
    func scalarsFromC() throws {
        let encoded = try self.encodedByLua(Self.scalars)
        let values = try encoded.withBytes { try LuaValue.decodeAll($0) }
        let expected: [LuaValue] = [
            .nil, true, false, .integer(.min), .integer(.max), .integer(0), .integer(-1), .number(0.0),
            .number(-0.0), .number(.nan), .number(.infinity), .number(-.infinity), .number(2.5), .number(1e308),
            .number(.leastNonzeroMagnitude), "", .string(LuaString(bytes: [97, 0, 98, 0])),
            .string(LuaString(bytes: Array(repeating: 120, count: 300))),
        ]
        #expect(values.count == expected.count)
        for (value, want) in zip(values, expected) {
            switch (value, want) {
            case (.number(let a), .number(let b)):
                // Bit for bit: -0.0 keeps its sign, NaN its payload.
                #expect(a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN), "\(a) vs \(b)")
            default:
                #expect(value == want)
            }
        }
        let again = try LuaValue.encodeAll(values)
        #expect(again.bytes == encoded.withBytes { Array($0) })
    }

    @Test("tables from the C encoder: nested, with a metatable, shared (copied to each place), cyclic (refused)")
    func tablesFromC() throws {
        let values = try self.encodedByLua(
            """
            local s = {1, 'two'}
            return {a = {b = {c = {1, 2, 3}}}, [1] = 'one', [2.5] = true, [false] = 0},
              setmetatable({x = 1}, {__name = 'P'}), {s, s, k = s}
            """
        ).withBytes { try LuaValue.decodeAll($0) }
        #expect(values[0] == [1: "one", "a": ["b": ["c": [1, 2, 3]]], 2.5: true, false: 0])
        #expect(values[1].tableValue?["x"] == 1 && values[1].tableValue?.metatable?["__name"] == "P")
        #expect(values[2] == [1: [1, "two"], 2: [1, "two"], "k": [1, "two"]])
        let cyclic = try self.encodedByLua("local t = {}; t[1] = {t}; return t")
        #expect(throws: LuaValueCodecError.self) { try cyclic.withBytes { try LuaValue.decodeAll($0) } }
    }

    @Test("scalars and tables from the Swift writer decode in a Lua state as the same values")
    func valuesFromSwift() throws {
        var meta = LuaTable()
        meta["__name"] = "P"
        var object = LuaTable(["x": 1])
        object.metatable = meta
        let shared: LuaValue = [1, "two"]
        let arguments: [LuaValue] = [
            .nil, true, false, .integer(.min), .integer(.max), .integer(0), .number(-0.0), .number(.nan),
            .number(.infinity), .number(-.infinity), .number(2.5), .string(LuaString(bytes: [97, 0, 98, 0])),
            [1: "one", "a": ["b": ["c": [1, 2, 3]]], 2.5: true, false: 0], .table(object), [shared, shared],
        ]
        let result = try self.runInLua(
            """
            return function(...)
              local n, a = select('#', ...), {...}
              local function check(ok, what) if not ok then error(what, 2) end end
              check(n == 15, 'count ' .. n)
              check(a[1] == nil and a[2] == true and a[3] == false, 'nil and booleans')
              check(math.type(a[4]) == 'integer' and a[4] == math.mininteger, 'mininteger')
              check(math.type(a[5]) == 'integer' and a[5] == math.maxinteger, 'maxinteger')
              check(math.type(a[6]) == 'integer' and a[6] == 0, 'integer zero')
              check(math.type(a[7]) == 'float' and a[7] == 0 and 1 / a[7] == -math.huge, '-0.0')
              check(math.type(a[8]) == 'float' and a[8] ~= a[8], 'NaN')
              check(a[9] == math.huge and a[10] == -math.huge, 'infinities')
              check(math.type(a[11]) == 'float' and a[11] == 2.5, 'float')
              check(a[12] == 'a\\0b\\0' and #a[12] == 4, 'string with NUL bytes')
              local t = a[13]
              check(t[1] == 'one' and t[2.5] == true and t[false] == 0 and #t.a.b.c == 3 and t.a.b.c[3] == 3,
                    'nested table')
              check(a[14].x == 1 and getmetatable(a[14]).__name == 'P', 'metatable')
              -- LuaValue has no shared tables: the Swift writer copies one to each place
              check(a[15][1][2] == 'two' and a[15][2][2] == 'two' and a[15][1] ~= a[15][2], 'copies')
              return 'ok'
            end
            """, arguments)
        #expect(result == "ok")
    }

    @Test("a handle written by the Swift writer is the same host object after a trip through a Lua state")
    func handles() throws {
        HostCallbacks.install()  // the shim retains and releases the object through them
        let probe = Probe()
        let handle = LuaHandle(object: probe, kind: 2)
        let result = try self.runInLua(
            "return function(h, t) assert(type(h) == 'userdata' and t.h == h); return {h, t.h} end",
            [.handle(handle), ["h": .handle(handle)]])
        guard case .handle(let first) = result.tableValue?[1], case .handle(let second) = result.tableValue?[2] else {
            Issue.record("expected two handles, got \(result)")
            return
        }
        #expect(first.object === probe && second.object === probe && first.kind == 2)
    }
}
