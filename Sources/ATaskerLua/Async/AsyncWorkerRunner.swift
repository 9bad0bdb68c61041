import ATasker
import Synchronization

/// How an async worker (`async = true`) runs: each execution is a coroutine of the worker's own Lua state,
/// resumed by the worker's aloop, so that `atasker.sleep` and `atasker.wait_completed` in it yield to the aloop
/// instead of blocking a thread.
///
/// The worker's ``Worker`` is bound to the aloop at each start (`loop=`, or `_loop` in the start arguments, or the
/// default aloop); its slot's task, its timers and its executions then run on the aloop's thread. An execution
/// that waits is suspended (``Worker/suspendExecution()``): the worker's rules hold as for thread workers
/// (executions never overlap, `false` stops it, errors go to `on_error`).
final class AsyncWorkerRunner: Sendable {
    /// Weak, as the worker's ``LuaWorker/Execution`` holds its host (a stopped worker keeps no host alive).
    private weak let core: HostCore?
    /// `loop=` of `background_worker{...}`: an aloop handle, an aloop's name, or nil for the default aloop.
    let loop: LuaValue
    /// The coroutine of the current start (made with the worker's state, in `onStart`).
    private let coroutine = Mutex<AsyncCoroutine?>(nil)

    init(core: HostCore, loop: LuaValue) {
        self.core = core
        self.loop = loop
    }

    /// The aloop for a start: `_loop` of the start arguments, else `loop=`, else the default aloop.
    func aloop(override: LuaValue) throws -> Aloop {
        guard let core = self.core else {
            throw CallError(message: "start: the worker's LuaHost is gone (released)")
        }
        let aloop = try core.aloop(forLoop: override.isNil ? self.loop : override, function: "start")
        guard aloop.isActive else {
            throw CallError(
                message: "start: aloop '\(aloop.name)' is not running; start it (s:start_aloop) or use another loop")
        }
        return aloop
    }

    /// `onStart`, on the aloop's thread: the worker's state is open and set up; make its coroutine.
    func opened(_ worker: Worker, state: LuaState, core: HostCore) throws(LuaError) {
        guard let aloop = worker.boundAloop else {
            throw LuaError(code: .runtime, fullMessage: "async worker '\(worker.name)' has no aloop")
        }
        let ref = try state.newCoroutine()
        let coroutine = AsyncCoroutine(
            core: core, aloop: aloop, state: state, ref: ref, label: "worker '\(worker.name)'", isWorker: true)
        self.coroutine.withLock { $0 = coroutine }
        state.collectGarbage()
    }

    /// `onStop`: the state is about to close, and with it the coroutine.
    func closing() {
        self.coroutine.withLock { $0 = nil }
    }

    /// One execution, on the aloop's thread: `fn(kw)` or `fn(item, kw)` in the worker's coroutine. When it waits,
    /// the execution is suspended and ends later, when the coroutine does.
    func run(_ worker: Worker, state: LuaState, item: EncodedValues?, taskID: Int) throws -> Bool {
        guard let coroutine = self.coroutine.withLock({ $0 }) else { return false }
        let outcome = coroutine.start { () throws(LuaError) in
            try state.beginWorkerCoroutine(coroutine.ref, item: item, taskID: taskID)
        }
        if let outcome {
            return try Self.goOn(outcome)
        }
        let resumption = worker.suspendExecution()
        coroutine.onEnd = { outcome in
            do {
                resumption.finish(goOn: try Self.goOn(outcome))
            } catch {
                resumption.fail(error)
            }
        }
        return true
    }

    /// What an ended execution means for the worker: go on, stop, or an error to report.
    private static func goOn(_ outcome: AsyncCoroutine.Outcome) throws -> Bool {
        switch outcome {
        case .returned(let stop, _): return !stop
        case .handled: throw LuaWorker.HandledError()
        case .exit: return false
        case .failed(let error): throw error
        }
    }

    /// `stop{wait=T}` found the worker still running at its deadline: cancels its execution, where it waits or,
    /// through the signal of DESIGN.md's "Cancelling running Lua code", where it runs; then waits up to `grace`.
    ///
    /// - Returns: Whether the worker is stopped.
    func cancelAtDeadline(_ worker: Worker, grace: Double) -> Bool {
        worker.stop(wait: .none, drain: false)
        guard let coroutine = self.coroutine.withLock({ $0 }) else {
            return worker.isStopped
        }
        let id = coroutine.runningID.load(ordering: .acquiring)
        if id != 0 {
            LuaState.requestExecution(id, cancel: true, traceback: false)
        } else {
            coroutine.cancel()
        }
        return worker.stop(wait: .seconds(grace))
    }
}

extension HostCore {
    /// The async part of `background_worker{...}`: `async=true` (or `BackgroundAsyncWorker`) and `loop=`; nil for a
    /// thread worker.
    func asyncRunner(_ opts: LuaTable, kindHint: String?, label: String) throws -> AsyncWorkerRunner? {
        let isAsync = opts["async"].boolValue || kindHint == "async"
        guard isAsync else {
            if !opts["loop"].isNil {
                throw CallError(message: "\(label): loop= is for async workers: add async=true")
            }
            return nil
        }
        if opts["mp"].boolValue {
            throw CallError(
                message: "\(label): async and mp exclude each other (an async executor runs on an aloop, an mp one "
                    + "in a child process)")
        }
        if !opts["run_timeout"].isNil || !opts["cancel_on_timeout"].isNil {
            throw CallError(
                message: "\(label): run_timeout is for thread workers; an async execution that does not yield is "
                    + "reported after s.aloop_block_warning seconds (and cancelled after s.aloop_block_cancel)")
        }
        switch opts["loop"] {
        case .nil, .boolean(true), .string: break
        case .handle(let handle) where handle.object is Aloop: break
        default:
            throw CallError(message: "\(label): loop must be an aloop, an aloop's name, or true (the default aloop)")
        }
        return AsyncWorkerRunner(core: self, loop: opts["loop"])
    }
}

/// Encoded executors shared by the workers made from the same function: `background_worker{fn = f}` called for
/// many workers keeps one copy of `f`'s bytes, not one per worker (a copy is about 1 KB of bytecode).
final class SharedFunctions: Sendable {
    private final class Entry: @unchecked Sendable {
        // written once, in `init`; weak, so that the cache keeps no function alive
        weak var value: EncodedValues?

        init(_ value: EncodedValues) {
            self.value = value
        }
    }

    private let entries = Mutex<(byBytes: [[UInt8]: Entry], pruneAt: Int)>(([:], 64))

    /// The buffer already held for the same bytes, or `encoded` (now held for them).
    func share(_ encoded: EncodedValues) -> EncodedValues {
        let bytes = encoded.withBytes { Array($0) }
        return self.entries.withLock { entries in
            if let existing = entries.byBytes[bytes]?.value {
                return existing
            }
            if entries.byBytes.count >= entries.pruneAt {
                entries.byBytes = entries.byBytes.filter { $0.value.value != nil }
                entries.pruneAt = max(64, 2 * entries.byBytes.count)
            }
            entries.byBytes[bytes] = Entry(encoded)
            return encoded
        }
    }
}
