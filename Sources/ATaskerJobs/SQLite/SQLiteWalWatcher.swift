import ATaskerLua
import Glibc
import Synchronization

/// Wakes this process's workers when any process writes to an SQLite file in WAL mode: a thread waits on inotify
/// for changes of the file's `-wal` (every commit appends to it), so a job put by another process starts at once
/// instead of at the next poll. Wake-ups are hints, at most one per millisecond: a worker looks at the store (a read) and
/// sleeps again when nothing is ready. Where inotify is not available, the workers' polls remain.
final class SQLiteWalWatcher: Sendable {
    private let stopped = Atomic<Bool>(false)

    /// Starts watching `path`-wal; `onChange` runs on the watcher's thread.
    init(databasePath path: String, onChange: @escaping @Sendable () -> Void) {
        let walPath = path + "-wal"
        spawnThreadForWatcher { [stopped = self.stoppedBox] in
            Self.watch(walPath, stopped: stopped, onChange: onChange)
        }
    }

    /// The flag, shared with the thread (which must not keep `self` alive).
    private var stoppedBox: StopFlag { StopFlag(self) }

    deinit {
        self.stopped.store(true, ordering: .releasing)
    }

    var isStopped: Bool { self.stopped.load(ordering: .acquiring) }

    /// A weak view of the watcher for its thread: stopped once the watcher is gone.
    struct StopFlag: Sendable {
        weak var watcher: SQLiteWalWatcher?
        init(_ watcher: SQLiteWalWatcher) { self.watcher = watcher }
        var isSet: Bool { self.watcher?.isStopped ?? true }
    }

    private static func watch(_ walPath: String, stopped: StopFlag, onChange: @Sendable () -> Void) {
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { return }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var watching = false
        while !stopped.isSet {
            if !watching {
                // The file appears with the first write after the first connection opened it.
                watching = inotify_add_watch(fd, walPath, UInt32(IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF)) >= 0
                if !watching {
                    usleep(200_000)
                    continue
                }
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 1000)  // wakes each second to see whether the watcher is gone
            if ready < 0 && errno != EINTR { return }
            guard ready > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { continue }
            // Each event: wd (4), mask (4), cookie (4), len (4), then len bytes of name.
            var at = 0
            while at + 16 <= n {
                let mask = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self) }
                let len = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at + 12, as: UInt32.self) }
                if mask & UInt32(IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF) != 0 { watching = false }
                at += 16 + Int(len)
            }
            onChange()
            usleep(1_000)
        }
    }
}

private func spawnThreadForWatcher(_ body: @escaping @Sendable () -> Void) {
    _ = spawnThread(inlineOnFailure: false, body)
}
