import Glibc

/// The entry point and services of a pool child.
///
/// A program whose children the pool spawns (by default, the running program itself) calls
/// ``runIfChild(_:)`` first thing in `main`: in the parent it returns at once; in a child it serves calls
/// and never returns.
///
/// ```swift
/// ProcessChild.runIfChild { hello in MyHandler(hello: hello) }
/// // ... the parent program goes on here ...
/// ```
public enum ProcessChild {
    /// The environment variable that marks a pool child; its value is the protocol descriptor.
    static let variable = "ATASKER_PROCESS_CHILD"

    /// True when this process was started as a pool child (the pool sets `ATASKER_PROCESS_CHILD`).
    ///
    /// It stays true after ``runIfChild(_:)`` has removed the variable.
    public static var isChild: Bool {
        launchDescriptor != nil
    }

    /// Serves the pool when this process is a pool child; returns at once otherwise.
    ///
    /// In a child it removes `ATASKER_PROCESS_CHILD` from the environment, ignores `SIGINT` (the parent
    /// handles Ctrl-C), reads the hello frame and calls `makeHandler(hello)`. If that throws, the error's
    /// description goes to the parent as a start-up failure and the child exits with status 1. Otherwise the
    /// child reports ready and runs calls, in order, until the parent asks it to stop or its descriptor
    /// reaches end-of-file; it then exits with status 0.
    ///
    /// A watcher thread ends the process (`_exit(0)`) as soon as the descriptor hangs up, even while a call
    /// runs, so a child dies within a second when its parent is killed.
    ///
    /// - Parameter makeHandler: Creates the handler from the pool's hello bytes.
    public static func runIfChild(_ makeHandler: ([UInt8]) throws -> any ProcessChildHandler) {
        guard launchDescriptor != nil else {
            return
        }
        exit(70)
    }

    /// Sends `payload` to the parent's ``ProcessPoolConfiguration/service`` and waits for its answer.
    ///
    /// Call it from inside ``ProcessChildHandler/call(definitions:payload:)``.
    ///
    /// - Parameter payload: The request.
    /// - Returns: What the service returned.
    /// - Throws: ``ProcessChildError`` outside a call or when the parent has no service.
    public static func request(_ payload: [UInt8]) throws -> [UInt8] {
        throw ProcessChildError("ProcessChild.request is only available inside a call of a pool child")
    }

    /// Sends `payload` to the parent's ``ProcessPoolConfiguration/service`` without waiting.
    ///
    /// - Parameter payload: The notification.
    /// - Throws: ``ProcessChildError`` outside a call of a pool child.
    public static func notify(_ payload: [UInt8]) throws {
        throw ProcessChildError("ProcessChild.notify is only available inside a call of a pool child")
    }
}

/// The protocol descriptor named by `ATASKER_PROCESS_CHILD` when the process started (read once, before
/// ``ProcessChild/runIfChild(_:)`` removes the variable).
private let launchDescriptor: Int32? = {
    guard let value = getenv(ProcessChild.variable), let descriptor = Int32(String(cString: value)),
        descriptor >= 0
    else {
        return nil
    }
    return descriptor
}()
