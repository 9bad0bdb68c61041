/// What a pool child's ``ProcessChildHandler`` answered to a call.
public enum ProcessReply: Sendable {
    /// The call succeeded with these bytes.
    case success([UInt8])
    /// The call failed; the bytes describe the failure (the handler chooses their format).
    case failure([UInt8])
}
