//! OGC WMS 1.3.0 (and 1.1.1) at `/wms`: GetCapabilities, GetMap,
//! GetLegendGraphic and GetFeatureInfo, with the ncWMS extensions
//! COLORSCALERANGE, NUMCOLORBANDS, ABOVEMAXCOLOR/BELOWMINCOLOR and
//! `STYLES=raster/<palette>`. Errors are OGC ServiceExceptionReports
//! ([`WmsError`]), with the JSON API's status codes.
//!
//! Axis order: in WMS 1.3.0, `CRS=EPSG:4326` takes BBOX as
//! minLat,minLon,maxLat,maxLon (latitude first, as EPSG defines the axes);
//! `CRS:84`, and `SRS=EPSG:4326` in 1.1.1, take minLon,minLat,maxLon,maxLat.

mod capabilities;

use std::fmt::Write;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::extract::{parse_range, resolve_style, Params, Selection, SelectionError, VarName};
use super::legend::{cached_legend, legend_etag};
use super::response::{etag_of, json_response, png_response};
use super::state::{blocking, App, RenderKind};
use crate::error::ApiError;
use crate::raster::{
    encode_jpeg_rgba, encode_png_rgba, parse_color, render_rgba, LonLatView, MercatorView,
    OutOfRange, Sampling, Style, View,
};
use crate::store::{Run, VarMeta};
use crate::times::iso;

type WmsResult = Result<Response, WmsError>;

/// `GET /wms?SERVICE=WMS&REQUEST=...`: one of the four operations.
pub async fn wms(State(app): State<App>, params: Params, headers: HeaderMap) -> Response {
    let result = match params
        .get_ci("request")
        .unwrap_or("")
        .to_ascii_lowercase()
        .as_str()
    {
        "getcapabilities" => capabilities::capabilities(&app, &params, &headers),
        "getmap" => get_map(&app, &params, &headers).await,
        "getfeatureinfo" => feature_info(&app, &params).await,
        "getlegendgraphic" => legend(&app, &params, &headers).await,
        "" => Err(WmsError::new(
            "MissingParameterValue",
            ApiError::BadRequest(
                "REQUEST is required (GetCapabilities, GetMap, GetFeatureInfo, GetLegendGraphic)"
                    .into(),
            ),
        )),
        other => Err(WmsError::new(
            "OperationNotSupported",
            ApiError::BadRequest(format!(
                "REQUEST={} is not supported",
                crate::ids::truncate(other, 40)
            )),
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A WMS error: the same status mapping as the JSON API, but an OGC
/// ServiceExceptionReport body that WMS clients (QGIS, GDAL) know how to show.
#[derive(Debug)]
pub struct WmsError {
    /// The OGC exception code (`LayerNotDefined`, `InvalidDimensionValue`, ...).
    pub code: &'static str,
    /// The status and message.
    pub error: ApiError,
}

impl WmsError {
    /// An exception with an explicit OGC code.
    pub fn new(code: &'static str, error: ApiError) -> WmsError {
        WmsError { code, error }
    }
}

/// Errors without a more specific code: unknown things are undefined
/// layers, anything else an invalid parameter value.
impl From<ApiError> for WmsError {
    fn from(error: ApiError) -> WmsError {
        let code = match &error {
            ApiError::NotFound(_) => "LayerNotDefined",
            _ => "InvalidParameterValue",
        };
        WmsError { code, error }
    }
}

/// Each step of a layer's selection has its OGC code; a style step's error
/// already has one.
impl From<SelectionError<WmsError>> for WmsError {
    fn from(e: SelectionError<WmsError>) -> WmsError {
        match e {
            SelectionError::Var(e) => layer_not_defined(e.into()),
            SelectionError::Time(e) => WmsError::new("InvalidDimensionValue", e.into()),
            SelectionError::Style(e) => e,
        }
    }
}

impl IntoResponse for WmsError {
    fn into_response(self) -> Response {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ServiceExceptionReport version=\"1.3.0\" \
             xmlns=\"http://www.opengis.net/ogc\">\n  <ServiceException code=\"{}\">{}</ServiceException>\n\
             </ServiceExceptionReport>\n",
            self.code,
            xml_escape(&crate::error::relative_to_data_dir(&self.error.to_string()))
        );
        (
            self.error.status(),
            [(header::CONTENT_TYPE, "application/vnd.ogc.se_xml")],
            body,
        )
            .into_response()
    }
}

/// `s` with XML's five special characters escaped.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Any failure to find a layer, as a 404 `LayerNotDefined`.
fn layer_not_defined(e: ApiError) -> WmsError {
    WmsError::new("LayerNotDefined", ApiError::NotFound(e.to_string()))
}

/// The protocol version: 1.1.1 when 1.0.0, 1.1.0 or 1.1.1 is asked for
/// (VERSION, or WMTVER of old clients), else 1.3.0.
fn version(p: &Params) -> &str {
    match p.get_ci("version").or_else(|| p.get_ci("wmtver")) {
        Some("1.1.1") | Some("1.1.0") | Some("1.0.0") => "1.1.1",
        _ => "1.3.0",
    }
}

/// A parameter that must be present and non-empty.
fn required<'a>(p: &'a Params, key: &str) -> Result<&'a str, WmsError> {
    p.get_ci(key)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            WmsError::new(
                "MissingParameterValue",
                ApiError::BadRequest(format!("{} is required", key.to_ascii_uppercase())),
            )
        })
}

