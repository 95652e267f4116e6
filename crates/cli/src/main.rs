//! The `finecast` command line: thin glue over `finecast-pipeline`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use finecast_grid::Region;
use finecast_pipeline::{
    render_file_map, run_downscale, run_evaluate, DownscaleRequest, EvaluateReport,
    EvaluateRequest, JobControl, LogControl, MapRequest, Method, PipelineError, Target,
};
use finecast_tiles::TileSpec;

#[derive(Parser)]
#[command(
    name = "finecast",
    version,
    about = "Downscale ~25 km weather forecasts to ~3 km with terrain"
)]
struct Cli {
    /// Worker threads for tiles and regridding (default: all cores).
    #[arg(long, global = true, env = "FINECAST_THREADS")]
    threads: Option<usize>,
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a NetCDF or GRIB2 file: variables, grid, CRS, times, value ranges.
    Info {
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Downscale a coarse forecast onto a fine grid.
    Downscale(DownscaleArgs),
    /// Score methods with the perfect-model protocol against a fine truth field.
    Evaluate(EvaluateArgs),
    /// Render a variable of a file as a framed PNG map with a colour bar.
    Map(MapArgs),
    /// Serve runs over HTTP: jobs, point forecasts, maps, XYZ tiles, WMS and a web viewer.
    Serve(finecast_server::ServeArgs),
    /// Train a downscaling network from a TOML configuration
    /// (scripts/train-t2m.toml, scripts/train-precip.toml).
    #[cfg(feature = "train")]
    Train(TrainArgs),
    /// Leave-one-source-out cross-validation: per data source, train without
    /// it and score it with the evaluate protocol (scripts/crossval-t2m.toml).
    #[cfg(feature = "train")]
    Crossval(CrossvalArgs),
    /// Export the network's weights as safetensors (with the sidecar as
    /// metadata) for other runtimes, e.g. scripts/onnx_model.py.
    ExportWeights {
        /// Weights to export (default: the shipped weights, or $FINECAST_WEIGHTS).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Output .safetensors path.
        #[arg(long)]
        out: PathBuf,
    },
}

#[cfg(feature = "train")]
#[derive(Args)]
struct TrainArgs {
    /// Training configuration (TOML): data sources, held-out sets, model
    /// size, schedule, output weights.
    #[arg(long)]
    config: PathBuf,
    /// Continue from the last checkpoint in the configuration's checkpoint_dir.
    #[arg(long)]
    resume: bool,
    /// Total optimisation steps (overrides the configuration).
    #[arg(long)]
    steps: Option<usize>,
    /// Stop, after saving a checkpoint and the weights, once this many
    /// seconds have passed in this run (overrides the configuration).
    #[arg(long)]
    time_limit: Option<f64>,
}

#[cfg(feature = "train")]
#[derive(Args)]
struct CrossvalArgs {
    /// A training configuration whose sets name their `source`, with a
    /// `[crossval]` table (output_dir, cases).
    #[arg(long)]
    config: PathBuf,
    /// Only the folds leaving out these sources (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Optimisation steps per fold (overrides the configuration).
    #[arg(long)]
    steps: Option<usize>,
    /// Instead of training, fit the do-no-harm shrinkage on the folds'
    /// networks (already trained; all folds, or those of --only): writes
    /// shrinkage.{json,md} to the output folder.
    #[arg(long)]
    fit_shrinkage: bool,
    /// With --fit-shrinkage: write the fitted shrinkage into the sidecar of
    /// this network, with training ranges from --train-config.
    #[arg(long, requires_all = ["train_config", "fit_shrinkage"])]
    ship: Option<PathBuf>,
    /// The training configuration of the --ship network (its training sets
    /// give the feature ranges).
    #[arg(long, requires = "ship")]
    train_config: Option<PathBuf>,
}

#[derive(Args)]
struct MapArgs {
    file: PathBuf,
    /// Variable name or standard name.
    #[arg(long)]
    var: String,
    /// Valid time (ISO 8601; default: the first).
    #[arg(long)]
    time: Option<String>,
    /// Palette: temperature, wind, precipitation, difference, terrain.
    #[arg(long)]
    palette: Option<String>,
    /// Colour range LO,HI in the variable's SI units (default: fixed per variable).
    #[arg(long, allow_hyphen_values = true)]
    range: Option<String>,
    #[arg(long, default_value_t = 1000)]
    width: u32,
    #[arg(long, default_value_t = 800)]
    height: u32,
    /// Output PNG path.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct DownscaleArgs {
    /// Coarse input (NetCDF or GRIB2).
    #[arg(long)]
    input: PathBuf,
    /// Digital elevation model (NetCDF with orog / surface_altitude).
    #[arg(long)]
    terrain: PathBuf,
    /// Land mask or land fraction (NetCDF); written to the output as sftlf.
    #[arg(long)]
    land_mask: Option<PathBuf>,
    /// Target region S,N,W,E in degrees (with --resolution).
    #[arg(
        long,
        allow_hyphen_values = true,
        conflicts_with = "grid_like",
        requires = "resolution"
    )]
    region: Option<String>,
    /// Target resolution, e.g. 3km or 2500m (with --region).
    #[arg(long)]
    resolution: Option<String>,
    /// Use the grid of this file as the target.
    #[arg(long)]
    grid_like: Option<PathBuf>,
    /// nearest, bilinear, bicubic, lapse, gradient or model.
    #[arg(long, default_value = "lapse")]
    method: String,
    /// Weights for --method model (default: the shipped weights, or $FINECAST_WEIGHTS).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Where --method model runs: cpu, or gpu (Vulkan; needs a build with
    /// --features gpu, else falls back to the CPU with a warning).
    #[arg(long, default_value = "cpu")]
    device: finecast_model::ComputeDevice,
    /// Comma-separated variable names or standard names (default: all).
    #[arg(long, value_delimiter = ',')]
    vars: Vec<String>,
    /// Comma-separated valid times (ISO 8601; default: all).
    #[arg(long, value_delimiter = ',')]
    times: Vec<String>,
    /// Output NetCDF path.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    tiles: TileArgs,
}

