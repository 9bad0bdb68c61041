// libFuzzer target: the process pool's frame reader (Sources/ATasker/ProcessPool/ProcessFrame.swift), compiled
// together with it by scripts/fuzz.
//
// Each input is the byte stream that one side of a pool socket receives, taken as it is and with the checksum of
// each whole frame made right (so that mutations reach the bodies). Each is cut into frames twice, once as one
// chunk and once a byte at a time (as `recv` may deliver it); both ways must give the same frames and the same
// violation. Each frame is written again from what was read (`ProcessFrame.append`), which must give its bytes
// exactly: the frame format is canonical. A body is read as its kind says (`readCall`, `readAnswer`,
// `readRequest`), and what it reads is written again (`appendCall`, `appendAnswer`, `appendRequest`), which must
// also give the same bytes; a body that does not parse is a clean `Violation`.
//
// With ATL_FUZZ_SEED_DIR set, the target writes its seed corpus there and exits.

import CProcessSpawn
import Glibc

private func fail(_ message: String) -> Never {
    let line = Array("fuzz_frame: \(message)\n".utf8)
    _ = write(2, line, line.count)
    abort()
}

private struct Cut: Equatable {
    var frames: [[UInt8]] = []  // each frame's bytes, header included
    var violation: String?
    var partial = false
}

private func cut(_ input: [UInt8], chunk: Int) -> Cut {
    var reader = ProcessFrameReader()
    var result = Cut()
    var offset = 0
    var pending: [UInt8] = []  // the bytes of the frame being received
    while offset < input.count {
        let end = min(offset + chunk, input.count)
        input[offset..<end].withUnsafeBytes { reader.append($0) }
        pending += input[offset..<end]
        offset = end
        do {
            while let frame = try reader.next() {
                let length = ProcessFrame.headerSize + 1 + frame.body.count
                let original = Array(pending[0..<length])
                pending.removeFirst(length)
                check(kind: frame.kind, body: frame.body, original: original)
                result.frames.append(original)
            }
        } catch {
            result.violation = error.detail
            return result
        }
    }
    result.partial = reader.hasPartialFrame
    if result.partial != !pending.isEmpty { fail("hasPartialFrame is \(result.partial) with \(pending.count) bytes") }
    return result
}

private func check(kind: ProcessFrame.Kind, body: ArraySlice<UInt8>, original: [UInt8]) {
    var again: [UInt8] = []
    ProcessFrame.append(kind, payload: Array(body), to: &again)
    if again != original { fail("a \(kind) frame written again differs from the one read") }
    var parsed: [UInt8] = []
    do {
        switch kind {
        case .call:
            let call = try ProcessFrame.readCall(body)
            ProcessFrame.appendCall(id: call.id, definitions: call.definitions, payload: call.payload, to: &parsed)
        case .reply, .response:
            let answer = try ProcessFrame.readAnswer(body, kind: kind)
            ProcessFrame.appendAnswer(
                kind, id: answer.id, success: answer.success, payload: answer.payload, to: &parsed)
        case .request:
            let request = try ProcessFrame.readRequest(body)
            ProcessFrame.appendRequest(id: request.id, payload: request.payload, to: &parsed)
        case .hello, .ready, .startupFailed, .notify, .stop:
            return
        }
    } catch {
        if error.detail.isEmpty { fail("a violation without a message") }
        return
    }
    if parsed != original { fail("a \(kind) body read and written again differs") }
}

/// `input` with the checksum of each whole frame made right, so that mutations reach the bodies (a fuzzer rarely
/// guesses a CRC-32C).
private func repaired(_ input: [UInt8]) -> [UInt8] {
    var bytes = input
    var offset = 0
    while bytes.count - offset >= ProcessFrame.headerSize {
        let length =
            Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16
            | Int(bytes[offset + 3]) << 24
        guard length >= 1, length <= bytes.count - offset - ProcessFrame.headerSize else { break }
        let crc = bytes.withUnsafeBufferPointer {
            atp_crc32c(0, $0.baseAddress! + offset + ProcessFrame.headerSize, length)
        }
        for i in 0..<4 { bytes[offset + 4 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        offset += ProcessFrame.headerSize + length
    }
    return bytes
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrame(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = Array(UnsafeBufferPointer(start: data, count: size))
    for input in [raw, repaired(raw)] {
        let whole = cut(input, chunk: max(input.count, 1))
        let bytewise = cut(input, chunk: 1)
        if whole != bytewise { fail("the frames differ when the bytes arrive one at a time") }
    }
    return 0
}

// MARK: - Seeds

private func seeds() -> [(String, [UInt8])] {
    var out: [(String, [UInt8])] = []
    func add(_ name: String, _ build: (inout [UInt8]) -> Void) {
        var bytes: [UInt8] = []
        build(&bytes)
        out.append((name, bytes))
    }
    add("hello") { ProcessFrame.append(.hello, payload: Array("AL\u{1}\u{1}\u{0}".utf8), to: &$0) }
    add("ready") { ProcessFrame.append(.ready, payload: [], to: &$0) }
    add("startup-failed") { ProcessFrame.append(.startupFailed, payload: Array("cannot load x.lua".utf8), to: &$0) }
    add("call") { ProcessFrame.appendCall(id: 1, definitions: [], payload: [1, 2, 3], to: &$0) }
    add("call-definitions") {
        ProcessFrame.appendCall(
            id: 0xFFFF_FFFF_FFFF_FFFF,
            definitions: [
                ProcessDefinition(key: 7, payload: Array(repeating: 0x41, count: 40)),
                ProcessDefinition(key: 0, payload: []),
            ],
            payload: [], to: &$0)
    }
    add("reply-success") { ProcessFrame.appendAnswer(.reply, id: 3, success: true, payload: [9, 9], to: &$0) }
    add("reply-failure") {
        ProcessFrame.appendAnswer(.reply, id: 4, success: false, payload: Array("boom".utf8), to: &$0)
    }
    add("request") { ProcessFrame.appendRequest(id: 5, payload: Array("get".utf8), to: &$0) }
    add("response") { ProcessFrame.appendAnswer(.response, id: 5, success: true, payload: [], to: &$0) }
    add("notify") { ProcessFrame.append(.notify, payload: [0, 1, 2, 255], to: &$0) }
    add("stop") { ProcessFrame.append(.stop, payload: [], to: &$0) }
    add("stream") {
        ProcessFrame.append(.ready, payload: [], to: &$0)
        ProcessFrame.appendAnswer(.reply, id: 1, success: true, payload: [1], to: &$0)
        ProcessFrame.appendRequest(id: 2, payload: [2, 2], to: &$0)
        ProcessFrame.append(.notify, payload: [3], to: &$0)
        ProcessFrame.appendAnswer(.reply, id: 3, success: false, payload: [], to: &$0)
    }
    add("partial") {
        ProcessFrame.appendCall(id: 9, definitions: [ProcessDefinition(key: 1, payload: [5])], payload: [6], to: &$0)
        $0.removeLast(3)
    }
    return out
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzFrameInitialize(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    guard let dir = getenv("ATL_FUZZ_SEED_DIR").map({ String(cString: $0) }) else { return 0 }
    writeSeeds(to: dir)
    exit(0)  // (the seeds are freed by now: no leak report at exit)
}

@inline(never)
private func writeSeeds(to dir: String) {
    for (name, bytes) in seeds() {
        let path = "\(dir)/seed-\(name)"
        guard let file = fopen(path, "wb"), fwrite(bytes, 1, bytes.count, file) == bytes.count, fclose(file) == 0 else {
            fail("cannot write \(path)")
        }
    }
}
