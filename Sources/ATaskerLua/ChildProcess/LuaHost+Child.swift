import ATasker
import Glibc
import Logging

extension LuaHost {
    /// Makes this process a process-pool child when the pool started it as one; returns at once otherwise.
    ///
    /// `mp = true` tasks and workers run in children of the running program: `atasker-lua` itself, or an
    /// embedding app, which must call this first thing in `main`, before it starts threads or reads its
    /// arguments:
    ///
    /// ```swift
    /// @main struct App {
    ///     static func main() {
    ///         LuaHost.runChildIfNeeded { host in
    ///             try host.register("greet") { args in .string("hello, \(args.first?.stringValue ?? "you")") }
    ///         }
    ///         // ... the app as usual
    ///     }
    /// }
    /// ```
    ///
    /// In a child, this never returns: the child runs the calls that its parent sends, one at a time, in one Lua
    /// state, and ends when the parent stops it or goes away. `register` gets the child's host before any Lua code
    /// runs: register there the functions of module `host` that mp code calls (the same ones as in the parent); an
    /// error it throws ends the child, and the task that needed it fails.
    /// The child's output goes to the parent's stdout and stderr; `atasker.log` and `atasker.shared` work through
    /// the parent; workers, locks, tasks and the supervisor are refused with an error that says so.
    public static func runChildIfNeeded(register: ((LuaHost) throws -> Void)? = nil) {
        guard ProcessChild.isChild else { return }
        ProcessChild.runIfChild { hello in
            let settings = (try? ChildWire.readPlain(hello))?.first?.tableValue ?? LuaTable()
            var logger = Logger(label: "atasker-lua")
            logger.logLevel = settings["debug"].boolValue ? .debug : .info
            let host = LuaHost(
                childOf: TaskSupervisor(logger: logger), logger: logger,
                configuration: Configuration(
                    packagePath: settings["path"].stringValue, packageCPath: settings["cpath"].stringValue,
                    exitHandler: { _ in }, allowsBytecode: settings["bytecode"].boolValue,
                    processMemoryLimit: settings["memory_limit"].intValue.map { Int($0) }))
            try register?(host)
            return try ChildRunner(core: host.core)
        }
    }
}
