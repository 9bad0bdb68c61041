internal import CLuaShim
import Glibc

/// A host call that a suspended coroutine waits for (`atasker.sleep`, `atasker.wait_completed`, ... in async
/// code): the shim made it when the coroutine yielded; the host does it without blocking, fills in its outcome,
/// and gives it back with the next resume (or frees it, when the coroutine will not be resumed).
final class PendingCall {
    fileprivate var pointer: UnsafeMutablePointer<atl_PendingCall>?

    init(_ pointer: UnsafeMutablePointer<atl_PendingCall>) {
        self.pointer = pointer
    }

    deinit {
        // Never handed back (the coroutine was cancelled or its state closed): free it here.
        if let pointer = self.pointer {
            atl_async_call_free(pointer)
        }
    }

    /// The shim's function id (`ATL_FN_*`).
    var function: Int {
        Int(self.pointer?.pointee.call.fn ?? 0)
    }

    /// The object the method was called on, if any.
    var object: AnyObject? {
        self.pointer?.pointee.call.`self`.map { Unmanaged<AnyObject>.fromOpaque($0).takeUnretainedValue() }
    }

    /// The call's arguments, decoded.
    func arguments() throws -> [LuaValue] {
        guard let pointer = self.pointer, pointer.pointee.args.len > 0 else { return [] }
        let args = pointer.pointee.args
        return try LuaValue.decodeAll(
            UnsafeRawBufferPointer(start: args.data, count: args.len),
            knownHandles: UnsafeBufferPointer(start: args.handles, count: args.nhandles))
    }

    /// Does the call now, as the trampoline would have (the host's `handle`), and keeps its outcome.
    func complete(with core: HostCore) {
        guard let pointer = self.pointer else { return }
        pointer.pointee.status = core.handle(pointer.pointer(to: \.call)!)
    }

    /// Completes the call with no results.
    func completeEmpty() {
        self.pointer?.pointee.status = ATL_OK
    }

    /// Completes the call with `results`, encoded.
    func complete(results: HostCore.CallResults) {
        guard let pointer = self.pointer else { return }
        let call = pointer.pointer(to: \.call)!
        switch results {
        case .none:
            pointer.pointee.status = ATL_OK
        case .values(let values):
            guard let encoded = try? EncodedValues(values), encoded.append(to: &call.pointee.result) else {
                self.fail("not enough memory")
                return
            }
            pointer.pointee.status = ATL_OK
        case .value(let value):
            guard (try? CallResultWriter.write(value, into: &call.pointee.result)) == true else {
                self.fail("not enough memory")
                return
            }
            pointer.pointee.status = ATL_OK
        case .encoded(let encoded):
            pointer.pointee.status = encoded.append(to: &call.pointee.result) ? ATL_OK : ATL_ERRMEM
        case .concatenated(let parts):
            pointer.pointee.status =
                EncodedValues.concatenate(parts, valueCount: parts.count, into: &call.pointee.result)
                ? ATL_OK : ATL_ERRMEM
        case .list(let parts):
            pointer.pointee.status = EncodedValues.appendList(parts, into: &call.pointee.result) ? ATL_OK : ATL_ERRMEM
        case .handle(let object, let kind):
            pointer.pointee.status =
                CallResultWriter.write(handle: object, kind: kind, into: &call.pointee.result) ? ATL_OK : ATL_ERRMEM
        case .exit(let code):
            call.pointee.exitcode = code
            pointer.pointee.status = ATL_EXIT
        }
    }

    /// Completes the call with an error raised in the coroutine: with the caller's `file:line:` in front, or as
    /// it is when `raw`.
    func fail(_ message: String, raw: Bool = false) {
        guard let pointer = self.pointer else { return }
        free(pointer.pointee.call.error)
        pointer.pointee.call.error = strdup(message)
        pointer.pointee.call.error_raw = raw ? 1 : 0
        pointer.pointee.status = ATL_ERRRUN
    }

