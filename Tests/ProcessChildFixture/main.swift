// The program that the process pool tests spawn.
//
// As a pool child it runs `FixtureHandler`, whose calls are one opcode byte and an argument (see below).
// Started with a mode argument it is a small parent instead, for what a test cannot do in its own process
// (be killed, count its own descriptors and threads, have its standard output captured).
import ATasker
import Glibc
import Logging

/// Answers the tests' calls. The first byte of the payload picks what to do; the rest is its argument.
final class FixtureHandler: ProcessChildHandler {
    let hello: [UInt8]
    var definitions: [UInt64: [UInt8]] = [:]

    init(hello: [UInt8]) throws {
        self.hello = hello
        let text = String(decoding: hello, as: UTF8.self)
        if text.hasPrefix("fail:") {
            throw FixtureError(message: String(text.dropFirst(5)))
        }
        if text.hasPrefix("exit:") {
            exit(Int32(text.dropFirst(5)) ?? 1)
        }
        if text.hasPrefix("kill:") {
            raise(Int32(text.dropFirst(5)) ?? SIGKILL)
        }
    }

    func call(definitions: [ProcessDefinition], payload: [UInt8]) -> ProcessReply {
        for definition in definitions {
            self.definitions[definition.key] = definition.payload
        }
        guard let opcode = payload.first else {
            return .failure(Array("empty call".utf8))
        }
        let argumentBytes = Array(payload.dropFirst())
        let argument = String(decoding: argumentBytes, as: UTF8.self)
        switch Character(UnicodeScalar(opcode)) {
        case "e":  // echo
            return .success(argumentBytes)
        case "p":  // the pid
            return .success(Array("\(getpid())".utf8))
        case "h":  // the hello bytes
            return .success(self.hello)
        case "d":  // definitions: how many this call brought, how many are known
            let keys = self.definitions.keys.sorted().map { "\($0)" }.joined(separator: ",")
            return .success(Array("new=\(definitions.count) known=\(keys)".utf8))
        case "f":  // a failure reply
            return .failure(argumentBytes)
        case "x":  // exit with a status
            exit(Int32(argument) ?? 1)
        case "k":  // kill itself with a signal
            raise(Int32(argument) ?? SIGKILL)
            return .failure(Array("still alive after raise".utf8))
        case "s":  // sleep some milliseconds
            usleep(UInt32(max(0, Int(argument) ?? 0)) * 1000)
            return .success(Array("slept".utf8))
        case "w":  // notify "sleeping <pid>", then sleep some milliseconds
            try? ProcessChild.notify(Array("sleeping \(getpid())".utf8))
            usleep(UInt32(max(0, Int(argument) ?? 0)) * 1000)
            return .success(Array("slept".utf8))
        case "S":  // stop itself (SIGSTOP)
            raise(SIGSTOP)
            return .success(Array("continued".utf8))
        case "c":  // close the protocol descriptor and live on
            // The watcher thread's poll holds the descriptor open, so a plain close would not reach the
            // parent; exec'ing another program (descriptor 3 close-on-exec) ends every thread and closes it.
            _ = fcntl(3, F_SETFD, FD_CLOEXEC)
            var argv: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("60"), nil]
            execv("/bin/sleep", &argv)
            return .failure(Array("exec failed".utf8))
        case "z":  // leave a grandchild holding the protocol descriptor, then exit with status 9
            _ = fcntl(3, F_SETFD, 0)
            var argv: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("3"), nil]
            var pid: pid_t = 0
            _ = posix_spawn(&pid, "/bin/sleep", nil, nil, &argv, environ)
            exit(9)
        case "g", "G", "T", "t":  // break the protocol
            Self.writeBadFrame(opcode)
            while true {
                pause()
            }
        case "r":  // a request to the parent's service
            do {
                return .success(try ProcessChild.request(argumentBytes))
            } catch {
                return .failure(Array("\(error)".utf8))
            }
        case "n":  // a notification to the parent's service
            do {
                try ProcessChild.notify(argumentBytes)
                return .success([])
            } catch {
                return .failure(Array("\(error)".utf8))
            }
        case "o":  // a line on standard output
            let line = Array((argument + "\n").utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
            return .success([])
        case "E":  // an environment variable
            return .success(Array((getenv(argument).map { String(cString: $0) } ?? "<unset>").utf8))
        case "F":  // the open descriptors
            return .success(Array(openDescriptors().map { "\($0)" }.joined(separator: ",").utf8))
        case "D":  // a signal's disposition: "default", "ignored" or "handled"
            var action = sigaction()
            sigaction(Int32(argument) ?? SIGUSR2, nil, &action)
            let handler = unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self)
            return .success(Array((handler == 0 ? "default" : handler == 1 ? "ignored" : "handled").utf8))
        case "M":  // the blocked signals
            var blocked = sigset_t()
            sigprocmask(SIG_BLOCK, nil, &blocked)
            let list = (1..<65).filter { sigismember(&blocked, Int32($0)) == 1 }.map { "\($0)" }
            return .success(Array(list.joined(separator: ",").utf8))
        default:
            return .failure(Array("unknown opcode \(opcode)".utf8))
        }
    }

    /// Writes a frame that breaks the protocol: `g` a bad checksum, `G` a length over the limit, `T` an
    /// unknown type (with a good checksum), `t` half a header.
    static func writeBadFrame(_ opcode: UInt8) {
        var bytes: [UInt8]
        switch opcode {
        case UInt8(ascii: "g"):
            bytes = [10, 0, 0, 0, 1, 2, 3, 4, 5] + Array(repeating: 7, count: 9)
        case UInt8(ascii: "G"):
            bytes = [0, 0, 0, 0x7f, 0, 0, 0, 0, 5]
        case UInt8(ascii: "T"):
            // length 1, type 200: the CRC-32C of the single byte 200.
            bytes = [1, 0, 0, 0] + littleEndian(crc32c([200])) + [200]
        default:
            bytes = [9, 0, 0]
        }
        _ = bytes.withUnsafeBytes { send(3, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if opcode == UInt8(ascii: "t") {
            _exit(0)
        }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let message: String
    var description: String { self.message }
}

func littleEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value & 0xff), UInt8((value >> 8) & 0xff), UInt8((value >> 16) & 0xff), UInt8(value >> 24)]
}

