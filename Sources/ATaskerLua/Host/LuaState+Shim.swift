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
    /// A pool thread's state: the pool's memory limit that it has (`set_thread_pool{memory_limit=}`), so that a new
    /// one is applied when the thread next takes it.
    var poolLimit = 0
    /// Where the state counts itself while it is open (`atasker_lua_states`).
    private let metrics: SupervisorMetrics?
    /// The tables that the shim reads from the state's data when its code requires them (kept for as long as the
    /// state is).
    private let hostFunctions: HostFunctionTable?
    private let luaModules: LuaModuleTable?

    struct Options {
        var host: UnsafeMutableRawPointer? = nil
        var supervisor: UnsafeMutableRawPointer? = nil
        var isMain: Bool
        var isChild = false
        var packagePath: String? = nil
        var packageCPath: String? = nil
        var hostFunctions: HostFunctionTable? = nil
        var allocationLimit: Int = 0
        var allowsBytecode = false
        /// Bytes the state may hold (0: no limit).
        var memoryLimit: Int = 0
        /// The state's name in memory reports (`main`, `worker 'w'`).
        var label: String? = nil
        var metrics: SupervisorMetrics? = nil
        var luaModules: LuaModuleTable? = nil
    }

    init(options: Options) throws(LuaError) {
        var err: UnsafeMutablePointer<CChar>?
        let state: OpaquePointer? = withOptionalCString(options.packagePath) { path in
            withOptionalCString(options.packageCPath) { cpath in
                withOptionalCString(options.label) { label in
                    var o = atl_StateOptions()
                    o.host = options.host
                    o.supervisor = options.supervisor
                    o.is_main = options.isMain ? 1 : 0
                    o.is_child = options.isChild ? 1 : 0
                    o.package_path = path
                    o.package_cpath = cpath
                    o.host_functions = options.hostFunctions.map { UnsafePointer($0.table) }
                    o.alloc_limit = options.allocationLimit
                    o.allow_bytecode = options.allowsBytecode ? 1 : 0
                    o.memory_limit = max(0, options.memoryLimit)
                    o.label = label
                    o.lua_modules = options.luaModules.map { UnsafePointer($0.table) }
                    return atl_state_open(&o, &err)
                }
            }
        }
        guard let state else {
            throw LuaError(code: .memory, fullMessage: takeMessage(err) ?? "opening a Lua state: not enough memory")
        }
        self.pointer = state
        self.metrics = options.metrics
        self.hostFunctions = options.hostFunctions
        self.luaModules = options.luaModules
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

    /// The bytes that the state holds now, the most it held, and its limit (0: none).
    var memory: LuaHost.StateMemory {
        var m = atl_StateMemory()
        atl_state_memory(self.pointer, &m)
        return LuaHost.StateMemory(m)
    }

    /// The bytes that the state holds now (on the owner's thread: no lock).
    var bytes: Int { Int(atl_state_bytes(self.pointer)) }

    /// The state's memory limit in bytes (0: none); set from the thread that owns the state.
    var memoryLimit: Int {
        get { Int(atl_state_memory_limit(self.pointer)) }
        set { atl_state_set_memory_limit(self.pointer, max(0, newValue)) }
    }

    /// Runs `body` (a task's run, named `label` in errors) with the state's limit lowered to what it holds now plus
    /// `extra` bytes (a task's `memory_limit`; never above the state's own limit), and puts the state's limit back
    /// after it. A memory error of the run names the limit that it reached.
    @inline(__always)
    func withRunMemoryLimit<R>(
        _ extra: Int, label: @autoclosure () -> String, _ body: () throws(LuaError) -> R
    ) throws(LuaError) -> R {
        guard extra > 0 else {
            // The common run: no limit of its own, and no lock taken.
            do {
                return try body()
            } catch  where error.code == .memory && self.hasMemoryLimit {
                throw LuaError(
                    code: .memory,
                    fullMessage: "\(label()): not enough memory: the run reached the memory limit of its state "
                        + "(\(self.memoryLimit) bytes)")
            }
        }
        let bytes = Int(atl_state_bytes(self.pointer))
        let limit = Int(atl_state_memory_limit(self.pointer))
        let (sum, overflow) = bytes.addingReportingOverflow(extra)
        let own = overflow ? Int.max : sum
        atl_state_set_memory_limit(self.pointer, limit > 0 ? min(limit, own) : own)
        defer { atl_state_set_memory_limit(self.pointer, limit) }
        do {
            return try body()
        } catch  where error.code == .memory {
            let reached =
                limit == 0 || own < limit
                ? "its memory_limit (\(extra) bytes above the \(bytes) that its state held when it began)"
                : "the memory limit of its state (\(limit) bytes)"
            throw LuaError(code: .memory, fullMessage: "\(label()): not enough memory: the run reached \(reached)")
        }
    }

    /// Whether the state has a memory limit (read on the owner's thread).
    var hasMemoryLimit: Bool { atl_state_memory_limit(self.pointer) != 0 }

    /// Renames the state in memory reports.
    func setLabel(_ label: String) {
        atl_state_set_label(self.pointer, label)
    }

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
        if st != ATL_OK { throw shimError(st, err, "setting arg") }
    }

    /// Loads `path` in text mode and runs it.
    func runFile(_ path: String) throws(LuaError) -> LuaOutcome {
        var err: UnsafeMutablePointer<CChar>?
        var code: Int32 = 0
        let st = self.inside("atl_run_file", atl_run_file(self.pointer, path, &err, &code))
        return try outcome(st, err: err, exitCode: code, out: nil, operation: "running \(path)")
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
        return try outcome(st, err: err, exitCode: exitCode, out: &out, operation: "running chunk \(name)")
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
            return try self.outcome(st, err: err, exitCode: exitCode, out: resultPointer, operation: "running a task")
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
            throw shimError(st, err, "setting up the worker")
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
    func runWorker(item: LuaQueueItem?, taskID: Int) throws(LuaError) -> WorkerRun {
        var err: UnsafeMutablePointer<CChar>?
        var stop: Int32 = 0
        var handled: Int32 = 0
        var exitCode: Int32 = 0
        let st: Int32
        if let item {
            st = item.withBuffer {
                self.inside(
                    "atl_worker_run", atl_worker_run(self.pointer, $0, Int64(taskID), &stop, &handled, &err, &exitCode))
            }
        } else {
            st = self.inside(
                "atl_worker_run", atl_worker_run(self.pointer, nil, Int64(taskID), &stop, &handled, &err, &exitCode))
        }
        switch st {
        case ATL_OK:
            free(err)
            return handled != 0 ? .handled : .returned(stop: stop != 0)
        case ATL_EXIT:
            free(err)
            return .exit(exitCode)
        default:
            throw shimError(st, err, "an execution of the worker")
        }
    }

    /// What a run of several queue items (``runWorkerBatch(_:taskID:budget:)``) ended with.
    struct WorkerBatchRun {
        /// The items that ran, from the first.
        var ran = 0
        /// Of those, the ones whose error `on_error` handled.
        var handled = 0
        var end = End.ranAll

        enum End {
            /// Every item ran, or the time budget ran out: the rest may run next.
            case ranAll
            /// The last item's executor returned false.
            case stop
            /// The last item called `os.exit`.
            case exit(Int32)
            /// The last item failed and `on_error` did not handle it.
            case failed(LuaError)
        }
    }

    /// Runs the worker's executor for `items` in turn, as one execution, item i with `kw._task_id` = `taskID` + i,
    /// until one returns false, one fails unhandled, `os.exit`, or `budget` seconds have passed.
    func runWorkerBatch(_ items: ArraySlice<LuaQueueItem>, taskID: Int, budget: Double) -> WorkerBatchRun {
        let n = items.count
        var scratch = [UInt8](repeating: 0, count: n * LuaQueueItem.scalarBytes)
        var buffers = [atl_Buffer](repeating: atl_Buffer(), count: n)
        var result = WorkerBatchRun()
        var ran: Int32 = 0
        var handled: Int32 = 0
        var stop: Int32 = 0
        var err: UnsafeMutablePointer<CChar>?
        var exitCode: Int32 = 0
        let st = scratch.withUnsafeMutableBytes { raw -> Int32 in
            for (i, item) in items.enumerated() {
                if case .encoded(let encoded) = item {
                    buffers[i] = encoded.bufferDescription
                    continue
                }
                let room = UnsafeMutableRawBufferPointer(
                    rebasing: raw[(i * LuaQueueItem.scalarBytes)..<((i + 1) * LuaQueueItem.scalarBytes)])
                buffers[i].data = room.baseAddress!.assumingMemoryBound(to: UInt8.self)
                buffers[i].len = item.writeScalar(into: room)
                buffers[i].cap = room.count
            }
            // the encoded items stay alive in `items` for the whole call
            return withExtendedLifetime(items) {
                self.inside(
                    "atl_worker_run_batch",
                    atl_worker_run_batch(
                        self.pointer, buffers, Int32(n), Int64(taskID), budget, &ran, &handled, &stop, &err, &exitCode))
            }
        }
        result.ran = Int(ran)
        result.handled = Int(handled)
        switch st {
        case ATL_OK:
            free(err)
            result.end = stop != 0 ? .stop : .ranAll
        case ATL_EXIT:
            free(err)
            result.end = .exit(exitCode)
        default:
            result.end = .failed(
                LuaError(code: LuaError.Code(rawValue: Int(st)), fullMessage: takeMessage(err) ?? "unknown error"))
        }
        return result
    }

    /// A copy of the worker's `kw` with `_task_id` set, for an execution in a process-pool child.
    func workerKeywords(taskID: Int) throws(LuaError) -> EncodedValues {
        var err: UnsafeMutablePointer<CChar>?
        var out = atl_Buffer()
        let st = self.inside("atl_worker_kwargs", atl_worker_kwargs(self.pointer, Int64(taskID), &out, &err))
        guard st == ATL_OK else {
            throw shimError(st, err, "copying the worker's kw")
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
            throw shimError(st, err, "calling on_error")
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
            throw shimError(st, err, "decoding")
        }
    }

    /// Whether `buffer` holds one nil and nothing else.
    private static func isOneNil(_ buffer: atl_Buffer) -> Bool {
        let h = CodecTag.header.count
        guard buffer.len == h + 2, buffer.nhandles == 0, let data = buffer.data else { return false }
        let bytes = UnsafeBufferPointer(start: data, count: buffer.len)
        return bytes[h] == 1 && bytes[h + 1] == CodecTag.nil && bytes.starts(with: CodecTag.header)
    }

    private func outcome(
        _ st: Int32, err: UnsafeMutablePointer<CChar>?, exitCode: Int32, out: UnsafeMutablePointer<atl_Buffer>?,
        operation: String
    ) throws(LuaError) -> LuaOutcome {
        switch st {
        case ATL_OK:
            free(err)
            guard let out, out.pointee.len > 0 else {
                if let out { atl_buffer_free(out) }
                return .values(nil)
            }
            if Self.isOneNil(out.pointee) {
                // the result of a function that returns nothing: shared, not allocated per task
                atl_buffer_free(out)
                return .values(HostCore.nilResult)
            }
            return .values(EncodedValues(taking: &out.pointee))
        case ATL_EXIT:
            free(err)
            if let out { atl_buffer_free(out) }
            return .exit(exitCode)
        default:
            if let out { atl_buffer_free(out) }
            throw shimError(st, err, operation)
        }
    }
}

