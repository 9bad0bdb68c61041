// swift-metrics through the public API: a supervisor made with a test backend reports what its tasks, workers,
// Lua states and process pool did.
import ATasker
import ATaskerLua
import Logging
import MetricsTestKit
import Testing

@Suite("Embedding: swift-metrics")
struct MetricsTests {
    @Test("tasks by kind and priority, queue wait and run time, worker counters, Lua states")
    func metricsOfTasksWorkersAndStates() async throws {
        let metrics = TestMetrics()
        var logger = Logger(label: "embedding-test")
        logger.logLevel = .critical
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: logger, metricsFactory: metrics)
        supervisor.start()
        let host = LuaHost(supervisor: supervisor, logger: logger)
        let high = [("kind", "thread"), ("priority", "high")]
        let normal = [("kind", "thread"), ("priority", "normal")]

        let values = try await host.run(
            string: """
                local ok = atasker.background_task(function(x) return x end, {priority = atasker.TASK_HIGH})
                local bad = atasker.background_task(function() error("no") end)
                local done = atasker.wait_completed({ok(1), ok(2), ok(3)})
                local failed = pcall(atasker.wait_completed, bad())
                local q = atasker.background_worker{name = "metrics-q", q = true, fn = function(item)
                  if item == 2 then error("bad item") end
                end}
                q:start()
                for i = 1, 3 do q:put(i) end
                q:stop{drain = true}
                return #done, failed
                """)
        #expect(values == [.integer(3), .boolean(false)])
        await supervisor.shutdown(timeout: .seconds(30))

        #expect(try metrics.expectCounter("atasker_tasks_submitted_total", high).values.reduce(0, +) == 3)
        #expect(try metrics.expectCounter("atasker_tasks_started_total", high).values.reduce(0, +) == 3)
        #expect(try metrics.expectCounter("atasker_tasks_completed_total", high).values.reduce(0, +) == 3)
        #expect(try metrics.expectCounter("atasker_tasks_failed_total", normal).values.reduce(0, +) == 1)
        #expect(try metrics.expectTimer("atasker_task_queue_wait_seconds", high).values.count == 3)
        #expect(try metrics.expectTimer("atasker_task_run_seconds", high).values.count == 3)
        let worker = [("worker", "metrics-q")]
        #expect(try metrics.expectCounter("atasker_worker_executions_total", worker).values.reduce(0, +) == 3)
        #expect(try metrics.expectCounter("atasker_worker_errors_total", worker).values.reduce(0, +) == 1)
        // the main state, pool-thread states and the worker's state were open; closing the host closes the main one
        let states = try metrics.expectGauge("atasker_lua_states")
        let most = try #require(states.values.max())
        #expect(most >= 3)
        let before = try #require(states.lastValue)
        host.close()
        #expect(try #require(states.lastValue) < before)
    }
}
