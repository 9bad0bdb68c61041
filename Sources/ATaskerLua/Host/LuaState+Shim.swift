import ATasker
internal import CLuaShim
import Glibc

/// The outcome of running Lua code: values, or `os.exit` with a code.
enum LuaOutcome {
    case values(EncodedValues?)
    case exit(Int32)
}

/// The owner of one `lua_State`.
///
/// Only the thread that currently owns the state may call its methods; a state moves between threads only through a
/// lock or a queue. `close()` must be called before the last reference goes away.
final class LuaState {
    let pointer: OpaquePointer
    private(set) var isClosed = false
    /// Where the state counts itself while it is open (`atasker_lua_states`).
    private let metrics: SupervisorMetrics?

    struct Options {
        var host: UnsafeMutableRawPointer? = nil
        var supervisor: UnsafeMutableRawPointer? = nil
        var isMain: Bool
        var isChild = false
        var packagePath: String? = nil
        var packageCPath: String? = nil
        var hostFunctions: [(String, AnyObject)] = []
        var allocationLimit: Int = 0
        var allowsBytecode = false
        var metrics: SupervisorMetrics? = nil
    }

    init(options: Options) throws(LuaError) {
        var err: UnsafeMutablePointer<CChar>?
        let names = options.hostFunctions.map { strdup($0.0) }
        defer { names.forEach { free($0) } }
        let objects: [UnsafeMutableRawPointer?] = options.hostFunctions.map {
            Unmanaged.passUnretained($0.1).toOpaque()
        }
        let constNames: [UnsafePointer<CChar>?] = names.map { UnsafePointer($0) }
        let state: OpaquePointer? = withOptionalCString(options.packagePath) { path in
            withOptionalCString(options.packageCPath) { cpath in
                constNames.withUnsafeBufferPointer { namesPtr in
                    objects.withUnsafeBufferPointer { objectsPtr in
                        var o = atl_StateOptions()
                        o.host = options.host
                        o.supervisor = options.supervisor
                        o.is_main = options.isMain ? 1 : 0
                        o.is_child = options.isChild ? 1 : 0
                        o.package_path = path
                        o.package_cpath = cpath
                        o.hostfn_names = namesPtr.baseAddress
                        o.hostfn_objs = objectsPtr.baseAddress
                        o.nhostfn = Int32(options.hostFunctions.count)
                        o.alloc_limit = options.allocationLimit
                        o.allow_bytecode = options.allowsBytecode ? 1 : 0
                        return atl_state_open(&o, &err)
                    }
                }
            }
        }
        guard let state else {
            throw LuaError(code: .memory, fullMessage: takeMessage(err) ?? "cannot create a Lua state")
        }
        self.pointer = state
        self.metrics = options.metrics
        self.metrics?.luaStateOpened()
    }

    deinit {
        assert(self.isClosed, "a LuaState was dropped without close()")
    }

