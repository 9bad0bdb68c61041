import Glibc
import Synchronization

// Executions of async executors (`@Sendable (Worker) async throws -> Void`).
//
// Such an execution runs in a Swift task of its own, on the concurrency runtime, so that no pool thread is held
// while it is suspended. It keeps every rule of `Worker`: the slot stays taken from the moment the execution is
// taken until its task ends, so executions never overlap; the slot's task then goes on (the next execution, or
// giving the slot up, or finishing a stop) on the thread where the Swift task ended. A stop without drain cancels
// the running task.
//
// Rejected: running the async body with a semaphore on the pool thread (it would hold the thread while it is
// suspended, the point of the feature), and handing the end back to a pool task (one more task and wake-up per
// execution, and a stopped supervisor would refuse it, leaving the slot taken for ever).

/// The task-local mark of an async executor's execution, so that the worker knows a call from inside it
/// (`stop(wait:)` and a full queue's `put` must not wait for the execution that makes them).
enum AsyncWorkerContext {
    @TaskLocal static var worker: ObjectIdentifier?
}

/// The Swift task of one execution of an async executor, and whether a stop asked to cancel it.
final class AsyncExecution: Sendable {
    private let state = Mutex<(task: Task<Void, Never>?, cancelled: Bool)>((nil, false))

    /// Whether a stop cancelled the execution.
    var isCancelled: Bool {
        self.state.withLock { $0.cancelled }
    }

    /// The execution's task has been made: it is cancelled at once if a stop came first.
    func attach(_ task: Task<Void, Never>) {
        let cancelled = self.state.withLock { state in
            state.task = task
            return state.cancelled
        }
        if cancelled {
            task.cancel()
        }
    }

    /// Cancels the task, now or as soon as it is attached.
    func cancel() {
        let task = self.state.withLock { state -> Task<Void, Never>? in
            state.cancelled = true
            return state.task
        }
        // After the lock: cancellation handlers run inside `cancel()`.
        task?.cancel()
    }
}

extension Worker {
    /// Whether the calling Swift task runs an execution of this worker's async executor.
    var isInOwnAsyncExecution: Bool {
        AsyncWorkerContext.worker == ObjectIdentifier(self)
    }

    /// Takes the execution that ``kindExecute()`` runs as an async one: `body` runs in a Swift task, started once
    /// the slot's task has let go of the slot (``launchPendingExecution()``), and the execution ends when it
    /// returns. Returns the value `kindExecute` returns.
    func executeAsync(_ body: @escaping @Sendable () async throws -> Void) -> Bool {
        let execution = AsyncExecution()
        let token = self.core.withLock { machine -> Int in
            guard case .running(let token, _) = machine.slot else {
                preconditionFailure("executeAsync outside an execution of \(machine.name)")
            }
            machine.moveSlot(token: token, to: nil)
            self.asyncExecution = execution
            return token
        }
        self.executionSuspended = true
        self.pendingLaunch = { [self] in
            let task = Task.detached { [self] in
                let outcome: Result<Bool, any Error>
                do {
                    try await AsyncWorkerContext.$worker.withValue(ObjectIdentifier(self)) {
                        try await body()
                    }
                    outcome = .success(true)
                } catch is CancellationError where execution.isCancelled {
                    // The stop asked for it: not an error of the executor.
                    outcome = .success(true)
                } catch {
                    outcome = .failure(error)
                }
                self.asyncExecutionEnded(token: token, outcome)
            }
            execution.attach(task)
        }
        return true
    }

    /// Starts the Swift task of the execution taken by ``executeAsync(_:)``, once the slot's task has returned
    /// from it and touches the worker no more (from then on the Swift task owns the slot).
    func launchPendingExecution() {
        if let launch = self.pendingLaunch {
            self.pendingLaunch = nil
            launch()
        }
    }

    /// The Swift task of an execution ended, on its thread: the slot's task goes on there.
    private func asyncExecutionEnded(token: Int, _ outcome: Result<Bool, any Error>) {
        self.core.withLock { machine in
            self.asyncExecution = nil
            machine.moveSlot(token: token, to: pthread_self())
        }
        self.resumeExecution(token: token, outcome)
    }
}
