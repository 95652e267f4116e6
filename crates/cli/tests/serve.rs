//! End-to-end tests of `finecast serve`: the built binary on a loopback port
//! with a temporary data directory, driven by a real HTTP client.
//!
//! The tile snapshot is regenerated with `FINECAST_UPDATE_SNAPSHOTS=1`. The
//! browser test needs Chromium (`scripts/install-chromium.sh`) and skips with
//! a message without it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/sample")
        .join(name)
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Start `finecast serve` on an ephemeral port and wait for its
    /// "listening on" line.
    fn start(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_finecast"))
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(["--sample-dir"])
            .arg(sample(""))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start finecast serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let base = rest.split_whitespace().next().expect("address").to_string();
                        return Server { child, base };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("finecast serve did not start within 60 s");
                }
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if get(&self.url("/readyz")).0 == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("server not ready after 90 s");
    }

    fn signal(&mut self, sig: &str) -> ExitStatus {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop after {sig}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn crash(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

struct Resp {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("HTTP request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()
        .expect("body");
    Resp {
        status,
        headers,
        body,
    }
}

fn get(url: &str) -> (u16, Vec<u8>) {
    let r = finish(agent().get(url).call());
    (r.status, r.body)
}

fn get_with(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.call())
}

fn get_json(url: &str) -> (u16, Value) {
    let r = get_with(url, &[]);
    (r.status, r.json())
}

fn post_json(url: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().post(url).header("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.send(serde_json::to_vec(body).expect("json").as_slice()))
}

fn delete(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().delete(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.call())
}

/// `POST /v1/jobs` as a multipart upload: the JSON request and one file.
fn upload_job(server: &Server, request: &Value, filename: &str, file: &[u8]) -> Resp {
    let boundary = "finecast-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"request\"\r\nContent-Type: application/json\r\n\r\n{request}\r\n").as_bytes());
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/x-netcdf\r\n\r\n").as_bytes());
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    finish(
        agent()
            .post(&server.url("/v1/jobs"))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(body.as_slice()),
    )
}

fn wait_job(server: &Server, id: &str, want: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, job) = get_json(&server.url(&format!("/v1/jobs/{id}")));
        assert_eq!(status, 200, "{job}");
        if want.contains(&job["status"].as_str().unwrap_or("")) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} stuck: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    buf.truncate(info.buffer_size());
    // Normalise to RGBA.
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, rgba)
}

/// Send only the head of a POST declaring `len` body bytes; return the
/// status and body of the answer.
fn raw_post_headers(server: &Server, path: &str, len: usize, extra: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = server.base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra}Content-Length: {len}\r\n\r\n").expect("send");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read until the head and the whole (Content-Length) body have arrived.
    loop {
        let n = s.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let want = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            });
            if want.is_some_and(|w| body.len() >= w) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn assert_error(r: &Resp, status: u16, contains: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"], true, "{body}");
    assert!(
        body["reason"].as_str().unwrap_or("").contains(contains),
        "reason should mention '{contains}': {body}"
    );
}

