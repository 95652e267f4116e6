//! XYZ tiles in EPSG:3857 (256 px PNG, transparent outside the run's
//! domain) and their TileJSON.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::extract::{base_url, ApiPath, Params, Selection, VarName};
use super::response::{
    etag_of, json_response, max_age_for, not_modified, not_modified_response, png_response,
};
use super::state::{App, AppState, RenderKind};
use crate::error::ApiError;
use crate::raster::{
    encode_png_rgba, render_rgba, transparent_png, MercatorView, Sampling, TILE_SIZE,
};
use crate::times::iso;

/// The deepest zoom served; beyond it a tile pixel is a few centimetres.
const MAX_ZOOM: u32 = 22;

/// The tile outside a run's domain, encoded once.
fn transparent_tile() -> Bytes {
    static TILE: OnceLock<Bytes> = OnceLock::new();
    TILE.get_or_init(|| Bytes::from(transparent_png(TILE_SIZE, TILE_SIZE)))
        .clone()
}

/// One XYZ tile of a selection: its ETag and how to draw it, shared by
/// requests and by [`prerender`].
pub struct Tile {
    sel: Selection,
    how: Sampling,
    view: MercatorView,
    /// Identifies the image: run, variable, time, tile, palette, range and
    /// sampling.
    pub etag: String,
}

impl Tile {
    /// Tile `(z, x, y)` of `sel` sampled `how`.
    pub fn new(sel: Selection, how: Sampling, (z, x, y): (u32, u32, u32)) -> Tile {
        let etag = etag_of(&[
            "tile",
            &sel.run.meta.id,
            &sel.var.name,
            &sel.time_index.to_string(),
            &format!("{z}/{x}/{y}"),
            sel.style.palette.name,
            &format!("{:?}{how:?}", sel.style.range),
        ]);
        Tile {
            view: MercatorView::tile(z, x, y),
            sel,
            how,
            etag,
        }
    }

    /// Whether the tile overlaps the run's bounding box (else it is the
    /// transparent tile, drawn once for all).
    pub fn touches_run(&self) -> bool {
        let (w, s, e, n) = self.view.bounds_lonlat();
        let b = self.sel.run.meta.bbox;
        !(e < b[0] || w > b[2] || n < b[1] || s > b[3])
    }

    /// The PNG (blocking: call on a render thread).
    pub fn draw(&self, app: &AppState) -> Result<Vec<u8>, ApiError> {
        let sel = &self.sel;
        let data = app.store.field(&sel.run, &sel.var.name, sel.time_index)?;
        let rgba = render_rgba(
            &sel.run.grid,
            &data,
            &self.view,
            &sel.style,
            self.how,
            [0, 0, 0, 0],
        );
        encode_png_rgba(&rgba, TILE_SIZE, TILE_SIZE).map_err(ApiError::internal)
    }
}

/// Draw the low zooms of a run's default variable at its first time, with
/// the default style, into the image cache (at most `budget` tiles, zoom by
/// zoom from 0, whole zooms only), so the first visitors of a new map hit
/// the cache. Blocking; runs on the low-priority pre-render thread. The
/// number of tiles drawn.
pub fn prerender(app: &AppState, run_id: &str, budget: usize) -> usize {
    let sel = || Selection::from_query(app, run_id, VarName::OrDefault(None), &Params::default());
    let Ok(first) = sel() else { return 0 };
    let [west, south, east, north] = first.run.meta.bbox;
    let max_zoom = max_zoom_for(first.run.grid.spacing_m().0, (south + north) / 2.0);
    let (mut drawn, mut planned) = (0, 0);
    for z in 0..=max_zoom {
        let (x0, y0) = crate::raster::tile_of(z, west, north);
        let (x1, y1) = crate::raster::tile_of(z, east, south);
        let count = (x1 - x0 + 1) as usize * (y1 - y0 + 1) as usize;
        if planned + count > budget {
            break;
        }
        planned += count;
        for x in x0..=x1 {
            for y in y0..=y1 {
                let Ok(sel) = sel() else { return drawn };
                let tile = Tile::new(sel, Sampling::Bilinear, (z, x, y));
                if tile.touches_run() && app.warm(&tile.etag, || tile.draw(app).map(Bytes::from)) {
                    drawn += 1;
                }
            }
        }
    }
    drawn
}