/// The run of a layer and its variable's name there. A layer is
/// `<run>/<var>`, or `<var>` for the latest run that has it (or the run
/// whose reference time is DIM_REFERENCE_TIME).
fn layer_run<'a>(app: &App, name: &'a str, p: &Params) -> Result<(Arc<Run>, &'a str), WmsError> {
    if let Some((run_id, var)) = name.split_once('/') {
        let run = app.run(run_id).map_err(layer_not_defined)?;
        return Ok((run, var));
    }
    let reference = p
        .get_ci("dim_reference_time")
        .map(crate::times::parse_time)
        .transpose()
        .map_err(|e| WmsError::new("InvalidDimensionValue", e.into()))?;
    let runs = app.store.list();
    if runs.is_empty() {
        app.check_ready()?;
    }
    for run in runs {
        if reference.is_some() && run.meta.reference_time != reference {
            continue;
        }
        if run.var(name).is_ok() {
            return Ok((run, name));
        }
    }
    Err(WmsError::new(
        "LayerNotDefined",
        ApiError::NotFound(format!(
            "no layer '{}'{}",
            crate::ids::truncate(name, 60),
            match reference {
                Some(r) => format!(" with reference time {}", iso(&r)),
                None => String::new(),
            }
        )),
    ))
}

/// TIME, where the operation has one: absent, empty or `current` is the first.
fn time(p: &Params) -> Option<&str> {
    p.get_ci("time")
        .filter(|t| !t.eq_ignore_ascii_case("current") && !t.is_empty())
}

/// The selection of a WMS request: the layer's run and variable, the valid
/// time `time` and the style `style` makes for the variable.
fn select(
    app: &App,
    layer: &str,
    p: &Params,
    time: Option<&str>,
    style: impl FnOnce(&VarMeta) -> Result<Style, WmsError>,
) -> Result<Selection, WmsError> {
    let (run, var) = layer_run(app, layer, p)?;
    Ok(Selection::resolve(run, VarName::Exact(var), time, style)?)
}