    /// Completes the call with `error`, as the trampoline raises errors (a ``LuaError`` as it is).
    func fail(_ error: any Error) {
        switch error {
        case let error as CallError: self.fail(error.message, raw: error.raw)
        case let error as LuaError: self.fail(error.fullMessage, raw: true)
        default: self.fail("\(error)")
        }
    }

    /// Hands the C struct over (to the resume, which frees it).
    fileprivate func take() -> UnsafeMutablePointer<atl_PendingCall>? {
        defer { self.pointer = nil }
        return self.pointer
    }
}

extension LuaState {
    /// What one step of a coroutine ended with (errors are thrown as ``LuaError``).
    enum AsyncStep {
        /// The function returned: a worker's executor returned false (`stop`), a task's first result.
        case returned(stop: Bool, result: EncodedValues?)
        /// A worker's executor raised, and its `on_error` handled the error.
        case handled
        /// The coroutine waits for `call` (or, for `nil`, a plain `coroutine.yield()`: resume it soon).
        case suspended(PendingCall?)
        /// `os.exit(code)` was called.
        case exit(Int32)
    }

    /// A new coroutine of this state, by reference.
    func newCoroutine() throws(LuaError) -> Int32 {
        var ref: Int32 = 0
        var err: UnsafeMutablePointer<CChar>?
        let st = self.inside("atl_async_new", atl_async_new(self.pointer, &ref, &err))
        guard st == ATL_OK else {
            throw LuaError(code: .memory, fullMessage: takeMessage(err) ?? "not enough memory")
        }
        return ref
    }

    /// A full garbage collection (the garbage of a worker's setup is not kept for its life).
    func collectGarbage() {
        self.inside("atl_async_collect", atl_async_collect(self.pointer))
    }

    /// The name of running execution `id` (`worker 'w'`), or nil when it does not run.
    static func label(of id: UInt64) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard atl_exec_label(id, &buffer, buffer.count) != 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Drops coroutine `ref`.
    func freeCoroutine(_ ref: Int32) {
        self.inside("atl_async_free", atl_async_free(self.pointer, ref))
    }

    /// Starts an execution of the worker set up in this state, in coroutine `ref`.
    func beginWorkerCoroutine(_ ref: Int32, item: EncodedValues?, taskID: Int) throws(LuaError) -> AsyncStep {
        var out = atl_AsyncStep()
        let st = withOptionalEncoded(item) {
            self.inside("atl_async_begin_worker", atl_async_begin_worker(self.pointer, ref, $0, Int64(taskID), &out))
        }
        return try Self.asyncStep(st, &out)
    }

    /// Starts a task in coroutine `ref`: `function` (one encoded function) with `arguments`.
    func beginTaskCoroutine(_ ref: Int32, function: EncodedValues, arguments: EncodedValues?) throws(LuaError)
        -> AsyncStep
    {
        var out = atl_AsyncStep()
        let st = function.withBuffer { fn in
            withOptionalEncoded(arguments) {
                self.inside("atl_async_begin_task", atl_async_begin_task(self.pointer, ref, fn, $0, &out))
            }
        }
        return try Self.asyncStep(st, &out)
    }

    /// Resumes suspended coroutine `ref` with the call it waited for (now complete), or cancels it there.
    func resumeCoroutine(_ ref: Int32, isWorker: Bool, call: PendingCall?, cancel: Bool) throws(LuaError)
        -> AsyncStep
    {
        var out = atl_AsyncStep()
        let pointer = call?.take()
        let st = self.inside(
            "atl_async_resume", atl_async_resume(self.pointer, ref, isWorker ? 1 : 0, pointer, cancel ? 1 : 0, &out))
        return try Self.asyncStep(st, &out)
    }