/// Start the pre-render thread (nice 19) when `--prerender-tiles` is not 0:
/// every 2 s it looks for runs it has not seen and draws their low zooms
/// ([`prerender`]); runs present at start count as new.
pub fn start_prerender(app: App) {
    let budget = app.config.prerender_tiles;
    if budget == 0 {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("finecast-prerender".into())
        .spawn(move || {
            crate::priority::lower_thread_priority(crate::priority::PRERENDER_NICE);
            let mut seen = std::collections::HashSet::new();
            loop {
                for run in app.store.list() {
                    if seen.insert(run.meta.id.clone()) {
                        let n = prerender(&app, &run.meta.id, budget);
                        tracing::debug!(run = %run.meta.id, tiles = n, "pre-rendered low zooms");
                    }
                }
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the pre-render thread: {e}");
    }
}

/// `interp`: how values are sampled between cell centres.
fn sampling(p: &Params) -> Result<Sampling, ApiError> {
    match p.nonempty("interp") {
        None | Some("bilinear") => Ok(Sampling::Bilinear),
        Some("nearest") => Ok(Sampling::Nearest),
        Some(o) => Err(ApiError::Unprocessable(format!(
            "interp '{}' must be nearest or bilinear",
            crate::ids::truncate(o, 20)
        ))),
    }
}

/// The zoom at which a screen pixel is about a quarter of a grid cell:
/// zooming further only magnifies cells.
fn max_zoom_for(dx_m: f64, lat: f64) -> u32 {
    let equator_px_m =
        2.0 * std::f64::consts::PI * crate::raster::MERCATOR_R / f64::from(TILE_SIZE);
    let want = (dx_m / 4.0).max(1.0);
    let z = (equator_px_m * lat.to_radians().cos() / want).log2().ceil();
    (z.max(0.0) as u32).min(MAX_ZOOM)
}

/// `GET /v1/tiles/{run}/tilejson.json?var=&time=&palette=&range=&interp=`:
/// TileJSON 3.0 for a variable's tiles, with the query carried into the
/// tile URL and a link to the legend.
pub async fn tilejson(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Selection {
        run,
        var,
        time_index: t,
        style,
    } = Selection::from_query(&app, &id, VarName::OrDefault(params.get("var")), &params)?;
    let base = base_url(&app, &headers);
    let mut query = Vec::new();
    if let Some(time) = var.times.get(t) {
        query.push(format!("time={}", iso(time)));
    }
    for key in ["palette", "range", "interp"] {
        if let Some(v) = params.nonempty(key) {
            query.push(format!("{key}={}", v.replace(['&', '#', ' '], "")));
        }
    }
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let b = run.meta.bbox;
    let centre = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    let maxzoom = max_zoom_for(run.meta.grid.dx_m, centre.1);
    let var_name = &var.name;
    Ok(json_response(
        StatusCode::OK,
        serde_json::json!({
            "tilejson": "3.0.0",
            "name": format!("finecast {} {}", run.meta.id, var.name),
            "description": format!("{} [{}], finecast run {} ({})", var.long_name.as_deref().unwrap_or(&var.name), var.units, run.meta.id, run.meta.method),
            "version": "1.0.0",
            "attribution": "finecast",
            "scheme": "xyz",
            "tiles": [format!("{base}/v1/tiles/{}/{var_name}/{{z}}/{{x}}/{{y}}.png{q}", run.meta.id)],
            "minzoom": 0,
            "maxzoom": maxzoom,
            "bounds": b,
            "center": [centre.0, centre.1, maxzoom.saturating_sub(3)],
            "finecast": {
                "run": run.meta.id,
                "variable": var.name,
                "units": var.units,
                "time": var.times.get(t).map(iso),
                "times": var.times.iter().map(iso).collect::<Vec<_>>(),
                "palette": style.palette.name,
                "range": [style.range.0, style.range.1],
                "legend": format!("{base}/v1/runs/{}/legend.png?var={var_name}", run.meta.id),
            },
        }),
    ))
}

/// `GET /v1/tiles/{run}/{var}/{z}/{x}/{y}.png?time=&palette=&range=&interp=`:
/// a 256 px EPSG:3857 tile, transparent outside the run's domain.
pub async fn tile(
    State(app): State<App>,
    ApiPath((id, var, z, x, y)): ApiPath<(String, String, u32, u32, String)>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let y: u32 = y.strip_suffix(".png").unwrap_or(&y).parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "tile row '{}' is not a number",
            crate::ids::truncate(&y, 20)
        ))
    })?;
    if z > MAX_ZOOM {
        return Err(ApiError::NotFound(format!(
            "zoom {z} is above the maximum {MAX_ZOOM}"
        )));
    }
    if x >= (1u32 << z) || y >= (1u32 << z) {
        return Err(ApiError::NotFound(format!(
            "tile {z}/{x}/{y} does not exist at zoom {z}"
        )));
    }
    let sel = Selection::from_query(&app, &id, VarName::Exact(&var), &params)?;
    let tile = Tile::new(sel, sampling(&params)?, (z, x, y));
    let etag = tile.etag.clone();
    let max_age = max_age_for(&id);
    if not_modified(&headers, &etag) {
        return Ok(not_modified_response(&etag, max_age));
    }
    if !tile.touches_run() {
        return Ok(png_response(transparent_tile(), &etag, max_age, &headers));
    }
    let app2 = app.clone();
    let png = app
        .cached_or_render(&etag, || async move {
            app2.clone()
                .render(RenderKind::Tile, move || tile.draw(&app2))
                .await
                .map(Bytes::from)
        })
        .await?;
    Ok(png_response(png, &etag, max_age, &headers))
}
