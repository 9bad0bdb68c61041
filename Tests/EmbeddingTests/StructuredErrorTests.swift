// The public API as an app uses it (no @testable): a Swift function's thrown error reaches Lua as a table.
import ATasker
import ATaskerLua
import Logging
import Testing

@Suite("Embedding: errors thrown by registered Swift functions reach Lua as atasker.Error tables")
struct StructuredErrorTests {
    enum StoreError: LuaStructuredError {
        case notFound(key: String)
        var luaCode: String { "not_found" }
        var luaMessage: String {
            switch self {
            case .notFound(let key): "no value for \(key)"
            }
        }
        var luaFields: [String: LuaValue] {
            switch self {
            case .notFound(let key): ["key": .string(LuaString(key)), "code": "overridden?"]
            }
        }
    }

    struct PlainError: Error, CustomStringConvertible {
        var description: String { "the disk is full" }
    }

    @Test("a LuaStructuredError gives code, message with the place, fields; any other error its type's name")
    func structured() throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: HostMisuseTests.quietLogger())
        supervisor.start()
        defer { _ = supervisor.stop(wait: .seconds(10), cancelTasks: true) }
        let host = LuaHost(supervisor: supervisor, logger: HostMisuseTests.quietLogger())
        defer { host.close() }
        try host.register("fetch") { args in throw StoreError.notFound(key: args.first?.stringValue ?? "?") }
        try host.register("save") { _ in throw PlainError() }
        try host.register("lua") { _ in throw LuaError(code: .runtime, fullMessage: "raised as it is") }
        let values = try host.run(
            string: """
                local h = require("host")
                local ok, e = pcall(function() return h.fetch("k1") end)
                local ok2, e2 = pcall(function() h.save() end)
                local ok3, e3 = pcall(h.lua)
                -- an uncaught one in a task: its message is the task's error
                local t = atasker.background_task(function() return h.fetch("k2") end)()
                pcall(atasker.wait_completed, t)
                return ok, e.code, e.key, e.message, tostring(e), e["function"], getmetatable(e).__name,
                  ok2, e2.code, e2.message, e3, t.error:match("^[^\\n]*"),
                  -- it reads as its message where code used to get a string
                  "wrapped: " .. e, e:match("no value for (%w+)")
                """, name: "=errors.lua")
        #expect(values[0] == .boolean(false))
        #expect(values[1] == "not_found")
        #expect(values[2] == "k1")
        #expect(values[3] == "errors.lua:2: fetch: no value for k1")
        #expect(values[4] == values[3])
        #expect(values[5] == "fetch")
        #expect(values[6] == "atasker.Error")
        #expect(values[7] == .boolean(false))
        #expect(values[8] == "PlainError")
        #expect(values[9] == "errors.lua:3: save: the disk is full")
        #expect(values[10] == "raised as it is")
        #expect(values[11] == "errors.lua:6: fetch: no value for k2")
        #expect(values[12] == "wrapped: errors.lua:2: fetch: no value for k1")
        #expect(values[13] == "k1")
    }
}
