// Embedding atasker-lua in a Swift program: a supervisor, a Lua host with one Swift function that Lua calls
// (`require("host").fetch_price`), a Lua script that runs it in background tasks and in a child process of the
// process pool (this same program, started in child mode), and a plain Swift closure run as a task on the same
// supervisor, with no Lua at all.
// Run: swift run EmbedSwift
// Prints:
//   apple: 1.25
//   pear: 2.5
//   Lua total: 3.75
//   mp task: pear 2.5, in a child process: true
//   Swift task: 42
import ATasker
import ATaskerLua
import Logging

/// The Swift functions that Lua code may call, registered in the parent and in every child of the process pool.
func registerFunctions(_ host: LuaHost) throws {
    let prices: [String: Double] = ["apple": 1.25, "pear": 2.5]
    try host.register("fetch_price") { args in
        guard let name = args.first?.stringValue, let price = prices[name] else {
            throw LuaError(code: .runtime, fullMessage: "no price for \(args.first ?? .nil)")
        }
        return .number(price)
    }
}

@main
struct EmbedSwift {
    static func main() async throws {
        // First thing: when the process pool started this program as a child, it serves its parent here.
        LuaHost.runChildIfNeeded(register: registerFunctions)

        let logger = Logger(label: "embed")
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 4), logger: logger)
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

        _ = await supervisor.stop(wait: .seconds(5), cancelTasks: false)
        host.close()
    }
}
