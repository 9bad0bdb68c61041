/// An error about an ``Aloop``: a misuse of the aloop API, reported at the call.
///
/// ```swift
/// do {
///     _ = try supervisor.createAloop(named: "io")
/// } catch let error as AloopError where error.code == .nameInUse {
///     // the supervisor has an aloop called "io" already
/// }
/// ```
public struct AloopError: Error, Sendable, CustomStringConvertible {
    /// What went wrong. New codes may be added, so `switch` statements need a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case nameInUse
            case notFound
            case notRunning
            case supervisorStopped
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// The supervisor has another aloop with this name.
        public static let nameInUse = Code(.nameInUse)
        /// The supervisor has no aloop with this name.
        public static let notFound = Code(.notFound)
        /// The aloop is stopped (or was never started), so it takes no work.
        public static let notRunning = Code(.notRunning)
        /// The aloop was asked of a supervisor that was stopped.
        public static let supervisorStopped = Code(.supervisorStopped)

        /// The code's name.
        public var description: String {
            switch self.value {
            case .nameInUse: "nameInUse"
            case .notFound: "notFound"
            case .notRunning: "notRunning"
            case .supervisorStopped: "supervisorStopped"
            }
        }
    }

    /// What went wrong.
    public let code: Code

    /// A message for people, naming the aloop and what to do.
    public let message: String

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: What went wrong.
    ///   - message: A message for people.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String {
        self.message
    }
}
