/// An error about a worker: a misuse of the worker API, reported at the call.
///
/// Errors thrown by a worker's executor are not wrapped in this type: they go to the worker's
/// ``Worker/Hooks/onError`` handler, or to the supervisor's log.
///
/// ```swift
/// do {
///     _ = try BackgroundWorker(supervisor: supervisor, name: "poller") { _ in true }
/// } catch let error as WorkerError where error.code == .nameInUse {
///     // another worker of this supervisor is called "poller"
/// }
/// ```
public struct WorkerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong. New codes may be added, so `switch` statements need a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case nameInUse
            case invalidArgument
            case supervisorStopped
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// Another worker of the same supervisor already has this name.
        public static let nameInUse = Code(.nameInUse)
        /// A parameter is out of range, or two parameters exclude each other.
        public static let invalidArgument = Code(.invalidArgument)
        /// The worker was started after its supervisor was stopped.
        public static let supervisorStopped = Code(.supervisorStopped)

        /// The code's name.
        public var description: String {
            switch self.value {
            case .nameInUse: "nameInUse"
            case .invalidArgument: "invalidArgument"
            case .supervisorStopped: "supervisorStopped"
            }
        }
    }

    /// What went wrong.
    public let code: Code

    /// A message for people, naming the worker and what to do.
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