#[derive(Args)]
struct TileArgs {
    /// Tile core size in cells.
    #[arg(long, default_value_t = 256)]
    tile: usize,
    /// Context cells added around each tile.
    #[arg(long, default_value_t = 16)]
    halo: usize,
    /// Cross-fade width across tile boundaries, in cells.
    #[arg(long, default_value_t = 16)]
    blend: usize,
}

#[derive(Args)]
struct EvaluateArgs {
    /// Fine truth file.
    #[arg(long)]
    truth: PathBuf,
    /// Variable (name or standard name) to evaluate.
    #[arg(long)]
    var: String,
    /// DEM for the terrain methods.
    #[arg(long)]
    terrain: Option<PathBuf>,
    /// Comma-separated methods: nearest, bilinear, bicubic, lapse, gradient, model.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bilinear,bicubic,lapse,gradient"
    )]
    methods: Vec<String>,
    /// Weights for the model method (default: the shipped weights, or $FINECAST_WEIGHTS).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Where the model method runs: cpu or gpu (see downscale --device).
    #[arg(long, default_value = "cpu")]
    device: finecast_model::ComputeDevice,
    /// Crop the truth to S,N,W,E first.
    #[arg(long, allow_hyphen_values = true)]
    region: Option<String>,
    /// Score only this valid time of the truth (ISO 8601; default: every
    /// time, pooled, with a table per time).
    #[arg(long)]
    time: Option<String>,
    /// Coarse grid resolution in degrees.
    #[arg(long, default_value_t = 0.25)]
    coarse_res: f64,
    /// Use this coarse file instead of coarsening the truth: its field at
    /// each truth time, or aggregated over the truth's period (daily
    /// maximum, minimum, sum, mean) where the coarse file is finer in time.
    #[arg(long)]
    coarse: Option<PathBuf>,
    /// The variable of --coarse (default: the truth's name, then its
    /// standard name), e.g. t2m for a daily tmax truth.
    #[arg(long)]
    coarse_var: Option<String>,
    /// Also score another downscaler's output, NAME=FILE (repeatable): the
    /// truth's variable in FILE at each truth time, regridded bilinearly to
    /// the truth grid if it is on another grid.
    #[arg(long, value_name = "NAME=FILE")]
    prediction: Vec<String>,
    /// Write the scores as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write maps and spectra as PNG into this directory.
    #[arg(long)]
    plots: Option<PathBuf>,
}

