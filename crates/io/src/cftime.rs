//! CF time coordinates: `"<unit> since <reference date>"` on the standard
//! (mixed Gregorian/Julian), Gregorian or proleptic Gregorian calendar.
//!
//! chrono is proleptic Gregorian; that agrees with the standard calendar for
//! every date from 1582-10-15 on, so dates before it are refused on the
//! standard calendar rather than silently shifted by up to ten days.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Decoded `units` (and `calendar`) of a CF time coordinate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimeUnits {
    pub seconds_per_unit: f64,
    pub epoch: DateTime<Utc>,
    proleptic: bool,
}

fn gregorian_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1582, 10, 15, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Does this `units` string look like a CF time unit (`... since ...`)?
pub(crate) fn is_time_units(units: &str) -> bool {
    units.to_ascii_lowercase().contains(" since ")
}

impl TimeUnits {
    /// Parse CF `units` and `calendar` attributes.
    pub(crate) fn parse(units: &str, calendar: Option<&str>) -> Result<TimeUnits, String> {
        let calendar_name = calendar.map(|c| c.trim().to_ascii_lowercase());
        let proleptic = match calendar_name.as_deref() {
            None | Some("") | Some("standard") | Some("gregorian") => false,
            Some("proleptic_gregorian") => true,
            Some(other) => {
                return Err(format!(
                    "calendar '{other}' is not supported (only standard, gregorian, proleptic_gregorian)"
                ))
            }
        };
        let lowered = units.trim().to_ascii_lowercase();
        let (unit_word, reference) = lowered
            .split_once(" since ")
            .ok_or_else(|| format!("units '{units}' are not of the form '<unit> since <date>'"))?;
        let seconds_per_unit = match unit_word.trim() {
            "seconds" | "second" | "secs" | "sec" | "s" => 1.0,
            "minutes" | "minute" | "mins" | "min" => 60.0,
            "hours" | "hour" | "hrs" | "hr" | "h" => 3600.0,
            "days" | "day" | "d" => 86_400.0,
            other => {
                return Err(format!(
                    "time unit '{other}' in '{units}' is not supported (seconds, minutes, hours or days)"
                ))
            }
        };
        let epoch = parse_reference(reference.trim())
            .map_err(|e| format!("reference date in units '{units}': {e}"))?;
        if !proleptic && epoch < gregorian_start() {
            return Err(format!(
                "reference date {epoch} precedes 1582-10-15 on the mixed Julian/Gregorian calendar; \
                 use calendar proleptic_gregorian"
            ));
        }
        Ok(TimeUnits {
            seconds_per_unit,
            epoch,
            proleptic,
        })
    }

    /// Instant of a coordinate value (rounded to the millisecond).
    pub(crate) fn decode(&self, value: f64) -> Result<DateTime<Utc>, String> {
        if !value.is_finite() {
            return Err(format!("time value {value} is not finite"));
        }
        let millis = (value * self.seconds_per_unit * 1000.0).round();
        if millis.abs() > 1e17 {
            return Err(format!("time value {value} is out of range"));
        }
        let t = self
            .epoch
            .checked_add_signed(Duration::milliseconds(millis as i64))
            .ok_or_else(|| format!("time value {value} is out of range"))?;
        if !self.proleptic && t < gregorian_start() {
            return Err(format!(
                "time {t} precedes 1582-10-15 on the mixed Julian/Gregorian calendar"
            ));
        }
        Ok(t)
    }
}

/// Parse `YYYY-M-D[( |T)H:M[:S[.f]]][Z| UTC| GMT|±HH[:MM]]`.
fn parse_reference(text: &str) -> Result<DateTime<Utc>, String> {
    let mut rest = text.trim();
    for suffix in ["utc", "gmt", "z"] {
        if let Some(stripped) = rest.strip_suffix(suffix) {
            rest = stripped.trim_end();
            break;
        }
    }
    let (date_part, mut time_part) = match rest.find(['t', ' ']) {
        Some(pos) => (&rest[..pos], rest[pos + 1..].trim()),
        None => (rest, ""),
    };
    let date = parse_date(date_part)?;

    // A trailing UTC offset: "+00:00", "-0500", " +1" (after the time or alone).
    let mut offset_seconds = 0i64;
    if let Some(pos) = time_part.rfind(['+', '-']) {
        let (clock, zone) = time_part.split_at(pos);
        offset_seconds = parse_offset(zone)?;
        time_part = clock.trim();
    }
    let time = if time_part.is_empty() {
        NaiveTime::MIN
    } else {
        parse_clock(time_part)?
    };
    let naive = NaiveDateTime::new(date, time);
    Utc.from_utc_datetime(&naive)
        .checked_sub_signed(Duration::seconds(offset_seconds))
        .ok_or_else(|| format!("'{text}' is out of range"))
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let parts: Vec<&str> = text.split('-').collect();
    let bad = || format!("'{text}' is not a date YYYY-MM-DD");
    if parts.len() != 3 {
        return Err(bad());
    }
    let year: i32 = parts[0].parse().map_err(|_| bad())?;
    let month: u32 = parts[1].parse().map_err(|_| bad())?;
    let day: u32 = parts[2].parse().map_err(|_| bad())?;
    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(bad)
}