    /// Closes the state: runs finalizers and releases the host objects it holds.
    func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        atl_state_enter(self.pointer, "atl_state_close")  // (closing frees the owner word: no leave)
        atl_state_close(self.pointer)
        self.metrics?.luaStateClosed()
    }

    var allocationCount: Int { Int(atl_state_alloc_count(self.pointer)) }

    /// Makes `call`, an entry point of the shim on this state, as the thread inside the state: with the shim's owner
    /// check compiled in (scripts/sanitize), a second thread inside it at the same time aborts naming both.
    @inline(__always)
    func inside<T>(_ entry: StaticString, _ call: @autoclosure () -> T) -> T {
        atl_state_enter(self.pointer, UnsafeRawPointer(entry.utf8Start).assumingMemoryBound(to: CChar.self))
        defer { atl_state_leave(self.pointer) }
        return call()
    }

    /// Sets the global `arg` table as the standalone `lua` does.
    func setArguments(_ arguments: [String]) throws(LuaError) {
        let copies = arguments.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let ptrs: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
        var err: UnsafeMutablePointer<CChar>?
        let st = ptrs.withUnsafeBufferPointer {
            self.inside("atl_state_set_args", atl_state_set_args(self.pointer, $0.baseAddress, Int32($0.count), &err))
        }
        if st != ATL_OK { throw LuaError(code: .memory, fullMessage: takeMessage(err) ?? "not enough memory") }
    }

    /// Loads `path` in text mode and runs it.
    func runFile(_ path: String) throws(LuaError) -> LuaOutcome {
        var err: UnsafeMutablePointer<CChar>?
        var code: Int32 = 0
        let st = self.inside("atl_run_file", atl_run_file(self.pointer, path, &err, &code))
        return try outcome(st, err: err, exitCode: code, out: nil)
    }

    /// Runs `code` as a chunk named `name` and returns its results.
    func runString(_ code: String, name: String) throws(LuaError) -> LuaOutcome {
        var err: UnsafeMutablePointer<CChar>?
        var exitCode: Int32 = 0
        var out = atl_Buffer()
        var bytes = Array(code.utf8)
        bytes.append(0)
        let st = bytes.withUnsafeBufferPointer { raw in
            raw.withMemoryRebound(to: CChar.self) { chars in
                self.inside(
                    "atl_run_string",
                    atl_run_string(self.pointer, chars.baseAddress, chars.count - 1, name, &out, &err, &exitCode))
            }
        }
        return try outcome(st, err: err, exitCode: exitCode, out: &out)
    }

    /// Runs a background task's function (cached by `functionID`) with `arguments`; returns its first result.
    func runTask(
        functionID: UInt64, function: EncodedValues, member: Int = 0, arguments: EncodedValues?,
        wantResult: Bool = true
    ) throws(LuaError) -> LuaOutcome {
        var err: UnsafeMutablePointer<CChar>?
        var exitCode: Int32 = 0
        var out = atl_Buffer()
        return try withUnsafeMutablePointer(to: &out) { (outPointer) throws(LuaError) -> LuaOutcome in
            let resultPointer: UnsafeMutablePointer<atl_Buffer>? = wantResult ? outPointer : nil
            let st = function.withBuffer { fn in
                withOptionalBuffer(arguments) { args in
                    self.inside(
                        "atl_run_task",
                        atl_run_task(self.pointer, functionID, fn, Int32(member), args, resultPointer, &err, &exitCode))
                }
            }
            return try self.outcome(st, err: err, exitCode: exitCode, out: resultPointer)
        }
    }

    /// Prepares this state (a worker's own) for the worker's executions: its executor, its `kw` values (start
    /// arguments, `o`, the worker handle, the name) and its `on_error` handler with its extra arguments.
    func setUpWorker(function: EncodedValues, keywords: EncodedValues, onError: EncodedValues?) throws(LuaError) {
        var err: UnsafeMutablePointer<CChar>?
        let st = function.withBuffer { fn in
            keywords.withBuffer { kw in
                withOptionalBuffer(onError) {
                    self.inside("atl_worker_setup", atl_worker_setup(self.pointer, fn, kw, $0, &err))
                }
            }
        }
        if st != ATL_OK {
            throw LuaError(
                code: LuaError.Code(rawValue: Int(st)), fullMessage: takeMessage(err) ?? "worker setup failed")
        }
    }

    /// What one execution of a worker ended with.
    enum WorkerRun {
        /// The executor returned; `stop` when it returned false.
        case returned(stop: Bool)
        /// The executor raised and `on_error` handled it.
        case handled
        /// `os.exit` was called.
        case exit(Int32)
    }

    /// Runs one execution of the worker set up in this state: `fn(kw)`, or `fn(item, kw)`.
    func runWorker(item: EncodedValues?, taskID: Int) throws(LuaError) -> WorkerRun {
        var err: UnsafeMutablePointer<CChar>?
        var stop: Int32 = 0
        var handled: Int32 = 0
        var exitCode: Int32 = 0
        let st = withOptionalBuffer(item) {
            self.inside(
                "atl_worker_run", atl_worker_run(self.pointer, $0, Int64(taskID), &stop, &handled, &err, &exitCode))
        }
        switch st {
        case ATL_OK:
            free(err)
            return handled != 0 ? .handled : .returned(stop: stop != 0)
        case ATL_EXIT:
            free(err)
            return .exit(exitCode)
        default:
            throw LuaError(code: LuaError.Code(rawValue: Int(st)), fullMessage: takeMessage(err) ?? "unknown error")
        }
    }

    /// A copy of the worker's `kw` with `_task_id` set, for an execution in a process-pool child.
    func workerKeywords(taskID: Int) throws(LuaError) -> EncodedValues {
        var err: UnsafeMutablePointer<CChar>?
        var out = atl_Buffer()
        let st = self.inside("atl_worker_kwargs", atl_worker_kwargs(self.pointer, Int64(taskID), &out, &err))
        guard st == ATL_OK else {
            throw LuaError(code: LuaError.Code(rawValue: Int(st)), fullMessage: takeMessage(err) ?? "unknown error")
        }
        return EncodedValues(taking: &out)
    }

    /// Calls the worker's `on_error` for an execution that failed in a child with `message`; returns whether
    /// there is a handler. A handler's own error is thrown.
    func workerFailed(_ message: String) throws(LuaError) -> Bool {
        var err: UnsafeMutablePointer<CChar>?
        var handled: Int32 = 0
        let st = self.inside("atl_worker_onerror", atl_worker_onerror(self.pointer, message, &handled, &err))
        guard st == ATL_OK else {
            throw LuaError(code: LuaError.Code(rawValue: Int(st)), fullMessage: takeMessage(err) ?? "unknown error")
        }
        free(err)
        return handled != 0
    }

    /// Decodes `bytes` in this state and drops the values (tests of damaged buffers).
    func probeDecode(_ bytes: [UInt8]) throws(LuaError) {
        var err: UnsafeMutablePointer<CChar>?
        var buffer = atl_Buffer()
        defer { atl_buffer_free(&buffer) }
        guard bytes.withUnsafeBytes({ atl_buffer_append(&buffer, $0.baseAddress, $0.count) }) == ATL_OK else {
            throw LuaError(code: .memory, fullMessage: "not enough memory")
        }
        let st = self.inside("atl_codec_probe", atl_codec_probe(self.pointer, &buffer, 0, &err))
        if st != ATL_OK {
            throw LuaError(code: LuaError.Code(rawValue: Int(st)), fullMessage: takeMessage(err) ?? "decoding failed")
        }
    }

    private func outcome(
        _ st: Int32, err: UnsafeMutablePointer<CChar>?, exitCode: Int32, out: UnsafeMutablePointer<atl_Buffer>?
    ) throws(LuaError) -> LuaOutcome {
        switch st {
        case ATL_OK:
            free(err)
            guard let out, out.pointee.len > 0 else {
                if let out { atl_buffer_free(out) }
                return .values(nil)
            }
            return .values(EncodedValues(taking: &out.pointee))
        case ATL_EXIT:
            free(err)
            if let out { atl_buffer_free(out) }
            return .exit(exitCode)
        default:
            if let out { atl_buffer_free(out) }
            throw LuaError(code: LuaError.Code(rawValue: Int(st)), fullMessage: takeMessage(err) ?? "unknown error")
        }
    }
}

