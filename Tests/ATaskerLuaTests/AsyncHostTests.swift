import ATasker
import Logging
import Synchronization
import Testing

@testable import ATaskerLua

@Suite("LuaHost: aloops from Swift and Lua")
struct AsyncHostTests {
    @Test("Swift awaits the result of a Lua aloop task with async/await")
    func awaitLuaTask() async throws {
        let f = HostFixture()
        defer { f.finish() }
        let values = try await f.host.run(
            string: """
                local a = atasker.supervisor:create_aloop("swift")
                return a:background_task(function(x)
                  atasker.sleep(0.02)
                  return {answer = x * 2}
                end, 21)
                """)
        guard case .handle(let handle) = values.first, let task = handle.object as? SupervisorTask else {
            Issue.record("no task came back: \(values)")
            return
        }
        let result = try await f.host.result(of: task)
        #expect(result.tableValue?["answer"] == .integer(42))
        let failing = try await f.host.run(
            string: "return atasker.supervisor:get_aloop('swift'):background_task(function() error('no') end)")
        guard case .handle(let failed) = failing.first, let failedTask = failed.object as? SupervisorTask else {
            Issue.record("no task came back")
            return
        }
        await #expect(throws: LuaError.self) { try await f.host.result(of: failedTask) }
    }

    @Test("a closure scheduled from Swift runs on the aloop's thread between the steps of Lua coroutines")
    func swiftClosureOnLuaAloop() async throws {
        let f = HostFixture()
        defer { f.finish() }
        try await f.host.run(
            string: """
                atasker.supervisor:create_aloop("mixed", {default = true})
                local w = atasker.background_worker{async = true, interval = 0.005, name = "lua-ticker",
                  fn = function(kw) atasker.shared("mixed"):incr("ticks") end}
                w:start()
                """)
        let aloop = try #require(f.supervisor.aloop(named: "mixed"))
        let onLoop = try await aloop.run { aloop.isCurrent }
        #expect(onLoop)
        try await Task.sleep(for: .milliseconds(100))
        let ticks = try await f.host.run(string: "return atasker.shared('mixed'):get('ticks')")
        #expect((ticks.first?.intValue ?? 0) > 5)
        try await f.host.run(string: "atasker.supervisor:stop_aloop('mixed')")
        #expect(aloop.isStopped)
        #expect(f.supervisor.worker(named: "lua-ticker")?.isStopped ?? true)
    }

    @Test("setAloopBlockLimits from Swift: a coroutine that never yields is cancelled, and its worker goes on")
    func blockLimitsFromSwift() throws {
        let f = HostFixture()
        defer { f.finish() }
        f.host.setAloopBlockLimits(warning: 0.05, cancel: 0.1)
        #expect(try f.host.defaultAloop().name == "default")
        let values = try f.host.run(
            string: """
                local w = atasker.background_worker{async = true, e = true, name = "spin",
                  fn = function(kw) while true do end end}
                w:start()
                w:trigger()
                local deadline = atasker.monotonic() + 10
                while w.errors < 1 do
                  if atasker.monotonic() > deadline then return false end
                  atasker.sleep(0.01)
                end
                w:stop()
                return atasker.supervisor.aloop_block_cancel
                """)
        #expect(values.first == .number(0.1))
    }

    @Test("cancelRunningCode also cancels async code that waits on an aloop")
    func cancelWaiting() throws {
        let f = HostFixture()
        defer { f.finish() }
        try f.host.run(
            string: """
                local w = atasker.background_worker{async = true, e = true, name = "waiter",
                  fn = function(kw) atasker.shared("c"):set("in", true) atasker.sleep(60) end}
                w:start()
                w:trigger()
                while not atasker.shared("c"):get("in") do atasker.sleep(0.005) end
                """)
        #expect(f.host.cancelRunningCode() >= 1)
        let stopped = try f.host.run(
            string: """
                local deadline = atasker.monotonic() + 10
                while atasker.supervisor:info().workers[1].executions < 1 do
                  if atasker.monotonic() > deadline then return false end
                  atasker.sleep(0.005)
                end
                return true
                """)
        #expect(stopped.first == .boolean(true))
    }
}
