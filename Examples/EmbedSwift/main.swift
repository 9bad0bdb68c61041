// Embedding atasker-lua in a Swift program: a supervisor, a Lua host with one Swift function that Lua calls
// (`require("host").fetch_price`), a Lua script that runs it in background tasks, and a plain Swift closure run as a
// task on the same supervisor, with no Lua at all.
// Run: swift run EmbedSwift
// Prints:
//   apple: 1.25
//   pear: 2.5
//   Lua total: 3.75
//   Swift task: 42
import ATasker
import ATaskerLua
import Logging

@main
struct EmbedSwift {
    static func main() async throws {
        let logger = Logger(label: "embed")
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 4), logger: logger)
        supervisor.start()

        let host = LuaHost(supervisor: supervisor, logger: logger)
        let prices: [String: Double] = ["apple": 1.25, "pear": 2.5]
        host.register("fetch_price") { args in
            guard let name = args.first?.stringValue, let price = prices[name] else {
                throw LuaError(code: .runtime, fullMessage: "no price for \(args.first ?? .nil)")
            }
            return .number(price)
        }

        let results = try host.run(
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

        let answer = try await supervisor.run(priority: .high) { 6 * 7 }
        print("Swift task: \(answer)")

        _ = await supervisor.stop(wait: .seconds(5), cancelTasks: false)
        host.close()
    }
}