/// CRC-32C, bit by bit (the fixture's own, to forge a frame with a valid checksum).
func crc32c(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xffff_ffff
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 {
            crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
        }
    }
    return ~crc
}

/// The numbers of the open descriptors (from `/proc/self/fd`, without the one reading it).
func openDescriptors() -> [Int32] {
    entries(of: "/proc/self/fd").compactMap { Int32($0) }.sorted()
}

/// The names in a directory, without `.` and `..`.
func entries(of path: String) -> [String] {
    guard let directory = opendir(path) else {
        return []
    }
    defer { closedir(directory) }
    let own = dirfd(directory)
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." && name != "\(own)" {
            names.append(name)
        }
    }
    return names
}

func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

func call(_ text: String) -> ProcessCall {
    ProcessCall(payload: Array(text.utf8))
}

func poolSupervisor(poolSize: Int) -> TaskSupervisor {
    let supervisor = TaskSupervisor(
        configuration: .init(poolSize: 4), logger: Logger(label: "fixture") { _ in SwiftLogNoOpLogHandler() })
    supervisor.start()
    var configuration = ProcessPoolConfiguration(poolSize: poolSize, reserveNormal: 0, reserveHigh: 0)
    configuration.stopTimeout = 2
    supervisor.setProcessPool(configuration)
    return supervisor
}

func text(_ task: SupervisorTask) -> String {
    task.wait(timeout: 60)
    return (task.result as? [UInt8]).map { String(decoding: $0, as: UTF8.self) }
        ?? "error: \(task.error.map { "\($0)" } ?? "none")"
}