fn parse_clock(text: &str) -> Result<NaiveTime, String> {
    let bad = || format!("'{text}' is not a time HH:MM[:SS]");
    let parts: Vec<&str> = text.split(':').collect();
    if parts.is_empty() || parts.len() > 3 {
        return Err(bad());
    }
    let hour: u32 = parts[0].trim().parse().map_err(|_| bad())?;
    let minute: u32 = match parts.get(1) {
        Some(m) => m.trim().parse().map_err(|_| bad())?,
        None => 0,
    };
    let seconds: f64 = match parts.get(2) {
        Some(s) => s.trim().parse().map_err(|_| bad())?,
        None => 0.0,
    };
    if !(0.0..61.0).contains(&seconds) {
        return Err(bad());
    }
    let whole = seconds.trunc() as u32;
    let nanos = ((seconds - seconds.trunc()) * 1e9).round() as u32;
    NaiveTime::from_hms_nano_opt(hour, minute, whole, nanos).ok_or_else(bad)
}

fn parse_offset(zone: &str) -> Result<i64, String> {
    let bad = || format!("'{zone}' is not a UTC offset");
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits = zone[1..].trim();
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    let hours: i64 = hours.parse().map_err(|_| bad())?;
    let minutes: i64 = minutes.parse().map_err(|_| bad())?;
    if !(0..=14).contains(&hours) || !(0..60).contains(&minutes) {
        return Err(bad());
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

/// CF encoding of output times: whole hours since the Unix epoch when every
/// time is on the hour, else whole seconds.
pub(crate) fn encode(times: &[DateTime<Utc>]) -> (String, Vec<f64>) {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let seconds: Vec<i64> = times.iter().map(|t| (*t - epoch).num_seconds()).collect();
    let sub_second = times.iter().any(|t| t.timestamp_subsec_nanos() != 0);
    if !sub_second && seconds.iter().all(|s| s % 3600 == 0) {
        (
            "hours since 1970-01-01 00:00:00".to_string(),
            seconds.iter().map(|s| (s / 3600) as f64).collect(),
        )
    } else {
        (
            "seconds since 1970-01-01 00:00:00".to_string(),
            times
                .iter()
                .map(|t| (*t - epoch).num_milliseconds() as f64 / 1000.0)
                .collect(),
        )
    }
}

/// Format for messages and summaries: `2019-03-01T00:00:00Z`.
pub(crate) fn iso(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid")
    }

    #[test]
    fn parses_common_reference_forms() {
        let cases = [
            (
                "hours since 2019-03-01 00:00:00",
                utc(2019, 3, 1, 0, 0, 0),
                3600.0,
            ),
            ("days since 1970-1-1", utc(1970, 1, 1, 0, 0, 0), 86400.0),
            (
                "seconds since 2020-12-14T06:30:00Z",
                utc(2020, 12, 14, 6, 30, 0),
                1.0,
            ),
            (
                "minutes since 2000-01-01 12:00",
                utc(2000, 1, 1, 12, 0, 0),
                60.0,
            ),
            (
                "hours since 1900-01-01 00:00:0.0",
                utc(1900, 1, 1, 0, 0, 0),
                3600.0,
            ),
            (
                "Hours Since 2010-06-01 00:00:00 UTC",
                utc(2010, 6, 1, 0, 0, 0),
                3600.0,
            ),
            (
                "hours since 2010-06-01 06:00:00 +06:00",
                utc(2010, 6, 1, 0, 0, 0),
                3600.0,
            ),
        ];
        for (units, epoch, seconds) in cases {
            let tu = TimeUnits::parse(units, Some("standard")).expect(units);
            assert_eq!(tu.epoch, epoch, "{units}");
            assert_eq!(tu.seconds_per_unit, seconds, "{units}");
        }
    }

    #[test]
    fn decodes_values() {
        let tu = TimeUnits::parse("hours since 2019-03-01 00:00:00", None).expect("units");
        assert_eq!(tu.decode(743.0).expect("t"), utc(2019, 3, 31, 23, 0, 0));
        let tu = TimeUnits::parse("days since 2000-01-01", Some("gregorian")).expect("units");
        assert_eq!(tu.decode(0.5).expect("t"), utc(2000, 1, 1, 12, 0, 0));
        assert!(tu.decode(f64::NAN).is_err());
    }

    #[test]
    fn rejects_unsupported_calendars_and_units() {
        assert!(TimeUnits::parse("days since 2000-01-01", Some("noleap")).is_err());
        assert!(TimeUnits::parse("days since 2000-01-01", Some("360_day")).is_err());
        assert!(TimeUnits::parse("months since 2000-01-01", None).is_err());
        assert!(TimeUnits::parse("hours after 2000-01-01", None).is_err());
        assert!(TimeUnits::parse("hours since yesterday", None).is_err());
        assert!(TimeUnits::parse("hours since 2000-01-01 00:00 +99999999999999", None).is_err());
        assert!(TimeUnits::parse("hours since 262143-12-31 23:00 -05:00", None).is_err());
        assert!(TimeUnits::parse("days since 1500-01-01", Some("standard")).is_err());
        assert!(TimeUnits::parse("days since 1500-01-01", Some("proleptic_gregorian")).is_ok());
    }

    #[test]
    fn encodes_whole_hours_or_seconds() {
        let (units, v) = encode(&[utc(1970, 1, 2, 0, 0, 0), utc(1970, 1, 2, 1, 0, 0)]);
        assert_eq!(units, "hours since 1970-01-01 00:00:00");
        assert_eq!(v, vec![24.0, 25.0]);
        let (units, v) = encode(&[utc(1970, 1, 1, 0, 10, 0)]);
        assert_eq!(units, "seconds since 1970-01-01 00:00:00");
        assert_eq!(v, vec![600.0]);
    }
}
