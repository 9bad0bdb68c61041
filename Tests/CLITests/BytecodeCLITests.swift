import Foundation
import Testing

@Suite("atasker-lua: Lua code loads source text only, unless --allow-bytecode")
struct BytecodeCLITests {
    static let places = ["main", "task", "mp", "worker"]

    @Test("load, loadfile, dofile and require refuse binary chunks in every kind of state")
    func refusedEverywhere() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bytecode-\(getpid())-refused")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try CLIRun.run(["Tests/Fixtures/bytecode.lua", dir.path])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        for place in Self.places {
            #expect(
                run.stdout.contains(
                    "\(place)\tload:refused mode_b:refused loadfile:refused dofile:refused require:refused text:ok"),
                "\(run.stdout)\n\(run.stderr)")
        }
    }

    @Test("--allow-bytecode lets every state load trusted bytecode")
    func allowed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bytecode-\(getpid())-allowed")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try CLIRun.run(["--allow-bytecode", "Tests/Fixtures/bytecode.lua", dir.path])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        for place in Self.places {
            #expect(
                run.stdout.contains("\(place)\tload:ran mode_b:ran loadfile:ran dofile:ran require:ran text:ok"),
                "\(run.stdout)\n\(run.stderr)")
        }
    }
}
