//! CPU priorities of the server's threads. Request handling (point
//! forecasts, cached tiles, a fraction of a ms each) runs at normal
//! priority; cold XYZ tile renders (a few ms each) just below it, so a
//! saturated tile pool does not delay the cheap requests; larger map images
//! (WMS GetMap, map.png) lower, so tiles overtake them on a busy CPU;
//! downscaling jobs lower still, as batch work.

/// Nice value of tile and legend render threads.
pub const TILE_NICE: i32 = 2;
/// Nice value of map render threads.
pub const MAP_NICE: i32 = 5;
/// Nice value of job threads.
pub const JOB_NICE: i32 = 10;
/// Nice value of the thread that pre-renders new runs' low zooms: the
/// lowest, it only uses idle CPU.
pub const PRERENDER_NICE: i32 = 19;

/// Lower the calling thread's CPU priority to `nice` (Linux nice values are
/// per thread). Failure only costs latency, so it is logged, not fatal.
pub fn lower_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: setpriority has no memory-safety preconditions; with
        // PRIO_PROCESS and who = 0 it changes the calling thread only.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if rc != 0 {
            tracing::debug!(
                "could not lower the thread priority to {nice}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// A pool of `threads` threads (0: one per core) at priority `nice`.
pub fn pool(name: &'static str, threads: usize, nice: i32) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |k| format!("{name}-{k}"))
        .start_handler(move |_| lower_thread_priority(nice))
        .build()
        .map_err(|e| format!("cannot start the {name} thread pool: {e}"))
}
