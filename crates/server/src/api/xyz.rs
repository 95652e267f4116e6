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
use super::state::{App, RenderKind};
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
    let Selection {
        run,
        var,
        time_index: t,
        style,
    } = Selection::from_query(&app, &id, VarName::Exact(&var), &params)?;
    let how = sampling(&params)?;
    let etag = etag_of(&[
        "tile",
        &run.meta.id,
        &var.name,
        &t.to_string(),
        &format!("{z}/{x}/{y}"),
        style.palette.name,
        &format!("{:?}{how:?}", style.range),
    ]);
    let max_age = max_age_for(&id);
    if not_modified(&headers, &etag) {
        return Ok(not_modified_response(&etag, max_age));
    }
    let view = MercatorView::tile(z, x, y);
    let (w, s, e, n) = view.bounds_lonlat();
    let b = run.meta.bbox;
    if e < b[0] || w > b[2] || n < b[1] || s > b[3] {
        return Ok(png_response(transparent_tile(), &etag, max_age, &headers));
    }
    let app2 = app.clone();
    let png = app
        .cached_or_render(&etag, || async move {
            app2.clone()
                .render(RenderKind::Tile, move || {
                    let data = app2.store.field(&run, &var.name, t)?;
                    let rgba = render_rgba(&run.grid, &data, &view, &style, how, [0, 0, 0, 0]);
                    encode_png_rgba(&rgba, TILE_SIZE, TILE_SIZE).map_err(ApiError::internal)
                })
                .await
                .map(Bytes::from)
        })
        .await?;
    Ok(png_response(png, &etag, max_age, &headers))
}
