//! `GET /v1/forecast`: point time series in Open-Meteo's shape, from the
//! decoded fields kept in memory.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ndarray::Array2;

use super::extract::Params;
use super::response::json_response;
use super::state::{blocking, App};
use crate::error::ApiError;
use crate::store::{Run, VarMeta};
use crate::times::iso_minutes;

/// Most points in one request (Open-Meteo allows about this many too).
const MAX_POINTS: usize = 1000;

/// A comma list of finite numbers in parameter `key`, which is required.
fn numbers(p: &Params, key: &str) -> Result<Vec<f64>, ApiError> {
    let text = p
        .nonempty(key)
        .ok_or_else(|| ApiError::BadRequest(format!("parameter '{key}' is required")))?;
    text.split(',')
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "{key}: '{}' is not a number",
                        crate::ids::truncate(v, 30)
                    ))
                })
        })
        .collect()
}

/// The unit temperatures are reported in (`temperature_unit`); other
/// quantities keep the run's units.
#[derive(Clone, Copy, PartialEq)]
enum TempUnit {
    Kelvin,
    Celsius,
    Fahrenheit,
}

/// A variable as the client named it (the name the response uses) and as
/// the run has it.
type Wanted = (String, VarMeta);

/// One variable's decoded fields, and where each of the run's valid times
/// sits among them (`None`: the variable lacks that time).
type Series = (Vec<Arc<Array2<f32>>>, Vec<Option<usize>>);

/// `GET /v1/forecast?latitude=&longitude=&hourly=&run=&temperature_unit=&format=`:
/// the time series of the grid cell of each point; one point gives an
/// object, several an array (or CSV rows).
pub async fn forecast(State(app): State<App>, params: Params) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (lats, lons) = points(&params)?;
    let run_id = params.nonempty("run").unwrap_or("latest").to_string();
    let run = app.run(&run_id)?;
    let vars = hourly_vars(&run, &params)?;
    let temp_unit = temp_unit(&params)?;
    let csv = csv_format(&params)?;
    blocking(move || {
        let series = load_series(&app, &run, &vars)?;
        let points = lats
            .iter()
            .zip(&lons)
            .map(|(&lat, &lon)| sample_point(&run, lat, lon, &vars, &series, temp_unit))
            .collect::<Result<Vec<_>, _>>()?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if csv {
            return Ok(csv_response(&run.meta.id, &run.meta.valid_times, &points));
        }
        Ok(json_body(&run, &points, ms))
    })
    .await
}

/// `latitude` and `longitude`: as many of one as of the other, at most
/// [`MAX_POINTS`], each within range.
fn points(params: &Params) -> Result<(Vec<f64>, Vec<f64>), ApiError> {
    let lats = numbers(params, "latitude")?;
    let lons = numbers(params, "longitude")?;
    if lats.len() != lons.len() {
        return Err(ApiError::BadRequest(format!(
            "{} latitude(s) but {} longitude(s): give one of each per point",
            lats.len(),
            lons.len()
        )));
    }
    if lats.len() > MAX_POINTS {
        return Err(ApiError::Unprocessable(format!(
            "at most {MAX_POINTS} points per request"
        )));
    }
    if let Some(bad) = lats.iter().find(|l| !(-90.0..=90.0).contains(*l)) {
        return Err(ApiError::Unprocessable(format!(
            "latitude {bad} must be within -90..90"
        )));
    }
    if let Some(bad) = lons.iter().find(|l| !(-180.0..=360.0).contains(*l)) {
        return Err(ApiError::Unprocessable(format!(
            "longitude {bad} must be within -180..360"
        )));
    }
    Ok((lats, lons))
}

