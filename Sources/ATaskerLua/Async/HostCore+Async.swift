import ATasker
import Synchronization

/// Async code on the host's side: the steps of coroutines, and the host calls they wait for.
extension HostCore {
    /// Runs one step of `coroutine` (`body` must start or resume it at once) as an execution named `label`, so
    /// that a canceller, a stop deadline or the never-yielding watchdog can reach it while it runs.
    func asyncStep<R>(_ label: String, _ coroutine: AsyncCoroutine, _ body: () throws(LuaError) -> R)
        throws(LuaError) -> R
    {
        let id = LuaState.announceExecution(label, host: self)
        coroutine.runningID.store(id, ordering: .releasing)
        coroutine.monitor.begin(id)
        defer {
            coroutine.monitor.end()
            coroutine.runningID.store(0, ordering: .releasing)
        }
        return try body()
    }

    /// Starts the host's side of `call`, which `coroutine` waits for (its wait `id`): a sleep becomes a timer of
    /// the aloop, a wait for tasks becomes handlers of the tasks; any other call is done at once.
    func beginAsyncCall(_ call: PendingCall, for coroutine: AsyncCoroutine, id: Int) {
        do {
            switch call.function {
            case ATLAsyncFunction.sleep:
                let seconds = try LuaArguments.seconds(call.arguments().first ?? .nil, "sleep", "argument #1") ?? 0
                call.completeEmpty()
                coroutine.wake(after: seconds, id: id)
            case ATLAsyncFunction.waitCompleted:
                let (tasks, single, timeout) = try self.waitArguments(call.arguments())
                coroutine.wake(when: tasks, timeout: timeout, id: id) { [self] unfinished in
                    if let unfinished {
                        call.fail(Self.waitTimedOut(timeout ?? 0, unfinished))
                        return
                    }
                    do {
                        call.complete(results: try self.waitResults(tasks, single: single))
                    } catch {
                        call.fail(error)
                    }
                }
            case ATLAsyncFunction.aloopRun:
                guard let aloop = call.object as? Aloop else { throw CallError(message: "not an aloop") }
                let (function, args) = try Self.functionAndArguments(call.takeArguments())
                let task = self.spawnAloopTask(function, arguments: args, on: aloop)
                coroutine.wake(when: [task], timeout: nil, id: id) { [self] _ in
                    do {
                        call.complete(results: try self.waitResults([task], single: true))
                    } catch {
                        call.fail(error)
                    }
                }
            default:
                call.complete(with: self)
                coroutine.wakeSoon(id)
            }
        } catch {
            call.fail(error)
            coroutine.wakeSoon(id)
        }
    }
}
