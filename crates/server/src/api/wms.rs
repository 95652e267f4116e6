//! OGC WMS 1.3.0 (and 1.1.1) at `/wms`: GetCapabilities, GetMap,
//! GetLegendGraphic and GetFeatureInfo, with the ncWMS extensions
//! COLORSCALERANGE, NUMCOLORBANDS, ABOVEMAXCOLOR/BELOWMINCOLOR and
//! STYLES=raster/<palette>.
//!
//! Axis order: in WMS 1.3.0, `CRS=EPSG:4326` takes BBOX as
//! minLat,minLon,maxLat,maxLon (latitude first, as EPSG defines the axes);
//! `CRS:84`, and `SRS=EPSG:4326` in 1.1.1, take minLon,minLat,maxLon,maxLat.

use std::fmt::Write;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use finecast_render::Palette;

use super::runs::{cached_legend, legend_etag, parse_range, resolve_style};
use super::{
    base_url, blocking, etag_of, json_response, png_response, xml_escape, App, Params, RenderKind,
};
use crate::error::{ApiError, WmsError};
use crate::raster::{
    encode_png_rgba, parse_color, render_rgba, LonLatView, MercatorView, OutOfRange, Sampling,
    Style, View,
};
use crate::store::{Run, VarMeta};
use crate::times::iso;

type WmsResult = Result<Response, WmsError>;