#[test]
fn demo_run_answers_every_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    assert_eq!(get(&server.url("/healthz")).0, 200);
    server.wait_ready();

    let (status, runs) = get_json(&server.url("/v1/runs"));
    assert_eq!(status, 200);
    let run = &runs["runs"][0];
    assert_eq!(run["demo"], true);
    assert_eq!(run["method"], "lapse");
    assert_eq!(
        run["weights_sha256"],
        Value::Null,
        "baselines have no weights"
    );
    assert_eq!(run["grid"]["grid_mapping"], "lambert_azimuthal_equal_area");
    assert_eq!(run["valid_times"].as_array().expect("times").len(), 4);
    assert_eq!(run["inputs"].as_array().expect("inputs").len(), 2);
    assert_eq!(run["inputs"][0]["sha256"].as_str().expect("sha").len(), 64);
    let names: Vec<&str> = run["variables"]
        .as_array()
        .expect("vars")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in ["t2m", "u10", "v10", "tp"] {
        assert!(names.contains(&v), "{names:?}");
    }
    let id = run["id"].as_str().expect("id").to_string();
    let (_, latest) = get_json(&server.url("/v1/runs/latest"));
    assert_eq!(latest["id"], id.as_str());

    // Point forecasts, Open-Meteo style.
    let (status, f) = get_json(&server.url("/v1/forecast?latitude=47.0&longitude=8.0&hourly=t2m,temperature_2m&temperature_unit=celsius"));
    assert_eq!(status, 200, "{f}");
    assert_eq!(f["hourly"]["time"].as_array().expect("time").len(), 4);
    assert_eq!(f["hourly_units"]["t2m"], "°C");
    assert_eq!(f["hourly"]["t2m"], f["hourly"]["temperature_2m"]);
    assert!((f["latitude"].as_f64().expect("lat") - 47.0).abs() < 0.05);
    assert!(f["elevation"].as_f64().expect("elevation") > 0.0);
    assert_eq!(f["run"]["id"], id.as_str());
    assert!(f["generationtime_ms"].is_number());
    let (_, many) = get_json(&server.url("/v1/forecast?latitude=47,46.5&longitude=8,9"));
    assert_eq!(many.as_array().expect("array for several points").len(), 2);
    let csv = get_with(
        &server.url("/v1/forecast?latitude=47,46.5&longitude=8,9&hourly=t2m&format=csv"),
        &[],
    );
    assert_eq!(csv.status, 200);
    assert!(
        csv.text().contains("location_id,time,t2m (K)"),
        "{}",
        csv.text()
    );
    assert_eq!(
        csv.text()
            .lines()
            .filter(|l| l.starts_with("1,2024-"))
            .count(),
        4
    );

    // Latency of the point API, warm (decoded fields in memory).
    let a = agent();
    let url = server.url("/v1/forecast?latitude=46.8&longitude=8.3&hourly=t2m,u10,v10,tp");
    let mut times = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let r = finish(a.get(&url).call());
        assert_eq!(r.status, 200);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let (p50, p99) = (times[150], times[296]);
    eprintln!("forecast latency over 300 requests: p50 {p50:.2} ms, p99 {p99:.2} ms");
    assert!(p99 < 250.0, "p99 {p99} ms");

    // Map, legend, TileJSON.
    let map = get_with(
        &server.url("/v1/runs/latest/map.png?var=t2m&time=2024-01-15T12:00:00Z"),
        &[],
    );
    assert_eq!(map.status, 200);
    assert_eq!(map.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(decode_png(&map.body).0, 1000);
    let legend = get_with(&server.url("/v1/runs/latest/legend.png?var=t2m"), &[]);
    assert_eq!(legend.status, 200);
    let (_, tj) = get_json(&server.url("/v1/tiles/latest/tilejson.json?var=t2m"));
    assert_eq!(tj["tilejson"], "3.0.0");
    assert!(tj["tiles"][0]
        .as_str()
        .expect("tiles")
        .contains("/{z}/{x}/{y}.png"));
    assert_eq!(tj["bounds"].as_array().expect("bounds").len(), 4);
    assert!(tj["maxzoom"].as_u64().expect("maxzoom") >= 7);

    // Data downloads: the whole NetCDF, a subset, a GeoTIFF.
    let nc = get_with(&server.url(&format!("/v1/runs/{id}/data")), &[]);
    assert_eq!(nc.status, 200);
    assert_eq!(&nc.body[..4], b"\x89HDF");
    let sub = get_with(
        &server.url(&format!(
            "/v1/runs/{id}/data?var=t2m&time=2024-01-15T06:00Z&bbox=7,46,9,47"
        )),
        &[],
    );
    assert_eq!(sub.status, 200, "{}", sub.text());
    assert!(sub.body.len() < nc.body.len());
    let path = dir.path().join("subset.nc");
    std::fs::write(&path, &sub.body).expect("write");
    let ds = finecast_io::open(&path).expect("subset opens");
    let f = ds
        .read("t2m", &finecast_io::Selection::default())
        .expect("t2m");
    let (w, s, e, n) = f.field.grid.bbox_lonlat();
    assert!(
        w > 6.8 && e < 9.2 && s > 45.8 && n < 47.2,
        "subset bbox {w} {s} {e} {n}"
    );
    let tif = get_with(
        &server.url(&format!(
            "/v1/runs/{id}/data?var=t2m&format=geotiff&bbox=7,46,9,47"
        )),
        &[],
    );
    assert_eq!(tif.status, 200, "{}", tif.text());
    assert_eq!(&tif.body[..4], b"II*\0");

    // Operations: metrics, OpenAPI, docs, viewer, request ids, compression.
    let metrics = String::from_utf8(get(&server.url("/metrics")).1).expect("utf8");
    for name in [
        "finecast_http_requests_total{route=\"/v1/forecast\"",
        "finecast_http_request_duration_seconds_bucket",
        "finecast_job_queue_depth",
        "finecast_jobs{state=\"succeeded\"} 1",
        "finecast_tile_cache_hits_total",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
    let (status, api) = get_json(&server.url("/openapi.json"));
    assert_eq!(status, 200);
    assert!(api["paths"]["/v1/forecast"]["get"].is_object());
    for page in [
        "/docs",
        "/",
        "/assets/leaflet/leaflet.js",
        "/assets/viewer.js",
    ] {
        assert_eq!(get(&server.url(page)).0, 200, "{page}");
    }
    let r = get_with(&server.url("/healthz"), &[("x-request-id", "test-123")]);
    assert_eq!(r.header("x-request-id").as_deref(), Some("test-123"));
    assert!(get_with(&server.url("/healthz"), &[])
        .header("x-request-id")
        .is_some());
    let gz = get_with(&server.url("/openapi.json"), &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"));
    let png = get_with(
        &server.url("/v1/tiles/latest/t2m/7/66/45.png"),
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(
        png.header("content-encoding"),
        None,
        "PNG is not recompressed"
    );
}

/// A lat/lon forecast whose temperature falls steadily to the north.
fn write_gradient_input(path: &Path) {
    let grid = finecast_grid::Grid::regular_latlon(4.0, 0.25, 36, 44.0, 0.25, 24).expect("grid");
    let data = ndarray::Array2::from_shape_fn((24, 36), |(j, _)| 300.0 - 2.0 * (0.25 * j as f32));
    let var = finecast_io::OutputVar {
        name: "t2m".into(),
        standard_name: Some("air_temperature".into()),
        long_name: Some("2 m temperature falling northwards".into()),
        units: "K".into(),
        grid,
        times: vec![chrono::DateTime::parse_from_rfc3339("2024-01-15T06:00:00Z")
            .expect("t")
            .to_utc()],
        data: vec![data],
    };
    finecast_io::write_netcdf(path, &[var], &finecast_io::Provenance::default())
        .expect("write input");
}

fn mean_rgb(rgba: &[u8], w: u32, rows: std::ops::Range<u32>) -> [f64; 4] {
    let mut acc = [0.0; 4];
    let mut n = 0.0;
    for y in rows {
        for x in 0..w {
            let k = ((y * w + x) * 4) as usize;
            if rgba[k + 3] > 0 {
                for c in 0..3 {
                    acc[c] += f64::from(rgba[k + c]);
                }
                n += 1.0;
            }
        }
    }
    acc[3] = n;
    if n > 0.0 {
        for c in acc.iter_mut().take(3) {
            *c /= n;
        }
    }
    acc
}

#[test]
fn job_from_upload_to_run_to_map_and_wms_axis_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--no-demo"]);
    server.wait_ready();

    // Upload (multipart: the file plus the JSON request).
    let request = serde_json::json!({
        "target": {"region": [45.8, 47.8, 6.5, 10.0], "resolution_km": 5},
        "vars": ["t2m", "tp"], "method": "gradient"
    });
    let file = std::fs::read(sample("forecast_alps_0p25.nc")).expect("sample");
    let r = upload_job(&server, &request, "../evil/forecast.nc", &file);
    assert_eq!(r.status, 202, "{}", r.text());
    let job = r.json();
    let id = job["id"].as_str().expect("id").to_string();
    assert_eq!(r.header("location"), Some(format!("/v1/jobs/{id}")));
    assert!(["queued", "running"].contains(&job["status"].as_str().expect("status")));
    let done = wait_job(&server, &id, &["succeeded", "failed"]);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"], 100.0);
    assert!(done["started"].is_string() && done["finished"].is_string());
    let run_id = done["run"].as_str().expect("run").to_string();
    assert!(done["links"]
        .to_string()
        .contains(&format!("/v1/runs/{run_id}")));
    let (_, run) = get_json(&server.url(&format!("/v1/runs/{run_id}")));
    assert_eq!(run["method"], "gradient");
    assert!((run["grid"]["dx_m"].as_f64().expect("dx") - 5000.0).abs() < 1.0);
    let map = get_with(&server.url(&format!("/v1/runs/{run_id}/map.png?var=tp&palette=precipitation&range=0,10&width=600&height=450")), &[]);
    assert_eq!(map.status, 200, "{}", map.text());
    assert!(
        !dir.path().join("uploads").join(&id).exists(),
        "the upload is removed when the job ends"
    );

    // A job naming a file of the input directory: a field that cools northwards.
    write_gradient_input(&dir.path().join("inputs/gradient.nc"));
    let r = post_json(
        &server.url("/v1/jobs"),
        &serde_json::json!({"input": "gradient.nc", "target": {"region": [45.5, 48, 5.8, 10.6], "resolution_km": 10}, "method": "bilinear"}),
        &[],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let done = wait_job(
        &server,
        r.json()["id"].as_str().expect("id"),
        &["succeeded", "failed"],
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    let run = done["run"].as_str().expect("run").to_string();

    // WMS 1.3.0, EPSG:4326: BBOX is minLat,minLon,maxLat,maxLon.
    let wms = |q: &str| {
        get_with(&server.url(&format!("/wms?SERVICE=WMS&REQUEST=GetMap&LAYERS={run}/t2m&STYLES=raster/temperature&FORMAT=image/png&TRANSPARENT=TRUE&WIDTH=200&HEIGHT=100&COLORSCALERANGE=292,297&{q}")), &[])
    };
    let lat_first = wms("VERSION=1.3.0&CRS=EPSG:4326&BBOX=46,6.5,47.5,10");
    assert_eq!(lat_first.status, 200, "{}", lat_first.text());
    let (w, h, img) = decode_png(&lat_first.body);
    let top = mean_rgb(&img, w, 0..h / 4);
    let bottom = mean_rgb(&img, w, 3 * h / 4..h);
    assert!(top[3] > 0.0 && bottom[3] > 0.0, "the map has data");
    assert!(
        top[2] > top[0] && bottom[0] > bottom[2],
        "north (top) must be cold/blue, south warm/red: top {top:?} bottom {bottom:?}"
    );
    // The same box as CRS:84 (lon first) and as WMS 1.1.1 EPSG:4326 (lon first).
    let crs84 = wms("VERSION=1.3.0&CRS=CRS:84&BBOX=6.5,46,10,47.5");
    assert_eq!(
        decode_png(&crs84.body).2,
        img,
        "CRS:84 with lon/lat order is the same map"
    );
    let v111 = wms("VERSION=1.1.1&SRS=EPSG:4326&BBOX=6.5,46,10,47.5");
    assert_eq!(
        decode_png(&v111.body).2,
        img,
        "WMS 1.1.1 EPSG:4326 is lon/lat"
    );
    // Lon-first under 1.3.0 EPSG:4326 is another place (lat 6.5..10): not this map.
    let swapped = wms("VERSION=1.3.0&CRS=EPSG:4326&BBOX=6.5,46,10,47.5");
    assert_eq!(swapped.status, 200);
    let swapped_px = decode_png(&swapped.body).2;
    assert_ne!(swapped_px, img);
    assert!(
        swapped_px.chunks(4).all(|p| p[3] == 0),
        "nothing of the run lies at lat 6.5..10, lon 46..47.5"
    );
    // ...and a swap that puts a longitude into the latitude axis is refused.
    let bad = get_with(&server.url(&format!("/wms?REQUEST=GetMap&LAYERS={run}/t2m&CRS=EPSG:4326&BBOX=95,46,100,47&WIDTH=10&HEIGHT=10&VERSION=1.3.0")), &[]);
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("ServiceException"), "{}", bad.text());
    // GetFeatureInfo: colder at the top pixel than at the bottom one.
    let info = |j: u32| {
        let r = get_with(&server.url(&format!("/wms?REQUEST=GetFeatureInfo&VERSION=1.3.0&QUERY_LAYERS={run}/t2m&CRS=EPSG:4326&BBOX=46,6.5,47.5,10&WIDTH=200&HEIGHT=100&I=100&J={j}&INFO_FORMAT=application/json")), &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["features"][0]["properties"]["value"]
            .as_f64()
            .expect("value")
    };
    assert!(info(5) < info(95) - 1.0);
    let caps = get_with(
        &server.url("/wms?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0"),
        &[],
    );
    let caps = caps.text();
    assert!(
        caps.contains("<WMS_Capabilities") && caps.contains(&format!("<Name>{run}/t2m</Name>"))
    );
    assert!(
        caps.contains("<Dimension name=\"time\"")
            && caps.contains("<Dimension name=\"reference_time\"")
    );
    assert!(caps.contains("EX_GeographicBoundingBox") && caps.contains("raster/temperature"));
    let legend = get_with(
        &server.url(&format!(
            "/wms?REQUEST=GetLegendGraphic&LAYER={run}/t2m&STYLE=raster/wind"
        )),
        &[],
    );
    assert_eq!(legend.status, 200);
    assert_eq!(legend.header("content-type").as_deref(), Some("image/png"));
    // The legend is the size the capabilities advertise.
    let advertised = caps
        .split("<LegendURL width=\"")
        .nth(1)
        .and_then(|rest| {
            let (w, rest) = rest.split_once("\" height=\"")?;
            let (h, _) = rest.split_once('"')?;
            Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?))
        })
        .expect("a LegendURL with width and height");
    let (lw, lh, _) = decode_png(&legend.body);
    assert_eq!((lw, lh), advertised);
    // JPEG, which GDAL's WMS driver asks for by default, is served and
    // advertised; TRANSPARENT is ignored there (JPEG has no alpha).
    assert!(caps.contains("<Format>image/jpeg</Format>"));
    let jpeg = get_with(&server.url(&format!("/wms?SERVICE=WMS&REQUEST=GetMap&VERSION=1.3.0&LAYERS={run}/t2m&STYLES=&FORMAT=image/jpeg&TRANSPARENT=TRUE&CRS=EPSG:4326&BBOX=46,6.5,47.5,10&WIDTH=200&HEIGHT=100")), &[]);
    assert_eq!(jpeg.status, 200, "{}", jpeg.text());
    assert_eq!(jpeg.header("content-type").as_deref(), Some("image/jpeg"));
    assert_eq!(&jpeg.body[..3], &[0xFF, 0xD8, 0xFF], "a JPEG stream");
    let gif = get_with(&server.url(&format!("/wms?SERVICE=WMS&REQUEST=GetMap&VERSION=1.3.0&LAYERS={run}/t2m&FORMAT=image/gif&CRS=EPSG:4326&BBOX=46,6.5,47.5,10&WIDTH=20&HEIGHT=10")), &[]);
    assert_eq!(gif.status, 400);
    assert!(
        gif.text().contains("image/png or image/jpeg"),
        "{}",
        gif.text()
    );
}

#[test]
fn tile_snapshot_etag_and_transparency() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No pre-rendering: the cache counters below count this test's requests.
    let server = Server::start(dir.path(), &["--prerender-tiles", "0"]);
    server.wait_ready();
    let url = server.url("/v1/tiles/latest/t2m/7/66/45.png?time=2024-01-15T12:00:00Z");
    let r = get_with(&url, &[]);
    assert_eq!(r.status, 200);
    let etag = r.header("etag").expect("ETag");
    assert!(r
        .header("cache-control")
        .expect("Cache-Control")
        .contains("max-age"));
    let (w, h, px) = decode_png(&r.body);
    assert_eq!((w, h), (256, 256));
    assert!(px.chunks(4).any(|p| p[3] == 255), "the tile has data");
    assert!(
        px.chunks(4).any(|p| p[3] == 0),
        "the tile has transparent pixels beyond the domain edge"
    );
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(&px));
    let snap = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/tile_t2m_7_66_45.txt");
    let update = std::env::var_os("FINECAST_UPDATE_SNAPSHOTS").is_some();
    match std::fs::read_to_string(&snap) {
        Ok(want) if !update => assert_eq!(
            want.trim(),
            hash,
            "tile pixels changed; if intended, rerun with FINECAST_UPDATE_SNAPSHOTS=1"
        ),
        _ => {
            std::fs::write(&snap, format!("{hash}\n")).expect("write snapshot");
            eprintln!("wrote tile snapshot {}", snap.display());
        }
    }
    let again = get_with(&url, &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    // Entirely outside the domain: an empty (transparent) tile.
    let outside = get_with(&server.url("/v1/tiles/latest/t2m/7/0/0.png"), &[]);
    assert_eq!(outside.status, 200);
    assert!(decode_png(&outside.body).2.chunks(4).all(|p| p[3] == 0));
    let metrics = String::from_utf8(get(&server.url("/metrics")).1).expect("utf8");
    assert!(
        metrics.contains("finecast_tile_cache_misses_total 1"),
        "{metrics}"
    );
}

/// A burst of cold tile renders far beyond the tile pool and its queue
/// (`--render-queue 1`): the excess is shed at once with 503, `Retry-After`
/// and a JSON reason, nothing else fails, and point forecasts, which never
/// enter a render pool, keep answering faster than the tiles do (medians
/// compared within the same run, not against a fixed time).
#[test]
fn cold_render_burst_is_shed_and_points_stay_fast() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &["--render-queue", "1", "--prerender-tiles", "0"],
    );
    server.wait_ready();
    let (_, run) = get_json(&server.url("/v1/runs/latest"));
    let times: Vec<String> = run["valid_times"]
        .as_array()
        .expect("times")
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    // Distinct tiles over the demo domain (5.8-10.6E, 45.5-48N): every
    // request is a cold render.
    let tile_of = |z: u32, lon: f64, lat: f64| {
        let n = f64::from(1u32 << z);
        let x = ((lon + 180.0) / 360.0 * n) as u32;
        let y = ((1.0 - lat.to_radians().tan().asinh() / std::f64::consts::PI) / 2.0 * n) as u32;
        (x, y)
    };
    let mut urls = Vec::new();
    for z in 10..=13 {
        let (x0, y0) = tile_of(z, 5.8, 48.0);
        let (x1, y1) = tile_of(z, 10.6, 45.5);
        for t in &times {
            for x in x0..=x1 {
                for y in y0..=y1 {
                    urls.push(
                        server.url(&format!("/v1/tiles/latest/t2m/{z}/{x}/{y}.png?time={t}")),
                    );
                }
            }
        }
    }
    let (next, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let (mut tile_ms, mut shed, mut point_ms) = (Vec::new(), 0usize, Vec::new());
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let (mut ok_ms, mut shed) = (Vec::new(), 0usize);
                    while !stop.load(Ordering::SeqCst) {
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        let Some(url) = urls.get(k) else { break };
                        let t = Instant::now();
                        let r = get_with(url, &[]);
                        match r.status {
                            200 => ok_ms.push(t.elapsed().as_secs_f64() * 1e3),
                            503 => {
                                assert_eq!(r.header("retry-after").as_deref(), Some("1"));
                                assert_eq!(r.json()["code"], "overloaded", "{}", r.text());
                                shed += 1;
                            }
                            other => panic!("{url}: {other} {}", r.text()),
                        }
                    }
                    (ok_ms, shed)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        for k in 0..40 {
            let t = Instant::now();
            let (status, f) = get_json(&server.url(&format!(
                "/v1/forecast?latitude={}&longitude=8.0&hourly=t2m",
                46.0 + 0.02 * f64::from(k)
            )));
            point_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(status, 200, "{f}");
            std::thread::sleep(Duration::from_millis(25));
        }
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            let (ok, n) = c.join().expect("client");
            tile_ms.extend(ok);
            shed += n;
        }
    });
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    assert!(
        shed > 0,
        "6 clients never filled a pool of 2 threads + 1 queued"
    );
    assert!(tile_ms.len() > 10, "{} tiles rendered", tile_ms.len());
    let (points, tiles) = (median(&mut point_ms), median(&mut tile_ms));
    eprintln!(
        "{} tiles rendered (median {tiles:.1} ms), {shed} shed; point median {points:.1} ms, max {:.1} ms",
        tile_ms.len(),
        point_ms.last().copied().unwrap_or(f64::NAN)
    );
    assert!(
        points < tiles,
        "points {points:.1} ms vs tiles {tiles:.1} ms"
    );
    let metrics = String::from_utf8(get(&server.url("/metrics")).1).expect("utf8");
    let counted: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("finecast_renders_shed_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("finecast_renders_shed_total");
    assert!(counted >= shed, "metrics count {counted} of {shed} shed");
}

