//! ISO 8601 times typed by users (command line, HTTP queries), always UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// RFC 3339 with any offset, or a zone-less date-time or date taken as UTC:
/// 2024-01-15T06:00:00Z, 2024-01-15T06:00Z, 2024-01-15T06:00, 2024-01-15 06:00, 2024-01-15.
pub fn parse_utc_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_spellings_and_rejects_junk() {
        let want = "2024-01-15T06:00:00Z".parse::<DateTime<Utc>>().unwrap();
        for s in [
            "2024-01-15T06:00:00Z",
            "2024-01-15T07:00:00+01:00",
            "2024-01-15T06:00Z",
            "2024-01-15 06:00",
        ] {
            assert_eq!(parse_utc_time(s), Some(want), "{s}");
        }
        assert_eq!(
            parse_utc_time("2024-01-15").unwrap().to_rfc3339(),
            "2024-01-15T00:00:00+00:00"
        );
        assert_eq!(parse_utc_time("yesterday"), None);
    }
}
