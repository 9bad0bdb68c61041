import Glibc

/// A cron schedule: the five fields of crontab(5) — minute, hour, day of month, month, day of week — or one of its
/// macros, and the zone its fields are read in.
///
/// Each field is `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a` to the field's end), or a
/// list of those (`1,15,30-40/5`). Months and days of the week may be written by name (`jan`…`dec`, `sun`…`sat`,
/// in any case); the day of the week is 0-7, Sunday being both 0 and 7. As in cron, when both day fields are
/// restricted (neither starts with `*`), a day matches when either does; otherwise both must. Macros: `@yearly`
/// (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly`.
///
/// Fire times are whole minutes. In the host's local zone (`.local`), a local time that a daylight-saving change
/// skips does not fire, and one that it repeats fires once.
public struct CronSchedule: Sendable, Hashable, CustomStringConvertible {
    /// The zone the fields are read in.
    public enum Zone: String, Sendable, Hashable {
        /// Coordinated Universal Time (the default): no daylight-saving changes.
        case utc
        /// The host's local time zone (`TZ`, `/etc/localtime`).
        case local
    }

    /// The schedule as written.
    public let text: String
    /// The zone of its fields.
    public let zone: Zone
    private let minutes: UInt64
    private let hours: UInt64
    private let days: UInt64
    private let months: UInt64
    private let weekdays: UInt64
    /// Whether each day field is restricted (does not start with `*`): then either one matching is enough.
    private let eitherDay: Bool

