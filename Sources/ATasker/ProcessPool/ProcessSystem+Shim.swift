import CProcessSpawn
import Glibc

/// The Linux calls of the process pool, over the `CProcessSpawn` C target.
///
/// Every unsafe pointer of the pool stays in this file and in the frame buffers.
enum ProcessSystem {
    /// `SIGKILL`, `SIGRTMIN+4`, or `nil` for a number that is no signal.
    static func signalName(_ signal: Int32) -> String? {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32) { buffer in
            guard let name = atp_signal_name(signal, buffer.baseAddress, 32) else {
                return nil
            }
            return String(cString: name)
        }
    }
}
