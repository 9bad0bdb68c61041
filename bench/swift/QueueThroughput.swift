// Queue worker throughput from Swift: put N small items (Ints) into one ATasker
// QueueWorker whose executor only counts, then stop it with drain: true, which returns
// once every item has run. The same measurement as bench/lua/queue.lua, with no Lua.
// Usage: bench-queue [N]
// Prints: RESULT items, RESULT seconds (first put to the end of the drain),
// RESULT put_seconds, RESULT items_per_s, RESULT executions.
//
// scripts/bench builds it in a throwaway SwiftPM package, .build/bench-swift/ (gitignored),
// that depends on this checkout by path, so the project's Package.swift has no bench target.
import ATasker
import Foundation
import Synchronization

@main
struct QueueThroughput {
    static func main() throws {
        let n = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 1_000_000 : 1_000_000
        let supervisor = TaskSupervisor()
        supervisor.start()
        let count = Atomic<Int>(0)
        let worker = try QueueWorker<Int>(supervisor: supervisor, name: "sink") { _, _ in
            count.add(1, ordering: .relaxed)
            return true
        }
        _ = try worker.start()
        let t0 = ContinuousClock.now
        for i in 0..<n {
            worker.put(i)
        }
        let put = ContinuousClock.now - t0
        _ = worker.stop(wait: .forever, drain: true)
        let elapsed = ContinuousClock.now - t0
        let ran = count.load(ordering: .relaxed)
        guard ran == n else {
            fatalError("executions: \(ran), expected \(n)")
        }
        func seconds(_ d: Duration) -> Double {
            Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        print("RESULT items \(n)")
        print("RESULT seconds \(String(format: "%.6f", seconds(elapsed)))")
        print("RESULT put_seconds \(String(format: "%.6f", seconds(put)))")
        print("RESULT items_per_s \(String(format: "%.1f", Double(n) / seconds(elapsed)))")
        print("RESULT executions \(worker.executions)")
        _ = supervisor.stop(wait: .seconds(5), cancelTasks: false)
    }
}
