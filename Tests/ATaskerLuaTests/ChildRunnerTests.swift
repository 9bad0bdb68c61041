import ATasker
import Logging
import Testing

@testable import ATaskerLua

/// The Lua side of a process-pool child, run in this process: what a child does with the frames' payloads.
@Suite("Process-pool children: the Lua side, in process")
struct ChildRunnerTests {
    /// A child's host and runner, as `LuaHost.runChildIfNeeded` makes them.
    static func child() throws -> ChildRunner {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let host = LuaHost(
            childOf: TaskSupervisor(logger: logger), logger: logger,
            configuration: .init(exitHandler: { _ in }))
        return try ChildRunner(core: host.core)
    }

    /// The mp task function that `code` (a chunk returning `background_task(..., {mp=true})`) makes in the parent.
    static func function(_ f: HostFixture, _ code: String) throws -> TaskFunction {
        let values = try f.host.run(string: code)
        guard case .handle(let handle) = values.first, let function = handle.object as? TaskFunction else {
            throw LuaError(code: .runtime, fullMessage: "no task function")
        }
        return function
    }

    @Test("a function defined once is called with arguments; the result is plain values")
    func callByReference() throws {
        let f = HostFixture()
        defer { f.finish() }
        let function = try Self.function(
            f, "local k = 3; return atasker.background_task(function(a, t) return a * k + #t end, {mp = true})")
        let runner = try Self.child()
        let args = try EncodedValues([.integer(5), .table(LuaTable(array: [.integer(1), .integer(2)]))])
        let first = runner.call(
            definitions: [function.definition], payload: ChildWire.call(function: function.id, arguments: args))
        guard case .success(let bytes) = first else {
            Issue.record("first call failed: \(first)")
            return
        }
        let result = try HostCore.childResult(.success(bytes)) as? EncodedValues
        #expect(try result?.decode() == [.integer(17)])
        // The second call sends no definition: the child kept the function.
        let second = runner.call(definitions: [], payload: ChildWire.call(function: function.id, arguments: args))
        guard case .success = second else {
            Issue.record("second call failed: \(second)")
            return
        }
        // An unknown function is an error, not a crash.
        let unknown = runner.call(definitions: [], payload: ChildWire.call(function: 999_999, arguments: nil))
        guard case .failure(let message) = unknown else {
            Issue.record("an unknown function did not fail")
            return
        }
        #expect(throws: LuaError.self) { try HostCore.childResult(.failure(message)) }
    }

    @Test("an error keeps file:line and the traceback; a function in a result is refused in the child")
    func errors() throws {
        let f = HostFixture()
        defer { f.finish() }
        let failing = try Self.function(
            f, "return atasker.background_task(function() error('bad in child') end, {mp = true})")
        let returnsFunction = try Self.function(
            f, "return atasker.background_task(function() return {f = print} end, {mp = true})")
        let returnsClosure = try Self.function(
            f, "return atasker.background_task(function() return {f = function() end} end, {mp = true})")
        let runner = try Self.child()
        for (function, expected) in [(failing, "bad in child"), (returnsClosure, "functions cannot be copied")] {
            let reply = runner.call(
                definitions: [function.definition], payload: ChildWire.call(function: function.id, arguments: nil))
            #expect {
                try HostCore.childResult(reply)
            } throws: { error in
                guard let error = error as? LuaError else { return false }
                return error.fullMessage.contains(expected)
                    && (function !== failing || error.fullMessage.contains("stack traceback"))
            }
        }
        // A function of a module travels by name, never as bytecode: it is allowed.
        let named = runner.call(
            definitions: [returnsFunction.definition],
            payload: ChildWire.call(function: returnsFunction.id, arguments: nil))
        guard case .success = named else {
            Issue.record("a module function by name was refused: \(named)")
            return
        }
    }

    @Test("handles of the parent become refusing stand-ins in the child, named in the error")
    func refusedHandles() throws {
        let f = HostFixture()
        defer { f.finish() }
        let values = try f.host.run(
            string: """
                local lock = atasker.Locker{mod = "db"}
                local fn = atasker.background_task(function(l)
                  local ok, err = pcall(function() return l:acquire() end)
                  return err
                end, {mp = true})
                return fn, lock
                """)
        guard case .handle(let h) = values[0], let function = h.object as? TaskFunction else {
            Issue.record("no function")
            return
        }
        let runner = try Self.child()
        let args = try EncodedValues([values[1]])
        let reply = runner.call(
            definitions: [function.definition], payload: ChildWire.call(function: function.id, arguments: args))
        let result = try (HostCore.childResult(reply) as? EncodedValues)?.decode().first?.stringValue ?? ""
        #expect(result.contains("Locker 'db' cannot be used in an mp child process"), "\(result)")
    }

    @Test("a result from another process must be plain: bytecode is refused before anything decodes it")
    func plainResults() throws {
        let f = HostFixture()
        defer { f.finish() }
        let values = try f.host.run(string: "local up = 1; return function() return up end")
        let withFunction = try LuaValue.encodeAll(values).bytes
        #expect(throws: LuaError.self) { try HostCore.childResult(.success(withFunction)) }
        #expect(throws: LuaError.self) { try HostCore.childResult(.success([0x41, 0x4C, 1, 1, 99])) }
    }
}
