//! The OpenAPI 3 description of the API, written by hand. A test checks it
//! against `api::ROUTES`, the list of the router's routes.

use serde_json::{json, Value};

/// A parameter object.
fn param(name: &str, location: &str, required: bool, description: &str) -> Value {
    json!({"name": name, "in": location, "required": required, "description": description, "schema": {"type": "string"}})
}

/// An optional query parameter.
fn q(name: &str, description: &str) -> Value {
    param(name, "query", false, description)
}

/// A path parameter, described by its name.
fn path(name: &str) -> Value {
    param(
        name,
        "path",
        true,
        match name {
            "run" => "run id, or 'latest'",
            "id" => "job id",
            "var" => "variable name (e.g. t2m)",
            "z" => "zoom level",
            "x" => "tile column",
            "y" => "tile row",
            _ => "",
        },
    )
}

/// The success response (`ctype`) and the JSON errors every endpoint may give.
fn responses(ok: &str, ctype: &str) -> Value {
    json!({
        "200": {"description": ok, "content": {ctype: {}}},
        "400": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"},
        "422": {"$ref": "#/components/responses/Error"},
        "503": {"$ref": "#/components/responses/Error"},
    })
}

/// An operation object.
fn op(summary: &str, params: Vec<Value>, resp: Value) -> Value {
    json!({"summary": summary, "parameters": params, "responses": resp})
}

