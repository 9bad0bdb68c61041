import CProcessSpawn
import Glibc

/// The frames that a pool parent and its children exchange on their socket.
///
/// A frame is `[u32 length][u32 checksum][u8 type][body]`, integers little endian:
/// - `length` counts the type byte and the body (at least 1, at most ``maximumLength``);
/// - `checksum` is the CRC-32C (Castagnoli) of the type byte and the body. CRC-32C rather than FNV-1a
///   because the processor computes it 8 bytes per instruction (SSE 4.2), so checking a large payload
///   costs little, and because it detects every burst error up to 32 bits.
///
/// Bodies by type (`u64` ids, `u32` sizes, `u8` status 0 = success, 1 = failure):
/// - `hello` (parent → child): the hello bytes; `ready`: empty; `startupFailed`: a UTF-8 message;
/// - `call` (parent → child): `id`, `u32` definition count, each `[u64 key][u32 size][bytes]`, then the
///   payload to the end of the frame;
/// - `reply` (child → parent): `id`, status, payload;
/// - `request` (child → parent): `id`, payload; `response` (parent → child): `id`, status, payload;
/// - `notify` (child → parent): payload; `stop` (parent → child): empty.
///
/// Neither side trusts the other: a frame with a bad length, checksum or type, or a body that does not
/// parse, is a ``ProcessFrame/Violation``.
enum ProcessFrame {
    enum Kind: UInt8, Sendable {
        case hello = 1
        case ready = 2
        case startupFailed = 3
        case call = 4
        case reply = 5
        case request = 6
        case response = 7
        case notify = 8
        case stop = 9
    }

    /// A frame that breaks the protocol, with what was wrong.
    struct Violation: Error, Sendable {
        let detail: String
    }

    /// The largest `length`: 256 MiB.
    static let maximumLength = 256 << 20

    /// The bytes before the type: length and checksum.
    static let headerSize = 8

    // MARK: - Encoding

