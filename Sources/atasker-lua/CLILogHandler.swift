import Glibc
import Logging

/// The command line's log lines: `time level label: [source] message` on standard error, one write per line.
///
/// The library puts the worker's and the task's names in the message and also as metadata (`task.id`,
/// `task.name`, `worker`) for an app's own handler; a terminal line shows the message only, since the metadata
/// would say it twice.
struct CLILogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        writeStandardError("\(Self.timestamp()) \(event.level) \(self.label): [\(event.source)] \(event.message)\n")
    }

    /// The local time as `2026-12-03T23:11:36+0000`, as swift-log's stream handler writes it.
    private static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
