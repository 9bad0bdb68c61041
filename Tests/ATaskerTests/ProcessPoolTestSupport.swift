import Glibc
import Logging
import Synchronization
import Testing

@testable import ATasker

/// The fixture child program (`Tests/ProcessChildFixture`), built next to the test bundle.
let processFixture: String = {
    if let resolved = realpath("/proc/self/exe", nil) {
        defer { free(resolved) }
        var directory = String(cString: resolved)
        while let last = directory.last, last != "/" {
            directory.removeLast()
        }
        let candidate = directory + "ProcessChildFixture"
        if access(candidate, X_OK) == 0 {
            return candidate
        }
    }
    return ".build/debug/ProcessChildFixture"
}()

/// A call of the fixture: an opcode character and its argument (see the fixture's `FixtureHandler`).
func fixtureCall(_ text: String, definitions: [ProcessDefinition] = []) -> ProcessCall {
    ProcessCall(definitions: definitions, payload: Array(text.utf8))
}

/// Named gates that the pool's service blocks on, and a log of what the service saw.
///
/// A fixture call `rblock:NAME` makes the child request `block:NAME`: the service logs `started NAME`, waits
/// until the test opens gate NAME, and answers `released NAME`. A call `nNAME` notifies `NAME`, logged as
/// `notify NAME`; a request `ping:X` is answered `pong:X`.
final class ProcessService: Sendable {
    let events = EventLog()
    private let gates = Mutex<[String: Gate]>([:])

    func gate(_ name: String) -> Gate {
        self.gates.withLock { gates in
            if let gate = gates[name] {
                return gate
            }
            let gate = Gate()
            gates[name] = gate
            return gate
        }
    }

    func open(_ name: String) {
        self.gate(name).open()
    }

    var handler: @Sendable ([UInt8], Bool) -> [UInt8] {
        { [self] payload, isNotify in
            let text = String(decoding: payload, as: UTF8.self)
            if isNotify {
                self.events.append("notify \(text)")
                return []
            }
            if text.hasPrefix("block:") {
                let name = String(text.dropFirst(6))
                self.events.append("started \(name)")
                self.gate(name).wait(timeout: 60)
                return Array("released \(name)".utf8)
            }
            if text.hasPrefix("ping:") {
                return Array("pong:\(text.dropFirst(5))".utf8)
            }
            return Array("unknown request \(text)".utf8)
        }
    }
}

/// A log handler that drops everything (pool warnings about the deaths the tests cause).
struct QuietLogHandler: LogHandler {
    var logLevel: Logger.Level = .critical
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {}
}

extension TaskSupervisor {
    /// A started supervisor whose process pool runs the fixture child.
    static func withFixturePool(
        poolSize: Int = 1,
        reserveNormal: Int = 0,
        reserveHigh: Int = 0,
        service: ProcessService? = nil,
        configure: (inout ProcessPoolConfiguration) -> Void = { _ in }
    ) -> TaskSupervisor {
        let supervisor = TaskSupervisor(
            configuration: .init(poolSize: 4, timeoutWarning: 60, timeoutCritical: 120),
            logger: Logger(label: "process-pool-test") { _ in QuietLogHandler() }
        )
        supervisor.start()
        supervisor.setProcessPool(
            .fixture(
                poolSize: poolSize, reserveNormal: reserveNormal, reserveHigh: reserveHigh, service: service, configure)
        )
        return supervisor
    }

    /// The pids of the pool's children now.
    var processChildPIDs: [Int32] {
        self.info().processPool?.children.map(\.pid) ?? []
    }

    /// Stops, then checks that no task, child or zombie was left behind (the leak check of every pool test).
    func finishProcessPool() {
        let pids = self.processChildPIDs
        let left = self.stop(wait: .seconds(30))
        #expect(left.isEmpty, "tasks still running at the end of a test: \(left)")
        #expect(self.info().tasks == 0, "tasks left at the end of a test")
        let info = self.info().processPool
        #expect(
            info?.children.isEmpty ?? true, "pool children left at the end of a test: \(String(describing: info))")
        for pid in pids where pid > 0 {
            #expect(!ProcessSystem.isUnreapedChild(pid), "pool child \(pid) left unreaped")
        }
    }
}

