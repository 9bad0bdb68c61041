/// A misuse of a ``LuaHost`` from Swift, reported as an error instead of a trap.
public struct LuaHostError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was misused.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let rawValue: Int
        /// ``LuaHost/register(_:_:)`` after a Lua state was opened: the function would reach no state.
        public static let registeredTooLate = Code(rawValue: 1)
        /// ``LuaHost/result(of:)`` of a task that Lua did not run: its result is a Swift value.
        public static let notALuaTask = Code(rawValue: 2)
        /// ``LuaHost/start(_:arguments:)`` of a value that is not a task starter of `atasker.background_task`.
        public static let notAStarter = Code(rawValue: 3)

        public var description: String {
            switch self.rawValue {
            case 1: return "registered too late"
            case 2: return "not a Lua task"
            case 3: return "not a task starter"
            default: return "error \(self.rawValue)"
            }
        }
    }

    /// What was misused.
    public let code: Code
    /// What happened, and what to do instead.
    public let message: String

    /// The message.
    public var description: String { self.message }
}
