//! Runs: metadata, framed PNG maps and colour-bar legends.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use finecast_render::{render_map_png_bytes, MapSpec};

use super::extract::{require_key, resolve_style, ApiPath, Params, Selection, VarName};
use super::legend::{cached_legend, legend_etag};
use super::response::{
    etag_of, json_response, max_age_for, not_modified, not_modified_response, png_response,
};
use super::state::{blocking, App, RenderKind};
use crate::error::ApiError;
use crate::store::{Run, OROGRAPHY_VAR};
use crate::times::iso;

/// The public description of a run.
fn run_view(run: &Run) -> serde_json::Value {
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

/// `GET /v1/runs`: every run, newest first, and which one is `latest`.
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

/// `GET /v1/runs/{run}`: one run's description.
pub async fn get_one(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let run = app.run(&id)?;
    Ok(json_response(StatusCode::OK, run_view(&run)))
}

/// `width` and `height` (default `default`) within the server's limits.
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
    let Selection {
        run,
        var,
        time_index: t,
        style,
    } = Selection::from_query(&app, &id, VarName::OrDefault(params.get("var")), &params)?;
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
    if not_modified(&headers, &etag) {
        return Ok(not_modified_response(&etag, max_age));
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

/// `GET /v1/runs/{run}/legend.png?var=&palette=&range=&height=`: the
/// colour bar of a variable (`layer` and `colorscalerange` are accepted too,
/// as WMS clients send them).
pub async fn legend_png(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let var = params.get("var").or_else(|| params.get_ci("layer"));
    let range = params
        .get("range")
        .or_else(|| params.get_ci("colorscalerange"));
    let Selection { var, style, .. } =
        Selection::resolve(app.run(&id)?, VarName::OrDefault(var), None, |v| {
            resolve_style(v, params.get("palette"), range)
        })?;
    let height = params.parse::<u32>("height")?.unwrap_or(300);
    let etag = legend_etag(&var.units, &style, height);
    let max_age = max_age_for(&id);
    if not_modified(&headers, &etag) {
        return Ok(not_modified_response(&etag, max_age));
    }
    let png = cached_legend(&app, &etag, var.units.clone(), style, height).await?;
    Ok(png_response(png, &etag, max_age, &headers))
}

/// `DELETE /v1/runs/{run}` (API key): unpublish a run by id. Requests that
/// started before keep reading it; its files go when the last one ends.
/// 204 when done, 404 for an unknown id, 422 for `latest` (name the run).
pub async fn delete(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_key(&app, &headers)?;
    if id == "latest" {
        return Err(ApiError::Unprocessable(
            "delete a run by its id, not 'latest'".into(),
        ));
    }
    let store = app.store.clone();
    blocking(move || store.remove(&id).map_err(ApiError::from)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
