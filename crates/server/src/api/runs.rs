//! Runs: metadata, data download (NetCDF, GeoTIFF), framed PNG maps and
//! colour-bar legends.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use finecast_io::{OutputVar, Provenance};
use finecast_render::{map_layout, render_map_png_bytes, MapSpec, Palette};
use ndarray::{s, Array2};

use super::{
    blocking, etag_of, json_response, max_age_for, png_response, ApiPath, App, Params, RenderKind,
};
use crate::error::ApiError;
use crate::raster::Style;
use crate::store::{Run, VarMeta, OROGRAPHY_VAR};
use crate::times::iso;

/// The public description of a run.
pub fn run_view(run: &Run) -> serde_json::Value {
    let m = &run.meta;
    let id = &m.id;
    let vars: Vec<serde_json::Value> = m
        .variables
        .iter()
        .map(|v| {
            serde_json::json!({
                "name": v.name,
                "standard_name": v.standard_name,
                "long_name": v.long_name,
                "units": v.units,
                "static": v.times.is_empty(),
                "times": v.times.iter().map(iso).collect::<Vec<_>>(),
                "palette": v.palette,
                "display_range": v.display_range,
                "value_range": v.value_range,
            })
        })
        .collect();
    serde_json::json!({
        "id": id,
        "demo": m.demo,
        "job_id": m.job_id,
        "created": iso(&m.created),
        "finished": iso(&m.finished),
        "reference_time": m.reference_time.as_ref().map(iso),
        "valid_times": m.valid_times.iter().map(iso).collect::<Vec<_>>(),
        "method": m.method,
        "weights_sha256": m.weights_sha256,
        "inputs": m.inputs.iter().map(|i| serde_json::json!({"file": i.path, "sha256": i.sha256})).collect::<Vec<_>>(),
        "finecast_version": m.finecast_version,
        "grid": m.grid,
        "crs": {"grid_mapping_name": m.grid.grid_mapping, "proj4": m.grid.proj4},
        "bbox": m.bbox,
        "variables": vars,
        "links": [
            {"rel": "self", "href": format!("/v1/runs/{id}")},
            {"rel": "data", "href": format!("/v1/runs/{id}/data"), "type": "application/x-netcdf"},
            {"rel": "map", "href": format!("/v1/runs/{id}/map.png"), "type": "image/png"},
            {"rel": "tilejson", "href": format!("/v1/tiles/{id}/tilejson.json")},
            {"rel": "wms", "href": "/wms?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0"},
        ],
    })
}

pub async fn list(State(app): State<App>) -> Result<Response, ApiError> {
    let runs = app.store.list();
    if runs.is_empty() {
        app.check_ready()?;
    }
    let latest = runs.first().map(|r| r.meta.id.clone());
    let views: Vec<serde_json::Value> = runs.iter().map(|r| run_view(r)).collect();
    Ok(json_response(
        StatusCode::OK,
        serde_json::json!({"latest": latest, "runs": views}),
    ))
}

pub async fn get_one(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let run = app.run(&id)?;
    Ok(json_response(StatusCode::OK, run_view(&run)))
}

/// `var` or the first time-dependent variable.
pub fn pick_var<'a>(run: &'a Run, name: Option<&str>) -> Result<&'a VarMeta, ApiError> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => run.var(n),
        None => run
            .meta
            .variables
            .iter()
            .find(|v| !v.times.is_empty())
            .or(run.meta.variables.first())
            .ok_or_else(|| ApiError::NotFound("the run has no variables".into())),
    }
}

