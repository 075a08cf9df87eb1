//! UTC timestamps with nanosecond resolution, printed as RFC 3339 with microseconds.

use std::fmt;

/// Nanoseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Nanoseconds per second.
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    /// From seconds and a sub-second nanosecond part (values ≥ 1e9 carry over).
    pub fn from_secs_nanos(secs: i64, nanos: u64) -> Timestamp {
        let carry = i64::try_from(nanos / 1_000_000_000).unwrap_or(0);
        let rem = i64::try_from(nanos % 1_000_000_000).unwrap_or(0);
        Timestamp(
            secs.saturating_add(carry)
                .saturating_mul(Self::NANOS_PER_SEC)
                .saturating_add(rem),
        )
    }

    /// Whole seconds since the epoch (floor).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(Self::NANOS_PER_SEC)
    }

    /// Nanoseconds within the second.
    pub fn subsec_nanos(self) -> u32 {
        u32::try_from(self.0.rem_euclid(Self::NANOS_PER_SEC)).unwrap_or(0)
    }

    /// This time plus whole seconds (saturating).
    pub fn plus_secs(self, secs: u64) -> Timestamp {
        let d = i64::try_from(secs).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(d.saturating_mul(Self::NANOS_PER_SEC)))
    }

    /// The calendar date (year, month, day) in UTC.
    pub fn date(self) -> (i64, u32, u32) {
        civil_from_days(self.secs().div_euclid(86_400))
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

impl Timestamp {
    /// RFC 3339 with microseconds (`2024-05-01T10:00:00.000001Z`) into a
    /// stack buffer: the hot path of every output. Years outside 0..=9999
    /// fall back to [`fmt::Display`] (which prints them in full).
    pub(crate) fn rfc3339(self, buf: &mut [u8; 27]) -> Option<&str> {
        let secs = self.secs();
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let y = u32::try_from(y).ok().filter(|y| *y <= 9999)?;
        let sod = u32::try_from(secs.rem_euclid(86_400)).ok()?;
        let micros = self.subsec_nanos() / 1000;
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                if let Some(b) = buf.get_mut(i) {
                    *b = b'0' + u8::try_from(v % 10).unwrap_or(0);
                }
                v /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, m);
        put(8, 2, d);
        put(11, 2, sod / 3600);
        put(14, 2, sod / 60 % 60);
        put(17, 2, sod % 60);
        put(20, 6, micros);
        for (i, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (26, b'Z'),
        ] {
            buf[i] = c;
        }
        std::str::from_utf8(buf).ok()
    }
}

impl fmt::Display for Timestamp {
    /// `2024-05-01T10:00:00.000001Z`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 27];
        if let Some(text) = self.rfc3339(&mut buf) {
            return f.write_str(text);
        }
        let secs = self.secs();
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            sod / 3600,
            sod / 60 % 60,
            sod % 60,
            self.subsec_nanos() / 1000
        )
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 27];
        match self.rfc3339(&mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.collect_str(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_micros() {
        let t = Timestamp::from_secs_nanos(1_300_475_167, 96_535_000);
        assert_eq!(t.to_string(), "2011-03-18T19:06:07.096535Z");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000Z");
        let leap = Timestamp::from_secs_nanos(951_782_400, 1_000); // 2000-02-29
        assert_eq!(leap.to_string(), "2000-02-29T00:00:00.000001Z");
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn fast_and_slow_paths_agree() {
        for t in [
            0i64,
            1,
            999_999_999,
            1_300_475_167_096_535_000,
            -1,
            253_402_300_799_999_999,
        ] {
            let ts = Timestamp(t);
            let secs = ts.secs();
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let sod = secs.rem_euclid(86_400);
            let slow = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
                sod / 3600,
                sod / 60 % 60,
                sod % 60,
                ts.subsec_nanos() / 1000
            );
            assert_eq!(ts.to_string(), slow);
            assert_eq!(serde_json::to_string(&ts).unwrap(), format!("\"{slow}\""));
        }
    }

    #[test]
    fn nanos_carry_over() {
        let t = Timestamp::from_secs_nanos(10, 1_500_000_000);
        assert_eq!(t.secs(), 11);
        assert_eq!(t.subsec_nanos(), 500_000_000);
    }
}