    private static func asyncStep(_ st: Int32, _ out: inout atl_AsyncStep) throws(LuaError) -> AsyncStep {
        switch st {
        case ATL_OK:
            free(out.err)
            if out.handled != 0 {
                atl_buffer_free(&out.result)
                return .handled
            }
            let result = out.result.len > 0 ? EncodedValues(taking: &out.result) : nil
            atl_buffer_free(&out.result)
            return .returned(stop: out.stop != 0, result: result)
        case ATL_YIELD:
            free(out.err)
            atl_buffer_free(&out.result)
            return .suspended(out.call.map { PendingCall($0) })
        case ATL_EXIT:
            free(out.err)
            atl_buffer_free(&out.result)
            return .exit(out.exitcode)
        default:
            atl_buffer_free(&out.result)
            throw shimError(st, out.err, "a step of async code")
        }
    }
}

private func withOptionalEncoded<R>(_ v: EncodedValues?, _ body: (UnsafePointer<atl_Buffer>?) -> R) -> R {
    guard let v else { return body(nil) }
    return v.withBuffer { body($0) }
}

/// Function ids of the shim that the async code needs.
enum ATLAsyncFunction {
    static let sleep = Int(atl_Fn.ATL_FN_SLEEP.rawValue)
    static let waitCompleted = Int(atl_Fn.ATL_FN_WAIT_COMPLETED.rawValue)
}

extension ATLAsyncFunction {
    static let supCreateAloop = Int(atl_Fn.ATL_FN_SUP_CREATE_ALOOP.rawValue)
    static let supGetAloop = Int(atl_Fn.ATL_FN_SUP_GET_ALOOP.rawValue)
    static let supSetDefaultAloop = Int(atl_Fn.ATL_FN_SUP_SET_DEFAULT_ALOOP.rawValue)
    static let supStartAloop = Int(atl_Fn.ATL_FN_SUP_START_ALOOP.rawValue)
    static let supStopAloop = Int(atl_Fn.ATL_FN_SUP_STOP_ALOOP.rawValue)
    static let aloopBackgroundTask = Int(atl_Fn.ATL_FN_ALOOP_BACKGROUND_TASK.rawValue)
    static let aloopRun = Int(atl_Fn.ATL_FN_ALOOP_RUN.rawValue)
    static let aloopStart = Int(atl_Fn.ATL_FN_ALOOP_START.rawValue)
    static let aloopStop = Int(atl_Fn.ATL_FN_ALOOP_STOP.rawValue)
    static let aloopIsActive = Int(atl_Fn.ATL_FN_ALOOP_IS_ACTIVE.rawValue)
    static let aloopIndex = Int(atl_Fn.ATL_FN_ALOOP_INDEX.rawValue)
    static let supCreateScheduler = Int(atl_Fn.ATL_FN_SUP_CREATE_SCHEDULER.rawValue)
    static let supCreateAsyncJob = Int(atl_Fn.ATL_FN_SUP_CREATE_ASYNC_JOB.rawValue)
    static let supCancelAsyncJob = Int(atl_Fn.ATL_FN_SUP_CANCEL_ASYNC_JOB.rawValue)
    static let schedCreateJob = Int(atl_Fn.ATL_FN_SCHED_CREATE_JOB.rawValue)
    static let schedCancelJob = Int(atl_Fn.ATL_FN_SCHED_CANCEL_JOB.rawValue)
    static let schedIndex = Int(atl_Fn.ATL_FN_SCHED_INDEX.rawValue)
    static let jobCancel = Int(atl_Fn.ATL_FN_JOB_CANCEL.rawValue)
    static let jobIndex = Int(atl_Fn.ATL_FN_JOB_INDEX.rawValue)
}

/// Kinds of the async handles, as the shim numbers them.
enum ATLAsyncKind {
    static let aloop = Int32(atl_HandleKind.ATL_H_ALOOP.rawValue)
    static let scheduler = Int32(atl_HandleKind.ATL_H_JOBSCHED.rawValue)
    static let job = Int32(atl_HandleKind.ATL_H_JOB.rawValue)
}

extension PendingCall {
    /// The call's arguments, moved out of it (no copy), or nil when there are none.
    func takeArguments() -> EncodedValues? {
        guard let pointer = self.pointer, pointer.pointee.args.len > 0 else { return nil }
        return EncodedValues(taking: &pointer.pointee.args)
    }
}