/// The palette and colour range for a request: named palette or the
/// variable's; `lo,hi` or the variable's fixed default range.
pub fn resolve_style(
    var: &VarMeta,
    palette: Option<&str>,
    range: Option<&str>,
) -> Result<Style, ApiError> {
    let palette = match palette
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "default")
    {
        Some(name) => Palette::by_name(name).ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "unknown palette '{}'; available: {}",
                crate::ids::truncate(name, 40),
                Palette::NAMES.join(", ")
            ))
        })?,
        None => Palette::by_name(&var.palette).unwrap_or_else(|| Palette::for_variable(&var.name)),
    };
    let range = match range
        .map(str::trim)
        .filter(|r| !r.is_empty() && *r != "default")
    {
        Some("auto") => var
            .value_range
            .map(|r| (r[0], r[1]))
            .filter(|r| r.0 < r.1)
            .unwrap_or((var.display_range[0], var.display_range[1])),
        Some(text) => parse_range(text)?,
        None => (var.display_range[0], var.display_range[1]),
    };
    Ok(Style::new(palette, range))
}

/// `lo,hi` with lo < hi, both finite.
pub fn parse_range(text: &str) -> Result<(f64, f64), ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "range '{}' must be LO,HI (numbers, LO < HI)",
            crate::ids::truncate(text, 40)
        ))
    };
    let (lo, hi) = text.split_once(',').ok_or_else(bad)?;
    let (lo, hi): (f64, f64) = (
        lo.trim().parse().map_err(|_| bad())?,
        hi.trim().parse().map_err(|_| bad())?,
    );
    if lo.is_finite() && hi.is_finite() && lo < hi {
        Ok((lo, hi))
    } else {
        Err(bad())
    }
}

fn image_size(app: &App, p: &Params, default: (u32, u32)) -> Result<(u32, u32), ApiError> {
    let w = p.parse::<u32>("width")?.unwrap_or(default.0);
    let h = p.parse::<u32>("height")?.unwrap_or(default.1);
    let max = app.config.max_image_px;
    if w > max || h > max {
        return Err(ApiError::Unprocessable(format!(
            "image {w}x{h} exceeds this server's limit of {max} px (--max-image-px)"
        )));
    }
    if w < 200 || h < 150 {
        return Err(ApiError::Unprocessable(format!(
            "image {w}x{h} is below the minimum 200x150"
        )));
    }
    Ok((w, h))
}

/// `GET /v1/runs/{run}/map.png`: a framed map with title, colour bar,
/// valid time, source and method, hillshaded by the run's orography.
pub async fn map_png(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let run = app.run(&id)?;
    let var = pick_var(&run, params.get("var"))?.clone();
    let t = run.time_index(&var, params.get("time"))?;
    let style = resolve_style(&var, params.get("palette"), params.get("range"))?;
    let (width, height) = image_size(&app, &params, (1000, 800))?;
    let hillshade = !matches!(params.get("hillshade"), Some("false" | "0" | "no"));
    let etag = etag_of(&[
        "map",
        &run.meta.id,
        &var.name,
        &t.to_string(),
        style.palette.name,
        &format!("{:?}", style.range),
        &format!("{width}x{height}{hillshade}"),
    ]);
    let max_age = max_age_for(&id);
    if super::not_modified(&headers, &etag) {
        return Ok(super::not_modified_response(&etag, max_age));
    }
    let app2 = app.clone();
    let png = app
        .render(RenderKind::Map, move || {
            let data = app2.store.field(&run, &var.name, t)?;
            let orog = if hillshade && var.name != OROGRAPHY_VAR {
                run.orography.clone()
            } else {
                None
            };
            let valid = var
                .times
                .get(t)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "static field".into());
            let spec = MapSpec {
                title: var.long_name.clone().unwrap_or_else(|| var.name.clone()),
                subtitle: format!(
                    "valid {valid} | finecast run {} | method {}",
                    run.meta.id, run.meta.method
                ),
                units: var.units.clone(),
                data: data.view(),
                north_up_rows: run.grid.is_y_descending(),
                palette: style.palette.clone(),
                range: style.range,
                width,
                height,
                hillshade: orog.as_ref().map(|z| z.view()),
            };
            render_map_png_bytes(&spec).map_err(|e| ApiError::Unprocessable(e.to_string()))
        })
        .await?;
    Ok(png_response(Bytes::from(png), &etag, max_age, &headers))
}