/// The OpenAPI 3 document served at `/openapi.json`.
pub fn document() -> Value {
    let json_ok = |d: &str| responses(d, "application/json");
    let png_ok = |d: &str| responses(d, "image/png");
    let style = || {
        vec![
            q(
                "palette",
                "temperature, wind, precipitation, difference, terrain",
            ),
            q(
                "range",
                "LO,HI colour range (default fixed per variable), or auto",
            ),
        ]
    };
    let mut tile_params = vec![
        path("run"),
        path("var"),
        path("z"),
        path("x"),
        path("y"),
        q("time", "valid time (ISO 8601); default the first"),
        q("interp", "bilinear (default) or nearest"),
    ];
    tile_params.extend(style());
    let mut map_params = vec![
        path("run"),
        q("var", "variable"),
        q("time", "valid time"),
        q("width", "pixels (default 1000)"),
        q("height", "pixels (default 800)"),
        q("hillshade", "true (default) or false"),
    ];
    map_params.extend(style());
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "finecast",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Downscaled (~3 km) weather forecasts: jobs, runs, point forecasts, maps, XYZ tiles and WMS. \
                            Errors are JSON {\"error\": true, \"code\": \"...\", \"reason\": \"...\"}.",
        },
        "paths": {
            "/": {"get": op("Web viewer (HTML)", vec![], responses("the viewer", "text/html"))},
            "/assets/{path}": {"get": op("Embedded viewer assets (Leaflet, viewer.js)", vec![param("path", "path", true, "asset path")], responses("the file", "application/octet-stream"))},
            "/docs": {"get": op("This API as an HTML page", vec![], responses("the page", "text/html"))},
            "/openapi.json": {"get": op("This document", vec![], json_ok("OpenAPI 3"))},
            "/healthz": {"get": op("Liveness: 200 while the process serves", vec![], json_ok("alive"))},
            "/readyz": {"get": op("Readiness: 503 until the run store is loaded and the demo run exists", vec![], json_ok("ready"))},
            "/metrics": {"get": op("Prometheus metrics", vec![], responses("text exposition format", "text/plain"))},
            "/v1/jobs": {
                "post": {
                    "summary": "Submit a downscaling job (202 + Location). JSON naming a file of the input directory, or multipart with parts 'file' and 'request'. Needs an API key when keys are configured.",
                    "requestBody": {"required": true, "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}},
                        "multipart/form-data": {"schema": {"type": "object", "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "request": {"$ref": "#/components/schemas/JobRequest"}}}}
                    }},
                    "responses": {
                        "202": {"description": "queued", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                        "400": {"$ref": "#/components/responses/Error"},
                        "401": {"$ref": "#/components/responses/Error"},
                        "403": {"$ref": "#/components/responses/Error"},
                        "413": {"$ref": "#/components/responses/Error"},
                        "422": {"$ref": "#/components/responses/Error"},
                        "429": {"$ref": "#/components/responses/Error"},
                    }
                },
                "get": op("List jobs, newest first", vec![], json_ok("jobs")),
            },
            "/v1/jobs/{id}": {
                "get": op("Job status: queued, running, succeeded, failed or cancelled, with progress and links", vec![path("id")], json_ok("the job")),
                "delete": op("Cancel a queued or running job (needs an API key when keys are configured)", vec![path("id")], json_ok("the job")),
            },
            "/v1/runs": {"get": op("List runs, newest first", vec![], json_ok("runs"))},
            "/v1/runs/{run}": {
                "get": op("Run metadata: reference and valid times, variables and units, grid/CRS, bbox, method, weights hash, input checksums", vec![path("run")], json_ok("the run")),
                "delete": op("Delete a run by id (needs an API key when keys are configured); requests already reading it finish first", vec![path("run")],
                    json!({"204": {"description": "deleted"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"},
                           "404": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}})),
            },
            "/v1/runs/{run}/data": {"get": op("Download the run: NetCDF (whole or subset) or one field as GeoTIFF (float32, EPSG:4326)",
                vec![path("run"), q("var", "comma list (one for GeoTIFF)"), q("time", "valid time"), q("bbox", "west,south,east,north in degrees"), q("format", "netcdf (default) or geotiff")],
                responses("the file", "application/x-netcdf"))},
            "/v1/runs/{run}/map.png": {"get": op("Framed map with title, colour bar, valid time and hillshade", map_params, png_ok("PNG"))},
            "/v1/runs/{run}/legend.png": {"get": op("Colour bar with ticks and units", vec![path("run"), q("var", "variable"), q("palette", "palette"), q("range", "LO,HI"), q("height", "pixels")], png_ok("PNG"))},
            "/v1/forecast": {"get": op("Point forecast (Open-Meteo conventions); several points give an array",
                vec![param("latitude", "query", true, "comma list"), param("longitude", "query", true, "comma list"), q("hourly", "comma list of variables (default all)"),
                     q("run", "run id or latest (default)"), q("temperature_unit", "kelvin (default), celsius, fahrenheit"), q("format", "json (default) or csv")],
                json_ok("time series"))},
            "/v1/tiles/{run}/tilejson.json": {"get": op("TileJSON 3.0 for a variable's XYZ tiles", {
                let mut p = vec![path("run"), q("var", "variable (default the first)"), q("time", "valid time")];
                p.extend(style());
                p
            }, json_ok("TileJSON"))},
            "/v1/tiles/{run}/{var}/{z}/{x}/{y}.png": {"get": op("XYZ tile (EPSG:3857, 256 px, transparent outside the domain; ETag/304)", tile_params, png_ok("PNG tile"))},
            "/wms": {"get": op("OGC WMS 1.3.0/1.1.1: GetCapabilities, GetMap, GetFeatureInfo, GetLegendGraphic",
                vec![param("SERVICE", "query", false, "WMS"), param("REQUEST", "query", true, "operation"), q("VERSION", "1.3.0 (default) or 1.1.1"),
                     q("LAYERS", "<run>/<var> or <var>"), q("CRS", "EPSG:4326 (lat,lon order in 1.3.0), CRS:84, EPSG:3857"), q("BBOX", "in the CRS's axis order"),
                     q("WIDTH", "pixels"), q("HEIGHT", "pixels"), q("TIME", "valid time"), q("DIM_REFERENCE_TIME", "run reference time"),
                     q("STYLES", "raster/<palette>"), q("COLORSCALERANGE", "LO,HI"), q("TRANSPARENT", "TRUE/FALSE"), q("I", "pixel column (GetFeatureInfo)"), q("J", "pixel row"),
                     q("INFO_FORMAT", "text/plain or application/json")],
                responses("capabilities, image or feature info", "text/xml"))},
        },
        "components": {
            "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "boolean"}, "code": {"type": "string"}, "reason": {"type": "string"}}},
                "JobRequest": {"type": "object", "required": ["target"], "properties": {
                    "input": {"type": "string", "description": "file name in the server's input directory (omit with an upload)"},
                    "terrain": {"type": "string", "description": "DEM file in the input directory (default: the server's)"},
                    "target": {"type": "object", "properties": {
                        "region": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "description": "[south, north, west, east]"},
                        "resolution_km": {"type": "number"},
                        "grid_like": {"type": "string", "description": "file in the input directory whose grid is the target"}}},
                    "vars": {"type": "array", "items": {"type": "string"}},
                    "method": {"type": "string", "enum": crate::queue::METHODS, "default": "lapse"},
                    "times": {"type": "array", "items": {"type": "string", "format": "date-time"}},
                    "reference_time": {"type": "string", "format": "date-time"}}},
                "Job": {"type": "object", "properties": {
                    "id": {"type": "string"},
                    "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
                    "progress": {"type": "number"}, "step": {"type": "string"},
                    "created": {"type": "string"}, "started": {"type": "string"}, "finished": {"type": "string"},
                    "error": {"type": "string"}, "run": {"type": "string"}, "links": {"type": "array"}}},
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/v1/tiles/{run}/{var}/{z}/{x}/{y}` (the router's form) as documented.
    fn documented_path(route: &str) -> String {
        match route {
            "/v1/tiles/{run}/{var}/{z}/{x}/{y}" => "/v1/tiles/{run}/{var}/{z}/{x}/{y}.png".into(),
            "/assets/{*path}" => "/assets/{path}".into(),
            other => other.into(),
        }
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (p, ops) in paths {
            for m in ops.as_object().expect("ops").keys() {
                documented.push((m.to_ascii_uppercase(), p.clone()));
            }
        }
        let mut routed: Vec<(String, String)> = crate::api::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), documented_path(p)))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
