// Embedding atasker-lua in a Swift program: a supervisor, a Lua host with one Swift function that Lua calls
// (`require("host").fetch_price`), a Lua script that runs it in background tasks and in a child process of the
// process pool (this same program, started in child mode), a plain Swift closure run as a task on the same
// supervisor, with no Lua at all, a Swift error that Lua reads as a table, and the host as a service of a
// swift-service-lifecycle ServiceGroup whose graceful shutdown ends a Lua worker that never returns.
// Run: swift run EmbedSwift
// Prints:
//   apple: 1.25
//   pear: 2.5
//   Lua total: 3.75
//   mp task: pear 2.5, in a child process: true
//   Swift task: 42
//   Lua caught: not_found banana
//   ServiceGroup: shut down, the worker that never returns cancelled
import ATasker
import ATaskerLua
import Logging
import ServiceLifecycle
import UnixSignals

/// The error that `fetch_price` throws for an unknown fruit: Lua gets `e.code` and `e.name`.
struct UnknownFruit: LuaStructuredError {
    let name: String
    var luaCode: String { "not_found" }
    var luaMessage: String { "no price for \(self.name)" }
    var luaFields: [String: LuaValue] { ["name": .string(LuaString(self.name))] }
}

/// The Swift functions that Lua code may call, registered in the parent and in every child of the process pool.
func registerFunctions(_ host: LuaHost) throws {
    let prices: [String: Double] = ["apple": 1.25, "pear": 2.5]
    try host.register("fetch_price") { args in
        let name = args.first?.stringValue ?? "?"
        guard let price = prices[name] else { throw UnknownFruit(name: name) }
        return .number(price)
    }
}

@main
struct EmbedSwift {
    static func main() async throws {
        // First thing: when the process pool started this program as a child, it serves its parent here.
        LuaHost.runChildIfNeeded(register: registerFunctions)

        var logger = Logger(label: "embed")
        logger.logLevel = .critical  // the cancelled worker's warning would clutter the example's output
        // stopTimeout: how long a graceful shutdown lets running Lua code finish before it is cancelled
        let supervisor = TaskSupervisor(
            configuration: .init(poolSize: 4, stopTimeout: .milliseconds(200)), logger: logger)
        supervisor.start()

        let host = LuaHost(supervisor: supervisor, logger: logger)
        try registerFunctions(host)

        let results = try await host.run(
            string: """
                local host = require "host"
                local fetch = atasker.background_task(function(name)
                  local price = host.fetch_price(name)
                  print(name .. ": " .. price)
                  return price
                end)
                local a = atasker.wait_completed(fetch("apple"))
                local b = atasker.wait_completed(fetch("pear"))
                return a + b
                """, name: "=embedded")
        print("Lua total: \(results.first?.doubleValue ?? 0)")

        let child = try await host.run(
            string: """
                local host = require "host"
                local t = atasker.background_task(function(name)
                  return {price = host.fetch_price(name), pid = atasker.getpid()}
                end, {mp = true})("pear")
                local r = atasker.wait_completed(t)
                return r.price, r.pid ~= atasker.getpid()
                """, name: "=embedded-mp")
        print("mp task: pear \(child[0].doubleValue ?? 0), in a child process: \(child[1].boolValue)")

        let answer = try await supervisor.run(priority: .high) { 6 * 7 }
        print("Swift task: \(answer)")

        let caught = try await host.run(
            string: """
                local ok, e = pcall(function() return require("host").fetch_price("banana") end)
                return e.code, e.name
                """, name: "=embedded-error")
        print("Lua caught: \(caught[0].stringValue ?? "?") \(caught[1].stringValue ?? "?")")

        // The host as a service: at graceful shutdown (SIGTERM, or here triggered by the program) it stops the
        // supervisor, cancels the Lua code still running after stopTimeout, and closes itself.
        try await host.run(
            string: "atasker.background_worker{name = 'forever', fn = function() while true do end end}:start()",
            name: "=embedded-forever")
        let group = ServiceGroup(services: [host], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            _ = try await supervisor.run { 0 }  // the supervisor runs: the worker has started
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        print("ServiceGroup: shut down, the worker that never returns cancelled")
    }
}
