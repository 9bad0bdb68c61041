import Foundation
import Testing

@testable import ATaskerLua

/// The inputs of the fuzz targets `codec` and `plain` (scripts/fuzz), fed to the same decoders through the library:
/// the committed seeds (Fuzz/corpus/TARGET, valid encodings) and every input that once crashed a target
/// (Tests/Fixtures/fuzz-crashes/TARGET). Each decodes or fails with a clean error; none crashes.
@Suite("Fuzz inputs replayed through the library")
struct FuzzReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The files of `folder` (relative to the package), sorted; none when the folder is empty or missing.
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

    @Test("the C decoder decodes every codec seed, or refuses one whose handles the buffer does not hold")
    func codecSeeds() throws {
        let seeds = Self.inputs("Fuzz/corpus/codec")
        #expect(seeds.count >= 40, "the committed corpus of the codec target")
        let state = try LuaState(options: .init(isMain: true))
        defer { state.close() }
        var decoded = 0
        for seed in seeds {
            do {
                try state.probeDecode(seed.bytes)
                decoded += 1
            } catch {
                // A seed with a HANDLE tag names a host object of the fuzz target, which this buffer does not hold.
                #expect(error.code == .codec && "\(error)".contains("handle"), "\(seed.name): \(error)")
            }
        }
        #expect(decoded > seeds.count / 2)
    }

    @Test("every kept crash input of the codec target is a clean error or a clean decode in the C decoder")
    func codecCrashes() throws {
        let state = try LuaState(options: .init(isMain: true))
        defer { state.close() }
        for input in Self.inputs("Tests/Fixtures/fuzz-crashes/codec") {
            do {
                try state.probeDecode(input.bytes)
            } catch {
                #expect(error.code == .codec || error.code == .memory, "\(input.name): \(error)")
            }
        }
    }

    /// What a parent does with values from a child, and what the pool does with a child's buffer.
    static func readPlainly(_ input: (name: String, bytes: [UInt8])) -> Bool {
        var decoded = false
        do {
            _ = try ChildWire.readPlain(input.bytes)
            decoded = true
        } catch {
            #expect(error is LuaValueCodecError || error is ChildWire.Malformed, "\(input.name): \(error)")
        }
        #expect(throws: Never.self, "\(input.name)") {
            _ = try? input.bytes.withUnsafeBytes { try LuaValue.checkPlain($0) }
            _ = try? input.bytes.withUnsafeBytes {
                try LuaValue.splitAll($0, knownHandles: UnsafeBufferPointer(start: nil, count: 0))
            }
        }
        return decoded
    }

    @Test("the Swift reader decodes every plain seed and re-encodes it to values that decode the same")
    func plainSeeds() throws {
        let seeds = Self.inputs("Fuzz/corpus/plain")
        #expect(seeds.count >= 20, "the committed corpus of the plain target")
        for seed in seeds {
            #expect(Self.readPlainly(seed), "\(seed.name)")
            let values = try ChildWire.readPlain(seed.bytes)
            let again = try ChildWire.readPlain(ChildWire.plain(values))
            #expect(again.count == values.count, "\(seed.name)")
        }
    }

    @Test("every kept crash input of the plain target is a clean error or a clean decode in the Swift reader")
    func plainCrashes() {
        for input in Self.inputs("Tests/Fixtures/fuzz-crashes/plain") {
            _ = Self.readPlainly(input)
        }
    }
}
