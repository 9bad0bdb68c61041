import Foundation
import Testing

@testable import ATasker

/// The inputs of the fuzz target `frame` (scripts/fuzz) fed to the process pool's frame reader: the committed seeds
/// (Fuzz/corpus/frame) and every input that once crashed the target (Tests/Fixtures/fuzz-crashes/frame). Each is cut
/// into frames whose bodies parse, or into a clean ``ProcessFrame/Violation``; none crashes.
@Suite("Fuzz inputs replayed through the frame reader")
struct FrameReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func inputs(_ folder: String) -> [(name: String, bytes: [UInt8])] {
        let dir = Self.root.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.compactMap { name in
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else {
                return nil
            }
            return ("\(folder)/\(name)", [UInt8](data))
        }
    }

    /// The frames of `bytes` (as one chunk) with their bodies read as their kinds say; a violation ends them.
    static func read(_ bytes: [UInt8]) -> (frames: Int, violation: ProcessFrame.Violation?, partial: Bool) {
        var reader = ProcessFrameReader()
        bytes.withUnsafeBytes { reader.append($0) }
        var frames = 0
        do {
            while let frame = try reader.next() {
                frames += 1
                switch frame.kind {
                case .call: _ = try ProcessFrame.readCall(frame.body)
                case .reply, .response: _ = try ProcessFrame.readAnswer(frame.body, kind: frame.kind)
                case .request: _ = try ProcessFrame.readRequest(frame.body)
                case .hello, .ready, .startupFailed, .notify, .stop: break
                }
            }
        } catch {
            #expect(!error.detail.isEmpty)
            return (frames, error, false)
        }
        return (frames, nil, reader.hasPartialFrame)
    }

    @Test("every frame seed is read whole, its bodies parse, and only the partial seed ends inside a frame")
    func seeds() {
        let seeds = Self.inputs("Fuzz/corpus/frame")
        #expect(seeds.count >= 10, "the committed corpus of the frame target")
        for seed in seeds {
            let result = Self.read(seed.bytes)
            #expect(result.violation == nil, "\(seed.name): \(result.violation?.detail ?? "")")
            #expect(result.partial == seed.name.hasSuffix("seed-partial"), "\(seed.name)")
            #expect(result.frames >= (seed.name.hasSuffix("seed-partial") ? 0 : 1), "\(seed.name)")
        }
    }

    @Test("every kept crash input of the frame target is read or refused cleanly")
    func crashes() {
        for input in Self.inputs("Tests/Fixtures/fuzz-crashes/frame") {
            _ = Self.read(input.bytes)
        }
    }

    @Test("a reply or response whose status is neither 0 nor 1 is a violation naming it")
    func badStatus() {
        var bytes: [UInt8] = []
        ProcessFrame.append(.reply, to: &bytes) { body in
            ProcessFrame.append(UInt64(1), to: &body)
            body.append(2)
        }
        let result = Self.read(bytes)
        #expect(result.violation?.detail == "bad reply status 2")
    }
}
