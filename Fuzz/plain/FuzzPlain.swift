// libFuzzer target: the Swift side of the value codec (Sources/ATaskerLua/Transfer/LuaValue+Codec.swift), which
// reads the values that cross processes (`ChildWire.readPlain`: `LuaValue.decodeAll` with no handles), checks a
// buffer from a child (`LuaValue.checkPlain`) and cuts buffers into values (`splitAll`, `splitFirst`). Compiled
// together with those files by scripts/fuzz.
//
// Each input is a codec buffer:
// - `decodeAll` either throws a `LuaValueCodecError` or gives values that `encodeAll` writes and `decodeAll` reads
//   back the same (compared structurally, floats by their bits); values without tables encode to the very same
//   bytes again (the format is canonical there);
// - every buffer that `checkPlain` accepts and `decodeAll` reads holds no bytecode and no handle (values that
//   travel by name are plain);
// - `splitAll` cuts a buffer into one buffer per value; when both succeed, each part decodes to the value that
//   `decodeAll` read at its place, and `splitFirst` agrees with `splitAll`.
//
// With ATL_FUZZ_SEED_DIR set, the target writes its seed corpus there and exits.

import Glibc

private func fail(_ message: String) -> Never {
    let line = Array("fuzz_plain: \(message)\n".utf8)
    _ = write(2, line, line.count)
    abort()
}

/// Structural equality where a float is equal to another by its bits (NaN included).
private func same(_ a: LuaValue, _ b: LuaValue) -> Bool {
    switch (a, b) {
    case (.nil, .nil): return true
    case (.boolean(let x), .boolean(let y)): return x == y
    case (.integer(let x), .integer(let y)): return x == y
    case (.number(let x), .number(let y)): return x.bitPattern == y.bitPattern
    case (.string(let x), .string(let y)): return x == y
    case (.function(let x), .function(let y)): return x.span == y.span
    case (.handle(let x), .handle(let y)): return x == y
    case (.table(let x), .table(let y)):
        guard x.entries.count == y.entries.count else { return false }
        switch (x.metatable, y.metatable) {
        case (nil, nil): break
        case (let mx?, let my?): if !same(.table(mx), .table(my)) { return false }
        default: return false
        }
        for (key, value) in x.entries {
            // A float key keeps its bits through the codec, so the same key finds it (NaN is never a key).
            guard let other = y.entries[key], same(value, other) else { return false }
        }
        return true
    default: return false
    }
}

private func hasTable(_ values: [LuaValue]) -> Bool {
    values.contains {
        if case .table = $0 { return true }
        return false
    }
}

/// No bytecode and no handle: a value that travels by name (a module, `string.format`) is plain.
private func isPlain(_ value: LuaValue) -> Bool {
    switch value {
    case .function(let f): return f.span.first == CodecTag.named
    case .handle: return false
    case .table(let t):
        if let meta = t.metatable, !isPlain(.table(meta)) { return false }
        return t.entries.allSatisfy { isPlain($0.key) && isPlain($0.value) }
    default: return true
    }
}

private var noHandles: UnsafeBufferPointer<UnsafeMutableRawPointer?> { UnsafeBufferPointer(start: nil, count: 0) }