    /// Appends one frame to `buffer`; `body` appends the body after the type byte.
    static func append(_ kind: Kind, to buffer: inout [UInt8], body: (inout [UInt8]) -> Void) {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: Self.headerSize))
        buffer.append(kind.rawValue)
        body(&buffer)
        let length = buffer.count - start - Self.headerSize
        precondition(length <= Self.maximumLength, "a \(kind) frame of \(length) bytes exceeds the protocol's limit")
        let checksum = buffer.withUnsafeBufferPointer { bytes in
            atp_crc32c(0, bytes.baseAddress! + start + Self.headerSize, length)
        }
        Self.store(UInt32(length), at: start, in: &buffer)
        Self.store(checksum, at: start + 4, in: &buffer)
    }

    /// Appends a frame whose body is just `payload`.
    static func append(_ kind: Kind, payload: [UInt8], to buffer: inout [UInt8]) {
        Self.append(kind, to: &buffer) { $0.append(contentsOf: payload) }
    }

    /// Appends a `call` frame.
    static func appendCall(id: UInt64, definitions: [ProcessDefinition], payload: [UInt8], to buffer: inout [UInt8]) {
        Self.append(.call, to: &buffer) { body in
            Self.append(id, to: &body)
            Self.append(UInt32(definitions.count), to: &body)
            for definition in definitions {
                Self.append(definition.key, to: &body)
                Self.append(UInt32(definition.payload.count), to: &body)
                body.append(contentsOf: definition.payload)
            }
            body.append(contentsOf: payload)
        }
    }

    /// Appends a `reply` or `response` frame: an id, a status and a payload.
    static func appendAnswer(_ kind: Kind, id: UInt64, success: Bool, payload: [UInt8], to buffer: inout [UInt8]) {
        Self.append(kind, to: &buffer) { body in
            Self.append(id, to: &body)
            body.append(success ? 0 : 1)
            body.append(contentsOf: payload)
        }
    }

    /// Appends a `request` frame.
    static func appendRequest(id: UInt64, payload: [UInt8], to buffer: inout [UInt8]) {
        Self.append(.request, to: &buffer) { body in
            Self.append(id, to: &body)
            body.append(contentsOf: payload)
        }
    }

    static func append(_ value: UInt64, to buffer: inout [UInt8]) {
        for shift in stride(from: 0, to: 64, by: 8) {
            buffer.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    static func append(_ value: UInt32, to buffer: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) {
            buffer.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    private static func store(_ value: UInt32, at index: Int, in buffer: inout [UInt8]) {
        buffer[index] = UInt8(truncatingIfNeeded: value)
        buffer[index + 1] = UInt8(truncatingIfNeeded: value >> 8)
        buffer[index + 2] = UInt8(truncatingIfNeeded: value >> 16)
        buffer[index + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }

    // MARK: - Decoding bodies

    /// The fields of a `call` body: the call's id, the definitions that it carries and its payload.
    static func readCall(
        _ bytes: ArraySlice<UInt8>
    ) throws(Violation) -> (id: UInt64, definitions: [ProcessDefinition], payload: [UInt8]) {
        var body = BodyReader(bytes, kind: .call)
        let id = try body.u64()
        let count = try body.u32()
        var definitions: [ProcessDefinition] = []
        for _ in 0..<count {
            let key = try body.u64()
            let size = try body.u32()
            definitions.append(ProcessDefinition(key: key, payload: try body.bytes(count: Int(size))))
        }
        return (id, definitions, body.rest())
    }

    /// The fields of a `reply` or `response` body: the id, whether it reports a success, and the payload. A
    /// status other than 0 (success) or 1 (failure) is a violation.
    static func readAnswer(
        _ bytes: ArraySlice<UInt8>, kind: Kind
    ) throws(Violation) -> (id: UInt64, success: Bool, payload: [UInt8]) {
        var body = BodyReader(bytes, kind: kind)
        let id = try body.u64()
        let status = try body.u8()
        guard status <= 1 else {
            throw Violation(detail: "bad \(kind) status \(status)")
        }
        return (id, status == 0, body.rest())
    }

    /// The fields of a `request` body: the id and the payload.
    static func readRequest(_ bytes: ArraySlice<UInt8>) throws(Violation) -> (id: UInt64, payload: [UInt8]) {
        var body = BodyReader(bytes, kind: .request)
        return (try body.u64(), body.rest())
    }

    /// Reads the fields of a frame body from the front, throwing a ``Violation`` when it is too short.
    struct BodyReader {
        let bytes: ArraySlice<UInt8>
        let kind: Kind
        private var index: Int

        init(_ bytes: ArraySlice<UInt8>, kind: Kind) {
            self.bytes = bytes
            self.kind = kind
            self.index = bytes.startIndex
        }

        mutating func u8() throws(Violation) -> UInt8 {
            guard self.index < self.bytes.endIndex else {
                throw Violation(detail: "truncated \(self.kind) frame body")
            }
            defer { self.index += 1 }
            return self.bytes[self.index]
        }

        mutating func u32() throws(Violation) -> UInt32 {
            var value: UInt32 = 0
            for shift in stride(from: 0, to: 32, by: 8) {
                value |= UInt32(try self.u8()) << UInt32(shift)
            }
            return value
        }

        mutating func u64() throws(Violation) -> UInt64 {
            var value: UInt64 = 0
            for shift in stride(from: 0, to: 64, by: 8) {
                value |= UInt64(try self.u8()) << UInt64(shift)
            }
            return value
        }

        mutating func bytes(count: Int) throws(Violation) -> [UInt8] {
            guard count >= 0, self.bytes.endIndex - self.index >= count else {
                throw Violation(detail: "truncated \(self.kind) frame body")
            }
            defer { self.index += count }
            return Array(self.bytes[self.index..<self.index + count])
        }

        /// The rest of the body.
        mutating func rest() -> [UInt8] {
            defer { self.index = self.bytes.endIndex }
            return Array(self.bytes[self.index...])
        }
    }
}

/// Collects the bytes received on a socket and cuts them into checked frames.
///
/// Bytes are appended as they arrive; ``next()`` returns each complete frame once its length and checksum
/// are verified, and `nil` while the next frame is incomplete.
struct ProcessFrameReader {
    private var buffer: [UInt8] = []
    private var start = 0

    /// Whether a partial frame is buffered (so an end-of-file now truncates it).
    var hasPartialFrame: Bool {
        self.start < self.buffer.count
    }

    /// Appends received bytes.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if self.start == self.buffer.count {
            self.buffer.removeAll(keepingCapacity: true)
            self.start = 0
        } else if self.start > 65536 && self.start > self.buffer.count / 2 {
            self.buffer.removeSubrange(0..<self.start)
            self.start = 0
        }
        self.buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, `nil` if none is complete yet.
    ///
    /// - Throws: ``ProcessFrame/Violation`` for a bad length, checksum or type.
    mutating func next() throws(ProcessFrame.Violation) -> (kind: ProcessFrame.Kind, body: ArraySlice<UInt8>)? {
        let available = self.buffer.count - self.start
        guard available >= ProcessFrame.headerSize else {
            return nil
        }
        let length = Int(self.u32(at: self.start))
        guard length >= 1, length <= ProcessFrame.maximumLength else {
            throw ProcessFrame.Violation(
                detail: "bad frame length \(length) (the limit is \(ProcessFrame.maximumLength) bytes)")
        }
        guard available >= ProcessFrame.headerSize + length else {
            return nil
        }
        let expected = self.u32(at: self.start + 4)
        let typeIndex = self.start + ProcessFrame.headerSize
        let checksum = self.buffer.withUnsafeBufferPointer { bytes in
            atp_crc32c(0, bytes.baseAddress! + typeIndex, length)
        }
        guard checksum == expected else {
            throw ProcessFrame.Violation(detail: "bad frame checksum (a corrupted or foreign frame)")
        }
        guard let kind = ProcessFrame.Kind(rawValue: self.buffer[typeIndex]) else {
            throw ProcessFrame.Violation(detail: "unknown frame type \(self.buffer[typeIndex])")
        }
        self.start = typeIndex + length
        return (kind, self.buffer[(typeIndex + 1)..<(typeIndex + length)])
    }

    private func u32(at index: Int) -> UInt32 {
        UInt32(self.buffer[index]) | UInt32(self.buffer[index + 1]) << 8 | UInt32(self.buffer[index + 2]) << 16
            | UInt32(self.buffer[index + 3]) << 24
    }
}