/// A vertical colour bar with tick labels and units (PNG), as drawn beside
/// finecast's maps.
pub fn legend_png(
    units: &str,
    palette: &Palette,
    range: (f64, f64),
    height: u32,
) -> Result<Vec<u8>, ApiError> {
    // The map renderer lays out and labels colour bars; render a map of a
    // dummy field without a title and keep only the bar column.
    let dummy = Array2::from_shape_fn((64, 1), |(j, _)| j as f32);
    let spec = MapSpec {
        title: String::new(),
        subtitle: String::new(),
        units: units.to_string(),
        data: dummy.view(),
        north_up_rows: true,
        palette: palette.clone(),
        range,
        width: 320,
        height: height.clamp(150, 2048),
        hillshade: None,
    };
    let layout = map_layout(&spec).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let png = render_map_png_bytes(&spec).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().map_err(ApiError::internal)?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(ApiError::internal)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let ch = info.color_type.samples();
    let x0 = (layout.colorbar.x as usize).saturating_sub(6);
    // Trim to the last column with ink, plus a small margin.
    let ink = |x: usize| {
        (0..h).any(|y| {
            buf[(y * w + x) * ch..(y * w + x) * ch + 3]
                .iter()
                .any(|&c| c < 250)
        })
    };
    let x1 = ((x0..w).rev().find(|&x| ink(x)).unwrap_or(w - 1) + 6).min(w);
    let y1 = ((layout.colorbar.y + layout.colorbar.height) as usize + 12).min(h);
    let (cw, chh) = (x1 - x0, y1);
    let mut rgba = Vec::with_capacity(cw * chh * 4);
    for y in 0..chh {
        for x in x0..x1 {
            let p = &buf[(y * w + x) * ch..(y * w + x) * ch + 3];
            rgba.extend_from_slice(&[p[0], p[1], p[2], 255]);
        }
    }
    crate::raster::encode_png_rgba(&rgba, cw as u32, chh as u32).map_err(ApiError::internal)
}

/// ETag of a colour bar image.
pub fn legend_etag(units: &str, style: &Style, height: u32) -> String {
    etag_of(&[
        "legend",
        units,
        style.palette.name,
        &format!("{:?}", style.range),
        &height.to_string(),
    ])
}

/// A colour bar PNG from the image cache, rendered once on a miss.
pub async fn cached_legend(
    app: &App,
    etag: &str,
    units: String,
    style: Style,
    height: u32,
) -> Result<Bytes, ApiError> {
    app.cached_or_render(etag, || async move {
        app.render(RenderKind::Tile, move || {
            legend_png(&units, &style.palette, style.range, height)
        })
        .await
        .map(Bytes::from)
    })
    .await
}

/// `GET /v1/runs/{run}/legend.png?var=&palette=&range=&height=`.
pub async fn legend_png_handler(
    app: &App,
    run: Arc<Run>,
    params: &Params,
    headers: &HeaderMap,
    run_param: &str,
) -> Result<Response, ApiError> {
    let var = pick_var(&run, params.get("var").or_else(|| params.get_ci("layer")))?.clone();
    let style = resolve_style(
        &var,
        params.get("palette"),
        params
            .get("range")
            .or_else(|| params.get_ci("colorscalerange")),
    )?;
    let height = params.parse::<u32>("height")?.unwrap_or(300);
    let etag = legend_etag(&var.units, &style, height);
    let max_age = max_age_for(run_param);
    if super::not_modified(headers, &etag) {
        return Ok(super::not_modified_response(&etag, max_age));
    }
    let png = cached_legend(app, &etag, var.units.clone(), style, height).await?;
    Ok(png_response(png, &etag, max_age, headers))
}

pub async fn legend_png_route(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let run = app.run(&id)?;
    legend_png_handler(&app, run, &params, &headers, &id).await
}

