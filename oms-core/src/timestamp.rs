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
                write!(
                    f,
                    "{year:04}-{:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z",
                    u8::from(month)
                )
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
    fn parses_dates_and_offsets() {
        let a = Timestamp::parse("2026-11-22").unwrap();
        let b = Timestamp::parse("2026-11-22T00:00:00Z").unwrap();
        let c = Timestamp::parse("2026-11-22T01:00:00+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
