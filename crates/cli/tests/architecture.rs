//! docs/architecture.md's crate table stays true: every workspace crate has
//! a row, and each row's "depends on" column names exactly the finecast
//! crates that `cargo metadata` says it depends on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Workspace crates and the workspace crates each one depends on (normal
/// dependencies), by short name (`finecast-io` → `io`, `finecast` → `cli`).
fn workspace_graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(repo())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let short = |name: &str| match name {
        "finecast" => "cli".to_string(),
        other => other.trim_start_matches("finecast-").to_string(),
    };
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null() && names.contains(d["name"].as_str().unwrap()))
                .map(|d| short(d["name"].as_str().unwrap()))
                .collect();
            (short(p["name"].as_str().unwrap()), deps)
        })
        .collect()
}

/// The table's rows: crate short name → the workspace crates its "depends on"
/// column names (other names there are outside crates).
fn documented_graph(crates: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).expect("docs");
    doc.lines()
        .filter(|l| l.starts_with("| `finecast"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells[1].split('`').nth(1).expect("crate name in backticks");
            let name = match name {
                "finecast" => "cli".to_string(),
                other => other.trim_start_matches("finecast-").to_string(),
            };
            let deps = cells[cells.len() - 2]
                .split(',')
                .map(str::trim)
                .filter(|d| crates.contains(*d))
                .map(str::to_string)
                .collect();
            (name, deps)
        })
        .collect()
}

#[test]
fn architecture_table_matches_cargo_metadata() {
    let actual = workspace_graph();
    let crates: BTreeSet<String> = actual.keys().cloned().collect();
    let documented = documented_graph(&crates);
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>(),
        "docs/architecture.md must have one row per workspace crate"
    );
    for (name, deps) in &actual {
        assert_eq!(
            &documented[name], deps,
            "docs/architecture.md: the row of {name} names the wrong finecast dependencies"
        );
    }
}
