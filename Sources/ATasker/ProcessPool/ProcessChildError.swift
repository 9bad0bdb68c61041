/// An error of ``ProcessChild/request(_:)`` or ``ProcessChild/notify(_:)`` in a pool child.
public struct ProcessChildError: Error, Sendable, CustomStringConvertible {
    /// A message for people.
    public let message: String

    /// Creates an error.
    ///
    /// - Parameter message: A message for people.
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String {
        self.message
    }
}