/// STYLES / COLORSCALERANGE / NUMCOLORBANDS / ABOVEMAXCOLOR / BELOWMINCOLOR.
fn style(var: &VarMeta, p: &Params, style_key: &str) -> Result<Style, WmsError> {
    let name = p
        .get_ci(style_key)
        .unwrap_or("")
        .split(',')
        .next()
        .unwrap_or("")
        .trim();
    let palette = name.strip_prefix("raster/").unwrap_or(name);
    let palette = match palette {
        "" | "default" | "raster" => None,
        p => Some(p),
    };
    let range = match p.get_ci("colorscalerange").map(str::trim) {
        None | Some("") | Some("default") => None,
        Some("auto") => Some("auto".to_string()),
        Some(r) => {
            parse_range(r).map_err(|e| WmsError::new("InvalidParameterValue", e))?;
            Some(r.to_string())
        }
    };
    let mut style = resolve_style(var, palette, range.as_deref()).map_err(|e| match e {
        ApiError::Unprocessable(m) => WmsError::new("StyleNotDefined", ApiError::BadRequest(m)),
        e => e.into(),
    })?;
    if let Some(n) = p.get_ci("numcolorbands") {
        style.bands = n
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (2..=256).contains(n))
            .ok_or_else(|| {
                WmsError::new(
                    "InvalidParameterValue",
                    ApiError::BadRequest("NUMCOLORBANDS must be 2..256".into()),
                )
            })?;
    }
    let out = |key: &str| -> Result<OutOfRange, WmsError> {
        Ok(match p.get_ci(key).map(str::trim) {
            None | Some("") | Some("extend") => OutOfRange::Extend,
            Some("transparent") => OutOfRange::Transparent,
            Some(c) => OutOfRange::Color(parse_color(c).ok_or_else(|| {
                WmsError::new(
                    "InvalidParameterValue",
                    ApiError::BadRequest(format!(
                        "{} must be extend, transparent or 0xRRGGBB",
                        key.to_ascii_uppercase()
                    )),
                )
            })?),
        })
    };
    style.above = out("abovemaxcolor")?;
    style.below = out("belowmincolor")?;
    Ok(style)
}

/// The map view of a GetMap/GetFeatureInfo request.
fn view(p: &Params, width: u32, height: u32) -> Result<Box<dyn View>, WmsError> {
    let v13 = version(p) == "1.3.0";
    let crs_key = if v13 { "crs" } else { "srs" };
    let crs = p
        .get_ci(crs_key)
        .or_else(|| p.get_ci(if v13 { "srs" } else { "crs" }))
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase();
    let bbox_text = required(p, "bbox")?;
    let invalid = |m: String| WmsError::new("InvalidParameterValue", ApiError::BadRequest(m));
    let b: Vec<f64> = bbox_text
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| invalid("BBOX must be four numbers".into()))?;
    let [a0, a1, a2, a3] = b[..] else {
        return Err(invalid("BBOX must be four numbers".into()));
    };
    if !b.iter().all(|v| v.is_finite()) || a0 >= a2 || a1 >= a3 {
        return Err(invalid(format!(
            "BBOX {bbox_text}: each minimum must be below its maximum"
        )));
    }
    let lonlat = |west: f64,
                  south: f64,
                  east: f64,
                  north: f64|
     -> Result<Box<dyn View>, WmsError> {
        if !(-90.0..=90.0).contains(&south) || !(-90.0..=90.0).contains(&north) {
            return Err(invalid(format!(
                "BBOX {bbox_text}: latitude {} is outside -90..90 (with CRS=EPSG:4326 in WMS 1.3.0 the order is \
                 minLat,minLon,maxLat,maxLon; use CRS=CRS:84 for lon/lat order)",
                if (-90.0..=90.0).contains(&south) { north } else { south }
            )));
        }
        Ok(Box::new(LonLatView {
            west,
            south,
            east,
            north,
            width,
            height,
        }))
    };
    match crs.as_str() {
        // EPSG:4326 axis order is latitude, longitude in WMS 1.3.0.
        "EPSG:4326" if v13 => lonlat(a1, a0, a3, a2),
        "EPSG:4326" | "CRS:84" | "OGC:CRS84" => lonlat(a0, a1, a2, a3),
        "EPSG:3857" | "EPSG:900913" | "EPSG:3785" | "EPSG:102100" | "EPSG:102113" => {
            Ok(Box::new(MercatorView {
                min_x: a0,
                min_y: a1,
                max_x: a2,
                max_y: a3,
                width,
                height,
            }))
        }
        "" => Err(WmsError::new(
            "MissingParameterValue",
            ApiError::BadRequest(format!("{} is required", crs_key.to_ascii_uppercase())),
        )),
        other => Err(WmsError::new(
            if v13 { "InvalidCRS" } else { "InvalidSRS" },
            ApiError::BadRequest(format!(
                "CRS {} is not supported: use EPSG:4326, CRS:84 or EPSG:3857",
                crate::ids::truncate(other, 40)
            )),
        )),
    }
}

