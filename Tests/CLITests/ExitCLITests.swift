import Foundation
import Testing

@Suite("atasker-lua: os.exit cannot be caught")
struct ExitCLITests {
    @Test(
        "pcall(os.exit, N) inside xpcall ends the program with N from the main state and from a task; no handler sees it"
    )
    func exitThroughPcall() throws {
        let main = try CLIRun.run(["Tests/Fixtures/exit_in_pcall.lua", "main"])
        #expect(main.status == 3 && !main.signaled, "\(main.stdout)\n\(main.stderr)")
        #expect(main.stdout == "before\n", "\(main.stdout)")
        let task = try CLIRun.run(["Tests/Fixtures/exit_in_pcall.lua", "task"])
        #expect(task.status == 4 && !task.signaled, "\(task.stdout)\n\(task.stderr)")
        #expect(!task.stdout.contains("not reached"), "\(task.stdout)")
        let handled = try CLIRun.run(["Tests/Fixtures/exit_in_pcall.lua", "handler"])
        #expect(handled.status == 5 && !handled.signaled, "\(handled.stdout)\n\(handled.stderr)")
        #expect(handled.stdout == "before\n", "\(handled.stdout)")
    }
}