/// The variables of `hourly` (default: every time-dependent one of the run).
fn hourly_vars(run: &Run, params: &Params) -> Result<Vec<Wanted>, ApiError> {
    let wanted: Vec<String> = match params.nonempty("hourly") {
        Some(list) => list
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
        None => run
            .meta
            .variables
            .iter()
            .filter(|v| !v.times.is_empty())
            .map(|v| v.name.clone())
            .collect(),
    };
    Ok(wanted
        .iter()
        .map(|w| run.var(w).cloned().map(|v| (w.clone(), v)))
        .collect::<Result<Vec<_>, _>>()?)
}

/// `temperature_unit`: kelvin (default), celsius or fahrenheit.
fn temp_unit(params: &Params) -> Result<TempUnit, ApiError> {
    match params.nonempty("temperature_unit") {
        None | Some("kelvin") => Ok(TempUnit::Kelvin),
        Some("celsius") => Ok(TempUnit::Celsius),
        Some("fahrenheit") => Ok(TempUnit::Fahrenheit),
        Some(other) => Err(ApiError::Unprocessable(format!(
            "temperature_unit '{}' must be kelvin, celsius or fahrenheit",
            crate::ids::truncate(other, 20)
        ))),
    }
}

/// `format`: whether the client wants CSV rather than JSON (the default).
fn csv_format(params: &Params) -> Result<bool, ApiError> {
    match params.nonempty("format") {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(ApiError::Unprocessable(format!(
            "format '{}' must be json or csv",
            crate::ids::truncate(other, 20)
        ))),
    }
}

/// Each variable's series (decoded once for all points), aligned with the
/// run's valid times; a static field repeats at every time.
fn load_series(app: &App, run: &Run, vars: &[Wanted]) -> Result<Vec<Series>, ApiError> {
    let times = &run.meta.valid_times;
    let mut series = Vec::new();
    for (_, v) in vars {
        let fields = app.store.series(run, v)?;
        let pos: Vec<Option<usize>> = if v.times.is_empty() {
            times.iter().map(|_| Some(0)).collect()
        } else {
            times
                .iter()
                .map(|t| v.times.iter().position(|x| x == t))
                .collect()
        };
        series.push((fields, pos));
    }
    Ok(series)
}

/// The values of every variable at the grid cell that `(lat, lon)` falls
/// in (as Open-Meteo reports its grid cell); 422 outside the run.
fn sample_point(
    run: &Run,
    lat: f64,
    lon: f64,
    vars: &[Wanted],
    series: &[Series],
    temp_unit: TempUnit,
) -> Result<Point, ApiError> {
    let lon = finecast_grid::wrap180(lon);
    let (fj, fi) = run.grid.locate(lon, lat).ok_or_else(|| {
        let b = run.meta.bbox;
        ApiError::Unprocessable(format!(
            "point ({lat}, {lon}) is outside run '{}' (lon {:.2}..{:.2}, lat {:.2}..{:.2})",
            run.meta.id, b[0], b[2], b[1], b[3]
        ))
    })?;
    let (ny, nx) = run.grid.shape();
    let j = (fj.round().max(0.0) as usize).min(ny - 1);
    let i = (fi.round().max(0.0) as usize).min(nx - 1);
    let (cell_lon, cell_lat) = run.grid.lonlat(j, i);
    let elevation = run
        .orography
        .as_ref()
        .map(|z| z[[j, i]])
        .filter(|z| z.is_finite())
        .map(|z| (f64::from(z) * 10.0).round() / 10.0);
    let columns = vars
        .iter()
        .zip(series)
        .map(|((name, v), (fields, pos))| {
            let kelvin = v.units == "K";
            let convert = |x: f32| -> Option<f64> {
                if !x.is_finite() {
                    return None;
                }
                let x = f64::from(x);
                Some(match (kelvin, temp_unit) {
                    (true, TempUnit::Celsius) => x - 273.15,
                    (true, TempUnit::Fahrenheit) => (x - 273.15) * 1.8 + 32.0,
                    _ => x,
                })
                .map(|x| (x * 1000.0).round() / 1000.0)
            };
            let values: Vec<Option<f64>> = pos
                .iter()
                .map(|p| p.and_then(|k| convert(fields[k][[j, i]])))
                .collect();
            let units = match (kelvin, temp_unit) {
                (true, TempUnit::Celsius) => "°C".to_string(),
                (true, TempUnit::Fahrenheit) => "°F".to_string(),
                _ => v.units.clone(),
            };
            (name.clone(), units, values)
        })
        .collect();
    Ok(Point {
        lat,
        lon,
        cell: (j, i),
        cell_lat,
        cell_lon,
        elevation,
        columns,
    })
}