    private static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let fields: [(name: String, low: Int, high: Int, names: [String])] = [
        ("minute", 0, 59, []), ("hour", 0, 23, []), ("day of month", 1, 31, []),
        ("month", 1, 12, ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]),
        ("day of week", 0, 7, ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]),
    ]

    /// Parses `text`.
    /// - Throws: ``JobStoreError`` naming the field, its text and what is wrong, e.g. `cron field 2 (hour) "25":
    ///   out of range 0-23`.
    public init(_ text: String, zone: Zone = .utc) throws(JobStoreError) {
        self.text = text
        self.zone = zone
        var spec = text.trimmingWhitespace()
        if spec.hasPrefix("@") {
            guard let expanded = Self.macros[spec.lowercased()] else {
                throw JobStoreError(
                    "cron \"\(text)\": unknown macro; the macros are @yearly, @annually, @monthly, @weekly, @daily, "
                        + "@midnight and @hourly")
            }
            spec = expanded
        }
        let parts = spec.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard parts.count == 5 else {
            throw JobStoreError(
                "cron \"\(text)\": give 5 fields (minute hour day-of-month month day-of-week) or a macro (@hourly, "
                    + "@daily, ...), not \(parts.count)")
        }
        var sets: [UInt64] = []
        for (index, part) in parts.enumerated() {
            sets.append(try Self.parse(part, field: index))
        }
        self.minutes = sets[0]
        self.hours = sets[1]
        self.days = sets[2]
        self.months = sets[3]
        // Sunday is 0 and 7.
        self.weekdays = (sets[4] | (sets[4] >> 7)) & 0x7f
        self.eitherDay = !parts[2].hasPrefix("*") && !parts[4].hasPrefix("*")
        // A day of the month that no allowed month has (`30 2`, `31 4,6`) never comes, unless the day of the week
        // may match instead.
        if !self.eitherDay {
            let allowed = (1...12).filter { self.months & (1 << UInt64($0)) != 0 }
            let longest = allowed.map { Self.daysIn(month: $0, year: 2000) }.max() ?? 0
            let firstDay: Int = (1...31).first(where: { self.days & (1 << UInt64($0)) != 0 }) ?? 32
            if firstDay > longest {
                throw JobStoreError(
                    "cron \"\(text)\": no allowed month has day \(firstDay) (fields 3 and 4): it would never fire")
            }
        }
    }

    public var description: String { self.zone == .utc ? self.text : "\(self.text) (local time)" }

    /// One field's allowed values, as bits.
    private static func parse(_ part: String, field: Int) throws(JobStoreError) -> UInt64 {
        let f = Self.fields[field]
        func fail(_ why: String) -> JobStoreError {
            JobStoreError("cron field \(field + 1) (\(f.name)) \"\(part)\": \(why)")
        }
        func value(_ s: Substring) throws(JobStoreError) -> Int {
            if let n = Int(s) {
                guard n >= f.low && n <= f.high else { throw fail("\(n) is out of range \(f.low)-\(f.high)") }
                return n
            }
            if let i = f.names.firstIndex(of: s.lowercased()) { return f.low + i }
            let names = f.names.isEmpty ? "" : " or a name (\(f.names.first!)...\(f.names.last!))"
            throw fail("'\(s)' is not a number\(names)")
        }
        var bits: UInt64 = 0
        for item in part.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw fail("an empty item in the list") }
            let pieces = item.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw fail("more than one '/' in '\(item)'") }
            var step = 1
            if pieces.count == 2 {
                guard let n = Int(pieces[1]), n >= 1 else {
                    throw fail("the step '\(pieces[1])' is not a whole number >= 1")
                }
                step = n
            }
            let base = pieces[0]
            var low: Int
            var high: Int
            if base == "*" {
                low = f.low
                high = f.high
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw fail("the range \(base) goes down (write it from low to high)") }
            } else {
                low = try value(base)
                high = pieces.count == 2 ? f.high : low
            }
            var v = low
            while v <= high {
                bits |= 1 << UInt64(v)
                v += step
            }
        }
        return bits
    }

    // MARK: - Fire times

    /// The first fire time strictly after `t` (seconds since the epoch), or `nil` when none comes within 30 years
    /// (or `t` is not a time within ±3000 years of 1970).
    public func next(after t: Double) -> Double? {
        guard t.isFinite, abs(t) < 1e11 else { return nil }
        var from = self.fields(of: (t / 60).rounded(.down) * 60 + 60)
        // A match that is not a time of the zone (skipped), or an earlier one of a repeated hour: the next minute.
        for _ in 0..<200 {
            guard let at = self.search(from: from, forward: true) else { return nil }
            if let e = self.instant(of: at), e > t { return e }
            from = at
            from.minute += 1
        }
        return nil
    }

    /// The last fire time at or before `t`, or `nil` when none came within 30 years.
    public func previous(atOrBefore t: Double) -> Double? {
        guard t.isFinite, abs(t) < 1e11 else { return nil }
        var from = self.fields(of: t)
        for _ in 0..<200 {
            guard let at = self.search(from: from, forward: false) else { return nil }
            if let e = self.instant(of: at), e <= t { return e }
            from = at
            from.minute -= 1
        }
        return nil
    }

    private struct Fields {
        var year: Int
        var month: Int
        var day: Int
        var hour: Int
        var minute: Int
    }

    /// The calendar fields of the minute that holds `t`, in the zone.
    private func fields(of t: Double) -> Fields {
        let seconds = Int((t / 60).rounded(.down)) * 60
        switch self.zone {
        case .utc:
            let (days, rest) = seconds.quotientAndRemainder(dividingBy: 86400)
            let (d, r) = rest < 0 ? (days - 1, rest + 86400) : (days, rest)
            let (y, m, day) = Self.civil(fromDays: d)
            return Fields(year: y, month: m, day: day, hour: r / 3600, minute: r % 3600 / 60)
        case .local:
            var time = time_t(seconds)
            var parts = tm()
            localtime_r(&time, &parts)
            return Fields(
                year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday),
                hour: Int(parts.tm_hour), minute: Int(parts.tm_min))
        }
    }

    /// The instant of `f` in the zone; `nil` for a local time that does not exist (skipped by a daylight-saving
    /// change).
    private func instant(of f: Fields) -> Double? {
        switch self.zone {
        case .utc:
            let days = Self.days(fromCivil: f.year, f.month, f.day)
            return Double(days * 86400 + f.hour * 3600 + f.minute * 60)
        case .local:
            var parts = tm()
            parts.tm_year = Int32(f.year - 1900)
            parts.tm_mon = Int32(f.month - 1)
            parts.tm_mday = Int32(f.day)
            parts.tm_hour = Int32(f.hour)
            parts.tm_min = Int32(f.minute)
            parts.tm_isdst = -1
            let t = mktime(&parts)
            guard t != -1 else { return nil }
            // mktime moves a time that does not exist (02:30 on a spring-forward night) to one that does.
            let back = self.fields(of: Double(t))
            guard
                back.year == f.year && back.month == f.month && back.day == f.day && back.hour == f.hour
                    && back.minute == f.minute
            else { return nil }
            return Double(t)
        }
    }

    private func has(_ set: UInt64, _ v: Int) -> Bool { set & (1 << UInt64(v)) != 0 }

    private func dayMatches(_ f: Fields) -> Bool {
        let weekday = Self.weekday(ofDays: Self.days(fromCivil: f.year, f.month, f.day))
        let byDay = self.has(self.days, f.day)
        let byWeekday = self.has(self.weekdays, weekday)
        return self.eitherDay ? (byDay || byWeekday) : (byDay && byWeekday)
    }

    /// The first (or, going back, the last) matching minute from `start` on, itself included; `nil` past 30 years.
    private func search(from start: Fields, forward: Bool) -> Fields? {
        var f = start
        let limit = start.year + (forward ? 30 : -30)
        while forward ? f.year <= limit : f.year >= limit {
            // Carry (or borrow) into the larger fields.
            if forward {
                if f.minute > 59 { (f.hour, f.minute) = (f.hour + 1, 0) }
                if f.hour > 23 { (f.day, f.hour) = (f.day + 1, 0) }
                if f.day > Self.daysIn(month: f.month, year: f.year) { (f.month, f.day) = (f.month + 1, 1) }
                if f.month > 12 { (f.year, f.month) = (f.year + 1, 1) }
            } else {
                if f.minute < 0 { (f.hour, f.minute) = (f.hour - 1, 59) }
                if f.hour < 0 { (f.day, f.hour) = (f.day - 1, 23) }
                if f.day < 1 { (f.month, f.day) = (f.month - 1, 31) }
                if f.month < 1 { (f.year, f.month) = (f.year - 1, 12) }
                f.day = min(f.day, Self.daysIn(month: f.month, year: f.year))
            }
            if !self.has(self.months, f.month) {
                if forward {
                    (f.month, f.day, f.hour, f.minute) = (f.month + 1, 1, 0, 0)
                } else {
                    (f.month, f.day, f.hour, f.minute) = (f.month - 1, 31, 23, 59)
                }
                continue
            }
            if !self.dayMatches(f) {
                (f.day, f.hour, f.minute) = forward ? (f.day + 1, 0, 0) : (f.day - 1, 23, 59)
                continue
            }
            if !self.has(self.hours, f.hour) {
                (f.hour, f.minute) = forward ? (f.hour + 1, 0) : (f.hour - 1, 59)
                continue
            }
            if !self.has(self.minutes, f.minute) {
                f.minute += forward ? 1 : -1
                continue
            }
            return f
        }
        return nil
    }

    // MARK: - The calendar (proleptic Gregorian)

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a date.
    static func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int {
        // Years counted from March, so that the leap day is the last of its year.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146097 + dayOfEra - 719468
    }

    /// The date of a day counted from 1970-01-01.
    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let dayOfEra = z - era * 146097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shifted = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shifted + 2) / 5 + 1
        let month = shifted < 10 ? shifted + 3 : shifted - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// 0 for Sunday ... 6 for Saturday (1970-01-01 was a Thursday).
    static func weekday(ofDays days: Int) -> Int {
        ((days % 7) + 7 + 4) % 7
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" { s.removeLast() }
        return String(s)
    }
}
