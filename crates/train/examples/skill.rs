//! Skill table of the model against the baselines on real fields.
//!
//! `cargo run --profile test -p finecast-train --example skill -- [WEIGHTS] [--json OUT.json]`
//!
//! The cases depend on the model's kind (temperature or precipitation).

use std::path::PathBuf;

use finecast_model::Downscaler;
use finecast_train::data::shared_data_dir;
use finecast_train::skill::{evaluate_case, markdown_table, standard_cases};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let (mut weights, mut json) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a path")?)),
            _ => weights = Some(PathBuf::from(a)),
        }
    }
    let model = Downscaler::load(&weights.unwrap_or_else(Downscaler::default_path))?;
    let root = shared_data_dir().ok_or("shared data not found (set FINECAST_SHARED_DATA)")?;
    let mut skills = Vec::new();
    for case in standard_cases(model.kind()) {
        let t = std::time::Instant::now();
        let s = evaluate_case(&case, &model, &root)?;
        eprintln!(
            "{}: {} cells scored in {:.1} s",
            case.name,
            s.n_scored,
            t.elapsed().as_secs_f64()
        );
        skills.push(s);
    }
    println!("weights sha256 {}\n", model.sha256());
    println!("{}", markdown_table(&skills));
    if let Some(p) = json {
        std::fs::write(&p, serde_json::to_string_pretty(&skills)?)?;
    }
    Ok(())
}
