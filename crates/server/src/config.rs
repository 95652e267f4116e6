//! Command-line flags of `finecast serve` (each also read from `FINECAST_*`)
//! and the validated configuration the server runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ServeError;

/// `finecast serve`: the HTTP API, XYZ tiles, WMS and the web viewer.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "FINECAST_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Where runs/, jobs/, inputs/ and uploads live.
    #[arg(long, env = "FINECAST_DATA_DIR", default_value = "./finecast-data")]
    pub data_dir: PathBuf,
    /// Server-side input files that jobs may name (default: DATA_DIR/inputs).
    #[arg(long, env = "FINECAST_INPUT_DIR")]
    pub input_dir: Option<PathBuf>,
    /// The bundled sample used for the demo run and the default terrain
    /// (default: data/sample of the finecast source tree).
    #[arg(long, env = "FINECAST_SAMPLE_DIR")]
    pub sample_dir: Option<PathBuf>,
    /// DEM for jobs that name no terrain (default: the sample's ETOPO5 terrain).
    #[arg(long, env = "FINECAST_TERRAIN")]
    pub terrain: Option<PathBuf>,
    /// Do not create the demo run on an empty data directory.
    #[arg(long, env = "FINECAST_NO_DEMO")]
    pub no_demo: bool,
    /// API key(s) for the write endpoints (repeat the flag or give a comma
    /// list). Without keys, writes are open.
    #[arg(
        long = "api-key",
        env = "FINECAST_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// Jobs that may wait in the queue; more are refused with 429.
    #[arg(long, env = "FINECAST_MAX_QUEUE", default_value_t = 16)]
    pub max_queue: usize,
    /// Jobs run at once (each also uses all cores for its tiles).
    #[arg(long, env = "FINECAST_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Largest request body (uploads), in MiB.
    #[arg(long, env = "FINECAST_MAX_BODY_MB", default_value_t = 512)]
    pub max_body_mb: u64,
    /// Requests taking longer than this are answered 503.
    #[arg(long, env = "FINECAST_REQUEST_TIMEOUT_S", default_value_t = 60)]
    pub request_timeout_s: u64,
    /// Largest WIDTH or HEIGHT of a rendered image, in pixels.
    #[arg(long, env = "FINECAST_MAX_IMAGE_PX", default_value_t = 4096)]
    pub max_image_px: u32,
    /// Largest number of grid cells of a job's target grid or a data subset.
    #[arg(long, env = "FINECAST_MAX_BBOX_CELLS", default_value_t = 25_000_000)]
    pub max_bbox_cells: u64,
    /// Largest job, in MiB of the fields it holds (target cells × time steps
    /// over its variables, 4 bytes each); bigger jobs are refused with 422.
    #[arg(long, env = "FINECAST_MAX_JOB_MB", default_value_t = 2048)]
    pub max_job_mb: u64,
    /// Memory for rendered tiles and legends, in MiB.
    #[arg(long, env = "FINECAST_TILE_CACHE_MB", default_value_t = 64)]
    pub tile_cache_mb: u64,
    /// Cold renders that may wait for a render thread, per pool (tiles and
    /// legends; maps); more are answered 503 with Retry-After at once.
    #[arg(long, env = "FINECAST_RENDER_QUEUE", default_value_t = 64)]
    pub render_queue: usize,
    /// A render that waited longer than this for a thread, in ms, is
    /// answered 503 with Retry-After instead of being drawn late.
    #[arg(long, env = "FINECAST_RENDER_DEADLINE_MS", default_value_t = 2000)]
    pub render_deadline_ms: u64,
    /// Low-zoom tiles of each new run drawn into the tile cache in the
    /// background before anyone asks (its default variable, first time and
    /// style, whole zooms from 0 up to this many tiles); 0 turns it off.
    #[arg(long, env = "FINECAST_PRERENDER_TILES", default_value_t = 64)]
    pub prerender_tiles: usize,
    /// Keep at most this many runs (the most recently finished); older
    /// ones are deleted once no request reads them. Default: keep all.
    #[arg(long, env = "FINECAST_KEEP_RUNS")]
    pub keep_runs: Option<usize>,
    /// Delete runs that finished more than this many hours ago (checked at
    /// start, after each new run and every 5 minutes). Default: never.
    #[arg(long, env = "FINECAST_MAX_RUN_AGE_H")]
    pub max_run_age_h: Option<f64>,
    /// Memory for decoded fields of runs (point forecasts, tiles), in MiB.
    #[arg(long, env = "FINECAST_FIELD_CACHE_MB", default_value_t = 512)]
    pub field_cache_mb: u64,
    /// Testing aid: each job waits this long (cancellable) before it starts.
    #[arg(
        long,
        env = "FINECAST_DEBUG_JOB_DELAY_MS",
        default_value_t = 0,
        hide = true
    )]
    pub debug_job_delay_ms: u64,
}

