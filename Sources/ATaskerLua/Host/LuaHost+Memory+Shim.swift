import ATasker
internal import CLuaShim

extension LuaHost {
    /// The memory of one Lua state of a host, as its allocator counts it: the bytes that Lua holds there (what
    /// `collectgarbage("count") * 1024` gives inside it).
    public struct StateMemory: Sendable, Equatable {
        /// Which state: `main`, `worker 'w'`, `pool thread`, `task 7` (an aloop task), `async job 'j'`, `mp child`.
        public var label: String
        /// Unique in the process for as long as it runs: two pool threads' states have two serials.
        public var serial: UInt64
        /// Bytes held now.
        public var bytes: Int
        /// The most bytes held since the state opened.
        public var peak: Int
        /// The limit in force (`memory_limit`), or 0 when there is none.
        public var limit: Int

        init(_ m: atl_StateMemory) {
            var copy = m
            self.label = withUnsafeBytes(of: &copy.label) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            self.serial = m.serial
            self.bytes = Int(m.bytes)
            self.peak = Int(m.peak)
            self.limit = Int(m.limit)
        }
    }

    /// The Lua states of this host that are open now (the main state, worker states, pool-thread states, aloop
    /// task and async job states), with the bytes each holds, its peak and its limit. Process-pool children are
    /// other processes: their states are not listed (their limit is ``Configuration/processMemoryLimit``).
    public func stateMemory() -> [StateMemory] {
        self.core.stateMemory()
    }

    /// Bytes from a size such as `"64M"`, `"512k"`, `"1G"`, `"1.5G"`, `"4096"` or `"100B"`: binary units (k = 1024,
    /// M = 1024², G = 1024³, T = 1024⁴; `KB`, `KiB` and lower case mean the same). `nil` for anything else, for 0,
    /// and for more than ``maximumMemoryLimit``.
    public static func memorySize(_ text: String) -> Int? {
        MemorySize.parse(text)
    }

    /// The largest memory limit accepted anywhere: 1 TiB per state.
    public static let maximumMemoryLimit = MemorySize.maximum
}

extension HostCore {
    func stateMemory() -> [LuaHost.StateMemory] {
        let me = Unmanaged.passUnretained(self).toOpaque()
        var capacity = 64
        while true {
            var buffer = [atl_StateMemory](repeating: atl_StateMemory(), count: capacity)
            let n = Int(atl_states_memory(me, &buffer, Int32(capacity)))
            if n <= capacity {
                return buffer.prefix(n).map(LuaHost.StateMemory.init).sorted { $0.serial < $1.serial }
            }
            capacity = n + 16
        }
    }
}

/// Memory sizes: `memory_limit` in Lua (an integer of bytes, or a string with a unit) and `--memory-limit`.
enum MemorySize {
    static let maximum = 1 << 40

    /// `"64M"` and the other forms of ``LuaHost/memorySize(_:)``.
    static func parse(_ text: String) -> Int? {
        var digits = Substring(text.filter { $0 != " " && $0 != "_" })
        var unit = 1
        let units: [(String, Int)] = [("t", 1 << 40), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)]
        let lower = digits.lowercased()
        var suffix = ""
        for s in ["kib", "mib", "gib", "tib", "kb", "mb", "gb", "tb", "k", "m", "g", "t", "b"] where lower.hasSuffix(s)
        {
            suffix = s
            break
        }
        if !suffix.isEmpty {
            digits = digits.dropLast(suffix.count)
            if let first = suffix.first, let u = units.first(where: { $0.0 == String(first) }) {
                unit = u.1
            }
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            digits.filter({ $0 == "." }).count <= 1, digits.first != ".", digits.last != "."
        else { return nil }
        if let whole = Int(digits) {
            let (bytes, overflow) = whole.multipliedReportingOverflow(by: unit)
            guard !overflow, bytes > 0, bytes <= maximum else { return nil }
            return bytes
        }
        guard let value = Double(digits), value.isFinite else { return nil }
        let bytes = (value * Double(unit)).rounded(.down)
        guard bytes >= 1, bytes <= Double(maximum) else { return nil }
        return Int(bytes)
    }

    /// `memory_limit` of `function`: nil for nil; an integer of bytes (or a float with an integral value) from 1 to
    /// ``maximum``, or a string with a unit.
    ///
    /// - Throws: ``CallError`` naming the function and the option for anything else (NaN, 0, negative, 1e300, a
    ///   misspelt unit).
    static func option(_ value: LuaValue, _ function: String, _ name: String = "memory_limit") throws -> Int? {
        let bytes: Int?
        switch value {
        case .nil: return nil
        case .integer(let i): bytes = i >= 1 && i <= Int64(maximum) ? Int(i) : nil
        case .number(let d): bytes = d.isFinite && d >= 1 && d <= Double(maximum) && d == d.rounded() ? Int(d) : nil
        case .string(let s): bytes = parse(s.string)
        default: bytes = nil
        }
        guard let bytes else {
            let got: String
            if case .string(let s) = value { got = "\"\(s.string)\"" } else { got = LuaArguments.describe(value) }
            throw CallError(
                message: "\(function): \(name) must be a number of bytes from 1 to 2^40, or a string such as \"64M\", "
                    + "\"512k\" or \"1G\" (units k, M, G, T of 1024; got \(got))")
        }
        return bytes
    }

    /// `memory_limit` of a pool (`set_thread_pool`, `set_mp_pool`): nil when not given, 0 for `false` (no limit),
    /// else as ``option(_:_:_:)``.
    static func poolOption(_ value: LuaValue, _ function: String) throws -> Int? {
        if value == .boolean(false) { return 0 }
        return try option(value, function)
    }
}

extension LuaHost {
    /// A limit from a ``Configuration``: 0 for none (nil, or 0 and below), at most ``maximumMemoryLimit``.
    static func clampedLimit(_ limit: Int?) -> Int {
        guard let limit, limit > 0 else { return 0 }
        return min(limit, maximumMemoryLimit)
    }
}
