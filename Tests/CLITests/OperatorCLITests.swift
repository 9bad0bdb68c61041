import Foundation
import Testing

/// What an operator does to a running `atasker-lua` and what it must do in return: end at the stop deadline even
/// when a finalizer never returns, report what runs on SIGUSR1, stop on SIGHUP, speak systemd's notify protocol.
@Suite("atasker-lua: the operator's signals and the end of the program", .serialized)
struct OperatorCLITests {
    @Test("a main-state __gc finalizer that never returns is left behind at the stop deadline, with status 1")
    func finalizerAtExit() throws {
        let started = Date()
        let run = try StopTests.runScript(
            """
            setmetatable({}, {__gc = function() while true do end end})
            print("top level done")
            """, options: ["--stop-timeout", "1"])
        #expect(run.status == 1, "\(run.stderr)")
        #expect(!run.signaled)
        #expect(run.stdout == "top level done\n")
        #expect(run.stderr.contains("a __gc finalizer of the main state has not returned"), "\(run.stderr)")
        // --stop-timeout plus 3 s is the bound the program keeps; more here only for a loaded machine.
        #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test("SIGTERM while a main-state finalizer never returns: the program dies by it at the stop deadline")
    func finalizerAtExitWithSignal() throws {
        for signal in [SIGTERM, SIGINT] {
            let run = try StopTests.runScript(
                """
                setmetatable({}, {__gc = function() print("in the finalizer"); while true do end end})
                """, options: ["--stop-timeout", "1"]
            ) { process, out in
                #expect(out.waitFor("in the finalizer"))
                kill(process.processIdentifier, signal)
            }
            #expect(run.signaled && run.status == signal, "\(run.status) \(run.stderr)")
            #expect(run.stderr.contains("left behind"), "\(run.stderr)")
        }
    }

    @Test("finalizers that return run to the end at the exit, also with --stop-timeout 0")
    func finalizersThatReturn() throws {
        let run = try StopTests.runScript(
            """
            for i = 1, 3 do setmetatable({}, {__gc = function() print("finalized") end}) end
            print("top level done")
            """, options: ["--stop-timeout", "0"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "top level done\nfinalized\nfinalized\nfinalized\n")
        #expect(!run.stderr.contains("left behind"), "\(run.stderr)")
    }
}
