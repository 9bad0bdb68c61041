// Memory limits through the public API: LuaHost.Configuration's limits, stateMemory() and memorySize(_:).
import ATasker
import ATaskerLua
import Logging
import Testing

@Suite("Embedding: memory limits")
struct MemoryLimitTests {
    @Test("memoryLimit caps the main state, poolMemoryLimit the pool states; stateMemory() shows bytes, peak, limit")
    func limits() throws {
        var logger = Logger(label: "embedding-test")
        logger.logLevel = .critical
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: logger)
        supervisor.start()
        defer { _ = supervisor.stop(wait: .seconds(10), cancelTasks: true) }
        let host = LuaHost(
            supervisor: supervisor, logger: logger,
            configuration: .init(memoryLimit: 1 << 20, poolMemoryLimit: 256 << 10))
        defer { host.close() }
        let hog = "local t = {} for i = 1, math.huge do t[i] = ('x'):rep(64) .. i end"
        #expect {
            try host.run(string: hog)
        } throws: { error in
            guard let error = error as? LuaError else { return false }
            return error.code == .memory
                && error.message.contains("not enough memory: the main state reached its memory limit of 1048576 bytes")
        }
        // The main state goes on; a pool task under the pool's limit fails, the next one runs.
        let values = try host.run(
            string: """
                local ok, err = pcall(atasker.wait_completed, atasker.background_task(function() \(hog) end)())
                local after = atasker.wait_completed(atasker.background_task(function() return 5 end)())
                return ok, err, after
                """)
        #expect(values.first == .boolean(false))
        #expect(values.dropFirst().first?.stringValue?.contains("the memory limit of its state (262144 bytes)") == true)
        #expect(values.last == .integer(5))
        let states = host.stateMemory()
        let main = try #require(states.first { $0.label == "main" })
        #expect(main.limit == 1 << 20)
        #expect(main.peak <= main.limit && main.bytes <= main.peak && main.bytes > 0)
        let pool = states.filter { $0.label == "pool thread" && $0.limit > 0 }
        #expect(!pool.isEmpty)
        #expect(pool.allSatisfy { $0.limit == 256 << 10 && $0.peak <= $0.limit })
    }

    @Test("memorySize reads the option's forms and refuses the rest")
    func sizes() {
        #expect(LuaHost.memorySize("64M") == 64 << 20)
        #expect(LuaHost.memorySize("512k") == 512 << 10)
        #expect(LuaHost.memorySize("1G") == 1 << 30)
        #expect(LuaHost.memorySize("1.5G") == 3 << 29)
        #expect(LuaHost.memorySize("64MiB") == 64 << 20)
        #expect(LuaHost.memorySize("100B") == 100)
        #expect(LuaHost.memorySize("4096") == 4096)
        #expect(LuaHost.memorySize("1T") == LuaHost.maximumMemoryLimit)
        for bad in ["", "0", "-1", "64X", "1e300", "nan", "2T", "0.1", "M", "1..5M", "12 parsecs"] {
            #expect(LuaHost.memorySize(bad) == nil, "\(bad)")
        }
    }
}
