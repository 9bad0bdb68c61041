import ATaskerJobs
import Foundation
import Glibc
import Testing

/// A UTC time, by the C library's own calendar (so the tests do not check the schedule's calendar with itself).
private func utc(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0, _ second: Int = 0)
    -> Double
{
    var parts = tm()
    parts.tm_year = Int32(year - 1900)
    parts.tm_mon = Int32(month - 1)
    parts.tm_mday = Int32(day)
    parts.tm_hour = Int32(hour)
    parts.tm_min = Int32(minute)
    parts.tm_sec = Int32(second)
    return Double(timegm(&parts))
}

private func cron(_ text: String) throws -> CronSchedule { try CronSchedule(text) }

@Suite("Cron schedules: the five fields, macros, fire times and errors")
struct CronScheduleTests {
    @Test func stepsRangesAndLists() throws {
        let quarter = try cron("*/15 * * * *")
        let now = utc(2026, 12, 5, 6, 7, 30)
        #expect(quarter.next(after: now) == utc(2026, 12, 5, 6, 15))
        #expect(quarter.previous(atOrBefore: now) == utc(2026, 12, 5, 6, 0))
        #expect(quarter.previous(atOrBefore: utc(2026, 12, 5, 6, 15)) == utc(2026, 12, 5, 6, 15))
        #expect(quarter.next(after: utc(2026, 12, 5, 6, 15)) == utc(2026, 12, 5, 6, 30), "strictly after")
        #expect(quarter.next(after: utc(2026, 12, 31, 23, 50)) == utc(2027, 1, 1, 0, 0), "over the year's end")

        // minutes 5, 10, 15, 20 of hours 9, 13, 17, Monday to Friday
        let office = try cron("5-20/5 9-17/4 * * mon-fri")
        #expect(office.next(after: utc(2026, 12, 4, 17, 20)) == utc(2026, 12, 7, 9, 5), "Friday evening to Monday")
        #expect(office.next(after: utc(2026, 12, 7, 9, 7)) == utc(2026, 12, 7, 9, 10))
        #expect(office.next(after: utc(2026, 12, 7, 9, 20)) == utc(2026, 12, 7, 13, 5))
        #expect(office.previous(atOrBefore: utc(2026, 12, 7, 9, 4)) == utc(2026, 12, 4, 17, 20))
        // a/n runs from a to the field's end; lists mix every form
        let mixed = try cron("50/5,1,3-4 0 * * *")
        var t = utc(2026, 12, 5)
        var minutes: [Int] = []
        for _ in 0..<7 {
            t = try #require(mixed.next(after: t))
            minutes.append(Int(t - utc(2026, 12, 5)) / 60)
        }
        #expect(minutes == [1, 3, 4, 50, 55, 1440 + 1, 1440 + 3])
    }

    @Test func monthEndsAndTheLeapDay() throws {
        let last = try cron("0 0 31 * *")
        #expect(last.next(after: utc(2026, 4, 15)) == utc(2026, 5, 31), "April has no 31st")
        #expect(last.next(after: utc(2026, 1, 31)) == utc(2026, 3, 31), "nor February")
        let leap = try cron("0 0 29 2 *")
        #expect(leap.next(after: utc(2026, 3, 1)) == utc(2028, 2, 29))
        #expect(leap.previous(atOrBefore: utc(2026, 3, 1)) == utc(2024, 2, 29))
        #expect(leap.next(after: utc(2096, 3, 1)) == utc(2104, 2, 29), "2100 is no leap year")
        let names = try cron("0 12 1 JAN,jul *")
        #expect(names.next(after: utc(2026, 2, 1)) == utc(2026, 7, 1, 12))
    }

