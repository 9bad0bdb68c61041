/// One call into a pool child: definitions the child may not have yet, then the call itself.
///
/// The child's ``ProcessChildHandler`` gets only the definitions it has not received before, then
/// ``payload``; what it answers becomes the task's result (see
/// ``TaskSupervisor/submitProcess(_:priority:timeout:name:transform:)``).
public struct ProcessCall: Sendable {
    /// Definitions the call needs; each is sent once per child.
    public var definitions: [ProcessDefinition]

    /// The call's bytes.
    public var payload: [UInt8]

    /// Creates a call.
    ///
    /// - Parameters:
    ///   - definitions: Definitions the call needs. Default: none.
    ///   - payload: The call's bytes.
    public init(definitions: [ProcessDefinition] = [], payload: [UInt8]) {
        self.definitions = definitions
        self.payload = payload
    }

    /// The most bytes that one call may take on the wire, its definitions included: 256 MiB, the protocol's frame
    /// limit. ``TaskSupervisor/submitProcess(_:priority:timeout:name:transform:)`` fails a larger call with
    /// ``ProcessPoolError/callTooLarge(bytes:limit:)``.
    public static let maximumSize = ProcessFrame.maximumLength

    /// The bytes the call takes on the wire when all its definitions go with it.
    public var size: Int {
        // the frame's type, the call id and the definition count; per definition its key and length
        13 + self.definitions.reduce(0) { $0 + 12 + $1.payload.count } + self.payload.count
    }
}