fn main() {
    finecast_pipeline::tune_allocator_for_tiles();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Err(e) = run(cli) {
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line. The library errors already put
/// their cause in their own message, so a cause whose text is there is not
/// repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Append to the output buffer; formatting into a String cannot fail.
macro_rules! out {
    ($o:expr, $($t:tt)*) => {{
        use std::fmt::Write as _;
        let _ = write!($o, $($t)*);
    }};
}
macro_rules! outln {
    ($o:expr) => {
        $o.push('\n')
    };
    ($o:expr, $($t:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($o, $($t)*);
    }};
}

fn run(cli: Cli) -> Result<()> {
    let mut out = String::new();
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting the thread count")?;
    }
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.command {
        Command::Info { file, json } => {
            let ds = finecast_io::open(&file)?;
            let info = ds.describe()?;
            if json {
                outln!(out, "{}", serde_json::to_string_pretty(&info)?);
            } else {
                out!(out, "{info}");
            }
        }
        Command::Downscale(a) => downscale(a, command_line, &mut out)?,
        Command::Serve(a) => finecast_server::serve(a)?,
        #[cfg(feature = "train")]
        Command::Train(a) => train(a, &mut out)?,
        #[cfg(feature = "train")]
        Command::Crossval(a) => crossval(a, &mut out)?,
        Command::ExportWeights { weights, out: path } => {
            let weights = weights.unwrap_or_else(finecast_model::Downscaler::default_path);
            let model = finecast_model::Downscaler::load(&weights)
                .with_context(|| format!("loading {}", weights.display()))?;
            model.export_safetensors(&path)?;
            outln!(out, "wrote {} (from {})", path.display(), weights.display());
        }
        Command::Map(a) => map(a, &mut out)?,
        Command::Evaluate(a) => evaluate(a, &mut out)?,
    }
    emit(&out)
}

/// A job's control for the CLI: the first SIGINT or SIGTERM cancels the job
/// at its next check (between tiles and time steps, and before the output
/// is written), so it ends without a half-written `--out` or a temporary
/// file left behind; a second signal exits at once.
struct Interruptible {
    log: LogControl,
    signalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Interruptible {
    fn install() -> Result<Interruptible> {
        let signalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // The order matters: once the flag is set, the next signal exits.
            signal_hook::flag::register_conditional_shutdown(sig, 130, signalled.clone())
                .context("installing the signal handler")?;
            signal_hook::flag::register(sig, signalled.clone())
                .context("installing the signal handler")?;
        }
        Ok(Interruptible {
            log: LogControl::default(),
            signalled,
        })
    }
}

impl JobControl for Interruptible {
    fn progress(&self, percent: f32, step: &str) {
        self.log.progress(percent, step);
    }
    fn is_cancelled(&self) -> bool {
        self.signalled.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// `finecast downscale`: one job, and what it did (output, phases, methods).
fn downscale(a: DownscaleArgs, command_line: String, out: &mut String) -> Result<()> {
    let target = match (&a.region, &a.resolution, &a.grid_like) {
        (Some(r), Some(res), None) => Target::Region {
            region: r.parse::<Region>()?,
            resolution_m: parse_resolution(res)?,
        },
        (None, None, Some(p)) => Target::GridLike(p.clone()),
        _ => bail!("give the target as --region S,N,W,E --resolution 3km, or as --grid-like FILE"),
    };
    let req = DownscaleRequest {
        input: a.input,
        terrain: a.terrain,
        land_mask: a.land_mask,
        target,
        method: Method::parse_on(&a.method, a.weights.as_deref(), a.device)?,
        vars: a.vars,
        times: a
            .times
            .iter()
            .map(|t| parse_time(t))
            .collect::<Result<_>>()?,
        out: a.out,
        tiles: TileSpec::new(a.tiles.tile, a.tiles.halo, a.tiles.blend)?,
        command_line,
    };
    let control = Interruptible::install()?;
    let report = match run_downscale(&req, &control) {
        Err(PipelineError::Cancelled) => {
            eprintln!(
                "error: interrupted; nothing was written to {}",
                req.out.display()
            );
            std::process::exit(130);
        }
        other => other?,
    };
    outln!(
        out,
        "wrote {} ({}x{} cells, {} variable(s)) in {:.1} s",
        report.out.display(),
        report.shape.0,
        report.shape.1,
        report.variables.len(),
        report.seconds
    );
    let phases: Vec<String> = report
        .phases
        .iter()
        .map(|(p, s)| format!("{p} {s:.2} s"))
        .collect();
    outln!(out, "  phases: {}", phases.join(", "));
    for v in &report.variables {
        outln!(
            out,
            "  {} [{}] {} time(s), method {}",
            v.name,
            v.units,
            v.times,
            v.method
        );
    }
    Ok(())
}

/// `finecast train`: train a network from a TOML configuration.
#[cfg(feature = "train")]
fn train(a: TrainArgs, out: &mut String) -> Result<()> {
    let mut cfg = finecast_train::TrainConfig::from_toml_file(&a.config)?;
    cfg.resume |= a.resume;
    if let Some(steps) = a.steps {
        cfg.steps = steps;
    }
    if a.time_limit.is_some() {
        cfg.time_limit_s = a.time_limit;
    }
    let report = finecast_train::train(&cfg, &finecast_train::train::BarProgress::new())
        .with_context(|| format!("training with {}", a.config.display()))?;
    outln!(out, "{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// `finecast crossval`: leave-one-source-out folds, written as JSON and a
/// markdown table (per `--only` selection, so processes can share the folds).
#[cfg(feature = "train")]
fn crossval(a: CrossvalArgs, out: &mut String) -> Result<()> {
    let mut cfg = finecast_train::crossval::CrossvalConfig::from_toml_file(&a.config)?;
    if let Some(steps) = a.steps {
        cfg.base.steps = steps;
    }
    if a.fit_shrinkage {
        return fit_shrinkage(&a, &cfg, out);
    }
    let folds = finecast_train::crossval::run_crossval(
        &cfg,
        &a.only,
        &finecast_train::train::BarProgress::new(),
    )
    .with_context(|| format!("cross-validating with {}", a.config.display()))?;
    let table = finecast_train::crossval::markdown_table(&folds);
    // Folds run with --only write files of their own, so several
    // processes can share the folds out (one per core).
    let dir = &cfg.crossval.output_dir;
    let stem = if a.only.is_empty() {
        "crossval".to_string()
    } else {
        format!("crossval-{}", a.only.join("-"))
    };
    write_json_and_table(&dir.join(stem), &serde_json::to_value(&folds)?, &table, out)
}

/// Write `value` as `<stem>.json` and `table` as `<stem>.md` (atomically),
/// and the table to the output.
#[cfg(feature = "train")]
fn write_json_and_table(
    stem: &std::path::Path,
    value: &serde_json::Value,
    table: &str,
    out: &mut String,
) -> Result<()> {
    let json = PathBuf::from(format!("{}.json", stem.display()));
    let md = PathBuf::from(format!("{}.md", stem.display()));
    finecast_io::write_atomic(
        &json,
        (serde_json::to_string_pretty(value)? + "\n").as_bytes(),
    )
    .with_context(|| format!("writing {}", json.display()))?;
    finecast_io::write_atomic(&md, table.as_bytes())
        .with_context(|| format!("writing {}", md.display()))?;
    out!(out, "{table}");
    outln!(out, "written to {} and {}", json.display(), md.display());
    Ok(())
}

/// `finecast crossval --fit-shrinkage`: fit the shrinkage on the folds,
/// write the table, and ship it with a network if asked.
#[cfg(feature = "train")]
fn fit_shrinkage(
    a: &CrossvalArgs,
    cfg: &finecast_train::crossval::CrossvalConfig,
    out: &mut String,
) -> Result<()> {
    use finecast_train::shrinkage;
    let fit = shrinkage::fit_shrinkage(cfg, &a.only)
        .with_context(|| format!("fitting the shrinkage with {}", a.config.display()))?;
    let table = shrinkage::markdown_table(&fit);
    // A fit on some folds (--only) does not replace the fit on all of them.
    let stem = if a.only.is_empty() {
        "shrinkage".to_string()
    } else {
        format!("shrinkage-{}", a.only.join("-"))
    };
    let stem = cfg.crossval.output_dir.join(stem);
    write_json_and_table(&stem, &serde_json::to_value(&fit)?, &table, out)?;
    if let (Some(weights), Some(train_config)) = (&a.ship, &a.train_config) {
        let train = finecast_train::TrainConfig::from_toml_file(train_config)?;
        let network = finecast_model::Downscaler::load(weights)
            .with_context(|| format!("loading {}", weights.display()))?;
        let fitted_by = format!(
            "finecast crossval --config {} --fit-shrinkage: leave-one-source-out over {}; ranges from {}",
            a.config.display(),
            fit.folds
                .iter()
                .map(|f| f.left_out.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            train_config.display()
        );
        let s = shrinkage::shrinkage_for(
            &fit,
            &network,
            &train.train,
            train.data_root.as_deref(),
            train.coarse_res_deg,
            fitted_by,
        )?;
        finecast_model::set_shrinkage(weights, Some(s))?;
        outln!(
            out,
            "shrinkage written to the sidecar of {}",
            weights.display()
        );
    }
    Ok(())
}

/// `finecast map`: render one field as a PNG.
fn map(a: MapArgs, out: &mut String) -> Result<()> {
    let range = a.range.as_deref().map(parse_range).transpose()?;
    let req = MapRequest {
        file: a.file,
        var: a.var,
        time: a.time.as_deref().map(parse_time).transpose()?,
        palette: a.palette,
        range,
        out: a.out.clone(),
        width: a.width,
        height: a.height,
    };
    render_file_map(&req)?;
    outln!(out, "wrote {}", a.out.display());
    Ok(())
}

/// `finecast evaluate`: score methods against a fine truth.
fn evaluate(a: EvaluateArgs, out: &mut String) -> Result<()> {
    let methods = a
        .methods
        .iter()
        .map(|m| Method::parse_on(m, a.weights.as_deref(), a.device))
        .collect::<Result<Vec<_>, _>>()?;
    let req = EvaluateRequest {
        truth: a.truth,
        var: a.var,
        terrain: a.terrain,
        methods,
        region: a.region.as_deref().map(str::parse::<Region>).transpose()?,
        time: a.time.as_deref().map(parse_time).transpose()?,
        coarse_res_deg: a.coarse_res,
        coarse: a.coarse,
        coarse_var: a.coarse_var,
        predictions: parse_predictions(&a.prediction)?,
        plots: a.plots.clone(),
    };
    let report = run_evaluate(&req)?;
    print_table(out, &report);
    print_per_time(out, &report);
    if let Some(path) = a.json {
        write_json(&path, &report)?;
        outln!(out, "scores written to {}", path.display());
    }
    if let Some(dir) = a.plots {
        outln!(out, "plots written to {}", dir.display());
    }
    Ok(())
}

/// Write the command's output; a closed pipe (`finecast info f | head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// `NAME=FILE` pairs of `--prediction`.
fn parse_predictions(items: &[String]) -> Result<Vec<(String, PathBuf)>> {
    items
        .iter()
        .map(|item| {
            let (name, file) = item
                .split_once('=')
                .with_context(|| format!("--prediction '{item}' must be NAME=FILE"))?;
            Ok((name.trim().to_string(), PathBuf::from(file.trim())))
        })
        .collect()
}

/// "LO,HI" with LO < HI.
fn parse_range(s: &str) -> Result<(f64, f64)> {
    let (lo, hi) = s.split_once(',').context("--range must be LO,HI")?;
    let (lo, hi): (f64, f64) = (lo.trim().parse()?, hi.trim().parse()?);
    if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
        bail!("--range {s}: LO must be below HI");
    }
    Ok((lo, hi))
}

/// "3km", "2.5 km", "3000m" or a bare number of metres.
fn parse_resolution(s: &str) -> Result<f64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, scale) = if let Some(n) = t.strip_suffix("km") {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 1.0)
    } else {
        (t.as_str(), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("resolution '{s}' is not like 3km or 3000m"))?;
    if !(v > 0.0 && v.is_finite()) {
        bail!("resolution '{s}' must be positive");
    }
    Ok(v * scale)
}

/// ISO 8601 date-time in UTC (see `finecast_io::parse_utc_time`).
fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    finecast_io::parse_utc_time(s)
        .with_context(|| format!("time '{s}' is not ISO 8601 (e.g. 2019-03-01T12:00Z)"))
}

fn print_table(out: &mut String, r: &EvaluateReport) {
    let when = match (r.time, r.n_times, r.per_time.first(), r.per_time.last()) {
        (Some(t), _, _, _) => format!(" at {t}"),
        (None, n, Some(a), Some(b)) if n > 1 => format!(
            ", {n} times pooled ({} to {})",
            a.time
                .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
                .unwrap_or_default(),
            b.time
                .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
                .unwrap_or_default()
        ),
        _ => String::new(),
    };
    outln!(
        out,
        "{} [{}] from {}{when}; coarse: {}; {} cells scored",
        r.var,
        r.units,
        r.truth,
        r.coarse,
        r.n_scored
    );
    let bands: Vec<String> = r
        .methods
        .values()
        .next()
        .map(|m| m.spectral_ratio.0.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    out!(
        out,
        "{:<10} {:>8} {:>8} {:>8} {:>7}",
        "method",
        "rmse",
        "mae",
        "bias",
        "r"
    );
    for b in &bands {
        out!(out, " {:>9}", format!("P{b}"));
    }
    outln!(out);
    let mut rows: Vec<_> = r.methods.iter().collect();
    rows.sort_by(|a, b| a.1.rmse.total_cmp(&b.1.rmse));
    for (name, m) in rows {
        out!(
            out,
            "{:<10} {:>8.3} {:>8.3} {:>8.3} {:>7}",
            name,
            m.rmse,
            m.mae,
            m.bias,
            m.pearson
                .map(|p| format!("{p:.3}"))
                .unwrap_or_else(|| "-".into())
        );
        for b in &bands {
            let v = m.spectral_ratio.get(b);
            out!(
                out,
                " {:>9}",
                v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())
            );
        }
        outln!(out);
        for (k, v) in &m.fss.0 {
            outln!(
                out,
                "{:<10}   FSS {k}: {}",
                "",
                v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())
            );
        }
    }
}

/// RMSE of every method at each time, when several times were pooled.
fn print_per_time(out: &mut String, r: &EvaluateReport) {
    if r.per_time.len() < 2 {
        return;
    }
    let names: Vec<&String> = r.methods.keys().collect();
    outln!(out);
    out!(out, "{:<22} {:>8}", "RMSE by time", "cells");
    for name in &names {
        out!(out, " {:>9}", name);
    }
    outln!(out);
    for t in &r.per_time {
        let when = t
            .time
            .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
            .unwrap_or_else(|| "-".into());
        out!(out, "{:<22} {:>8}", when, t.n_scored);
        for name in &names {
            out!(out, " {:>9.3}", t.methods[*name].rmse);
        }
        outln!(out);
    }
}

/// Write JSON atomically (temp file in the same directory, then rename).
fn write_json(path: &std::path::Path, report: &EvaluateReport) -> Result<()> {
    let text = serde_json::to_string_pretty(report)? + "\n";
    finecast_io::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
