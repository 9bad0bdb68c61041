internal import CLuaShim

extension LuaHost {
    /// Flushes what Lua's `print` wrote to standard output, under the output lock that keeps lines whole.
    ///
    /// `atasker-lua` calls it before it exits or re-raises a signal; an embedding app calls it before it spawns a
    /// process that shares standard output.
    public static func flushOutput() {
        atl_output_flush()
    }
}
