//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

#[path = "../../io/tests/common/shared_data.rs"]
mod shared_data;
pub use shared_data::shared_data;

/// The bundled demo sample in `data/sample`.
pub fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/sample")
        .join(name)
}
