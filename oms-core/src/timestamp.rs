//! UTC timestamps: stored as integer milliseconds since the Unix epoch,
//! rendered as RFC 3339 with a `Z` suffix.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::Error;

/// A point in time with millisecond precision, always UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// From milliseconds since the epoch (the stored form).
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch (the stored form).
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This time minus a duration (saturating).
    pub fn minus(self, d: std::time::Duration) -> Self {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// This time plus a duration (saturating).
    pub fn plus(self, d: std::time::Duration) -> Self {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// Parses RFC 3339 (`2026-11-22T10:00:00Z`, any offset) or a bare date
    /// (`2026-11-22`, meaning midnight UTC).
    pub fn parse(input: &str) -> crate::Result<Self> {
        let s = input.trim();
        if let Ok(dt) = OffsetDateTime::parse(s, &Rfc3339) {
            return Ok(Timestamp((dt.unix_timestamp_nanos() / 1_000_000) as i64));
        }
        let date_format = time::macros::format_description!("[year]-[month]-[day]");
        if let Ok(date) = time::Date::parse(s, &date_format) {
            let dt = date.midnight().assume_utc();
            return Ok(Timestamp(dt.unix_timestamp() * 1000));
        }
        Err(Error::invalid(format!(
            "invalid time {input:?}: use RFC 3339 like 2026-11-22T10:00:00Z or a date like 2026-11-22"
        )))
    }
}

/// Writes `value` as zero-padded decimal digits filling `out`.
fn put_digits(out: &mut [u8], mut value: u16) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(dt) => {
                // One calendar and one clock conversion (the per-field
                // getters each redo the calendar arithmetic).
                let dt = dt.to_offset(UtcOffset::UTC);
                let (year, month, day) = dt.to_calendar_date();
                let (hour, minute, second, milli) = dt.to_hms_milli();
                match u16::try_from(year) {
                    // Digits written straight into a buffer: `write!` with
                    // padded fields costs more than the calendar arithmetic,
                    // and every order in a list has two timestamps.
                    Ok(year @ 0..=9999) => {
                        let mut text = *b"0000-00-00T00:00:00.000Z";
                        put_digits(&mut text[0..4], year);
                        put_digits(&mut text[5..7], u16::from(u8::from(month)));
                        put_digits(&mut text[8..10], u16::from(day));
                        put_digits(&mut text[11..13], u16::from(hour));
                        put_digits(&mut text[14..16], u16::from(minute));
                        put_digits(&mut text[17..19], u16::from(second));
                        put_digits(&mut text[20..23], milli);
                        // Only ASCII digits and separators were written.
                        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
                    }
                    _ => write!(
                        f,
                        "{year:04}-{:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z",
                        u8::from(month)
                    ),
                }
            }
            Err(_) => write!(f, "invalid-time({})", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc3339_with_z_and_round_trips() {
        let t = Timestamp::from_millis(1_795_000_000_123);
        let text = t.to_string();
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(Timestamp::parse(&text).unwrap(), t);
    }

    #[test]
    fn renders_fixed_width_fields() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (951_782_400_007, "2000-02-29T00:00:00.007Z"),
            (1_795_000_000_123, "2026-11-18T11:06:40.123Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ];
        for (ms, text) in cases {
            assert_eq!(Timestamp::from_millis(ms).to_string(), text);
        }
    }

    proptest::proptest! {
        /// The hand-written digits agree with `time`'s own formatting from
        /// year 1 to year 9999, and parse back to the same instant.
        #[test]
        fn rendering_matches_time_and_round_trips(
            ms in -62_135_596_800_000i64..=253_402_300_799_999,
        ) {
            let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            let reference = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(), u8::from(dt.month()), dt.day(),
                dt.hour(), dt.minute(), dt.second(), dt.millisecond()
            );
            let text = Timestamp::from_millis(ms).to_string();
            proptest::prop_assert_eq!(&text, &reference);
            proptest::prop_assert_eq!(Timestamp::parse(&text).unwrap(), Timestamp::from_millis(ms));
        }
    }

    #[test]
    fn parses_dates_and_offsets() {
        let a = Timestamp::parse("2026-11-22").unwrap();
        let b = Timestamp::parse("2026-11-22T00:00:00Z").unwrap();
        let c = Timestamp::parse("2026-11-22T01:00:00+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
