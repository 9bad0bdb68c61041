import Foundation
import Testing

@Suite("atasker-lua: closures that share upvalues keep sharing them in the copy")
struct SharedUpvalueCLITests {
    @Test("a task calling a local helper (either met first), mixtures, and a worker's fn with its on_error")
    func sharedUpvalues() throws {
        let run = try CLIRun.run(["Tests/Fixtures/shared_upvalues.lua"], timeout: 120)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        for place in ["task", "mp", "aloop"] {
            #expect(run.stdout.contains("helper_first \(place)\t2 12 13\n"), "\(run.stdout)\n\(run.stderr)")
            #expect(run.stdout.contains("x_first \(place)\t12 12\n"), "\(run.stdout)")
            #expect(run.stdout.contains("mixed \(place)\t11 101 101\n"), "\(run.stdout)")
        }
        // fn and on_error of one worker share their locals in the worker's state
        #expect(run.stdout.contains("worker fn+on_error thread\t11 101\n"), "\(run.stdout)")
        #expect(run.stdout.contains("worker fn+on_error async\t11 101\n"), "\(run.stdout)")
    }
}