ProcessChild.runIfChild { hello in try FixtureHandler(hello: hello) }

let arguments = CommandLine.arguments
switch arguments.count > 1 ? arguments[1] : "" {
case "parent-sleep":
    // Start a child that sleeps, say its pid, and wait to be killed.
    let supervisor = poolSupervisor(poolSize: 1)
    say("child \(text(supervisor.submitProcess(call("p"))))")
    supervisor.submitProcess(call("s600000"))
    while true {
        pause()
    }
case "parent-print":
    // A child writes a line to the standard output it shares with this process.
    let supervisor = poolSupervisor(poolSize: 1)
    say("parent says \(text(supervisor.submitProcess(call("ochild says hello"))))done")
    supervisor.stop(wait: .seconds(10))
    exit(0)
case "parent-respawn":
    // Descriptors and threads stay constant across many child deaths and respawns.
    let rounds = arguments.count > 2 ? Int(arguments[2]) ?? 200 : 200
    let supervisor = poolSupervisor(poolSize: 1)
    _ = text(supervisor.submitProcess(call("x3")))
    _ = text(supervisor.submitProcess(call("e")))
    supervisor.waitUntilIdle()
    let descriptorsBefore = openDescriptors().count
    let threadsBefore = entries(of: "/proc/self/task").count
    var failures = 0
    for _ in 0..<rounds {
        let task = supervisor.submitProcess(call("x3"))
        task.wait(timeout: 60)
        if task.status == .failed {
            failures += 1
        }
    }
    _ = text(supervisor.submitProcess(call("e")))
    supervisor.waitUntilIdle()
    // A dead child's thread ends just after it reported the death: give the last one a moment.
    var descriptorsAfter = openDescriptors().count
    var threadsAfter = entries(of: "/proc/self/task").count
    for _ in 0..<500 where descriptorsAfter != descriptorsBefore || threadsAfter != threadsBefore {
        usleep(10_000)
        descriptorsAfter = openDescriptors().count
        threadsAfter = entries(of: "/proc/self/task").count
    }
    let info = supervisor.info().processPool
    say(
        "failures=\(failures) spawned=\(info?.childrenSpawned ?? -1) deaths=\(info?.childDeaths ?? -1) fds=\(descriptorsBefore)->\(descriptorsAfter) threads=\(threadsBefore)->\(threadsAfter)"
    )
    supervisor.stop(wait: .seconds(10))
    exit(0)
case "subreaper":
    // Run a command (arguments 2...) as a child subreaper, as a process manager or a container's init may be:
    // the orphans of its tree become this process's children, in its session, so the kernel's rule for
    // orphaned process groups (SIGHUP and SIGCONT to a group with a stopped member) never applies to them.
    // It says "launched pid N", reaps every process that comes to it, and exits once none is left.
    // prctl is variadic, which Swift cannot call: it is called through a pointer of a fixed type.
    typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    let prSetChildSubreaper: Int32 = 36
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "prctl"),
        unsafeBitCast(symbol, to: Prctl.self)(prSetChildSubreaper, 1, 0, 0, 0) == 0, arguments.count > 2
    else {
        say("subreaper: cannot become a child subreaper, or no command")
        exit(2)
    }
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.dropFirst(2).map { strdup($0) } + [nil]
    var pid: pid_t = 0
    guard posix_spawn(&pid, arguments[2], nil, nil, &argv, environ) == 0 else {
        say("subreaper: cannot spawn \(arguments[2])")
        exit(2)
    }
    say("launched pid \(pid)")
    var status: Int32 = 0
    while true {
        let reaped = waitpid(-1, &status, 0)
        if reaped < 0 && errno == EINTR {
            continue
        }
        if reaped < 0 {
            break
        }
    }
    exit(0)
default:
    let bytes = Array(
        "usage: ProcessChildFixture parent-sleep | parent-print | parent-respawn [N] | subreaper COMMAND...\n".utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}