/// Error messages name files relative to the data directory, never where
/// the server keeps them: a corrupt upload, and a run damaged on disk.
#[test]
fn errors_name_files_relative_to_the_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--prerender-tiles", "0"]);
    server.wait_ready();
    let request =
        serde_json::json!({"target": {"region": [45.8, 47.8, 6.5, 10.0], "resolution_km": 5}});
    let r = upload_job(
        &server,
        &request,
        "broken.nc",
        b"CDF\x01 this is not really NetCDF",
    );
    let data_dir = std::fs::canonicalize(dir.path()).expect("canonical");
    let data_dir = data_dir.to_string_lossy().into_owned();
    let message = if r.status == 202 {
        let id = r.json()["id"].as_str().expect("id").to_string();
        let job = wait_job(&server, &id, &["succeeded", "failed"]);
        assert_eq!(job["status"], "failed", "{job}");
        job["error"].as_str().expect("error").to_string()
    } else {
        assert_eq!(r.status, 422, "{}", r.text());
        r.json()["reason"].as_str().expect("reason").to_string()
    };
    assert!(message.contains("broken.nc"), "{message}");
    assert!(!message.contains(&data_dir), "{message}");

    // A run file damaged on disk after it was published: the 500 names
    // it from the data directory.
    let (_, run) = get_json(&server.url("/v1/runs/latest"));
    let id = run["id"].as_str().expect("run id").to_string();
    std::fs::write(
        dir.path().join("runs").join(&id).join("output.nc"),
        b"damaged",
    )
    .expect("damage");
    let r = get_with(
        &server.url("/v1/forecast?latitude=47&longitude=8&hourly=tp"),
        &[],
    );
    assert_eq!(r.status, 500, "{}", r.text());
    let reason = r.json()["reason"].as_str().expect("reason").to_string();
    assert!(reason.contains(&format!("runs/{id}/output.nc")), "{reason}");
    assert!(!reason.contains(&data_dir), "{reason}");
}

