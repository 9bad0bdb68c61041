/// Runs calls in a pool child, one at a time, on the child's main thread.
///
/// ``ProcessChild/runIfChild(_:)`` creates the handler from the pool's hello frame, then hands it every
/// call in the order the parent sent them.
///
/// ```swift
/// final class Echo: ProcessChildHandler {
///     func call(definitions: [ProcessDefinition], payload: [UInt8]) -> ProcessReply {
///         .success(payload)
///     }
/// }
/// ProcessChild.runIfChild { _ in Echo() }
/// ```
public protocol ProcessChildHandler: AnyObject {
    /// Runs one call.
    ///
    /// - Parameters:
    ///   - definitions: The definitions this child has not received before (keep them for later calls:
    ///     they are not sent again).
    ///   - payload: The call's bytes.
    /// - Returns: The answer, sent back to the parent.
    func call(definitions: [ProcessDefinition], payload: [UInt8]) -> ProcessReply
}
