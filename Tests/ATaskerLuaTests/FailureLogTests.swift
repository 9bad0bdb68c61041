import ATasker
import Dispatch
import Glibc
import Testing

@testable import ATaskerLua

@Suite("A failed Lua task is logged as an error only when no code waits for it")
struct FailureLogTests {
    @Test("nobody waits: error, with task.id and task.name metadata; code waits: debug, the error reaches it")
    func awaitedFailures() throws {
        let f = CancelFixture()
        defer { f.finish() }
        let lonely = try f.host.run(
            string: "return atasker.background_task(function() error('nobody waits') end, {name = 'lonely'})()")
        let lonelyTask = try #require(lonely.first?.task)
        #expect(f.log.waitFor("error: task \(lonelyTask.id) (lonely) failed:"), "\(f.log.text)")
        #expect(f.log.text.contains("{task.id=\(lonelyTask.id), task.name=lonely}"), "\(f.log.text)")

        // this task fails only once a waiter is registered: the flag is set after that
        let values = try f.host.run(
            string: """
                return atasker.background_task(function()
                  while not atasker.shared('failure-log'):get('go') do atasker.sleep(0.002) end
                  error('handled by the waiter')
                end)()
                """)
        let task = try #require(values.first?.task)
        let waited = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            task.wait(timeout: 60)
            waited.signal()
        }
        let deadline = Monotonic.now() + 30
        while !task.isAwaited && Monotonic.now() < deadline { usleep(1000) }
        #expect(task.isAwaited)
        _ = try f.host.run(string: "atasker.shared('failure-log'):set('go', true)")
        #expect(waited.wait(timeout: .now() + 60) == .success)
        #expect(task.status == .failed)
        #expect(f.log.text.contains("debug: task \(task.id) failed:"), "\(f.log.text)")
        #expect(!f.log.text.contains("error: task \(task.id) failed:"), "\(f.log.text)")
    }
}
