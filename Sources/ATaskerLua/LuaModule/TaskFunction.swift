import ATasker
import Synchronization

/// A Lua function made into a task starter by `atasker.background_task(fn, opts)`: the function is encoded once;
/// each call of the starter sends only its arguments.
final class TaskFunction: Sendable {
    /// Unique in the process: the key of the function in each pool state's cache.
    let id: UInt64
    let function: EncodedValues
    /// 0: `function` holds the function. 1 or 2: it holds `{fn, callback}`, which travelled as one value so that a
    /// local they share is one cell in the pool state, and this runs that entry (see `atl_run_task`).
    let member: Int
    let priority: TaskPriority
    let delay: Double?
    let name: String?
    let callback: TaskFunction?
    /// Seconds after which a run is reported with its traceback (`run_timeout`), and cancelled with
    /// `cancelOnTimeout`.
    let runTimeout: Double?
    let cancelOnTimeout: Bool
    /// `mp = true`: runs in a process-pool child.
    let inProcess: Bool
    /// `timeout` of an mp task: the child is killed and the task fails when a run takes longer.
    let processTimeout: Double?
    /// What a child gets once before its first run of this function.
    let definition: ProcessDefinition
    /// `loop=`: each run is a task of this aloop (a coroutine), not a pool task.
    let aloop: Aloop?
    /// `memory_limit`: the bytes that a run may add to the state that runs it (what that state held when the run
    /// began, plus this, is its limit while the run lasts); 0: no limit of its own.
    let memoryLimit: Int

    init(
        id: UInt64, function: EncodedValues, priority: TaskPriority, delay: Double?, name: String?,
        callback: TaskFunction?, member: Int = 0, runTimeout: Double? = nil, cancelOnTimeout: Bool = false,
        inProcess: Bool = false, processTimeout: Double? = nil, aloop: Aloop? = nil, memoryLimit: Int = 0
    ) {
        self.memoryLimit = memoryLimit
        self.member = member
        self.aloop = aloop
        self.inProcess = inProcess
        self.processTimeout = processTimeout
        self.definition = ProcessDefinition(
            key: id, payload: inProcess ? ChildWire.definition(function, memoryLimit: memoryLimit) : [])
        self.id = id
        self.function = function
        self.priority = priority
        self.delay = delay
        self.name = name
        self.callback = callback
        self.runTimeout = runTimeout
        self.cancelOnTimeout = cancelOnTimeout
    }
}

/// A table that every state and thread of one host shares: `atasker.shared(name)`. Each call is atomic.
final class SharedTable: Sendable {
    let name: String
    let values = Mutex<[LuaValue: LuaValue]>([:])

    init(name: String) {
        self.name = name
    }
}

/// A Swift function that an embedding app registered; Lua calls it through module `host`.
final class HostFunction: Sendable {
    let name: String
    let body: @Sendable ([LuaValue]) throws -> LuaValue

    init(name: String, body: @escaping @Sendable ([LuaValue]) throws -> LuaValue) {
        self.name = name
        self.body = body
    }
}
