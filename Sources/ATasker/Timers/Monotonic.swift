import Glibc

/// The clocks that every deadline, timer and task time in ``ATasker`` uses.
///
/// All values are seconds as `Double`, read with `clock_gettime`, so they have nanosecond
/// resolution (well below the microsecond that atasker promises).
///
/// ```swift
/// let started = Monotonic.now()
/// // ... work ...
/// let elapsed = Monotonic.now() - started
/// ```
public enum Monotonic {
    /// Returns the current time of `CLOCK_MONOTONIC`, in seconds.
    ///
    /// The monotonic clock never jumps when the wall clock is set; its origin is arbitrary (usually
    /// the boot time), so only differences between two readings are meaningful.
    ///
    /// - Returns: Seconds since an arbitrary, fixed point in the past.
    @inlinable
    public static func now() -> Double {
        Self.read(Self.monotonicClock)
    }

    /// Returns the current time of `CLOCK_REALTIME` (the wall clock), in seconds since the Unix epoch.
    ///
    /// - Returns: Seconds since 1970-01-01 00:00:00 UTC.
    @inlinable
    public static func wallNow() -> Double {
        Self.read(Self.realtimeClock)
    }

    @usableFromInline
    static let monotonicClock: Int32 = Int32(CLOCK_MONOTONIC)

    @usableFromInline
    static let realtimeClock: Int32 = Int32(CLOCK_REALTIME)

    @usableFromInline
    static func read(_ clock: Int32) -> Double {
        var spec = timespec()
        clock_gettime(clockid_t(clock), &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1_000_000_000
    }

    /// Converts a monotonic deadline into the absolute `timespec` that `pthread_cond_timedwait` wants
    /// (on a condition variable whose clock is `CLOCK_MONOTONIC`).
    static func absoluteTime(at deadline: Double) -> timespec {
        // Clamp so that an "infinite" deadline does not overflow `time_t`.
        // NaN (which no caller should pass) counts as "now".
        let clamped = deadline.isNaN ? 0 : max(0, min(deadline, 1e15))
        let seconds = clamped.rounded(.down)
        var nanoseconds = Int(((clamped - seconds) * 1_000_000_000).rounded())
        var wholeSeconds = Int(seconds)
        if nanoseconds >= 1_000_000_000 {
            wholeSeconds += 1
            nanoseconds -= 1_000_000_000
        }
        var spec = timespec()
        spec.tv_sec = wholeSeconds
        spec.tv_nsec = nanoseconds
        return spec
    }
}
