// Codable ⇄ LuaValue through the public API: an app's own structs go to Lua and come back.
import ATasker
import ATaskerLua
import Logging
import Testing

@Suite("Embedding: Codable values to and from Lua")
struct CodableTests {
    struct Order: Codable, Equatable {
        struct Line: Codable, Equatable {
            var sku: String
            var quantity: Int
        }
        var id: Int64
        var ratio: Double
        var paid: Bool
        var note: String?
        var lines: [Line]
        var tags: [String: Int]
        var byPosition: [Int: String]
    }

    static let order = Order(
        id: 7, ratio: 0.5, paid: true, note: nil, lines: [.init(sku: "a", quantity: 2), .init(sku: "b", quantity: 1)],
        tags: ["x": 1], byPosition: [3: "three"])

    @Test("a struct round-trips through LuaValue and through a Lua task that reads and returns it")
    func roundTrip() async throws {
        let value = try LuaValueEncoder().encode(Self.order)
        #expect(value.tableValue?["lines"].tableValue?.array.count == 2)
        #expect(value.tableValue?["note"] == .nil)
        #expect(value.tableValue?["byPosition"].tableValue?[.integer(3)] == .string("three"))
        #expect(try LuaValueDecoder().decode(Order.self, from: value) == Self.order)

        var logger = Logger(label: "embedding-test")
        logger.logLevel = .critical
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: logger)
        supervisor.start()
        let host = LuaHost(supervisor: supervisor, logger: logger)
        try host.register("order") { _ in try LuaValueEncoder().encode(Self.order) }
        let values = try await host.run(
            string: """
                return atasker.background_task(function()
                  local o = require("host").order()
                  o.lines[1].quantity = o.lines[1].quantity + 40
                  o.note = "seen by Lua: " .. o.lines[2].sku
                  return o
                end)()
                """)
        let task = try #require(values.first?.task)
        let back = try LuaValueDecoder().decode(Order.self, from: try await host.result(of: task))
        var expected = Self.order
        expected.lines[0].quantity = 42
        expected.note = "seen by Lua: b"
        #expect(back == expected)
        await supervisor.shutdown(timeout: .seconds(10))
        host.close()
    }

    @Test("what Lua cannot hold, and what does not fit, are errors naming the coding path")
    func errors() throws {
        #expect(throws: EncodingError.self) { try LuaValueEncoder().encode([UInt64.max]) }
        #expect(throws: EncodingError.self) { try LuaValueEncoder().encode([1, nil, 3] as [Int?]) }
        let value: LuaValue = .table(LuaTable(["id": .string("seven")]))
        #expect {
            try LuaValueDecoder().decode(Order.self, from: value)
        } throws: { error in
            guard case DecodingError.typeMismatch(_, let context) = error else { return false }
            return context.codingPath.map(\.stringValue) == ["id"]
        }
        #expect(throws: DecodingError.self) { try LuaValueDecoder().decode(UInt8.self, from: .integer(300)) }
        #expect(try LuaValueDecoder().decode(Int.self, from: .number(3.0)) == 3)
    }
}
