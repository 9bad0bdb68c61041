import Foundation
import Testing

/// Stops that must neither hang nor wait for themselves, and cancels that must reach what runs: through the real
/// binary, with scripts written for each case.
@Suite("atasker-lua: stops and cancels")
struct StopTests {
    /// Runs `source` as a script file of its own with `options` before it.
    static func runScript(
        _ source: String, options: [String] = [], arguments: [String] = [], timeout: Double = 60,
        whileRunning: ((Process, Collector) throws -> Void)? = nil
    ) throws -> CLIRun {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("atasker-stop-\(getpid())-\(UUID().uuidString).lua").path
        try source.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try CLIRun.run(options + [path] + arguments, timeout: timeout, whileRunning: whileRunning)
    }

    @Test("s:stop() from a worker's executor does not wait for that execution")
    func stopFromWorker() throws {
        let started = Date()
        let run = try Self.runScript(
            """
            local w = atasker.background_worker{name = "stopper", interval = 0.05, fn = function(kw)
              print("stopping")
              atasker.supervisor:stop()
              print("after stop")
            end}
            w:start()
            """, options: ["--stop-timeout", "60"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "stopping\nafter stop\n", "\(run.stderr)")
        #expect(Date().timeIntervalSince(started) < 30)
        #expect(!run.stderr.contains("stuck"), "\(run.stderr)")
    }

    @Test("s:stop{wait=T} from a task and from an async worker returns; the caller goes on")
    func stopFromTaskAndAsync() throws {
        let run = try Self.runScript(
            """
            local w = atasker.background_worker{name = "a", async = true, interval = 0.05, fn = function(kw)
              kw._worker:stop{wait = false}
              atasker.background_task(function()
                atasker.supervisor:stop{wait = 30}
                print("task goes on")
              end)()
            end}
            w:start()
            """, options: ["--stop-timeout", "60"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "task goes on\n", "\(run.stderr)")
        #expect(!run.stderr.contains("stuck"), "\(run.stderr)")
    }

    @Test("s:stop{cancel_tasks=true} cancels a running loop at once, and a wait=T cancels it at the deadline")
    func stopCancelsRunningCode() throws {
        for mode in ["cancel", "deadline"] {
            let started = Date()
            let run = try Self.runScript(
                """
                local s = atasker.supervisor
                local t = atasker.background_task(function()
                  print("spinning")
                  atasker.shared("spin"):set("in", true)
                  while true do end
                end)()
                while not atasker.shared("spin"):get("in") do atasker.sleep(0.01) end
                if arg[1] == "cancel" then s:stop{wait = 30, cancel_tasks = true} else s:stop{wait = 0.3} end
                print("stopped", t.status)
                """, options: ["--stop-timeout", "60"], arguments: [mode])
            #expect(run.status == 0, "\(mode): \(run.stderr)")
            #expect(run.stdout == "spinning\nstopped\tfailed\n", "\(mode): \(run.stderr)")
            #expect(run.stderr.contains("task 1 cancelled at"), "\(mode): \(run.stderr)")
            #expect(Date().timeIntervalSince(started) < 25, "\(mode)")
        }
    }

    @Test("s:stop() cancels a delayed task instead of waiting out its delay")
    func stopCancelsDelayed() throws {
        let started = Date()
        let run = try Self.runScript(
            """
            local t = atasker.background_task(function() print("ran") end, {delay = 1e6})()
            atasker.supervisor:stop()
            print("stopped", t.status)
            """, options: ["--stop-timeout", "60"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "stopped\tcanceled\n", "\(run.stderr)")
        #expect(Date().timeIntervalSince(started) < 30)
    }
}