/// The low zooms of a new run are drawn into the tile cache before anyone
/// asks: the first request for such a tile is a cache hit.
#[test]
fn new_runs_low_zooms_are_prerendered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--prerender-tiles", "16"]);
    server.wait_ready();
    let counter = |name: &str| -> u64 {
        let metrics = String::from_utf8(get(&server.url("/metrics")).1).expect("utf8");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter("finecast_tiles_prerendered_total") == 0 {
        assert!(Instant::now() < deadline, "nothing pre-rendered in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Whole zooms only, within the budget.
    let drawn = counter("finecast_tiles_prerendered_total");
    std::thread::sleep(Duration::from_millis(500));
    assert!(drawn <= 16 && counter("finecast_tiles_prerendered_total") <= 16);
    // The default variable's zoom-2 tile over the domain (8.2E 46.75N).
    let (_, tj) = get_json(&server.url("/v1/tiles/latest/tilejson.json"));
    let var = tj["finecast"]["variable"]
        .as_str()
        .expect("variable")
        .to_string();
    let (hits, misses) = (
        counter("finecast_tile_cache_hits_total"),
        counter("finecast_tile_cache_misses_total"),
    );
    let r = get_with(
        &server.url(&format!("/v1/tiles/latest/{var}/2/2/1.png")),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(counter("finecast_tile_cache_hits_total"), hits + 1);
    assert_eq!(counter("finecast_tile_cache_misses_total"), misses);
}

#[test]
fn limits_and_errors_answer_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &[
            "--api-key",
            "k1,secret",
            "--max-body-mb",
            "4",
            "--max-image-px",
            "512",
            "--max-bbox-cells",
            "5000",
        ],
    );
    server.wait_ready();
    // Jobs posted below may finish and become "latest"; the size limits are
    // checked against the demo run, so address it by id.
    let demo = get_with(&server.url("/v1/runs/latest"), &[]).json()["id"]
        .as_str()
        .expect("demo run id")
        .to_string();
    std::fs::copy(
        sample("forecast_alps_0p25.nc"),
        dir.path().join("inputs/f.nc"),
    )
    .expect("copy");
    let key = [("Authorization", "Bearer secret")];
    let job = serde_json::json!({"input": "f.nc", "target": {"region": [46, 47, 7, 8], "resolution_km": 3}, "vars": ["t2m"]});

    // 401 / 403 on write endpoints; reads stay open.
    assert_error(
        &post_json(&server.url("/v1/jobs"), &job, &[]),
        401,
        "API key",
    );
    assert_error(
        &post_json(
            &server.url("/v1/jobs"),
            &job,
            &[("Authorization", "Bearer wrong")],
        ),
        403,
        "not valid",
    );
    assert_error(
        &delete(&server.url("/v1/jobs/whatever"), &[]),
        401,
        "API key",
    );
    let ok = post_json(&server.url("/v1/jobs"), &job, &[("X-API-Key", "k1")]);
    assert_eq!(ok.status, 202, "{}", ok.text());
    assert_eq!(get(&server.url("/v1/runs")).0, 200);

    // 413: a body over --max-body-mb is refused from its Content-Length,
    // before it is sent (so the client is not left writing into a closed
    // connection, this one speaks HTTP over a plain socket).
    let (status, body) = raw_post_headers(
        &server,
        "/v1/jobs",
        8 << 20,
        "Authorization: Bearer secret\r\n",
    );
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(body["code"], "payload_too_large");
    // A JSON body is capped at 1 MiB whatever --max-body-mb allows uploads,
    // without a key too: nothing large is buffered for anyone.
    for extra in ["Authorization: Bearer secret\r\n", ""] {
        let (status, body) = raw_post_headers(&server, "/v1/jobs", 2 << 20, extra);
        assert_eq!(status, 413, "{body}");
        let body: Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(body["code"], "payload_too_large");
        assert!(
            body["reason"]
                .as_str()
                .unwrap()
                .contains("JSON request body is limited to 1024 KiB"),
            "{body}"
        );
    }

    // 400 / 422: malformed and unacceptable parameters.
    let r = finish(
        agent()
            .post(&server.url("/v1/jobs"))
            .header("Authorization", "Bearer secret")
            .header("Content-Type", "application/json")
            .send(&b"{not json"[..]),
    );
    assert_error(&r, 400, "JSON");
    let mut bad = job.clone();
    bad["method"] = "magic".into();
    assert_error(
        &post_json(&server.url("/v1/jobs"), &bad, &key),
        422,
        "lapse",
    );
    let mut bad = job.clone();
    bad["colour"] = "red".into();
    assert_error(
        &post_json(&server.url("/v1/jobs"), &bad, &key),
        422,
        "colour",
    );
    let mut bad = job.clone();
    bad["target"] = serde_json::json!({"region": [40, 50, 0, 20], "resolution_km": 1});
    assert_error(
        &post_json(&server.url("/v1/jobs"), &bad, &key),
        422,
        "max-bbox-cells",
    );
    assert_error(
        &get_with(&server.url("/v1/forecast?latitude=abc&longitude=8"), &[]),
        400,
        "latitude",
    );
    assert_error(
        &get_with(&server.url("/v1/forecast?latitude=47&longitude=8,9"), &[]),
        400,
        "longitude",
    );
    assert_error(
        &get_with(&server.url("/v1/forecast?latitude=10&longitude=8"), &[]),
        422,
        "outside",
    );
    assert_error(
        &get_with(
            &server.url(&format!("/v1/runs/{demo}/map.png?width=5000")),
            &[],
        ),
        422,
        "max-image-px",
    );
    assert_error(
        &get_with(
            &server.url(&format!("/v1/runs/{demo}/data?format=geotiff&var=t2m")),
            &[],
        ),
        422,
        "max-bbox-cells",
    );
    assert_error(
        &get_with(&server.url("/v1/runs/latest/map.png?palette=rainbow"), &[]),
        422,
        "palette",
    );
    let wms = get_with(
        &server
            .url("/wms?REQUEST=GetMap&LAYERS=t2m&CRS=CRS:84&BBOX=6,46,9,47&WIDTH=4000&HEIGHT=10"),
        &[],
    );
    assert_eq!(wms.status, 422);
    assert!(wms.text().contains("ServiceException"));

    // 404: unknown run, variable, time, job, endpoint.
    assert_error(&get_with(&server.url("/v1/runs/nope"), &[]), 404, "no run");
    assert_error(
        &get_with(
            &server.url("/v1/forecast?latitude=47&longitude=8&hourly=snow"),
            &[],
        ),
        404,
        "snow",
    );
    assert_error(
        &get_with(
            &server.url("/v1/runs/latest/map.png?var=t2m&time=2030-01-01T00:00Z"),
            &[],
        ),
        404,
        "no time",
    );
    assert_error(&get_with(&server.url("/v1/jobs/nope"), &[]), 404, "no job");
    assert_error(&get_with(&server.url("/v1/nothing"), &[]), 404, "endpoint");

    // No request path reaches files outside the data directory.
    for name in [
        "../../../etc/passwd",
        "/etc/passwd",
        "..",
        "inputs/../f.nc",
        ".hidden",
    ] {
        let mut j = job.clone();
        j["input"] = name.into();
        assert_error(&post_json(&server.url("/v1/jobs"), &j, &key), 422, "");
        let mut j = job.clone();
        j["terrain"] = name.into();
        assert_error(&post_json(&server.url("/v1/jobs"), &j, &key), 422, "");
    }
    for path in [
        "/v1/runs/..%2F..%2Fetc",
        "/v1/runs/%2e%2e",
        "/v1/runs/%2Fetc%2Fpasswd/data",
        "/v1/jobs/..%2Fjobs",
        "/assets/..%2F..%2FCargo.toml",
        "/assets/../../Cargo.toml",
        "/v1/tiles/..%2Fruns/t2m/0/0/0.png",
    ] {
        let r = get_with(&server.url(path), &[]);
        assert!(
            r.status == 404 || r.status == 400,
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert_eq!(r.json()["error"], true, "{path}");
    }
    let r = get_with(&server.url("/wms?REQUEST=GetMap&LAYERS=..%2F..%2Fetc/t2m&CRS=CRS:84&BBOX=6,46,9,47&WIDTH=10&HEIGHT=10"), &[]);
    assert_eq!(r.status, 404, "{}", r.text());

    // Deleting a run: behind the key, by id only, then gone with its files.
    let run_url = server.url(&format!("/v1/runs/{demo}"));
    assert_error(&delete(&run_url, &[]), 401, "API key");
    assert_error(
        &delete(&server.url("/v1/runs/latest"), &key),
        422,
        "by its id",
    );
    let r = delete(&run_url, &key);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(get_with(&run_url, &[]).status, 404);
    assert_error(&delete(&run_url, &key), 404, "no run");
    assert!(
        !dir.path().join("runs").join(&demo).exists(),
        "the run's files are gone once no request reads them"
    );
}

#[test]
fn full_queue_answers_429_and_cancel_really_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &[
            "--no-demo",
            "--max-queue",
            "1",
            "--workers",
            "1",
            "--debug-job-delay-ms",
            "60000",
        ],
    );
    server.wait_ready();
    std::fs::copy(
        sample("forecast_alps_0p25.nc"),
        dir.path().join("inputs/f.nc"),
    )
    .expect("copy");
    let job = serde_json::json!({"input": "f.nc", "target": {"region": [46, 47, 7, 8], "resolution_km": 3}, "vars": ["t2m"]});
    let a = post_json(&server.url("/v1/jobs"), &job, &[]).json()["id"]
        .as_str()
        .expect("a")
        .to_string();
    wait_job(&server, &a, &["running"]);
    let b = post_json(&server.url("/v1/jobs"), &job, &[]);
    assert_eq!(b.status, 202);
    let b = b.json()["id"].as_str().expect("b").to_string();
    let c = post_json(&server.url("/v1/jobs"), &job, &[]);
    assert_error(&c, 429, "queue is full");
    assert!(c.header("retry-after").is_some());
    let metrics = String::from_utf8(get(&server.url("/metrics")).1).expect("utf8");
    assert!(
        metrics.contains("finecast_job_queue_depth 1")
            && metrics.contains("finecast_jobs{state=\"running\"} 1"),
        "{metrics}"
    );

    // Cancel the queued job (at once) and the running one (at its next check).
    let r = delete(&server.url(&format!("/v1/jobs/{b}")), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "cancelled");
    let r = delete(&server.url(&format!("/v1/jobs/{a}")), &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    let done = wait_job(&server, &a, &["cancelled", "failed", "succeeded"]);
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_error(
        &delete(&server.url(&format!("/v1/jobs/{a}")), &[]),
        409,
        "already finished",
    );
    assert_eq!(
        get_json(&server.url("/v1/runs")).1["runs"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert!(
        std::fs::read_dir(dir.path().join("runs"))
            .expect("runs")
            .next()
            .is_none(),
        "no partial run is left"
    );
}

#[test]
fn restart_keeps_runs_and_resumes_interrupted_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("inputs")).expect("inputs");
    std::fs::copy(
        sample("forecast_alps_0p25.nc"),
        dir.path().join("inputs/f.nc"),
    )
    .expect("copy");
    let job = serde_json::json!({"input": "f.nc", "target": {"region": [46, 47, 7, 8], "resolution_km": 3}, "vars": ["t2m"]});

    // 1: the demo run and its job; stopped gracefully.
    let mut s1 = Server::start(dir.path(), &[]);
    s1.wait_ready();
    let (_, runs) = get_json(&s1.url("/v1/runs"));
    let demo_run = runs["latest"].as_str().expect("demo run").to_string();
    let (_, forecast_before) = get_json(&s1.url("/v1/forecast?latitude=47&longitude=8&hourly=t2m"));
    assert!(s1.signal("-TERM").success(), "graceful exit on SIGTERM");

    // 2: a job running when the process dies (SIGKILL, no chance to clean up).
    let mut s2 = Server::start(dir.path(), &["--debug-job-delay-ms", "60000"]);
    s2.wait_ready();
    let crashed = post_json(&s2.url("/v1/jobs"), &job, &[]).json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    wait_job(&s2, &crashed, &["running"]);
    s2.crash();

    // 3: the crashed job runs again at start; a graceful stop puts it back
    // in the queue, with a second job that was waiting behind it.
    let mut s3 = Server::start(dir.path(), &["--debug-job-delay-ms", "60000"]);
    s3.wait_ready();
    let again = wait_job(&s3, &crashed, &["running"]);
    assert_eq!(again["attempts"], 2, "{again}");
    let waiting = post_json(&s3.url("/v1/jobs"), &job, &[]).json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(s3.signal("-TERM").success());

    // 4: both finish, with the same fields as an uninterrupted run of the
    // same request; the demo run is still the only other run.
    let s4 = Server::start(dir.path(), &[]);
    s4.wait_ready();
    let done = wait_job(&s4, &crashed, &["succeeded", "failed"]);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 3);
    let w = wait_job(&s4, &waiting, &["succeeded", "failed"]);
    assert_eq!(w["status"], "succeeded", "{w}");
    let fresh = post_json(&s4.url("/v1/jobs"), &job, &[]).json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        wait_job(&s4, &fresh, &["succeeded", "failed"])["status"],
        "succeeded"
    );
    let field = |run: &str| {
        let r = get_with(
            &s4.url(&format!("/v1/runs/{run}/data?format=geotiff&var=t2m")),
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.body
    };
    // The GeoTIFF's description names the run: compare with the ids swapped.
    let swap = |bytes: Vec<u8>, from: &str, to: &str| -> Vec<u8> {
        let (from, to) = (from.as_bytes(), to.as_bytes());
        assert_eq!(from.len(), to.len());
        let mut out = bytes;
        let mut k = 0;
        while k + from.len() <= out.len() {
            if &out[k..k + from.len()] == from {
                out[k..k + from.len()].copy_from_slice(to);
            }
            k += 1;
        }
        out
    };
    let resumed = swap(field(&crashed), &crashed, &fresh);
    assert!(resumed == field(&fresh), "the resumed run's t2m differs");
    let (_, runs) = get_json(&s4.url("/v1/runs"));
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(4), "{runs}");
    let (_, forecast_after) = get_json(&s4.url(&format!(
        "/v1/forecast?latitude=47&longitude=8&hourly=t2m&run={demo_run}"
    )));
    assert_eq!(forecast_before["hourly"], forecast_after["hourly"]);
    let (_, jobs) = get_json(&s4.url("/v1/jobs"));
    let demo_job = jobs["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["demo"] == true)
        .cloned()
        .expect("demo job kept");
    assert_eq!(demo_job["status"], "succeeded");
    assert_eq!(demo_job["run"], demo_run.as_str());
}