/// Takes a malloc'd C message from the shim and frees it.
func takeMessage(_ p: UnsafeMutablePointer<CChar>?) -> String? {
    guard let p else { return nil }
    defer { free(p) }
    return String(cString: p)
}

private func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let s else { return body(nil) }
    return s.withCString { body($0) }
}

private func withOptionalBuffer<R>(_ v: EncodedValues?, _ body: (UnsafePointer<atl_Buffer>?) -> R) -> R {
    guard let v else { return body(nil) }
    return v.withBuffer { body($0) }
}

// MARK: - Running executions

extension LuaState {
    /// What a request to a running execution found.
    enum ExecutionRequest {
        /// The request was sent to the thread that runs the execution.
        case sent
        /// The execution is not running (it ended, or never began): nothing happens.
        case notRunning
        /// The execution runs on the calling thread: a thread never cancels itself.
        case sameThread
    }

    /// Announces the next execution on the calling thread (a worker's or a task's run, which must follow at once),
    /// named `label` in messages; returns its id.
    static func announceExecution(_ label: String, host: AnyObject) -> UInt64 {
        atl_exec_next_host(label, Unmanaged.passUnretained(host).toOpaque())
    }

    /// The id of the execution that runs on the calling thread, or 0 (the main state's top level, an app's thread).
    static var currentExecution: UInt64 { atl_exec_current() }

    /// The ids of the executions of `host` that run now, with their names, and of those announced and about to
    /// begin (named `""`: a request for one waits for it to begin).
    static func runningExecutions(host: AnyObject) -> [(id: UInt64, label: String)] {
        var ids = [UInt64](repeating: 0, count: 4096)
        let n = Int(atl_exec_running(Unmanaged.passUnretained(host).toOpaque(), &ids, Int32(ids.count)))
        var result: [(id: UInt64, label: String)] = []
        var buffer = [CChar](repeating: 0, count: 256)
        for id in ids.prefix(n) {
            guard atl_exec_label(id, &buffer, buffer.count) != 0 else {
                result.append((id, ""))
                continue
            }
            result.append(
                (id, String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))
        }
        return result
    }

    /// Asks a running execution, from any thread, for its traceback and, with `cancel`, to stop: its owning thread
    /// gets a signal, and the hook that the signal arms does the work there.
    @discardableResult
    static func requestExecution(_ id: UInt64, cancel: Bool, traceback: Bool) -> ExecutionRequest {
        let what = (cancel ? ATL_EXEC_CANCEL : 0) | (traceback ? ATL_EXEC_TRACE : 0)
        switch atl_exec_request(id, what) {
        case ATL_EXEC_SENT: return .sent
        case ATL_EXEC_SELF: return .sameThread
        default: return .notRunning
        }
    }

    /// Where a running execution is: the last known `file:line`, and the traceback that a traceback request made it
    /// record (waiting up to `seconds` for it), or `nil` when its hook did not run in time (it is inside one long C
    /// call or a finalizer). `nil` when the execution is not running.
    static func reportExecution(_ id: UInt64, waiting seconds: Double) -> (place: String, traceback: String?)? {
        var place: UnsafeMutablePointer<CChar>?
        var trace: UnsafeMutablePointer<CChar>?
        let st = atl_exec_report(id, seconds, &place, &trace)
        let where_ = takeMessage(place)
        let traceback = takeMessage(trace)
        guard st == ATL_EXEC_SENT else { return nil }
        return (where_ ?? "?", traceback)
    }

    /// Tests: sends the thread that runs execution `running` the signal of a cancel request for execution `stale`,
    /// as a signal that arrives late would be.
    static func sendLateCancel(to running: UInt64, for stale: UInt64) -> Bool {
        atl_exec_signal_late(running, stale, ATL_EXEC_CANCEL) == 1
    }
}