pub async fn wms(State(app): State<App>, params: Params, headers: HeaderMap) -> Response {
    let result = match params
        .get_ci("request")
        .unwrap_or("")
        .to_ascii_lowercase()
        .as_str()
    {
        "getcapabilities" => capabilities(&app, &params, &headers),
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

fn version(p: &Params) -> &str {
    match p.get_ci("version").or_else(|| p.get_ci("wmtver")) {
        Some("1.1.1") | Some("1.1.0") | Some("1.0.0") => "1.1.1",
        _ => "1.3.0",
    }
}

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

/// A layer name: `<run>/<var>`, or `<var>` for the latest run that has it
/// (or the run whose reference time is DIM_REFERENCE_TIME).
fn resolve_layer(app: &App, name: &str, p: &Params) -> Result<(Arc<Run>, VarMeta), WmsError> {
    let not_defined =
        |e: ApiError| WmsError::new("LayerNotDefined", ApiError::NotFound(e.to_string()));
    if let Some((run_id, var)) = name.split_once('/') {
        let run = app.run(run_id).map_err(not_defined)?;
        let v = run.var(var).map_err(not_defined)?.clone();
        return Ok((run, v));
    }
    let reference = p
        .get_ci("dim_reference_time")
        .map(crate::times::parse_time)
        .transpose()
        .map_err(|e| WmsError::new("InvalidDimensionValue", e))?;
    let runs = app.store.list();
    if runs.is_empty() {
        app.check_ready()?;
    }
    for run in runs {
        if reference.is_some() && run.meta.reference_time != reference {
            continue;
        }
        if let Ok(v) = run.var(name) {
            let v = v.clone();
            return Ok((run, v));
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

fn time_index(run: &Run, var: &VarMeta, p: &Params) -> Result<usize, WmsError> {
    let time = p
        .get_ci("time")
        .filter(|t| !t.eq_ignore_ascii_case("current") && !t.is_empty());
    run.time_index(var, time)
        .map_err(|e| WmsError::new("InvalidDimensionValue", e))
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

fn truthy(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

async fn get_map(app: &App, p: &Params, headers: &HeaderMap) -> WmsResult {
    let layers = required(p, "layers")?;
    let layer = layers.split(',').next().unwrap_or(layers).trim();
    if layers.contains(',') {
        return Err(WmsError::new(
            "InvalidParameterValue",
            ApiError::BadRequest("one layer per GetMap request".into()),
        ));
    }
    if let Some(f) = p.get_ci("format") {
        if !f.trim().to_ascii_lowercase().starts_with("image/png") {
            return Err(WmsError::new(
                "InvalidFormat",
                ApiError::BadRequest(format!(
                    "FORMAT {} is not supported; use image/png",
                    crate::ids::truncate(f, 40)
                )),
            ));
        }
    }
    let (width, height) = size(app, p)?;
    let view = view(p, width, height)?;
    let (run, var) = resolve_layer(app, layer, p)?;
    let t = time_index(&run, &var, p)?;
    let style = style(&var, p, "styles")?;
    let background = if truthy(p.get_ci("transparent")) {
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
    let png = app
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
            encode_png_rgba(&rgba, width, height).map_err(ApiError::internal)
        })
        .await?;
    Ok(png_response(Bytes::from(png), &etag, 300, headers))
}

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
    let (run, var) = resolve_layer(app, &layer, p)?;
    let t = time_index(&run, &var, p)?;
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
    let (lon, lat, cell, value) = blocking(move || {
        let (lon, lat) = view
            .lonlat(f64::from(i) + 0.5, f64::from(j) + 0.5)
            .unwrap_or((f64::NAN, f64::NAN));
        let cell = run.grid.locate(lon, lat).map(|(fj, fi)| {
            let (ny, nx) = run.grid.shape();
            (
                (fj.round().max(0.0) as usize).min(ny - 1),
                (fi.round().max(0.0) as usize).min(nx - 1),
            )
        });
        let value = match cell {
            Some((cj, ci)) => {
                Some(app2.store.field(&run, &var.name, t)?[[cj, ci]]).filter(|v| v.is_finite())
            }
            None => None,
        };
        Ok((lon, lat, cell, value))
    })
    .await?;
    let (run, var) = resolve_layer(app, &layer, p)?;
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

async fn legend(app: &App, p: &Params, headers: &HeaderMap) -> WmsResult {
    let layer = required(p, "layer")?;
    let (_, var) = resolve_layer(app, layer, p)?;
    let style = style(&var, p, "style")?;
    let height = p
        .get_ci("height")
        .and_then(|h| h.parse::<u32>().ok())
        .unwrap_or(300)
        .min(app.config.max_image_px);
    let etag = legend_etag(&var.units, &style, height);
    let png = cached_legend(app, &etag, var.units.clone(), style, height).await?;
    Ok(png_response(png, &etag, 3600, headers))
}

fn capabilities(app: &App, p: &Params, headers: &HeaderMap) -> WmsResult {
    let v13 = version(p) == "1.3.0";
    let base = xml_escape(&format!("{}/wms?", base_url(app, headers)));
    let runs = app.store.list();
    let max = app.config.max_image_px;
    let mut x = String::new();
    let formats = |x: &mut String, list: &[&str]| {
        for f in list {
            let _ = write!(x, "<Format>{f}</Format>");
        }
    };
    let dcp = format!(
        "<DCPType><HTTP><Get><OnlineResource xmlns:xlink=\"http://www.w3.org/1999/xlink\" xlink:type=\"simple\" xlink:href=\"{base}\"/></Get></HTTP></DCPType>"
    );
    if v13 {
        let _ = write!(
            x,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<WMS_Capabilities version=\"1.3.0\" xmlns=\"http://www.opengis.net/wms\" \
             xmlns:xlink=\"http://www.w3.org/1999/xlink\">\n<Service><Name>WMS</Name><Title>finecast downscaled forecasts</Title>\
             <Abstract>Downscaled ~3 km weather fields served by finecast</Abstract>\
             <OnlineResource xlink:type=\"simple\" xlink:href=\"{base}\"/><Fees>none</Fees><AccessConstraints>none</AccessConstraints>\
             <LayerLimit>1</LayerLimit><MaxWidth>{max}</MaxWidth><MaxHeight>{max}</MaxHeight></Service>\n<Capability><Request>"
        );
    } else {
        let _ = write!(
            x,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<WMT_MS_Capabilities version=\"1.1.1\">\n<Service><Name>OGC:WMS</Name>\
             <Title>finecast downscaled forecasts</Title><OnlineResource xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
             xlink:type=\"simple\" xlink:href=\"{base}\"/></Service>\n<Capability><Request>"
        );
    }
    let caps_format = if v13 {
        "text/xml"
    } else {
        "application/vnd.ogc.wms_xml"
    };
    for (op, fmts) in [
        ("GetCapabilities", vec![caps_format]),
        ("GetMap", vec!["image/png"]),
        ("GetFeatureInfo", vec!["text/plain", "application/json"]),
    ] {
        let _ = write!(x, "<{op}>");
        formats(&mut x, &fmts);
        let _ = write!(x, "{dcp}</{op}>");
    }
    let _ = write!(
        x,
        "</Request><Exception><Format>{}</Format></Exception>",
        if v13 {
            "XML"
        } else {
            "application/vnd.ogc.se_xml"
        }
    );
    let crs_tag = if v13 { "CRS" } else { "SRS" };
    let _ = write!(x, "<Layer><Title>finecast</Title>");
    for c in ["EPSG:4326", "CRS:84", "EPSG:3857"] {
        let _ = write!(x, "<{crs_tag}>{c}</{crs_tag}>");
    }
    let layer = |x: &mut String, name: &str, run: &Run, var: &VarMeta, references: &[String]| {
        let b = run.meta.bbox;
        let title = xml_escape(var.long_name.as_deref().unwrap_or(&var.name));
        let _ = write!(
            x,
            "<Layer queryable=\"1\" opaque=\"0\"><Name>{}</Name><Title>{title} [{}]</Title>",
            xml_escape(name),
            xml_escape(&var.units)
        );
        let _ = write!(
            x,
            "<Abstract>{} from finecast run {} (method {})</Abstract>",
            xml_escape(&var.name),
            xml_escape(&run.meta.id),
            xml_escape(&run.meta.method)
        );
        if v13 {
            let _ = write!(
                x,
                "<EX_GeographicBoundingBox><westBoundLongitude>{}</westBoundLongitude><eastBoundLongitude>{}</eastBoundLongitude>\
                 <southBoundLatitude>{}</southBoundLatitude><northBoundLatitude>{}</northBoundLatitude></EX_GeographicBoundingBox>",
                b[0], b[2], b[1], b[3]
            );
            let _ = write!(
                x,
                "<BoundingBox CRS=\"CRS:84\" minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\"/>",
                b[0], b[1], b[2], b[3]
            );
            // Latitude first for EPSG:4326 in 1.3.0.
            let _ = write!(
                x,
                "<BoundingBox CRS=\"EPSG:4326\" minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\"/>",
                b[1], b[0], b[3], b[2]
            );
        } else {
            let _ = write!(
                x,
                "<LatLonBoundingBox minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\"/>",
                b[0], b[1], b[2], b[3]
            );
            let _ = write!(
                x,
                "<BoundingBox SRS=\"EPSG:4326\" minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\"/>",
                b[0], b[1], b[2], b[3]
            );
        }
        let (mx0, my0) = crate::raster::lonlat_to_mercator(b[0], b[1]);
        let (mx1, my1) = crate::raster::lonlat_to_mercator(b[2], b[3]);
        let _ = write!(x, "<BoundingBox {crs_tag}=\"EPSG:3857\" minx=\"{mx0:.1}\" miny=\"{my0:.1}\" maxx=\"{mx1:.1}\" maxy=\"{my1:.1}\"/>");
        let times: Vec<String> = var.times.iter().map(iso).collect();
        if !times.is_empty() {
            if v13 {
                let _ = write!(x, "<Dimension name=\"time\" units=\"ISO8601\" default=\"{}\" nearestValue=\"0\">{}</Dimension>", times[0], times.join(","));
            } else {
                let _ = write!(x, "<Dimension name=\"time\" units=\"ISO8601\"/><Extent name=\"time\" default=\"{}\" nearestValue=\"0\">{}</Extent>", times[0], times.join(","));
            }
        }
        if let Some(r) = run.meta.reference_time.as_ref().map(iso) {
            let values = if references.is_empty() {
                r.clone()
            } else {
                references.join(",")
            };
            if v13 {
                let _ = write!(x, "<Dimension name=\"reference_time\" units=\"ISO8601\" default=\"{r}\">{values}</Dimension>");
            } else {
                let _ = write!(x, "<Dimension name=\"reference_time\" units=\"ISO8601\"/><Extent name=\"reference_time\" default=\"{r}\">{values}</Extent>");
            }
        }
        let default = Palette::by_name(&var.palette)
            .map(|p| p.name)
            .unwrap_or("wind");
        let mut names: Vec<&str> = vec![default];
        names.extend(Palette::NAMES.iter().copied().filter(|n| *n != default));
        for pal in names {
            let legend = xml_escape(&format!(
                "{}/wms?SERVICE=WMS&REQUEST=GetLegendGraphic&VERSION=1.3.0&FORMAT=image/png&LAYER={name}&STYLE=raster/{pal}",
                base_url(app, headers)
            ));
            let _ = write!(
                x,
                "<Style><Name>raster/{pal}</Name><Title>{pal} colour ramp</Title><LegendURL width=\"110\" height=\"300\"><Format>image/png</Format>\
                 <OnlineResource xmlns:xlink=\"http://www.w3.org/1999/xlink\" xlink:type=\"simple\" xlink:href=\"{legend}\"/></LegendURL></Style>"
            );
        }
        let _ = write!(x, "</Layer>");
    };
    // Layers by variable name: the latest run, other runs by DIM_REFERENCE_TIME.
    if let Some(latest) = runs.first() {
        let _ = write!(
            x,
            "<Layer><Title>Latest run ({})</Title>",
            xml_escape(&latest.meta.id)
        );
        for var in &latest.meta.variables {
            let refs: Vec<String> = runs
                .iter()
                .filter(|r| r.var(&var.name).is_ok())
                .filter_map(|r| r.meta.reference_time.as_ref().map(iso))
                .collect();
            layer(&mut x, &var.name, latest, var, &refs);
        }
        let _ = write!(x, "</Layer>");
    }
    for run in &runs {
        let _ = write!(
            x,
            "<Layer><Title>Run {} ({})</Title>",
            xml_escape(&run.meta.id),
            xml_escape(&run.meta.method)
        );
        for var in &run.meta.variables {
            layer(
                &mut x,
                &format!("{}/{}", run.meta.id, var.name),
                run,
                var,
                &[],
            );
        }
        let _ = write!(x, "</Layer>");
    }
    let _ = write!(
        x,
        "</Layer></Capability></{}>",
        if v13 {
            "WMS_Capabilities"
        } else {
            "WMT_MS_Capabilities"
        }
    );
    let ctype = if v13 {
        "text/xml; charset=utf-8"
    } else {
        "application/vnd.ogc.wms_xml"
    };
    Ok(([(header::CONTENT_TYPE, ctype)], x).into_response())
}
