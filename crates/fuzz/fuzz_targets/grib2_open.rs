//! Any bytes as a GRIB2 file through finecast's reader (pure Rust: section
//! framing, grid templates, packing, the CF metadata built from them):
//! every variable listed, described and read must give a value or an error,
//! never a panic, a hang or an unbounded allocation. Bytes that do not
//! start like GRIB are not opened: NetCDF/HDF5 go through libnetcdf, which
//! is C and is fuzzed by OSS-Fuzz, not here.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if !data.starts_with(b"GRIB") {
        return;
    }
    let Ok(mut file) = tempfile_in_shm() else {
        return;
    };
    if file.1.write_all(data).is_err() {
        return;
    }
    if let Ok(ds) = finecast_io::open(&file.0) {
        for v in ds.variables() {
            let _ = ds.times(&v.name);
            let _ = ds.grid(&v.name);
            let _ = ds.read(&v.name, &finecast_io::Selection::default());
        }
        let _ = ds.describe();
    }
    let _ = std::fs::remove_file(&file.0);
});

/// A fresh file under /dev/shm (or the temp dir), per process.
fn tempfile_in_shm() -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("finecast-fuzz-{}.grib2", std::process::id()));
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}