/// `[west, south, east, north]` from `W,S,E,N`.
pub fn parse_bbox(text: &str) -> Result<[f64; 4], ApiError> {
    let bad = |why: &str| {
        ApiError::BadRequest(format!("bbox '{}': {why}", crate::ids::truncate(text, 60)))
    };
    let v: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("must be four numbers west,south,east,north"))?;
    let [w, s, e, n] = v[..] else {
        return Err(bad("must be four numbers west,south,east,north"));
    };
    if !v.iter().all(|x| x.is_finite())
        || !(-90.0..=90.0).contains(&s)
        || !(-90.0..=90.0).contains(&n)
    {
        return Err(bad("latitudes must be within -90..90"));
    }
    if w >= e || s >= n {
        return Err(bad(
            "needs west < east and south < north (order west,south,east,north)",
        ));
    }
    Ok([w, s, e, n])
}

/// Index rectangle `(j0, j1, i0, i1)` (exclusive ends) of the cells of a
/// grid inside a lon/lat box.
fn index_window(run: &Run, b: [f64; 4]) -> Option<(usize, usize, usize, usize)> {
    let grid = &run.grid;
    let region = finecast_grid::Region::new(b[1], b[3], b[0], b[2]).ok()?;
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (lon, lat) in region.outline(64) {
        let (x, y) = grid.to_native(lon, lat)?;
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    let span = |coords: &[f64], lo: f64, hi: f64| -> Option<(usize, usize)> {
        let inside: Vec<usize> = (0..coords.len())
            .filter(|&k| coords[k] >= lo && coords[k] <= hi)
            .collect();
        Some((*inside.first()?, *inside.last()? + 1))
    };
    let (j0, j1) = span(grid.y(), ymin, ymax)?;
    let (i0, i1) = span(grid.x(), xmin, xmax)?;
    Some((j0, j1, i0, i1))
}

/// `GET /v1/runs/{run}/data`: the run's NetCDF, a subset of it
/// (`var`, `time`, `bbox`), or one field as a GeoTIFF.
pub async fn data(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let run = app.run(&id)?;
    let format = params
        .nonempty("format")
        .unwrap_or("netcdf")
        .to_ascii_lowercase();
    let bbox = params.nonempty("bbox").map(parse_bbox).transpose()?;
    let vars: Vec<VarMeta> = match params.nonempty("var") {
        Some(list) => list
            .split(',')
            .map(|v| run.var(v.trim()).cloned())
            .collect::<Result<_, _>>()?,
        None => run.meta.variables.clone(),
    };
    let time = params.nonempty("time").map(str::to_string);
    match format.as_str() {
        "netcdf" | "nc" => {
            if params.nonempty("var").is_none() && time.is_none() && bbox.is_none() {
                return stream_file(&run).await;
            }
            let name = format!("{}_subset.nc", run.meta.id);
            let bytes =
                blocking(move || netcdf_subset(&app, &run, &vars, time.as_deref(), bbox)).await?;
            Ok(attachment(bytes, "application/x-netcdf", &name))
        }
        "geotiff" | "tiff" | "tif" => {
            let [var] = &vars[..] else {
                return Err(ApiError::Unprocessable(
                    "a GeoTIFF holds one variable: give exactly one 'var'".into(),
                ));
            };
            let var = var.clone();
            let name = format!("{}_{}.tif", run.meta.id, var.name);
            let bytes =
                blocking(move || geotiff_of(&app, &run, &var, time.as_deref(), bbox)).await?;
            Ok(attachment(bytes, "image/tiff", &name))
        }
        other => Err(ApiError::Unprocessable(format!(
            "format '{}' is not one of netcdf, geotiff",
            crate::ids::truncate(other, 20)
        ))),
    }
}

fn attachment(bytes: Vec<u8>, ctype: &'static str, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

async fn stream_file(run: &Run) -> Result<Response, ApiError> {
    let path = run.nc_path();
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(ApiError::internal)?;
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let name = format!("{}.nc", run.meta.id);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-netcdf".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn netcdf_subset(
    app: &App,
    run: &Run,
    vars: &[VarMeta],
    time: Option<&str>,
    bbox: Option<[f64; 4]>,
) -> Result<Vec<u8>, ApiError> {
    let (ny, nx) = run.grid.shape();
    let (j0, j1, i0, i1) = match bbox {
        Some(b) => index_window(run, b).ok_or_else(|| {
            ApiError::Unprocessable("the bbox does not overlap the run's grid".into())
        })?,
        None => (0, ny, 0, nx),
    };
    let cells = ((j1 - j0) * (i1 - i0)) as u64;
    if cells > app.config.max_bbox_cells {
        return Err(ApiError::Unprocessable(format!(
            "the subset has {cells} cells, above this server's limit of {} (--max-bbox-cells)",
            app.config.max_bbox_cells
        )));
    }
    let grid = run.grid.subset(j0, j1, i0, i1);
    let mut outputs = Vec::new();
    for v in vars {
        let steps: Vec<usize> = match (time, v.times.is_empty()) {
            (_, true) => vec![0],
            (Some(t), false) => vec![run.time_index(v, Some(t))?],
            (None, false) => (0..v.times.len()).collect(),
        };
        let mut data = Vec::new();
        for &t in &steps {
            let f = app.store.field(run, &v.name, t)?;
            data.push(f.slice(s![j0..j1, i0..i1]).to_owned());
        }
        outputs.push(OutputVar {
            name: v.name.clone(),
            standard_name: v.standard_name.clone(),
            long_name: v.long_name.clone(),
            units: v.units.clone(),
            grid: grid.clone(),
            times: if v.times.is_empty() {
                vec![]
            } else {
                steps.iter().map(|&t| v.times[t]).collect()
            },
            data,
        });
    }
    let prov = Provenance {
        inputs: run.meta.inputs.clone(),
        method: run.meta.method.clone(),
        weights_sha256: run.meta.weights_sha256.clone(),
        command_line: format!("finecast serve: subset of run {}", run.meta.id),
        extra: vec![("finecast_run".into(), run.meta.id.clone())],
    };
    let tmp = app
        .config
        .tmp_dir
        .join(format!("{}.nc", crate::ids::new_id()));
    let result = finecast_io::write_netcdf(&tmp, &outputs, &prov)
        .map_err(ApiError::internal)
        .and_then(|()| std::fs::read(&tmp).map_err(ApiError::internal));
    let _ = std::fs::remove_file(&tmp);
    result
}

fn geotiff_of(
    app: &App,
    run: &Run,
    var: &VarMeta,
    time: Option<&str>,
    bbox: Option<[f64; 4]>,
) -> Result<Vec<u8>, ApiError> {
    let t = run.time_index(var, time)?;
    let rb = run.meta.bbox;
    let b = match bbox {
        Some(b) => [
            b[0].max(rb[0]),
            b[1].max(rb[1]),
            b[2].min(rb[2]),
            b[3].min(rb[3]),
        ],
        None => rb,
    };
    if b[0] >= b[2] || b[1] >= b[3] {
        return Err(ApiError::Unprocessable(
            "the bbox does not overlap the run's domain".into(),
        ));
    }
    let r = crate::geotiff::GeoRaster::covering(
        (b[0], b[1], b[2], b[3]),
        run.meta.grid.dx_m,
        run.meta.grid.dy_m,
    );
    if r.cells() > app.config.max_bbox_cells {
        return Err(ApiError::Unprocessable(format!(
            "the GeoTIFF would have {} cells, above this server's limit of {} (--max-bbox-cells)",
            r.cells(),
            app.config.max_bbox_cells
        )));
    }
    let data = app.store.field(run, &var.name, t)?;
    let values = crate::geotiff::resample(&run.grid, &data, &r);
    let when = var.times.get(t).map(iso).unwrap_or_else(|| "static".into());
    let desc = format!(
        "{} [{}] valid {when}, finecast run {}, EPSG:4326",
        var.name, var.units, run.meta.id
    );
    crate::geotiff::encode(&values, &r, &desc).map_err(ApiError::internal)
}
