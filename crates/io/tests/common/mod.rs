//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

mod shared_data;
// Not every test binary that includes this module reads the shared data.
#[allow(unused_imports)]
pub use shared_data::shared_data;

/// A committed test fixture.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn utc(y: i32, mo: u32, d: u32, h: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(y, mo, d, h, 0, 0)
        .single()
        .expect("valid date")
}
