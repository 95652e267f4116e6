//! Where the tests find `../shared/data`, shared by the io, pipeline, train
//! and cli integration tests (the others include this file with `#[path]`).

use std::path::PathBuf;

/// The shared data folder (`$FINECAST_SHARED_DATA`, else `../shared/data`
/// beside the repository), or `None` with a message when it is absent. Under
/// `CI=true` its absence fails the test instead: CI must run every test
/// that needs it.
pub fn shared_data() -> Option<PathBuf> {
    let dir = match std::env::var_os("FINECAST_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    if dir.join("README.md").exists() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the shared data is missing at {}: the tests that need it must run",
            dir.display()
        );
    }
    eprintln!(
        "skipping: shared data not found at {} (set FINECAST_SHARED_DATA)",
        dir.display()
    );
    None
}