/// WIDTH and HEIGHT: positive, within the server's limit.
fn size(app: &App, p: &Params) -> Result<(u32, u32), WmsError> {
    let dim = |key: &str| -> Result<u32, WmsError> {
        let v = required(p, key)?;
        v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            WmsError::new(
                "InvalidParameterValue",
                ApiError::BadRequest(format!(
                    "{} must be a positive integer",
                    key.to_ascii_uppercase()
                )),
            )
        })
    };
    let (w, h) = (dim("width")?, dim("height")?);
    let max = app.config.max_image_px;
    if w > max || h > max {
        return Err(WmsError::new(
            "InvalidParameterValue",
            ApiError::Unprocessable(format!(
                "WIDTH/HEIGHT {w}x{h} exceed this server's limit of {max} px"
            )),
        ));
    }
    Ok((w, h))
}

/// A WMS boolean (TRANSPARENT=TRUE).
fn truthy(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// GetMap: one layer as a PNG in any of the supported CRSs.
async fn get_map(app: &App, p: &Params, headers: &HeaderMap) -> WmsResult {
    let layers = required(p, "layers")?;
    let layer = layers.split(',').next().unwrap_or(layers).trim();
    if layers.contains(',') {
        return Err(WmsError::new(
            "InvalidParameterValue",
            ApiError::BadRequest("one layer per GetMap request".into()),
        ));
    }
    // GDAL and many desktop clients ask for JPEG by default.
    let jpeg = match p.get_ci("format").map(|f| f.trim().to_ascii_lowercase()) {
        None => false,
        Some(f) if f.starts_with("image/png") => false,
        Some(f) if f == "image/jpeg" || f == "image/jpg" => true,
        Some(_) => {
            return Err(WmsError::new(
                "InvalidFormat",
                ApiError::BadRequest(format!(
                    "FORMAT {} is not supported; use image/png or image/jpeg",
                    crate::ids::truncate(p.get_ci("format").unwrap_or(""), 40)
                )),
            ))
        }
    };
    let (width, height) = size(app, p)?;
    let view = view(p, width, height)?;
    let Selection {
        run,
        var,
        time_index: t,
        style,
    } = select(app, layer, p, time(p), |v| style(v, p, "styles"))?;
    // JPEG has no alpha: TRANSPARENT is ignored and BGCOLOR fills instead.
    let background = if truthy(p.get_ci("transparent")) && !jpeg {
        [0, 0, 0, 0]
    } else {
        let c = p
            .get_ci("bgcolor")
            .and_then(parse_color)
            .unwrap_or([255, 255, 255]);
        [c[0], c[1], c[2], 255]
    };
    let key: Vec<String> =
        p.0.iter()
            .map(|(k, v)| format!("{}={v}", k.to_ascii_lowercase()))
            .collect();
    let etag = etag_of(&["wms", &run.meta.id, &key.join("&")]);
    let app2 = app.clone();
    let image = app
        .render(RenderKind::Map, move || {
            let data = app2.store.field(&run, &var.name, t)?;
            let rgba = render_rgba(
                &run.grid,
                &data,
                view.as_ref(),
                &style,
                Sampling::Bilinear,
                background,
            );
            if jpeg {
                encode_jpeg_rgba(&rgba, width, height).map_err(ApiError::Unprocessable)
            } else {
                encode_png_rgba(&rgba, width, height).map_err(ApiError::internal)
            }
        })
        .await?;
    let mut response = png_response(Bytes::from(image), &etag, 300, headers);
    if jpeg && response.status() == axum::http::StatusCode::OK {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("image/jpeg"),
        );
    }
    Ok(response)
}

