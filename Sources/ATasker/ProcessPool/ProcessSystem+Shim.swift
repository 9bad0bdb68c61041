import CProcessSpawn
import Glibc

/// The Linux calls of the process pool, over the `CProcessSpawn` C target.
///
/// Every C string and raw descriptor call of the parent's side of the pool stays in this file.
enum ProcessSystem {
    /// How a reaped child ended.
    enum Exit: Sendable, Equatable {
        /// It exited with this status.
        case exited(Int32)
        /// A signal killed it.
        case signaled(Int32)
    }

    /// `SIGKILL`, `SIGRTMIN+4`, or `nil` for a number that is no signal.
    static func signalName(_ signal: Int32) -> String? {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32) { buffer in
            guard let name = atp_signal_name(signal, buffer.baseAddress, 32) else {
                return nil
            }
            return String(cString: name)
        }
    }

    /// The text of an `errno` value.
    static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// A connected `AF_UNIX` stream socket pair, both ends close-on-exec.
    static func socketPair() -> (Int32, Int32)? {
        var descriptors: [Int32] = [-1, -1]
        guard atp_socketpair(&descriptors) == 0 else {
            return nil
        }
        return (descriptors[0], descriptors[1])
    }

    /// A non-blocking, close-on-exec eventfd.
    static func eventDescriptor() -> Int32? {
        let descriptor = atp_eventfd()
        return descriptor >= 0 ? descriptor : nil
    }

    /// Adds one to an eventfd, waking whoever polls it.
    static func signalEvent(_ descriptor: Int32) {
        var one: UInt64 = 1
        _ = write(descriptor, &one, 8)
    }

    /// Resets an eventfd after it polled readable.
    static func drainEvent(_ descriptor: Int32) {
        var value: UInt64 = 0
        _ = read(descriptor, &value, 8)
    }

    /// Spawns `executable` with `arguments` (from `argv[1]` on) and `environment` (`NAME=value` entries),
    /// giving it `descriptor` as fd 3 and nothing above (see `atp_spawn`).
    ///
    /// - Returns: The pid, or the `errno` value of the failure.
    static func spawn(
        executable: String,
        arguments: [String],
        environment: [String],
        descriptor: Int32
    ) -> Result<Int32, SpawnError> {
        let argv = [executable] + arguments
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cEnvironment: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in cArguments { free(pointer) }
            for pointer in cEnvironment { free(pointer) }
        }
        var pid: pid_t = 0
        let status = atp_spawn(
            executable, &cArguments, &cEnvironment, descriptor, ProcessChild.descriptorNumber, &pid)
        if status != 0 {
            return .failure(SpawnError(code: status))
        }
        return .success(pid)
    }

    /// An `errno` value of a failed spawn.
    struct SpawnError: Error {
        let code: Int32
    }

    /// The parent's environment as `NAME=value` entries, with `overrides` replacing or adding entries.
    static func environment(overriding overrides: [String: String]) -> [String] {
        var entries: [String] = []
        if var cursor = atp_environ() {
            while let entry = cursor.pointee {
                let text = String(cString: entry)
                let name = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first
                if let name, overrides[String(name)] == nil {
                    entries.append(text)
                }
                cursor += 1
            }
        }
        for (name, value) in overrides.sorted(by: { $0.key < $1.key }) {
            entries.append("\(name)=\(value)")
        }
        return entries
    }

    /// A pidfd for a child, or `nil` (with the reason) when the kernel refuses one.
    static func pidDescriptor(_ pid: Int32) -> Result<Int32, SpawnError> {
        let descriptor = atp_pidfd_open(pid)
        return descriptor >= 0 ? .success(descriptor) : .failure(SpawnError(code: errno))
    }

    /// Sends a signal through a pidfd (safe against pid reuse: a reaped child's pidfd refers to nothing).
    static func sendSignal(_ signal: Int32, to pidDescriptor: Int32) {
        _ = atp_pidfd_send_signal(pidDescriptor, signal)
    }

    /// Sends a signal to every process of the process group that a child leads (its id is the child's pid).
    ///
    /// Only while the child is not reaped: until then its pid, and so the group's id, cannot name another group.
    /// Never sends to group 0 or 1 (see `atp_signal_group`).
    static func signalGroup(_ signal: Int32, group: Int32) {
        _ = atp_signal_group(group, signal)
    }

    /// Waits until the child has exited, or until `milliseconds` passed (`-1`: no limit).
    ///
    /// - Returns: Whether it has exited (its pidfd polls readable).
    static func waitForExit(_ pidDescriptor: Int32, milliseconds: Int32) -> Bool {
        var entry = pollfd(fd: pidDescriptor, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&entry, 1, milliseconds)
            if ready < 0 && errno == EINTR {
                continue
            }
            return ready > 0
        }
    }

    /// Reaps a child through its pidfd, blocking until it has exited.
    static func reap(_ pidDescriptor: Int32) -> Exit {
        var code: Int32 = 0
        var status: Int32 = 0
        guard atp_waitid_pidfd(pidDescriptor, 0, &code, &status) == 0 else {
            // Only possible if someone else reaped it (a waitpid(-1) elsewhere in the process).
            return .exited(-1)
        }
        if code == atp_cld_killed() || code == atp_cld_dumped() {
            return .signaled(status)
        }
        return .exited(status)
    }

    /// Whether `pid` is still an unreaped child of this process (`waitid` with `WNOWAIT`, which reaps
    /// nothing).
    static func isUnreapedChild(_ pid: Int32) -> Bool {
        atp_waitid_pid_nohang(pid) == 0
    }
}