/// The validated configuration: directories exist and are canonical, sizes
/// are in bytes.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address and port to listen on.
    pub bind: SocketAddr,
    /// The data directory, canonical.
    pub data_dir: PathBuf,
    /// Published runs, one directory each (`DATA_DIR/runs`).
    pub runs_dir: PathBuf,
    /// Job records, `<id>.json` (`DATA_DIR/jobs`).
    pub jobs_dir: PathBuf,
    /// Uploaded inputs, one directory per job (`DATA_DIR/uploads`).
    pub uploads_dir: PathBuf,
    /// Scratch files of data subsets (`DATA_DIR/tmp`).
    pub tmp_dir: PathBuf,
    /// Where the input files that jobs may name live, canonical.
    pub input_dir: PathBuf,
    /// The bundled sample, when found.
    pub sample_dir: Option<PathBuf>,
    /// DEM for jobs that name none.
    pub terrain: Option<PathBuf>,
    /// Create the demo run on an empty data directory.
    pub demo: bool,
    /// Keys for the write endpoints; empty leaves writes open.
    pub api_keys: Vec<String>,
    /// Jobs that may wait in the queue.
    pub max_queue: usize,
    /// Job worker threads.
    pub workers: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Requests taking longer are answered 503.
    pub request_timeout: Duration,
    /// Largest width or height of a rendered image, pixels.
    pub max_image_px: u32,
    /// Largest number of cells of a job's target grid or a data subset.
    pub max_bbox_cells: u64,
    /// Tiles pre-rendered per new run (`--prerender-tiles`).
    pub prerender_tiles: usize,
    /// Which runs to keep (`--keep-runs`, `--max-run-age-h`).
    pub retention: crate::store::Retention,
    /// Largest job's fields, bytes (`--max-job-mb`).
    pub max_job_bytes: u64,
    /// Cold renders that may wait per render pool (`--render-queue`).
    pub render_queue: usize,
    /// Longest wait of a render for a thread (`--render-deadline-ms`).
    pub render_deadline: Duration,
    /// Memory for rendered tiles and legends, bytes.
    pub tile_cache_bytes: usize,
    /// Memory for decoded fields, bytes.
    pub field_cache_bytes: usize,
    /// Testing aid: how long each job waits before it starts.
    pub job_delay: Duration,
}

const MIB: u64 = 1024 * 1024;

