import Testing

@testable import ATaskerLua

@Suite("The C decoder on damaged buffers")
struct CorruptionTests {
    /// Buffers made by the C encoder from Lua values: tables with cycles and metatables, functions with upvalues,
    /// modules by name, binary strings.
    static let sources = [
        "return 1, -2.5, 'a\\0b', true, nil",
        "local t = {1, 2, x = {y = 'z'}}; t.self = t; return setmetatable(t, {__index = {m = 1}})",
        "local n = 0; local function inc() n = n + 1; return n end; return inc, function() return n end",
        "local function fact(k) if k <= 1 then return 1 end return k * fact(k - 1) end; return fact",
        "return table.insert, string, {f = string.format, deep = {{{{1}}}}}",
    ]

    static func encoded(_ code: String) throws -> [UInt8] {
        let state = try LuaState(options: .init(isMain: true))
        defer { state.close() }
        guard case .values(let values?) = try state.runString(code, name: "=source") else {
            Issue.record("no values")
            return []
        }
        return values.withBytes { Array($0) }
    }

    @Test("every source buffer decodes whole")
    func wholeBuffers() throws {
        let state = try LuaState(options: .init(isMain: true))
        defer { state.close() }
        for code in Self.sources {
            try state.probeDecode(try Self.encoded(code))
        }
    }

    @Test("every truncation is an error, never a crash", arguments: sources)
    func truncations(_ code: String) throws {
        let bytes = try Self.encoded(code)
        let state = try LuaState(options: .init(isMain: true))
        defer { state.close() }
        for length in 0..<bytes.count {
            #expect(throws: LuaError.self) { try state.probeDecode(Array(bytes[..<length])) }
        }
        #expect(throws: LuaError.self) { try state.probeDecode(bytes + [0]) }
    }

    @Test("every changed byte is an error or a clean decode, never a crash", arguments: sources)
    func flips(_ code: String) throws {
        let bytes = try Self.encoded(code)
        let state = try LuaState(options: .init(isMain: true))
        defer { state.close() }
        var errors = 0
        for index in bytes.indices {
            for mask: UInt8 in [0x01, 0x80, 0xFF] {
                var damaged = bytes
                damaged[index] ^= mask
                do {
                    try state.probeDecode(damaged)
                } catch {
                    errors += 1
                    #expect(error.code == .codec || error.code == .memory, "\(error)")
                }
            }
        }
        #expect(errors > 0)
    }

    @Test("a changed byte inside a function's bytecode fails its checksum before it is loaded")
    func checksum() throws {
        let bytes = try Self.encoded("return function(a, b) return a * b + 1 end")
        let state = try LuaState(options: .init(isMain: true))
        defer { state.close() }
        // The bytecode starts with Lua's signature "\x1bLua"; change a byte well inside it.
        let signature: [UInt8] = [0x1B, 0x4C, 0x75, 0x61]
        let start = try #require(
            bytes.indices.first { bytes.count - $0 >= 4 && Array(bytes[$0..<($0 + 4)]) == signature })
        var damaged = bytes
        damaged[start + 20] ^= 0x10
        #expect {
            try state.probeDecode(damaged)
        } throws: { error in
            "\(error)".contains("checksum")
        }
    }
}
