import Foundation
import Testing

@Suite("atasker-lua: closures that share upvalues keep sharing them in the copy")
struct SharedUpvalueCLITests {
    @Test("a task calling a local helper, mixtures, a worker's fn with its on_error, a task with its callback")
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
        // a task's fn and its callback: one cell in the pool thread (success and failure); mp and aloop tasks run
        // elsewhere than their callback, so each gets its own copy, and none is refused
        #expect(run.stdout.contains("task fn+callback\t1 101 11\n"), "\(run.stdout)")
        #expect(run.stdout.contains("failed task fn+callback\tnil 5 true\n"), "\(run.stdout)")
        #expect(run.stdout.contains("mp task fn+callback\t2 1\n"), "\(run.stdout)")
        #expect(run.stdout.contains("loop task fn+callback\t1 0\n"), "\(run.stdout)")
        #expect(run.stdout.contains("mp worker fn+process_result\t1 100\n"), "\(run.stdout)")
        #expect(run.stdout.contains("worker o sharing a local\t8\n"), "\(run.stdout)")
        // a function and the arguments it is called with travel together into an aloop task or an async job
        #expect(run.stdout.contains("aloop run fn+args\ttrue\n"), "\(run.stdout)")
        #expect(run.stdout.contains("aloop run fn+args async\ttrue\n"), "\(run.stdout)")
        #expect(run.stdout.contains("async job target+args\ttrue\n"), "\(run.stdout)")
    }
}