impl Config {
    /// Check the flags and create the data directories.
    pub fn from_args(args: &ServeArgs) -> Result<Config, ServeError> {
        let bad = |m: String| ServeError::Config(m);
        let bind: SocketAddr = args.bind.parse().map_err(|e| {
            bad(format!(
                "--bind '{}': {e} (expected e.g. 127.0.0.1:8080)",
                args.bind
            ))
        })?;
        if args.max_body_mb == 0
            || args.request_timeout_s == 0
            || args.workers == 0
            || args.max_image_px < 16
            || args.render_deadline_ms == 0
            || args.keep_runs == Some(0)
            || args
                .max_run_age_h
                .is_some_and(|h| !(h.is_finite() && h > 0.0))
        {
            return Err(bad(
                "--max-body-mb, --request-timeout-s, --workers, --render-deadline-ms, --keep-runs and --max-run-age-h must be positive, --max-image-px at least 16"
                    .into(),
            ));
        }
        std::fs::create_dir_all(&args.data_dir).map_err(|e| {
            bad(format!(
                "cannot create --data-dir {}: {e}",
                args.data_dir.display()
            ))
        })?;
        // Canonical, so that every path check below compares like with like.
        let data_dir = args
            .data_dir
            .canonicalize()
            .map_err(|e| bad(format!("--data-dir {}: {e}", args.data_dir.display())))?;
        let input_dir = args
            .input_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("inputs"));
        let dirs = [
            data_dir.join("runs"),
            data_dir.join("jobs"),
            data_dir.join("uploads"),
            data_dir.join("tmp"),
            input_dir.clone(),
        ];
        for d in &dirs {
            std::fs::create_dir_all(d)
                .map_err(|e| bad(format!("cannot create {}: {e}", d.display())))?;
        }
        let input_dir = input_dir
            .canonicalize()
            .map_err(|e| bad(format!("--input-dir {}: {e}", input_dir.display())))?;
        let sample_dir = match &args.sample_dir {
            Some(d) if d.join(SAMPLE_FORECAST).is_file() => Some(d.clone()),
            Some(d) => {
                return Err(bad(format!(
                    "--sample-dir {} has no {SAMPLE_FORECAST}",
                    d.display()
                )))
            }
            None => find_sample_dir(),
        };
        let terrain = match &args.terrain {
            Some(t) if t.is_file() => Some(t.clone()),
            Some(t) => return Err(bad(format!("--terrain {} is not a file", t.display()))),
            None => sample_dir
                .as_ref()
                .map(|d| d.join(SAMPLE_TERRAIN))
                .filter(|p| p.is_file()),
        };
        let api_keys: Vec<String> = args
            .api_keys
            .iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
        Ok(Config {
            bind,
            runs_dir: dirs[0].clone(),
            jobs_dir: dirs[1].clone(),
            uploads_dir: dirs[2].clone(),
            tmp_dir: dirs[3].clone(),
            data_dir,
            input_dir,
            sample_dir,
            terrain,
            demo: !args.no_demo,
            api_keys,
            max_queue: args.max_queue,
            workers: args.workers,
            max_body_bytes: usize::try_from(args.max_body_mb.saturating_mul(MIB))
                .unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(args.request_timeout_s),
            max_image_px: args.max_image_px,
            max_bbox_cells: args.max_bbox_cells,
            tile_cache_bytes: usize::try_from(args.tile_cache_mb.saturating_mul(MIB))
                .unwrap_or(usize::MAX),
            field_cache_bytes: usize::try_from(args.field_cache_mb.saturating_mul(MIB))
                .unwrap_or(usize::MAX),
            prerender_tiles: args.prerender_tiles,
            retention: crate::store::Retention {
                keep: args.keep_runs,
                max_age: args
                    .max_run_age_h
                    .map(|h| chrono::Duration::milliseconds((h * 3.6e6) as i64)),
            },
            max_job_bytes: args.max_job_mb.saturating_mul(MIB),
            render_queue: args.render_queue,
            render_deadline: Duration::from_millis(args.render_deadline_ms),
            job_delay: Duration::from_millis(args.debug_job_delay_ms),
        })
    }
}

/// The bundled sample forecast: 0.25° over the Alps.
pub const SAMPLE_FORECAST: &str = "forecast_alps_0p25.nc";
/// The bundled sample's DEM (ETOPO5), the default terrain.
pub const SAMPLE_TERRAIN: &str = "terrain_alps_etopo5.nc";

/// data/sample of the source tree: next to the executable's workspace
/// (`target/<profile>/finecast` → `../../data/sample`), under the current
/// directory, or where this crate was built from.
fn find_sample_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for up in exe.ancestors().skip(1).take(4) {
            candidates.push(up.join("data/sample"));
        }
    }
    candidates.push(PathBuf::from("data/sample"));
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sample"));
    candidates
        .into_iter()
        .find(|d| d.join(SAMPLE_FORECAST).is_file() && d.join(SAMPLE_TERRAIN).is_file())
        .map(|d| d.canonicalize().unwrap_or(d))
}