/// GetFeatureInfo: the value under a pixel of a map, as text or GeoJSON.
async fn feature_info(app: &App, p: &Params) -> WmsResult {
    let layer = p
        .get_ci("query_layers")
        .or_else(|| p.get_ci("layers"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            WmsError::new(
                "MissingParameterValue",
                ApiError::BadRequest("QUERY_LAYERS is required".into()),
            )
        })?;
    let layer = layer.split(',').next().unwrap_or(layer).to_string();
    let (width, height) = size(app, p)?;
    let view = view(p, width, height)?;
    let v13 = version(p) == "1.3.0";
    let pixel = |key: &str| -> Result<u32, WmsError> {
        required(p, key)?.parse::<u32>().map_err(|_| {
            WmsError::new(
                "InvalidPoint",
                ApiError::BadRequest(format!(
                    "{} must be a pixel index",
                    key.to_ascii_uppercase()
                )),
            )
        })
    };
    let (i, j) = if v13 {
        (pixel("i")?, pixel("j")?)
    } else {
        (pixel("x")?, pixel("y")?)
    };
    if i >= width || j >= height {
        return Err(WmsError::new(
            "InvalidPoint",
            ApiError::BadRequest(format!(
                "pixel ({i}, {j}) is outside the {width}x{height} map"
            )),
        ));
    }
    let Selection {
        run,
        var,
        time_index: t,
        ..
    } = select(app, &layer, p, time(p), |v| {
        resolve_style(v, None, None).map_err(WmsError::from)
    })?;
    let format = p
        .get_ci("info_format")
        .unwrap_or("text/plain")
        .trim()
        .to_ascii_lowercase();
    if !matches!(
        format.as_str(),
        "text/plain" | "application/json" | "application/geo+json"
    ) {
        return Err(WmsError::new(
            "InvalidFormat",
            ApiError::BadRequest("INFO_FORMAT must be text/plain or application/json".into()),
        ));
    }
    let app2 = app.clone();
    let run2 = run.clone();
    let var_name = var.name.clone();
    let (lon, lat, cell, value) = blocking(move || {
        let (lon, lat) = view
            .lonlat(f64::from(i) + 0.5, f64::from(j) + 0.5)
            .unwrap_or((f64::NAN, f64::NAN));
        let cell = run2.grid.locate(lon, lat).map(|(fj, fi)| {
            let (ny, nx) = run2.grid.shape();
            (
                (fj.round().max(0.0) as usize).min(ny - 1),
                (fi.round().max(0.0) as usize).min(nx - 1),
            )
        });
        let value = match cell {
            Some((cj, ci)) => {
                Some(app2.store.field(&run2, &var_name, t)?[[cj, ci]]).filter(|v| v.is_finite())
            }
            None => None,
        };
        Ok((lon, lat, cell, value))
    })
    .await?;
    let time = var.times.get(t).map(iso);
    if format == "text/plain" {
        let mut out = String::new();
        let _ = writeln!(out, "layer: {layer}");
        let _ = writeln!(out, "run: {}", run.meta.id);
        let _ = writeln!(out, "time: {}", time.as_deref().unwrap_or("static"));
        let _ = writeln!(out, "longitude: {lon:.5}\nlatitude: {lat:.5}");
        let _ = writeln!(
            out,
            "{}: {} {}",
            var.name,
            value
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| "no data".into()),
            var.units
        );
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], out).into_response());
    }
    Ok(json_response(
        StatusCode::OK,
        serde_json::json!({
            "type": "FeatureCollection",
            "features": [{
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "layer": layer,
                    "run": run.meta.id,
                    "variable": var.name,
                    "units": var.units,
                    "time": time,
                    "value": value,
                    "grid_cell": cell.map(|(j, i)| serde_json::json!({"j": j, "i": i})),
                },
            }],
        }),
    ))
}

/// GetLegendGraphic: the colour bar of a layer in a style.
async fn legend(app: &App, p: &Params, headers: &HeaderMap) -> WmsResult {
    let layer = required(p, "layer")?;
    let Selection { var, style, .. } = select(app, layer, p, None, |v| style(v, p, "style"))?;
    let height = p
        .get_ci("height")
        .and_then(|h| h.parse::<u32>().ok())
        .unwrap_or(super::legend::LEGEND_DEFAULT_HEIGHT)
        .min(app.config.max_image_px);
    let etag = legend_etag(&var.units, &style, height);
    let png = cached_legend(app, &etag, var.units.clone(), style, height).await?;
    Ok(png_response(png, &etag, 3600, headers))
}