/// The error of a shim call that returned `st` with message `err` (taken and freed), or, when the shim had no memory
/// left for a message, one that names `operation`.
func shimError(_ st: Int32, _ err: UnsafeMutablePointer<CChar>?, _ operation: String) -> LuaError {
    let code = LuaError.Code(rawValue: Int(st))
    if let message = takeMessage(err) { return LuaError(code: code, fullMessage: message) }
    let message =
        st == ATL_ERRMEM
        ? "\(operation): not enough memory" : "\(operation) failed (no memory was left for its message)"
    return LuaError(code: code, fullMessage: message)
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
        // the bytes as they are, with their length: passing the String as a C string would copy a short one
        // (a small string, such as "worker 'sink'") into a new array at every execution
        var label = label
        return label.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) {
                atl_exec_next_hostn($0.baseAddress, $0.count, Unmanaged.passUnretained(host).toOpaque())
            }
        }
    }

    /// ``announceExecution(_:host:)`` for task `taskID`, named `task 7 (name)` by the shim: no String is made.
    static func announceTask(_ taskID: Int, name: String?, host: AnyObject) -> UInt64 {
        let host = Unmanaged.passUnretained(host).toOpaque()
        guard let name else { return atl_exec_next_task(UInt64(truncatingIfNeeded: taskID), nil, host) }
        return name.withCString { atl_exec_next_task(UInt64(truncatingIfNeeded: taskID), $0, host) }
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
