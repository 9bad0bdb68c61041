/// An error raised by Lua code, or by the host on behalf of Lua code.
///
/// ``message`` is the first line, which names the place (`script.lua:12: attempt to call a nil value`);
/// ``traceback`` holds the Lua stack traceback when there is one.
public struct LuaError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let rawValue: Int
        /// A runtime error in Lua code.
        public static let runtime = Code(rawValue: 2)
        /// A syntax error while loading a chunk.
        public static let syntax = Code(rawValue: 3)
        /// Lua ran out of memory.
        public static let memory = Code(rawValue: 4)
        /// A script file that cannot be opened or read.
        public static let file = Code(rawValue: 6)
        /// A value that cannot be copied between states, or a bad buffer.
        public static let codec = Code(rawValue: 7)
        /// The task or call was cancelled, or its host is gone.
        public static let canceled = Code(rawValue: 9)

        public var description: String {
            switch self.rawValue {
            case 2: return "runtime"
            case 3: return "syntax"
            case 4: return "memory"
            case 6: return "file"
            case 7: return "codec"
            case 9: return "canceled"
            default: return "error \(self.rawValue)"
            }
        }
    }

    /// What kind of failure this is.
    public let code: Code
    /// The message, starting with `file:line:` where Lua knows the place.
    public let message: String
    /// The Lua stack traceback, or `nil`.
    public let traceback: String?

    /// Creates an error from a message that may carry a traceback after a `stack traceback:` line.
    public init(code: Code, fullMessage: String) {
        self.code = code
        let marker = Array("\nstack traceback:".utf8)
        let bytes = Array(fullMessage.utf8)
        if let at = Self.firstIndex(of: marker, in: bytes) {
            self.message = String(decoding: bytes[..<at], as: UTF8.self)
            self.traceback = String(decoding: bytes[(at + 1)...], as: UTF8.self)
        } else {
            self.message = fullMessage
            self.traceback = nil
        }
    }

    // No Foundation here (it would double the CLI's memory), so a plain search.
    static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count, let first = needle.first else { return nil }
        var i = 0
        while i + needle.count <= haystack.count {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) {
                return i
            }
            i += 1
        }
        return nil
    }

    /// The message followed by the traceback, as Lua prints it.
    public var fullMessage: String {
        if let traceback = self.traceback {
            return self.message + "\n" + traceback
        }
        return self.message
    }

    public var description: String { self.fullMessage }
}
