internal import CLuaShim
import Glibc
import Synchronization

extension LuaHost {
    /// Registers a module written in Lua that every state of the host can `require` by `name`: the main state,
    /// workers, pool threads, aloop tasks (and process-pool children whose host registers it too, in
    /// ``runChildIfNeeded(register:)``).
    ///
    /// With ``register(_:_:)``, this is how a Swift library gives Lua an API of its own: Swift functions in module
    /// `host`, and a Lua module that wraps them in objects with methods. The source is loaded in text mode, as a
    /// chunk named `=name` (errors read `name:LINE:`), and gets `name` as its argument; values that come from the
    /// module (its functions and tables) travel between states by name.
    ///
    /// ```swift
    /// try host.register("answer") { _ in 42 }
    /// try host.register(module: "app.answers", source: """
    ///     local host = require "host"
    ///     return {twice = function() return 2 * host.answer() end}
    ///     """)
    /// ```
    /// - Throws: ``LuaHostError`` with ``LuaHostError/Code/registeredTooLate`` once a state is open.
    public func register(module name: String, source: String) throws(LuaHostError) {
        let registered = self.core.settings.withLock { settings -> Bool in
            guard !settings.frozen else { return false }
            var modules = settings.luaModules?.modules ?? []
            modules.removeAll { $0.name == name }
            modules.append((name, source))
            settings.luaModules = LuaModuleTable(modules)
            return true
        }
        guard registered else {
            throw LuaHostError(
                code: .registeredTooLate,
                message: "LuaHost.register(module: \"\(name)\"): a Lua state is open already; register every module "
                    + "before the first script runs")
        }
    }
}

/// The app's Lua modules as the shim reads them: C strings made once, freed with the table, which the host keeps
/// for as long as its states may load them (a table is replaced only before the first state opens).
final class LuaModuleTable: Sendable {
    let modules: [(name: String, source: String)]
    // protected by immutability: written in `init`, freed in `deinit`.
    nonisolated(unsafe) let table: UnsafeMutablePointer<atl_LuaModules>
    nonisolated(unsafe) private let names: UnsafeMutablePointer<UnsafePointer<CChar>?>
    nonisolated(unsafe) private let sources: UnsafeMutablePointer<UnsafePointer<CChar>?>
    nonisolated(unsafe) private let lengths: UnsafeMutablePointer<Int>

    init(_ modules: [(name: String, source: String)]) {
        self.modules = modules
        let n = modules.count
        self.names = .allocate(capacity: max(n, 1))
        self.sources = .allocate(capacity: max(n, 1))
        self.lengths = .allocate(capacity: max(n, 1))
        for (i, module) in modules.enumerated() {
            self.names[i] = UnsafePointer(strdup(module.name))
            self.sources[i] = UnsafePointer(strdup(module.source))
            self.lengths[i] = module.source.utf8.count
        }
        self.table = .allocate(capacity: 1)
        self.table.initialize(
            to: atl_LuaModules(
                n: Int32(n), names: UnsafePointer(self.names), sources: UnsafePointer(self.sources),
                lengths: UnsafePointer(self.lengths)))
    }

    deinit {
        for i in 0..<self.modules.count {
            free(UnsafeMutablePointer(mutating: self.names[i]))
            free(UnsafeMutablePointer(mutating: self.sources[i]))
        }
        self.names.deallocate()
        self.sources.deallocate()
        self.lengths.deallocate()
        self.table.deallocate()
    }
}

/// The functions of module `host` as the shim reads them (each state builds the module when its code first requires
/// it): names made once as C strings, and the functions, which the table keeps alive with the host.
final class HostFunctionTable: Sendable {
    let functions: [HostFunction]
    // protected by immutability: written in `init`, freed in `deinit`.
    nonisolated(unsafe) let table: UnsafeMutablePointer<atl_HostFunctions>
    nonisolated(unsafe) private let names: UnsafeMutablePointer<UnsafePointer<CChar>?>
    nonisolated(unsafe) private let objects: UnsafeMutablePointer<UnsafeMutableRawPointer?>

    init(_ functions: [HostFunction]) {
        self.functions = functions
        let n = functions.count
        self.names = .allocate(capacity: max(n, 1))
        self.objects = .allocate(capacity: max(n, 1))
        for (i, function) in functions.enumerated() {
            self.names[i] = UnsafePointer(strdup(function.name))
            self.objects[i] = Unmanaged.passUnretained(function).toOpaque()
        }
        self.table = .allocate(capacity: 1)
        self.table.initialize(
            to: atl_HostFunctions(n: Int32(n), names: UnsafePointer(self.names), objs: UnsafePointer(self.objects)))
    }

    deinit {
        for i in 0..<self.functions.count { free(UnsafeMutablePointer(mutating: self.names[i])) }
        self.names.deallocate()
        self.objects.deallocate()
        self.table.deallocate()
    }
}
