import Foundation
import Testing

/// What one run of the real `atasker-lua` binary did.
struct CLIRun {
    var status: Int32
    var signaled: Bool
    var stdout: String
    var stderr: String

    /// The package's root folder, from this file's path.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["ATASKER_LUA_BIN"], !path.isEmpty { return path }
        return packageRoot.appendingPathComponent(".build/debug/atasker-lua").path
    }

    static func fixture(_ name: String) -> String {
        packageRoot.appendingPathComponent("Tests/Fixtures/\(name)").path
    }

    /// Runs the binary with `arguments`. `whileRunning` gets the running process and its standard output collector,
    /// to wait for a line and send signals.
    static func run(
        _ arguments: [String], timeout: Double = 60, executable: String? = nil,
        whileRunning: ((Process, Collector) throws -> Void)? = nil
    ) throws -> CLIRun {
        try self.run(arguments, timeout: timeout, executable: executable) { process, stdout, _ in
            try whileRunning?(process, stdout)
        }
    }

    /// ``run(_:timeout:executable:whileRunning:)`` with both output collectors (standard output, then standard
    /// error) and `environment` added to this process's.
    static func run(
        _ arguments: [String], timeout: Double = 60, executable: String? = nil, environment: [String: String] = [:],
        whileRunningWithStreams whileRunning: ((Process, Collector, Collector) throws -> Void)?
    ) throws -> CLIRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable ?? self.binary)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.currentDirectoryURL = packageRoot
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let ended = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in ended.signal() }
        try process.run()
        let stdout = Collector(out.fileHandleForReading)
        let stderr = Collector(err.fileHandleForReading)
        if let whileRunning { try whileRunning(process, stdout, stderr) }
        if ended.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            ended.wait()
            Issue.record("atasker-lua \(arguments) did not end within \(timeout) s")
        }
        process.waitUntilExit()
        return CLIRun(
            status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
            stdout: stdout.finish(), stderr: stderr.finish())
    }
}

/// Reads a pipe to its end on a thread of its own; a test may wait for a text to appear.
final class Collector: @unchecked Sendable {
    // protected by `condition`
    private var data = Data()
    private var closed = false
    private let condition = NSCondition()

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                self.condition.lock()
                if chunk.isEmpty {
                    self.closed = true
                } else {
                    self.data.append(chunk)
                }
                self.condition.broadcast()
                self.condition.unlock()
                if chunk.isEmpty { return }
            }
        }
    }

    /// Waits until the output contains `text`; false if it ends or the time runs out first.
    func waitFor(_ text: String, timeout: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        self.condition.lock()
        defer { self.condition.unlock() }
        while !String(decoding: self.data, as: UTF8.self).contains(text) {
            if self.closed || !self.condition.wait(until: deadline) { return false }
        }
        return true
    }

    /// Waits until the output contains `text` `occurrences` times; false if it ends or the time runs out first.
    func waitFor(_ text: String, occurrences: Int, timeout: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        self.condition.lock()
        defer { self.condition.unlock() }
        while String(decoding: self.data, as: UTF8.self).components(separatedBy: text).count - 1 < occurrences {
            if self.closed || !self.condition.wait(until: deadline) { return false }
        }
        return true
    }

    /// Waits for a complete line that starts with `prefix` and returns the rest of it; nil if the output ends or
    /// the time runs out first.
    func line(startingWith prefix: String, timeout: Double = 30) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        self.condition.lock()
        defer { self.condition.unlock() }
        while true {
            let text = String(decoding: self.data, as: UTF8.self)
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            where line.hasPrefix(prefix) {
                return String(line.dropFirst(prefix.count))
            }
            if self.closed || !self.condition.wait(until: deadline) { return nil }
        }
    }

    /// The output so far.
    func snapshot() -> String {
        self.condition.lock()
        defer { self.condition.unlock() }
        return String(decoding: self.data, as: UTF8.self)
    }

    /// Waits for the end of the output and returns all of it.
    func finish() -> String {
        self.condition.lock()
        defer { self.condition.unlock() }
        while !self.closed { self.condition.wait() }
        return String(decoding: self.data, as: UTF8.self)
    }
}
