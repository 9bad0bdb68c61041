import ATasker

/// The one checked conversion of what Lua hands to the host's functions (DESIGN.md, boundary rule 6): every number
/// that Swift turns into seconds, a count, a size or an integer goes through ``LuaArguments``, and so does every
/// options table's check of its keys. NaN, infinities and values out of range are a ``CallError`` that names the
/// function and the argument or option, never a trap.
enum LuaArguments {
    /// The longest duration accepted anywhere (a timeout, a delay, an interval, a sleep): 10^9 seconds, about
    /// 31 years. Longer ones would overflow the deadlines and tick counts that Swift computes from them.
    static let maxSeconds: Double = 1e9

    /// The shortest interval of an interval worker or an async job: one microsecond. A shorter one would make tick
    /// numbers overflow.
    static let minInterval: Double = 1e-6

    /// The largest size of a pool (`set_thread_pool`, `set_mp_pool`): a process has a few thousand threads at most.
    static let maxPoolSize = 4096

    /// The range of a priority (`atasker.TASK_CRITICAL` 0 … `TASK_LOW` 200, and any integer between or beyond).
    static let priorities: ClosedRange<Int64> = 0...1_000_000

    /// How a seconds value may be bounded below.
    enum Lower {
        /// `>= 0`.
        case zero
        /// `> 0`.
        case positive
        /// `>= minimum`.
        case atLeast(Double)
    }

    /// A number of seconds: nil for nil; otherwise a finite number within `lower ... maxSeconds`.
    ///
    /// - Parameters:
    ///   - value: The value from Lua.
    ///   - function: The function, as the user wrote it (`"background_task"`, `"lock:acquire"`).
    ///   - name: The argument or option (`"delay"`, `"argument #2 (timeout)"`).
    ///   - lower: The lowest value accepted.
    /// - Throws: ``CallError`` for another type, NaN, an infinity or a value out of range.
    static func seconds(_ value: LuaValue, _ function: String, _ name: String, lower: Lower = .zero) throws -> Double? {
        if value.isNil { return nil }
        let range: String
        let ok: (Double) -> Bool
        switch lower {
        case .zero:
            range = ">= 0 and <= 1e9"
            ok = { $0 >= 0 }
        case .positive:
            range = "> 0 and <= 1e9"
            ok = { $0 > 0 }
        case .atLeast(let minimum):
            range = ">= \(minimum) and <= 1e9"
            ok = { $0 >= minimum }
        }
        guard let d = value.doubleValue, d.isFinite, ok(d), d <= Self.maxSeconds else {
            throw CallError(
                message: "\(function): \(name) must be a number of seconds \(range) (got \(describe(value)))")
        }
        return d
    }

    /// An integer: nil for nil; otherwise an integer (or a float with an integral value) within `range`.
    ///
    /// - Throws: ``CallError`` for another type, a fraction, NaN, an infinity or a value out of range.
    static func integer(_ value: LuaValue, _ function: String, _ name: String, in range: ClosedRange<Int64>) throws
        -> Int?
    {
        if value.isNil { return nil }
        guard let i = value.intValue, range.contains(i) else {
            let bounds =
                range.upperBound == Int64.max
                ? ">= \(range.lowerBound)" : "in \(range.lowerBound)...\(range.upperBound)"
            throw CallError(message: "\(function): \(name) must be an integer \(bounds) (got \(describe(value)))")
        }
        return Int(i)
    }

    /// A priority: nil for nil; otherwise an integer in ``priorities``.
    static func priority(_ value: LuaValue, _ function: String, _ name: String = "priority") throws -> TaskPriority? {
        guard let i = try integer(value, function, name, in: Self.priorities) else { return nil }
        return TaskPriority(rawValue: i)
    }

    /// A boolean option: nil for nil; otherwise true or false.
    static func boolean(_ value: LuaValue, _ function: String, _ name: String) throws -> Bool? {
        switch value {
        case .nil: return nil
        case .boolean(let b): return b
        default: throw CallError(message: "\(function): \(name) must be true or false (got \(describe(value)))")
        }
    }

    /// A string option: nil for nil; otherwise a string.
    static func string(_ value: LuaValue, _ function: String, _ name: String) throws -> String? {
        switch value {
        case .nil: return nil
        case .string(let s): return s.string
        default: throw CallError(message: "\(function): \(name) must be a string (got \(describe(value)))")
        }
    }

    /// Refuses every key of `options` that is not in `allowed`, naming the key and `function`.
    ///
    /// - Throws: ``CallError`` `"background_task: unknown option 'priorty' (options are: …)"`.
    static func refuseUnknown(_ options: LuaTable, _ allowed: [String], _ function: String) throws {
        for (key, _) in options.entries {
            if let k = key.stringValue, allowed.contains(k) { continue }
            let shown = key.stringValue.map { "'\($0)'" } ?? describe(key)
            throw CallError(
                message: "\(function): unknown option \(shown) (options are: \(allowed.joined(separator: ", ")))")
        }
    }

    /// A short description of a refused value: a number as Lua prints it, otherwise its type.
    static func describe(_ value: LuaValue) -> String {
        switch value {
        case .integer(let i): return "\(i)"
        case .number(let d):
            if d.isNaN { return "nan" }
            if d.isInfinite { return d > 0 ? "inf" : "-inf" }
            return "\(d)"
        case .nil: return "nil"
        case .boolean(let b): return "\(b)"
        case .string: return "a string"
        case .table: return "a table"
        case .function: return "a function"
        case .handle: return "a handle"
        }
    }
}

extension EncodedValues {
    /// The codec tag (``CodecTag``) of the first value, read from the bytes without decoding them; nil when there is
    /// no value.
    var firstTag: UInt8? {
        self.withBytes { bytes in
            // The header: two magic bytes, the version byte, the varint count.
            var i = 3
            while i < bytes.count, bytes[i] & 0x80 != 0 { i += 1 }
            i += 1
            return i < bytes.count ? bytes[i] : nil
        }
    }
}
