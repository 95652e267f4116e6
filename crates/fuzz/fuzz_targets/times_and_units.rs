//! Any text as a time (ISO 8601 / RFC 3339 as the API and CLI take them)
//! and as units of any variable (the CF unit conversions applied on
//! reading): a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = finecast_io::parse_utc_time(text);
    let (var, units) = text.split_once('|').unwrap_or(("t2m", text));
    for standard_name in [None, Some("air_temperature"), Some(var)] {
        let _ = finecast_io::units::to_si(var, standard_name, units);
    }
});