private func decode(_ bytes: [UInt8]) -> Result<[LuaValue], LuaValueCodecError> {
    Result { try bytes.withUnsafeBytes { try LuaValue.decodeAll($0, knownHandles: noHandles) } }
        .mapError { error in
            guard let error = error as? LuaValueCodecError else { fail("decodeAll threw \(error)") }
            return error
        }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPlain(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let decoded = decode(input)
    let plainChecked: Bool
    do {
        try input.withUnsafeBytes { try LuaValue.checkPlain($0) }
        plainChecked = true
    } catch is LuaValueCodecError {
        plainChecked = false
    } catch {
        fail("checkPlain threw \(error)")
    }
    if case .success(let values) = decoded {
        if plainChecked && !values.allSatisfy(isPlain) { fail("checkPlain accepted a function or a handle") }
        let encoded: EncodedBytes
        do {
            encoded = try LuaValue.encodeAll(values)
        } catch {
            fail("values that decodeAll read do not encode: \(error)")
        }
        guard case .success(let again) = decode(encoded.bytes) else {
            fail("decodeAll refuses what encodeAll wrote")
        }
        guard again.count == values.count, zip(values, again).allSatisfy(same) else {
            fail("decode(encode(decode(x))) differs from decode(x)")
        }
        if !hasTable(values), (try? LuaValue.encodeAll(again).bytes) != encoded.bytes {
            fail("values without tables encode to other bytes the second time")
        }
    }
    let parts: [EncodedBytes]
    do {
        parts = try input.withUnsafeBytes { try LuaValue.splitAll($0, knownHandles: noHandles) }
    } catch is LuaValueCodecError {
        return 0
    } catch {
        fail("splitAll threw \(error)")
    }
    if let first = try? input.withUnsafeBytes({ try LuaValue.splitFirst($0, knownHandles: noHandles) }),
        first.0.bytes != parts.first?.bytes
    {
        fail("splitFirst and splitAll cut the first value differently")
    }
    if case .success(let values) = decoded {
        guard parts.count == values.count else { fail("splitAll cut \(parts.count) of \(values.count) values") }
        for (part, value) in zip(parts, values) {
            // A part decodes on its own unless it refers to an object outside itself (which decodeAll copied).
            if case .success(let one) = decode(part.bytes), one.count != 1 || !same(one[0], value) {
                fail("a part that splitAll cut decodes to another value")
            }
        }
    }
    return 0
}

// MARK: - Seeds

private func seeds() -> [(String, [LuaValue])] {
    var nested = LuaValue.table(LuaTable())
    for _ in 0..<30 { nested = .table(LuaTable(array: [nested])) }
    var withMeta = LuaTable(array: [1, 2])
    withMeta.metatable = LuaTable(["__index": ["x": 1]])
    var mixed = LuaTable()
    mixed[.number(1.5)] = true
    mixed[.integer(-2)] = false
    mixed[.number(-0.0)] = "zero"
    mixed[.number(.infinity)] = "inf"
    mixed[.string(LuaString(bytes: [0, 255]))] = .table(LuaTable())
    return [
        ("nil", [.nil]), ("true", [true]), ("false", [false]), ("zero", [0]), ("minus-one", [-1]),
        ("max", [.integer(.max)]), ("min", [.integer(.min)]), ("half", [0.5]), ("minus-zero", [.number(-0.0)]),
        ("inf", [.number(.infinity)]), ("nan", [.number(.nan)]), ("big", [1e300]),
        ("tiny", [.number(.leastNonzeroMagnitude)]), ("empty-string", [""]), ("string", ["hello"]),
        ("binary", [.string(LuaString(bytes: [0, 1, 255]))]),
        ("long-string", [.string(LuaString(bytes: Array(repeating: 0x78, count: 200)))]),
        ("several", [1, "two", 3.0, .nil, false]),
        ("many", (1...40).map { .integer($0 * 3) }),
        ("empty-table", [.table(LuaTable())]), ("array", [[1, 2, 3]]),
        ("record", [.table(LuaTable(["a": 1, "b": .table(LuaTable(["c": "d"]))]))]),
        ("mixed-keys", [.table(mixed)]), ("nested", [nested]), ("metatable", [.table(withMeta)]),
        ("error-result", [.integer(2), "worker.lua:3: boom"]),
    ]
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzPlainInitialize(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    guard let dir = getenv("ATL_FUZZ_SEED_DIR").map({ String(cString: $0) }) else { return 0 }
    writeSeeds(to: dir)
    exit(0)  // (the seeds are freed by now: no leak report at exit)
}

@inline(never)
private func writeSeeds(to dir: String) {
    for (name, values) in seeds() {
        let path = "\(dir)/seed-\(name)"
        guard let bytes = try? LuaValue.encodeAll(values).bytes else { fail("seed \(name) does not encode") }
        guard let file = fopen(path, "wb"), fwrite(bytes, 1, bytes.count, file) == bytes.count, fclose(file) == 0 else {
            fail("cannot write \(path)")
        }
    }
}