/// Say why the browser test did not run, visibly: libtest captures the
/// print macros of passing tests but not direct writes to stderr.
fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED viewer_loads_tiles_and_click_shows_a_value: {why}"
    );
}

fn find_chromium() -> Option<String> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(p.to_string_lossy().into_owned());
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|b| b.to_string())
}

#[test]
fn viewer_loads_tiles_and_click_shows_a_value() {
    let Some(chromium) = find_chromium() else {
        skip("no Chromium found (run scripts/install-chromium.sh, or set CHROMIUM=/path/to/chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    server.wait_ready();
    let profile = dir.path().join("chromium-profile");
    // The page clicks the domain centre itself once the tiles have loaded
    // (?selftest=1) and records the outcome on <body>.
    let spawned = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=30000",
            "--window-size=1200,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(server.url("/?selftest=1"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            skip(&format!("cannot start {chromium}: {e}"));
            return;
        }
    };
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let dom = reader.join().unwrap_or_default();
    if status.is_none_or(|s| !s.success()) && !dom.contains("<body") {
        skip(&format!("{chromium} could not run headless ({status:?})"));
        return;
    }
    let body = dom
        .split("<body")
        .nth(1)
        .and_then(|b| b.split('>').next())
        .unwrap_or("")
        .to_string();
    assert!(
        body.contains("data-selftest=\"ok\""),
        "viewer self-test failed: <body{body}>"
    );
    let tiles: u32 = body
        .split("data-tiles=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(tiles > 0, "no tiles loaded: <body{body}>");
    assert!(
        dom.contains("id=\"point-value\""),
        "the click shows the point value"
    );
    let metrics = String::from_utf8(get(&server.url("/metrics")).1).expect("utf8");
    assert!(
        metrics
            .contains("route=\"/v1/tiles/{run}/{var}/{z}/{x}/{y}\",method=\"GET\",status=\"200\""),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/v1/forecast\",method=\"GET\",status=\"200\""));
}

