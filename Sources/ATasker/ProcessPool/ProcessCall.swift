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
}
