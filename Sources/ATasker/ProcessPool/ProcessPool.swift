import Synchronization

/// The process pool of one ``TaskSupervisor``.
final class ProcessPool: Sendable {
    let configuration: Mutex<ProcessPoolConfiguration>

    init(configuration: ProcessPoolConfiguration) {
        self.configuration = Mutex(configuration)
    }
}
