/// Something a child must have received before a call that uses it (for example a function's code): the
/// pool sends it once per child per ``key``.
///
/// ```swift
/// let code = ProcessDefinition(key: functionHash, payload: bytecode)
/// supervisor.submitProcess(ProcessCall(definitions: [code], payload: arguments))
/// ```
public struct ProcessDefinition: Sendable {
    /// Identifies the definition: a child that has received this key does not get the payload again.
    public var key: UInt64

    /// The definition's bytes.
    public var payload: [UInt8]

    /// Creates a definition.
    ///
    /// - Parameters:
    ///   - key: Its identity; equal keys must have equal payloads.
    ///   - payload: Its bytes.
    public init(key: UInt64, payload: [UInt8]) {
        self.key = key
        self.payload = payload
    }
}