extension ProcessPoolConfiguration {
    /// A pool of fixture children.
    static func fixture(
        poolSize: Int = 1,
        reserveNormal: Int = 0,
        reserveHigh: Int = 0,
        service: ProcessService? = nil,
        _ configure: (inout ProcessPoolConfiguration) -> Void = { _ in }
    ) -> ProcessPoolConfiguration {
        var configuration = ProcessPoolConfiguration(
            poolSize: poolSize, reserveNormal: reserveNormal, reserveHigh: reserveHigh)
        configuration.executable = processFixture
        configuration.stopTimeout = 5
        configuration.service = service?.handler
        configure(&configuration)
        return configuration
    }
}

extension SupervisorTask {
    /// Waits (at most a generous minute) and returns the reply's bytes as text, or throws the task's error.
    func replyText() throws -> String {
        #expect(self.wait(timeout: 60), "\(self) did not finish")
        switch self.status {
        case .completed:
            let bytes = try #require(self.result as? [UInt8])
            return String(decoding: bytes, as: UTF8.self)
        default:
            throw self.error ?? TestFailure(message: "\(self) ended \(self.status) without an error")
        }
    }

    /// Waits and returns the task's error as a ``ProcessPoolError``.
    func poolError() throws -> ProcessPoolError {
        #expect(self.wait(timeout: 60), "\(self) did not finish")
        #expect(self.status == .failed)
        return try #require(self.error as? ProcessPoolError, "\(self) failed with \(String(describing: self.error))")
    }
}

/// Whether a process is gone: no `/proc` entry, or a zombie waiting for a reaper that is not us.
func processIsGone(_ pid: Int32) -> Bool {
    let descriptor = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
    if descriptor < 0 {
        return true
    }
    defer { close(descriptor) }
    var buffer = [UInt8](repeating: 0, count: 512)
    let count = read(descriptor, &buffer, buffer.count)
    guard count > 0 else {
        return true
    }
    let text = String(decoding: buffer[0..<count], as: UTF8.self)
    // "pid (comm) S ...": the state follows the last parenthesis.
    guard let close = text.lastIndex(of: ")") else {
        return false
    }
    let state = text[text.index(after: close)...].trimmingPrefix(" ").first
    return state == "Z" || state == "X"
}

/// Waits until `condition` holds, checking every few milliseconds, at most `timeout` seconds (for process
/// states that no event announces to the test).
func waitFor(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    eventually(timeout: timeout, condition)
}

/// A fixture process started by a test in one of its parent modes, with its standard output on a pipe.
struct FixtureParent {
    let pid: Int32
    private let output: Int32

    init(_ arguments: [String]) throws {
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else {
            throw TestFailure(message: "pipe failed")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
        let argv = [processFixture] + arguments
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, processFixture, &actions, nil, &cArguments, environ)
        close(pipeEnds[1])
        guard status == 0 else {
            close(pipeEnds[0])
            throw TestFailure(message: "cannot spawn the fixture: \(status)")
        }
        self.pid = pid
        self.output = pipeEnds[0]
    }

    /// Reads standard output until a line starts with `prefix` (or end-of-file); returns that line.
    func readLine(startingWith prefix: String) -> String? {
        var text = ""
        var byte: UInt8 = 0
        while read(self.output, &byte, 1) == 1 {
            if byte == UInt8(ascii: "\n") {
                if text.hasPrefix(prefix) {
                    return text
                }
                text = ""
            } else {
                text.append(Character(UnicodeScalar(byte)))
            }
        }
        return nil
    }

    /// Reads standard output to its end.
    func readAll() -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(self.output, &chunk, chunk.count)
            if count <= 0 {
                break
            }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Waits for the process to end and returns its wait status.
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(self.pid, &status, 0) < 0 && errno == EINTR {}
        close(self.output)
        return status
    }
}
