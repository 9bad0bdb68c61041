import Foundation
import Testing

@Suite("atasker-lua: handles and the results of aloop tasks")
struct HandleCLITests {
    @Test("handles of one task or aloop are equal; aloop tasks give their first result")
    func handlesAndFirstResults() throws {
        let run = try CLIRun.run(["Tests/Fixtures/handles.lua"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(
            run.stdout == """
                task ==\ttrue
                task ~= other\ttrue
                aloop ==\ttrue\ttrue
                pending at submission\t1
                aloop task\t42
                aloop:run\t42
                loop= task\t5
                pending after\t0
                background task\t3

                """, "\(run.stdout)\n\(run.stderr)")
    }
}
