//! Train the downscaling model from a TOML configuration.
//!
//! `cargo run -p finecast-model --example train -- scripts/train-t2m.toml [--resume] [--steps N] [--time-limit S]`

use std::path::PathBuf;

use finecast_model::train::BarProgress;
use finecast_model::{train, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let mut config: Option<PathBuf> = None;
    let (mut resume, mut steps, mut limit) = (false, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--resume" => resume = true,
            "--steps" => {
                steps = Some(
                    args.next()
                        .ok_or("--steps needs a value")?
                        .parse::<usize>()?,
                )
            }
            "--time-limit" => {
                limit = Some(
                    args.next()
                        .ok_or("--time-limit needs a value")?
                        .parse::<f64>()?,
                )
            }
            _ => config = Some(PathBuf::from(a)),
        }
    }
    let path =
        config.ok_or("usage: train CONFIG.toml [--resume] [--steps N] [--time-limit SECONDS]")?;
    let mut cfg = TrainConfig::from_toml_file(&path)?;
    cfg.resume |= resume;
    if let Some(s) = steps {
        cfg.steps = s;
    }
    if limit.is_some() {
        cfg.time_limit_s = limit;
    }
    let report = train(&cfg, &BarProgress::new())?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
