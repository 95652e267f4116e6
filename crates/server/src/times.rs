//! ISO 8601 times in requests and responses (always UTC).

use chrono::{DateTime, Utc};

/// A request time that is not ISO 8601 (the text, shortened to 60 characters).
#[derive(Debug, thiserror::Error)]
#[error("time '{0}' is not ISO 8601 (e.g. 2024-01-15T06:00:00Z)")]
pub struct TimeError(String);

/// `2024-01-15T06:00:00Z`.
pub fn iso(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Open-Meteo's time format, `2024-01-15T06:00` (UTC, no zone suffix).
pub fn iso_minutes(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M").to_string()
}

/// RFC 3339 with any offset, or a zone-less date-time or date taken as UTC:
/// 2024-01-15T06:00:00Z, 2024-01-15T06:00, 2024-01-15 06:00, 2024-01-15.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, TimeError> {
    finecast_io::parse_utc_time(s).ok_or_else(|| TimeError(crate::ids::truncate(s, 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let want = parse_time("2024-01-15T06:00:00Z").expect("rfc3339");
        for s in [
            "2024-01-15T06:00",
            "2024-01-15 06:00",
            "2024-01-15T07:00:00+01:00",
        ] {
            assert_eq!(parse_time(s).expect(s), want, "{s}");
        }
        assert_eq!(iso(&want), "2024-01-15T06:00:00Z");
        assert_eq!(iso_minutes(&want), "2024-01-15T06:00");
        assert!(parse_time("yesterday").is_err());
    }
}