/// A data directory on a 2 MiB tmpfs (needs root to mount; skipped with a
/// message otherwise), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn used_kib(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=used", "-k"])
            .arg(self.dir.path())
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df used")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Disk full on the data directory: the job fails with the real reason,
/// its partial output is removed so the space comes back, a job that cannot
/// be recorded is refused instead of acknowledged, and the service keeps
/// answering and runs the next job that fits.
#[test]
fn disk_full_fails_cleanly_and_frees_the_space() {
    let Some(disk) = SmallDisk::mount() else {
        eprintln!("SKIPPED disk_full_fails_cleanly_and_frees_the_space: cannot mount a tmpfs (needs root)");
        return;
    };
    let inputs = tempfile::tempdir().expect("inputs");
    std::fs::copy(sample("forecast_alps_0p25.nc"), inputs.path().join("f.nc")).expect("copy");
    let server = Server::start(
        disk.dir.path(),
        &["--no-demo", "--input-dir", &inputs.path().to_string_lossy()],
    );
    server.wait_ready();
    let before = disk.used_kib();
    // About 8 MB of output at 500 m: more than the disk holds.
    let big = serde_json::json!({"input": "f.nc", "target": {"region": [45.5, 48, 5.8, 10.6], "resolution_km": 0.5}, "vars": ["t2m"]});
    let id = post_json(&server.url("/v1/jobs"), &big, &[]).json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    let failed = wait_job(&server, &id, &["succeeded", "failed"]);
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().expect("error");
    assert!(error.contains("is full"), "{error}");
    assert!(
        disk.used_kib() <= before + 64,
        "space not freed: {} KiB used, {before} before",
        disk.used_kib()
    );
    assert_eq!(get(&server.url("/healthz")).0, 200);

    // A full disk refuses new jobs: nothing is acknowledged that cannot be kept.
    let filler = disk.dir.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 4 << 20]);
    let small = serde_json::json!({"input": "f.nc", "target": {"region": [46, 47, 7, 8], "resolution_km": 10}, "vars": ["t2m"]});
    let refused = post_json(&server.url("/v1/jobs"), &small, &[]);
    assert_eq!(refused.status, 507, "{}", refused.text());
    assert!(
        refused.text().contains("No space left"),
        "{}",
        refused.text()
    );
    std::fs::remove_file(&filler).expect("remove filler");

    // Space back: the next job that fits runs, and the first keeps its error.
    let ok = post_json(&server.url("/v1/jobs"), &small, &[]);
    assert_eq!(ok.status, 202, "{}", ok.text());
    let ok_id = ok.json()["id"].as_str().expect("id").to_string();
    let done = wait_job(&server, &ok_id, &["succeeded", "failed"]);
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, again) = get_json(&server.url(&format!("/v1/jobs/{id}")));
    assert_eq!(again["error"], error);
    drop(server);
}