    @Test func daysOfTheWeekAndTheTwoDayFields() throws {
        // 2026-12-05 is a Saturday; Friday the 11th, Sunday the 13th
        let saturday = utc(2026, 12, 5, 12)
        let sundays = try ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * SUN", "0 0 * * 6-7"].map {
            try cron($0).next(after: saturday)
        }
        #expect(sundays == Array(repeating: utc(2026, 12, 6), count: 5))
        // Both restricted: either matches (the Friday comes first, then the 13th, a Sunday).
        let either = try cron("0 0 13 * fri")
        #expect(either.next(after: saturday) == utc(2026, 12, 11))
        #expect(either.next(after: utc(2026, 12, 11)) == utc(2026, 12, 13))
        // One of them '*': both must (every day of the week, so the 13th only; Fridays only).
        #expect(try cron("0 0 13 * *").next(after: saturday) == utc(2026, 12, 13))
        #expect(try cron("0 0 * * fri").next(after: utc(2026, 12, 11)) == utc(2026, 12, 18))
        // '*/2' counts as '*' (as in cron): odd days that are Fridays.
        let oddFridays = try cron("0 0 */2 * fri")
        #expect(oddFridays.next(after: saturday) == utc(2026, 12, 11))
        #expect(oddFridays.next(after: utc(2026, 12, 11)) == utc(2026, 12, 25))
    }

    @Test func macros() throws {
        let now = utc(2026, 12, 5, 6, 7)
        for (macro, fields) in [
            ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"), ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"), ("@hourly", "0 * * * *"), ("@DAILY", "0 0 * * *"),
        ] {
            #expect(try cron(macro).next(after: now) == cron(fields).next(after: now), "\(macro)")
            #expect(try cron(macro).previous(atOrBefore: now) == cron(fields).previous(atOrBefore: now), "\(macro)")
        }
        #expect(try cron("@hourly").next(after: now) == utc(2026, 12, 5, 7))
        #expect(try cron("  */5  *\t* * *  ").next(after: now) == utc(2026, 12, 5, 6, 10), "any white space")
    }

    @Test func timesThatAreNotTimes() throws {
        let every = try cron("* * * * *")
        for t in [Double.nan, .infinity, -.infinity, 1e300, -1e300] {
            #expect(every.next(after: t) == nil)
            #expect(every.previous(atOrBefore: t) == nil)
        }
        #expect(every.next(after: -86400.5) == -86400, "before 1970")
    }

    @Test func errorsNameTheFieldAndWhatIsWrong() {
        for (text, message) in [
            ("0 25 * * *", "cron field 2 (hour) \"25\": 25 is out of range 0-23"),
            ("60 * * * *", "cron field 1 (minute) \"60\": 60 is out of range 0-59"),
            ("* * 0 * *", "cron field 3 (day of month) \"0\": 0 is out of range 1-31"),
            ("* * * 13 *", "cron field 4 (month) \"13\": 13 is out of range 1-12"),
            ("* * * * 8", "cron field 5 (day of week) \"8\": 8 is out of range 0-7"),
            ("* * * foo *", "cron field 4 (month) \"foo\": 'foo' is not a number or a name (jan...dec)"),
            ("mon * * * *", "cron field 1 (minute) \"mon\": 'mon' is not a number"),
            ("*/0 * * * *", "cron field 1 (minute) \"*/0\": the step '0' is not a whole number >= 1"),
            ("*/x * * * *", "the step 'x' is not a whole number >= 1"),
            ("5-1 * * * *", "cron field 1 (minute) \"5-1\": the range 5-1 goes down"),
            ("1,,2 * * * *", "cron field 1 (minute) \"1,,2\": an empty item in the list"),
            ("1/2/3 * * * *", "more than one '/'"),
            ("* * *", "give 5 fields (minute hour day-of-month month day-of-week) or a macro"),
            ("* * * * * *", "not 6"),
            ("", "not 0"),
            ("@reboot", "cron \"@reboot\": unknown macro"),
            ("0 0 30 2 *", "no allowed month has day 30 (fields 3 and 4): it would never fire"),
            ("0 0 31 4,6,9,11 *", "no allowed month has day 31"),
        ] {
            let error = #expect(throws: JobStoreError.self, "\(text)") { try CronSchedule(text) }
            #expect(error?.message.contains(message) == true, "\(text): \(String(describing: error))")
        }
        // With the day of the week as the other way to match, it fires: on Mondays.
        #expect(throws: Never.self) { try CronSchedule("0 0 30 2 mon") }
    }

    /// The host's local zone, in a child process of this test binary whose TZ has daylight-saving changes (a POSIX
    /// rule, so no tz database is needed): setting TZ here would race with the other tests' clocks.
    @Test("local time: a time that a spring-forward night skips does not fire; one that autumn repeats fires once")
    func localTime() throws {
        if ProcessInfo.processInfo.environment["ATASKER_CRON_LOCAL_CHILD"] != nil {
            try Self.localTimeChecks()
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["--testing-library", "swift-testing", "--filter", "CronScheduleTests/localTime"]
        var environment = ProcessInfo.processInfo.environment
        environment["TZ"] = "CET-1CEST,M3.5.0,M10.5.0/3"
        environment["ATASKER_CRON_LOCAL_CHILD"] = "1"
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("Test run with 1 test"), "the child ran no test: \(text)")
    }

    static func localTimeChecks() throws {
        let night = try CronSchedule("30 2 * * *", zone: .local)
        // 2026-03-29: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist that night.
        #expect(night.next(after: utc(2026, 3, 28, 12)) == utc(2026, 3, 30, 0, 30), "02:30 CEST is 00:30 UTC")
        #expect(night.previous(atOrBefore: utc(2026, 3, 29, 12)) == utc(2026, 3, 28, 1, 30), "02:30 CET")
        // 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 comes twice: it fires once.
        let first = try #require(night.next(after: utc(2026, 10, 24, 12)))
        #expect(first == utc(2026, 10, 25, 0, 30) || first == utc(2026, 10, 25, 1, 30))
        #expect(night.next(after: first) == utc(2026, 10, 26, 1, 30), "no second run of the repeated 02:30")
        #expect(night.next(after: utc(2026, 10, 25, 1, 0)) == utc(2026, 10, 26, 1, 30) || first > utc(2026, 10, 25, 1))
        // Every quarter of an hour across the spring-forward night: 01:45 CET, then 03:00 CEST.
        let quarter = try CronSchedule("*/15 * * * *", zone: .local)
        #expect(quarter.next(after: utc(2026, 3, 29, 0, 45)) == utc(2026, 3, 29, 1, 0), "03:00 CEST is 01:00 UTC")
        #expect(try CronSchedule("0 12 * * *", zone: .local).next(after: utc(2026, 7, 1)) == utc(2026, 7, 1, 10))
    }
}
