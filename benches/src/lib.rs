//! Shared helpers for finecast's benchmarks.

use std::time::{Duration, Instant};

/// Median wall time of `runs` calls of `f` after one warm-up call.
pub fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// The workspace root: `$FINECAST_WORKSPACE` (benchmark binaries carried to
/// another machine), else where this crate was built.
pub fn workspace_root() -> std::path::PathBuf {
    if let Some(root) = std::env::var_os("FINECAST_WORKSPACE") {
        return root.into();
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ lives in the workspace")
        .to_path_buf()
}

/// A positive integer from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| panic!("{name}={v} is not a positive integer")),
        Err(_) => default,
    }
}

/// Write a JSON report (atomically) and say where it went.
pub fn write_report(path: &std::path::Path, report: &serde_json::Value) {
    let text = serde_json::to_string_pretty(report).expect("report JSON") + "\n";
    finecast_io::write_atomic(path, text.as_bytes())
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("report: {}", path.display());
}

/// Python with the benchmark peers (onnxruntime, xarray): `$FINECAST_PYTHON`,
/// else `.venv/bin/python` made by scripts/python-env.sh; `None` without.
pub fn python() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("FINECAST_PYTHON") {
        return Some(p.into());
    }
    let venv = workspace_root().join(".venv/bin/python");
    venv.is_file().then_some(venv)
}

/// Run `cmd` (called `what` in messages) and return the last line of its
/// standard output that is JSON: how child jobs and the Python peers report.
/// A failed run panics with its standard error.
pub fn json_report(cmd: &mut std::process::Command, what: &str) -> serde_json::Value {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    if !out.status.success() {
        panic!("{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{what} printed no JSON report"))
}

/// This machine's CPU: model name, the SIMD/matrix flags that pick the
/// network kernel, and the kernels finecast runs here (best first), for
/// benchmark reports.
pub fn cpu_info() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let wanted = [
        "avx2",
        "fma",
        "avx512f",
        "avx512_bf16",
        "amx_bf16",
        "amx_tile",
        "asimd",
    ];
    let flags: Vec<String> = field("flags")
        .or_else(|| field("Features"))
        .unwrap_or_default()
        .split_whitespace()
        .filter(|f| wanted.contains(f))
        .map(str::to_string)
        .collect();
    let kernels: Vec<String> = finecast_model::cpu_kernels()
        .iter()
        .map(|k| k.to_string())
        .collect();
    serde_json::json!({ "model": model, "flags": flags, "kernels": kernels })
}
