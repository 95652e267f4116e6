//! `GET /v1/runs/{run}/data`: a run's data for download: its NetCDF whole
//! (streamed) or subset, or one field as a GeoTIFF.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use finecast_io::{OutputVar, Provenance};
use ndarray::s;

use super::extract::{ApiPath, Params};
use super::state::{blocking, App};
use crate::error::ApiError;
use crate::store::{Run, VarMeta};
use crate::times::iso;

/// `[west, south, east, north]` from `W,S,E,N`.
fn parse_bbox(text: &str) -> Result<[f64; 4], ApiError> {
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

/// A download named `name`.
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

/// The run's whole NetCDF, streamed from disk.
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

/// A NetCDF of `vars` at `time` (all times when `None`) inside `bbox`,
/// written to the server's tmp directory and read back.
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

/// One field, resampled to lon/lat over `bbox` (the run's domain when
/// `None`), as a float32 GeoTIFF.
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
