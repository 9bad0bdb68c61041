import Foundation
import Testing

@Suite("atasker-lua: on_error gets the error object; a failing on_error is named with the error it handled")
struct OnErrorCLITests {
    @Test("a table error reaches on_error as the table; on_error's own error and the original are both logged")
    func onErrorObjects() throws {
        let run = try CLIRun.run(["Tests/Fixtures/on_error.lua"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout == "table error\ttable\t7\n", "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains("worker 'bad_handler' failed: on_error failed: "), "\(run.stderr)")
        #expect(run.stderr.contains("on_error.lua:15: handler problem"), "\(run.stderr)")
        #expect(run.stderr.contains("while it handled: Tests/Fixtures/on_error.lua:14: first problem"), "\(run.stderr)")
    }
}
