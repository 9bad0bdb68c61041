import ATasker
import ATaskerLua
import Glibc
import Logging
import Synchronization

/// systemd's notify protocol (`Type=notify`, `WatchdogSec=`): datagrams to the socket that `NOTIFY_SOCKET` names.
///
/// `READY=1` once the script's top level has run, `WATCHDOG=1` every half `WATCHDOG_USEC` while the supervisor
/// answers a probe, `STOPPING=1` when the program stops. The probe is a HIGH task that goes through the timer
/// thread and the pool: when every thread that HIGH work may use (the reserves included) is stuck, or the
/// supervisor does not serve its timers, the probe does not run and the pings stop, so systemd restarts the
/// service. Without `NOTIFY_SOCKET` nothing is sent.
final class SystemdNotifier: Sendable {
    private let socket: Int32
    private let address: [UInt8]
    /// Microseconds of `WATCHDOG_USEC`, when the watchdog is on for this process.
    let watchdogMicroseconds: UInt64?

    /// Reads (and then removes, so that the script's own processes do not speak for it) `NOTIFY_SOCKET`,
    /// `WATCHDOG_USEC` and `WATCHDOG_PID`; `nil` without a usable socket. Call before any thread starts.
    static func fromEnvironment() -> SystemdNotifier? {
        let path = getenv("NOTIFY_SOCKET").map { String(cString: $0) }
        let usec = getenv("WATCHDOG_USEC").flatMap { UInt64(String(cString: $0)) }
        let pid = getenv("WATCHDOG_PID").flatMap { Int32(String(cString: $0)) }
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] { unsetenv(name) }
        guard let path, !path.isEmpty else { return nil }
        let watchdog = usec.flatMap { $0 > 0 && (pid == nil || pid == getpid()) ? $0 : nil }
        return SystemdNotifier(path: path, watchdogMicroseconds: watchdog)
    }

    private init?(path: String, watchdogMicroseconds: UInt64?) {
        // "@name" is an abstract socket: its address begins with a NUL byte.
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { return nil }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.socket = fd
        self.address = bytes
        self.watchdogMicroseconds = watchdogMicroseconds
    }

    deinit {
        close(self.socket)
    }

    /// Sends one message (`READY=1`, ...); a datagram that cannot be sent is dropped, as `sd_notify` does.
    func send(_ message: String) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path.copyBytes(from: self.address)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + self.address.count + (self.address.first == 0 ? 0 : 1))
        var bytes = Array(message.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                sendto(self.socket, &bytes, bytes.count, Int32(MSG_NOSIGNAL), socketAddress, length)
            }
        }
    }

    /// Pings `WATCHDOG=1` every half period while `supervisor` runs a HIGH probe task within that half period.
    /// A probe that has not run by then is never doubled: the pings stop until it runs.
    func startWatchdog(supervisor: TaskSupervisor, logger: Logger) {
        guard let usec = self.watchdogMicroseconds else { return }
        let half = Double(usec) / 2_000_000
        let answered = ConditionLock(false)
        startThread {
            var late = false
            while true {
                let begun = Monotonic.now()
                answered.withLock { $0 = false }
                supervisor.submit(priority: .high, delay: 0.000_001, name: "systemd watchdog probe") { _ in
                    answered.withLock { $0 = true }
                    answered.broadcast()
                    return nil
                }
                answered.lock()
                while !answered.lockedValue && answered.wait(until: begun + half) {}
                let inTime = answered.lockedValue
                if !inTime {
                    if !late {
                        logger.warning(
                            "the supervisor did not run its watchdog probe (a HIGH task) within \(half) s: systemd's watchdog pings stop until it does"
                        )
                    }
                    late = true
                    while !answered.lockedValue { answered.wait() }
                }
                answered.unlock()
                guard inTime else { continue }
                late = false
                self.send("WATCHDOG=1")
                // The rest of the half period: nothing signals this wait, it is the period itself.
                answered.lock()
                while answered.wait(until: begun + half) {}
                answered.unlock()
            }
        }
    }
}
