//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data` next to the repository (or $FINECAST_SHARED_DATA), if present.
pub fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("FINECAST_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if dir.join("README.md").exists() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: shared data not found at {} (set FINECAST_SHARED_DATA)",
            dir.display()
        );
        None
    }
}

/// The bundled demo sample in `data/sample`.
pub fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/sample")
        .join(name)
}
