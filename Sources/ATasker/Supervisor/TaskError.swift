/// An error about a task that the supervisor reports (not an error thrown by the task's own body).
///
/// ```swift
/// do {
///     let n: Int = try await task.value()
/// } catch let error as TaskError where error.code == .canceled {
///     // the task was cancelled before it started
/// }
/// ```
public struct TaskError: Error, Sendable, CustomStringConvertible {
    /// What went wrong. New codes may be added, so `switch` statements need a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case canceled
            case supervisorStopped
            case typeMismatch
            case timedOut
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// The task was cancelled before it started.
        public static let canceled = Code(.canceled)
        /// The task was submitted after the supervisor was stopped.
        public static let supervisorStopped = Code(.supervisorStopped)
        /// The task's result is not of the type that was asked for.
        public static let typeMismatch = Code(.typeMismatch)
        /// A wait ended at its deadline before the task finished.
        public static let timedOut = Code(.timedOut)

        /// The code's name.
        public var description: String {
            switch self.value {
            case .canceled: "canceled"
            case .supervisorStopped: "supervisorStopped"
            case .typeMismatch: "typeMismatch"
            case .timedOut: "timedOut"
            }
        }
    }

    /// What went wrong.
    public let code: Code

    /// A message for people, naming the task.
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
