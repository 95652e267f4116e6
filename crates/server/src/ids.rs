//! Identifiers of jobs and runs, and the checks that keep request-supplied
//! names from reaching files outside their directory.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;

/// Why a request-supplied id or file name was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdError {
    /// A run or job id with other characters than letters, digits, '-' and
    /// '_' (shortened to 80 characters): nothing by that name can exist.
    #[error("'{0}' is not a valid id (letters, digits, '-' and '_')")]
    InvalidId(String),
    /// A file name with directories, a leading dot or control characters
    /// (shortened to 80 characters).
    #[error(
        "'{0}' is not a plain file name: give the name of a file in the input directory, \
         without directories"
    )]
    NotPlainFileName(String),
    /// A plain file name that names nothing in the directory.
    #[error("input file '{0}' does not exist in the input directory")]
    NoSuchFile(String),
    /// A name that resolves (through a symlink, say) to something that is
    /// not a regular file inside the directory.
    #[error("input file '{0}' is not a file inside the input directory")]
    OutsideDir(String),
}

/// A new id: UTC time to the second (so ids sort by creation) and 32 random bits.
pub fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS once per thread; mixing in the time and
    // a counter makes every call distinct without another dependency.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!(
        "{}-{:08x}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        h.finish() as u32
    )
}

/// A run or job id from a URL: letters, digits, '-' and '_' only, so it is
/// always a single, harmless path component.
pub fn check_id(id: &str) -> Result<&str, IdError> {
    let ok = !id.is_empty()
        && id.len() <= 80
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(id)
    } else {
        Err(IdError::InvalidId(truncate(id, 80)))
    }
}

/// A plain file name (no directories, no '..', no hidden files).
pub fn check_file_name(name: &str) -> Result<&str, IdError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
        && !Path::new(name).is_absolute();
    if ok {
        Ok(name)
    } else {
        Err(IdError::NotPlainFileName(truncate(name, 80)))
    }
}

/// `dir/name` for an existing file, refusing anything (a symlink, say) that
/// resolves outside `dir`.
pub fn file_in_dir(dir: &Path, name: &str) -> Result<PathBuf, IdError> {
    let name = check_file_name(name)?;
    let path = dir.join(name);
    let real = path
        .canonicalize()
        .map_err(|_| IdError::NoSuchFile(name.to_string()))?;
    if !real.starts_with(dir) || !real.is_file() {
        return Err(IdError::OutsideDir(name.to_string()));
    }
    Ok(real)
}

/// `s` cut to `n` characters (with an ellipsis when cut), so that error
/// messages quoting client input stay short whatever the client sent.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Write `bytes` to `path` through a temporary file and a rename, so a
/// reader (or a restart after a crash) sees the old or the new file, never
/// half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_valid() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert!(check_id(&a).is_ok(), "{a}");
    }

    #[test]
    fn path_tricks_are_refused() {
        for bad in [
            "..",
            "../x",
            "a/../../etc/passwd",
            "/etc/passwd",
            "a\\b",
            ".hidden",
            "",
            "x\0y",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_id("run-1_a").is_ok());
        assert!(check_file_name("forecast 0p25.nc").is_ok());
    }

    #[test]
    fn symlinks_out_of_the_directory_are_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let inside = root.path().join("inputs");
        std::fs::create_dir(&inside).expect("mkdir");
        let secret = root.path().join("secret.nc");
        std::fs::write(&secret, b"x").expect("write");
        std::fs::write(inside.join("ok.nc"), b"x").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&secret, inside.join("link.nc")).expect("symlink");
        let dir = inside.canonicalize().expect("canon");
        assert!(file_in_dir(&dir, "ok.nc").is_ok());
        #[cfg(unix)]
        assert!(file_in_dir(&dir, "link.nc").is_err());
        assert!(file_in_dir(&dir, "missing.nc").is_err());
    }
}
