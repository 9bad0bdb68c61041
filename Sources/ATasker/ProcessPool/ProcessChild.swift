import CProcessSpawn
import Glibc
import Synchronization

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

    /// The descriptor number the pool gives the child's end of the socket.
    static let descriptorNumber: Int32 = 3

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
    /// The pool spawns each child as the leader of a process group of its own. When the descriptor hangs up
    /// (the parent is gone, even killed), a watcher thread kills that group with `SIGKILL` at once, even while a
    /// call runs: the child and whatever it started (`os.execute`, `io.popen`) end within a second. A child that
    /// is stopped (`SIGSTOP`) cannot run its watcher, so it asks the kernel for `SIGCONT` when its parent dies
    /// (`PR_SET_PDEATHSIG`), which resumes it.
    ///
    /// - Parameter makeHandler: Creates the handler from the pool's hello bytes.
    public static func runIfChild(_ makeHandler: ([UInt8]) throws -> any ProcessChildHandler) {
        guard let descriptor = launchDescriptor else {
            return
        }
        unsetenv(Self.variable)
        // Programs this child runs must not inherit the socket: they would keep it open after the child died.
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        // SIGINT was blocked by the spawn so that a Ctrl-C that reached the child before it left the parent's
        // process group stays pending; now it is ignored, every signal is unblocked, and the parent's death
        // will send SIGCONT.
        atp_child_signals()
        FatalSignals.install(label: "atasker pool child")
        Self.startWatcher(descriptor)
        let channel = ProcessChildChannel(descriptor: descriptor)
        guard let first = channel.next() else {
            Self.exitQuietly()
        }
        switch first.kind {
        case .hello:
            break
        case .stop:
            exit(0)
        default:
            Self.protocolFailure("the first frame is \(first.kind), not hello")
        }
        let handler: any ProcessChildHandler
        do {
            handler = try makeHandler(first.body)
        } catch {
            let message = Array("\(error)".utf8)
            channel.send { ProcessFrame.append(.startupFailed, payload: message, to: &$0) }
            exit(1)
        }
        channel.send { ProcessFrame.append(.ready, payload: [], to: &$0) }
        currentChannel.withLock { $0 = channel }
        Self.serve(channel, handler)
    }

    /// Sends `payload` to the parent's ``ProcessPoolConfiguration/service`` and waits for its answer.
    ///
    /// Call it from inside ``ProcessChildHandler/call(definitions:payload:)``, on the thread that runs it.
    /// Calls that the parent pipelined meanwhile wait for the current one to end.
    ///
    /// - Parameter payload: The request.
    /// - Returns: What the service returned.
    /// - Throws: ``ProcessChildError`` outside a call, or when the parent has no service.
    public static func request(_ payload: [UInt8]) throws -> [UInt8] {
        guard let channel = Self.usableChannel() else {
            throw ProcessChildError(
                "ProcessChild.request is only available inside a call of a pool child, on its thread")
        }
        return try channel.request(payload)
    }

    /// Sends `payload` to the parent's ``ProcessPoolConfiguration/service`` without waiting.
    ///
    /// - Parameter payload: The notification.
    /// - Throws: ``ProcessChildError`` outside a call of a pool child.
    public static func notify(_ payload: [UInt8]) throws {
        guard let channel = Self.usableChannel() else {
            throw ProcessChildError(
                "ProcessChild.notify is only available inside a call of a pool child, on its thread")
        }
        channel.send { ProcessFrame.append(.notify, payload: payload, to: &$0) }
    }

    // MARK: - Internals

    /// Runs calls until `stop` or end-of-file.
    private static func serve(_ channel: ProcessChildChannel, _ handler: any ProcessChildHandler) -> Never {
        while let frame = channel.next() {
            switch frame.kind {
            case .call:
                let id: UInt64
                let definitions: [ProcessDefinition]
                let payload: [UInt8]
                do {
                    (id, definitions, payload) = try ProcessFrame.readCall(frame.body[...])
                } catch {
                    Self.protocolFailure(error.detail)
                }
                channel.inCall = true
                let reply = handler.call(definitions: definitions, payload: payload)
                channel.inCall = false
                channel.send { buffer in
                    switch reply {
                    case .success(let bytes):
                        ProcessFrame.appendAnswer(.reply, id: id, success: true, payload: bytes, to: &buffer)
                    case .failure(let bytes):
                        ProcessFrame.appendAnswer(.reply, id: id, success: false, payload: bytes, to: &buffer)
                    }
                }
            case .stop:
                exit(0)
            default:
                Self.protocolFailure("unexpected \(frame.kind) frame")
            }
        }
        Self.exitQuietly()
    }

    private static func usableChannel() -> ProcessChildChannel? {
        guard let channel = currentChannel.withLock({ $0 }), channel.isUsableHere else {
            return nil
        }
        return channel
    }

    /// Starts the thread that ends the process (and its group) when the descriptor hangs up.
    ///
    /// It polls only for `POLLRDHUP` (the peer closed its end; `POLLHUP` and `POLLERR` are always reported),
    /// never for `POLLIN`, so incoming frames do not wake it.
    private static func startWatcher(_ descriptor: Int32) {
        let started = PoolThread.spawn(name: "atasker-watch") {
            var entry = pollfd(fd: descriptor, events: Int16(Self.pollReadHangUp), revents: 0)
            while true {
                let ready = poll(&entry, 1, -1)
                if ready < 0 && errno != EINTR {
                    Self.exitQuietly()
                }
                if ready > 0 && entry.revents & Int16(Self.pollReadHangUp | POLLHUP | POLLERR | POLLNVAL) != 0 {
                    Self.exitQuietly()
                }
            }
        }
        if !started {
            Self.protocolFailure("cannot start the watcher thread")
        }
    }

    /// `POLLRDHUP`, which Swift's Glibc module does not export (it needs `_GNU_SOURCE`).
    private static let pollReadHangUp: Int32 = 0x2000

    /// The parent broke the protocol: say so on standard error and exit with status 70 (`EX_SOFTWARE`).
    static func protocolFailure(_ detail: String) -> Never {
        let message = Array("atasker pool child \(getpid()): protocol error from the parent: \(detail)\n".utf8)
        _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(70)
    }

    /// The parent is gone (the socket reached end-of-file or a write failed): kill the child's process group,
    /// this process with it (see `atp_child_end_group`). Nothing is flushed: a stream's lock may be held by a
    /// thread blocked on a full pipe, and this must not wait (`print` flushes each line anyway).
    static func exitQuietly() -> Never {
        atp_child_end_group()
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

/// The channel of a running child, for ``ProcessChild/request(_:)`` and ``ProcessChild/notify(_:)``.
private let currentChannel = Mutex<ProcessChildChannel?>(nil)