/// Open-Meteo's JSON: one object per point (an array for several), with
/// the run that answered; `ms` is the time taken so far.
fn json_body(run: &Run, points: &[Point], ms: f64) -> Response {
    let time_strings: Vec<String> = run.meta.valid_times.iter().map(iso_minutes).collect();
    let views: Vec<serde_json::Value> = points
        .iter()
        .map(|p| {
            let mut units = serde_json::Map::new();
            let mut hourly = serde_json::Map::new();
            units.insert("time".into(), "iso8601".into());
            hourly.insert("time".into(), serde_json::json!(time_strings));
            for (name, u, values) in &p.columns {
                units.insert(name.clone(), serde_json::json!(u));
                hourly.insert(name.clone(), serde_json::json!(values));
            }
            serde_json::json!({
                "latitude": round4(p.cell_lat),
                "longitude": round4(p.cell_lon),
                "elevation": p.elevation,
                "requested_latitude": p.lat,
                "requested_longitude": p.lon,
                "grid_cell": {"j": p.cell.0, "i": p.cell.1, "latitude": p.cell_lat, "longitude": p.cell_lon, "elevation": p.elevation},
                "generationtime_ms": (ms * 1000.0).round() / 1000.0,
                "utc_offset_seconds": 0,
                "timezone": "GMT",
                "timezone_abbreviation": "GMT",
                "run": {
                    "id": run.meta.id,
                    "reference_time": run.meta.reference_time.as_ref().map(crate::times::iso),
                    "method": run.meta.method,
                    "finished": crate::times::iso(&run.meta.finished),
                },
                "hourly_units": units,
                "hourly": hourly,
            })
        })
        .collect();
    let body = if views.len() == 1 {
        views.into_iter().next().unwrap_or_default()
    } else {
        serde_json::Value::Array(views)
    };
    json_response(StatusCode::OK, body)
}

/// One point's answer: where it was asked, the cell that answers it, and
/// per variable (name, units, a value or null per valid time).
struct Point {
    lat: f64,
    lon: f64,
    cell: (usize, usize),
    cell_lat: f64,
    cell_lon: f64,
    elevation: Option<f64>,
    columns: Vec<(String, String, Vec<Option<f64>>)>,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Open-Meteo's CSV layout: a block of locations, a blank line, then one row
/// per location and time.
fn csv_response(run: &str, times: &[chrono::DateTime<chrono::Utc>], points: &[Point]) -> Response {
    let mut out = String::new();
    let _ = writeln!(out, "location_id,latitude,longitude,elevation,run");
    for (k, p) in points.iter().enumerate() {
        let elev = p.elevation.map(|e| format!("{e:.1}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{k},{},{},{elev},{run}",
            round4(p.cell_lat),
            round4(p.cell_lon)
        );
    }
    out.push('\n');
    let header: Vec<String> = points
        .first()
        .map(|p| {
            p.columns
                .iter()
                .map(|(n, u, _)| format!("{n} ({u})"))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(out, "location_id,time,{}", header.join(","));
    for (k, p) in points.iter().enumerate() {
        for (t, time) in times.iter().enumerate() {
            let cells: Vec<String> = p
                .columns
                .iter()
                .map(|(_, _, v)| v[t].map(|x| x.to_string()).unwrap_or_default())
                .collect();
            let _ = writeln!(out, "{k},{},{}", iso_minutes(time), cells.join(","));
        }
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response()
}
