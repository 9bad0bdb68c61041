public import ATasker

extension LuaValue {
    /// The task that this value is a handle of (what `background_task(fn)(...)` or `aloop:background_task` returned
    /// to Lua), or `nil` for any other value.
    public var task: SupervisorTask? {
        guard case .handle(let handle) = self else { return nil }
        return handle.object as? SupervisorTask
    }
}
