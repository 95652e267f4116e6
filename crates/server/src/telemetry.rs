//! Telemetry: Prometheus metrics in the text exposition format, kept by
//! hand: a few counters and one histogram family do not justify a metrics
//! framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: fine at the low end,
/// where point forecasts and cached tiles live.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The counters of the process's lifetime, shared by the HTTP layer and
/// the run store.
#[derive(Default)]
pub struct Metrics {
    /// Requests by (route, method, status).
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Tiles and legends served from the image cache.
    pub tile_cache_hits: AtomicU64,
    /// Tiles and legends that had to be rendered.
    pub tile_cache_misses: AtomicU64,
    /// Fields found decoded in memory.
    pub field_cache_hits: AtomicU64,
    /// Fields read and decoded from a run's NetCDF.
    pub field_cache_misses: AtomicU64,
    /// Cold renders answered 503 because their pool was saturated.
    pub renders_shed: AtomicU64,
    /// Low-zoom tiles of new runs drawn ahead of any request.
    pub tiles_prerendered: AtomicU64,
}

/// Gauges read at scrape time from the job queue and caches.
pub struct Gauges {
    /// Jobs waiting for a worker.
    pub queue_depth: usize,
    /// Jobs known to the server, by status name.
    pub jobs_by_state: Vec<(&'static str, usize)>,
    /// Runs in the store.
    pub runs: usize,
    /// Bytes of rendered images in memory.
    pub tile_cache_bytes: usize,
    /// Bytes of decoded fields in memory.
    pub field_cache_bytes: usize,
    /// Whether `/readyz` would answer 200.
    pub ready: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// Record one request; `route` is the matched route template, so the
    /// label set stays small whatever clients request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        *lock(&self.requests)
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let mut latency = lock(&self.latency);
        let h = latency.entry(route.to_string()).or_default();
        for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *count += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Count one event on a cache counter.
    pub fn hit(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics page (`GET /metrics`): counters, histograms and `g`.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let _ = self.write(&mut out, g);
        out
    }

    fn write(&self, out: &mut String, g: &Gauges) -> std::fmt::Result {
        writeln!(
            out,
            "# HELP finecast_http_requests_total HTTP requests by route, method and status."
        )?;
        writeln!(out, "# TYPE finecast_http_requests_total counter")?;
        for ((route, method, status), n) in lock(&self.requests).iter() {
            writeln!(
                out,
                "finecast_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            )?;
        }
        writeln!(
            out,
            "# HELP finecast_http_request_duration_seconds HTTP request latency by route."
        )?;
        writeln!(
            out,
            "# TYPE finecast_http_request_duration_seconds histogram"
        )?;
        for (route, h) in lock(&self.latency).iter() {
            let route = escape(route);
            for (count, bound) in h.counts.iter().zip(BUCKETS) {
                writeln!(
                    out,
                    "finecast_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                )?;
            }
            writeln!(
                out,
                "finecast_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            )?;
            writeln!(
                out,
                "finecast_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            )?;
            writeln!(
                out,
                "finecast_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            )?;
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: usize| -> std::fmt::Result {
            writeln!(out, "# HELP {name} {help}")?;
            writeln!(out, "# TYPE {name} gauge")?;
            writeln!(out, "{name} {v}")
        };
        gauge(
            out,
            "finecast_job_queue_depth",
            "Jobs waiting for a worker.",
            g.queue_depth,
        )?;
        writeln!(
            out,
            "# HELP finecast_jobs Jobs known to the server by state."
        )?;
        writeln!(out, "# TYPE finecast_jobs gauge")?;
        for (state, n) in &g.jobs_by_state {
            writeln!(out, "finecast_jobs{{state=\"{state}\"}} {n}")?;
        }
        gauge(out, "finecast_runs", "Runs in the run store.", g.runs)?;
        gauge(
            out,
            "finecast_ready",
            "1 when the server is ready.",
            usize::from(g.ready),
        )?;
        gauge(
            out,
            "finecast_tile_cache_bytes",
            "Bytes of rendered tiles in memory.",
            g.tile_cache_bytes,
        )?;
        gauge(
            out,
            "finecast_field_cache_bytes",
            "Bytes of decoded fields in memory.",
            g.field_cache_bytes,
        )?;
        let counter =
            |out: &mut String, name: &str, help: &str, c: &AtomicU64| -> std::fmt::Result {
                writeln!(out, "# HELP {name} {help}")?;
                writeln!(out, "# TYPE {name} counter")?;
                writeln!(out, "{name} {}", c.load(Ordering::Relaxed))
            };
        counter(
            out,
            "finecast_tile_cache_hits_total",
            "Tiles served from the cache.",
            &self.tile_cache_hits,
        )?;
        counter(
            out,
            "finecast_tile_cache_misses_total",
            "Tiles rendered.",
            &self.tile_cache_misses,
        )?;
        counter(
            out,
            "finecast_tiles_prerendered_total",
            "Low-zoom tiles of new runs drawn into the cache before any request (--prerender-tiles).",
            &self.tiles_prerendered,
        )?;
        counter(
            out,
            "finecast_renders_shed_total",
            "Cold renders answered 503 (render queue full or deadline passed).",
            &self.renders_shed,
        )?;
        counter(
            out,
            "finecast_field_cache_hits_total",
            "Fields found decoded in memory.",
            &self.field_cache_hits,
        )?;
        counter(
            out,
            "finecast_field_cache_misses_total",
            "Fields read from disk.",
            &self.field_cache_misses,
        )?;
        Ok(())
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
