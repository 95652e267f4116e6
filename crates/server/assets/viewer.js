// finecast web viewer: the run's XYZ tiles on a Leaflet map (no external
// base map: the run's own orography and a graticule stand in for one),
// variable and time pickers, the legend, and point forecasts on click.
// With ?selftest=1 it clicks the domain centre itself once the tiles have
// loaded and records the outcome on <body data-selftest=...> for the
// headless-browser test.
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var selftest = params.get("selftest") === "1";
  var $ = function (id) { return document.getElementById(id); };
  var state = { runs: [], run: null, variable: null, time: null, layer: null, base: null, outline: null, marker: null, click: null };
  var tilesLoaded = 0;

  function setStatus(text) { $("status").textContent = text || ""; }
  function record(key, value) { document.body.setAttribute("data-" + key, String(value)); }
  function fail(err) {
    setStatus(String(err));
    if (selftest) { record("selftest", "error: " + err); }
  }

  var map = L.map("map", { zoomSnap: 0.5, worldCopyJump: true, attributionControl: true });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  map.createPane("data");
  map.getPane("data").style.zIndex = 350;

  function graticule() {
    var lines = [];
    for (var lon = -180; lon <= 180; lon += 1) { lines.push([[-85, lon], [85, lon]]); }
    for (var lat = -80; lat <= 80; lat += 1) { lines.push([[lat, -180], [lat, 180]]); }
    return L.polyline(lines, { color: "#90a4ae", weight: 0.6, interactive: false });
  }
  var grid = graticule().addTo(map);

  function fetchJSON(url) {
    return fetch(url).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body && body.reason ? body.reason : r.status + " " + r.statusText); }
        return body;
      });
    });
  }

  function option(select, value, label, selected) {
    var o = document.createElement("option");
    o.value = value; o.textContent = label; o.selected = !!selected;
    select.appendChild(o);
  }

  function currentRun() { return state.runs.find(function (r) { return r.id === state.run; }); }
  function currentVar() {
    var run = currentRun();
    return run && run.variables.find(function (v) { return v.name === state.variable; });
  }

  function fillRuns() {
    var sel = $("run"); sel.innerHTML = "";
    state.runs.forEach(function (r, k) {
      option(sel, r.id, r.id + (r.demo ? " (demo)" : "") + " · " + r.method, r.id === state.run || (!state.run && k === 0));
    });
    state.run = sel.value;
  }

  function fillVars() {
    var run = currentRun(); var sel = $("var"); sel.innerHTML = "";
    var wanted = state.variable || params.get("var");
    var dynamic = run.variables.filter(function (v) { return !v.static; });
    var first = dynamic.length ? dynamic[0].name : run.variables[0].name;
    run.variables.forEach(function (v) {
      option(sel, v.name, (v.long_name || v.name) + " [" + v.units + "]", v.name === (wanted || first));
    });
    state.variable = sel.value;
  }

  function fillTimes() {
    var v = currentVar(); var sel = $("time"); sel.innerHTML = "";
    if (!v.times.length) { option(sel, "", "static field", true); state.time = null; return; }
    v.times.forEach(function (t, k) { option(sel, t, t.replace("T", " ").replace(":00Z", " UTC"), t === state.time || (k === 0 && v.times.indexOf(state.time) < 0)); });
    state.time = sel.value;
  }

  function tileUrl(variable, time) {
    var q = time ? "?time=" + encodeURIComponent(time) : "";
    return "/v1/tiles/" + encodeURIComponent(state.run) + "/" + encodeURIComponent(variable) + "/{z}/{x}/{y}.png" + q;
  }

  function showLayer() {
    var run = currentRun(); var v = currentVar();
    if (state.layer) { map.removeLayer(state.layer); }
    if (state.base) { map.removeLayer(state.base); state.base = null; }
    var hasOrog = run.variables.some(function (x) { return x.name === "orog"; });
    if (hasOrog && v.name !== "orog") {
      // The run's orography, faint, as the base map.
      state.base = L.tileLayer(tileUrl("orog", null), { opacity: 0.35, maxNativeZoom: 12, bounds: bounds(run) }).addTo(map);
    }
    state.layer = L.tileLayer(tileUrl(v.name, state.time), {
      pane: "data", opacity: parseFloat($("opacity").value), maxNativeZoom: 12, bounds: bounds(run),
      attribution: "finecast run " + run.id + " (" + run.method + ")"
    });
    var pending = 0;
    state.layer.on("tileloadstart", function () { pending++; setStatus("loading tiles…"); });
    state.layer.on("tileload", function () { tilesLoaded++; record("tiles", tilesLoaded); });
    state.layer.on("tileerror", function () { setStatus("a tile failed to load"); record("tile-error", "1"); });
    state.layer.on("load", function () {
      setStatus("");
      if (selftest && !state.selftestStarted) { state.selftestStarted = true; selfClick(); }
    });
    state.layer.addTo(map);
    $("legend").src = "/v1/runs/" + encodeURIComponent(run.id) + "/legend.png?var=" + encodeURIComponent(v.name) + "&height=260";
    if (state.click) { pointForecast(state.click); }
  }

  function bounds(run) { var b = run.bbox; return L.latLngBounds([b[1], b[0]], [b[3], b[2]]); }

  function showRun() {
    var run = currentRun();
    fillVars(); fillTimes();
    if (state.outline) { map.removeLayer(state.outline); }
    state.outline = L.rectangle(bounds(run), { color: "#37474f", weight: 1, fill: false, interactive: false }).addTo(map);
    map.fitBounds(bounds(run));
    showLayer();
  }

  function fmt(x) { return x === null || x === undefined ? "–" : (Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(2)); }

  function chart(times, values, current) {
    var W = 300, H = 140, L0 = 36, R = 8, T = 8, B = 22;
    var pts = values.map(function (v, k) { return [k, v]; }).filter(function (p) { return p[1] !== null; });
    if (!pts.length) { return ""; }
    var lo = Math.min.apply(null, pts.map(function (p) { return p[1]; }));
    var hi = Math.max.apply(null, pts.map(function (p) { return p[1]; }));
    if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
    var x = function (k) { return L0 + (times.length > 1 ? k / (times.length - 1) : 0.5) * (W - L0 - R); };
    var y = function (v) { return T + (1 - (v - lo) / (hi - lo)) * (H - T - B); };
    var d = pts.map(function (p, k) { return (k ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join("");
    var s = '<svg class="chart" viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="time series">';
    s += '<line class="axis" x1="' + L0 + '" y1="' + (H - B) + '" x2="' + (W - R) + '" y2="' + (H - B) + '"/>';
    s += '<line class="axis" x1="' + L0 + '" y1="' + T + '" x2="' + L0 + '" y2="' + (H - B) + '"/>';
    s += '<text x="2" y="' + (T + 8) + '">' + fmt(hi) + '</text><text x="2" y="' + (H - B) + '">' + fmt(lo) + "</text>";
    s += '<text x="' + L0 + '" y="' + (H - 6) + '">' + times[0].slice(5, 16).replace("T", " ") + "</text>";
    s += '<text x="' + (W - R) + '" y="' + (H - 6) + '" text-anchor="end">' + times[times.length - 1].slice(5, 16).replace("T", " ") + "</text>";
    s += '<path class="line" d="' + d + '"/>';
    pts.forEach(function (p) { s += '<circle r="3" cx="' + x(p[0]).toFixed(1) + '" cy="' + y(p[1]).toFixed(1) + '"' + (p[0] === current ? ' class="current"' : "") + "/>"; });
    return s + "</svg>";
  }

  function pointForecast(latlng) {
    var v = currentVar(); var run = currentRun();
    state.click = latlng;
    if (state.marker) { state.marker.setLatLng(latlng); } else { state.marker = L.circleMarker(latlng, { radius: 5, color: "#e65100" }).addTo(map); }
    var url = "/v1/forecast?latitude=" + latlng.lat.toFixed(5) + "&longitude=" + latlng.lng.toFixed(5) +
      "&hourly=" + encodeURIComponent(v.name) + "&run=" + encodeURIComponent(run.id);
    return fetchJSON(url).then(function (f) {
      var times = f.hourly.time; var values = f.hourly[v.name]; var units = f.hourly_units[v.name];
      var k = state.time ? times.indexOf(state.time.slice(0, 16)) : 0;
      if (k < 0) { k = 0; }
      var html = '<div class="value" id="point-value">' + fmt(values[k]) + " " + units + "</div>";
      html += '<p class="meta">' + (v.long_name || v.name) + " at " + f.latitude.toFixed(3) + "°N " + f.longitude.toFixed(3) +
        "°E, cell elevation " + (f.elevation === null ? "–" : f.elevation.toFixed(0) + " m") + "<br>run " + f.run.id + " (" + f.run.method + ")</p>";
      html += chart(times, values, k);
      html += "<table><tr><th>valid (UTC)</th><th>" + v.name + " [" + units + "]</th></tr>";
      times.forEach(function (t, j) { html += "<tr" + (j === k ? ' class="current"' : "") + "><td>" + t.replace("T", " ") + "</td><td>" + fmt(values[j]) + "</td></tr>"; });
      html += "</table>";
      $("point").innerHTML = html;
      record("value", values[k]);
      return values[k];
    }).catch(function (e) {
      $("point").innerHTML = '<p class="hint">' + String(e.message || e) + "</p>";
      throw e;
    });
  }

  function selfClick() {
    var run = currentRun(); var b = run.bbox;
    var centre = L.latLng((b[1] + b[3]) / 2, (b[0] + b[2]) / 2);
    // A real click event, through Leaflet's own handlers.
    var p = map.latLngToContainerPoint(centre);
    var rect = map.getContainer().getBoundingClientRect();
    var init = { bubbles: true, cancelable: true, clientX: rect.left + p.x, clientY: rect.top + p.y, button: 0, view: window };
    var target = document.elementFromPoint(init.clientX, init.clientY) || map.getContainer();
    ["pointerdown", "mousedown", "pointerup", "mouseup", "click"].forEach(function (type) {
      var Ctor = type.indexOf("pointer") === 0 && window.PointerEvent ? PointerEvent : MouseEvent;
      target.dispatchEvent(new Ctor(type, init));
    });
    var waited = 0;
    var timer = setInterval(function () {
      waited += 100;
      var value = document.body.getAttribute("data-value");
      if (value !== null && document.getElementById("point-value")) {
        clearInterval(timer);
        record("selftest", tilesLoaded > 0 && value !== "null" ? "ok" : "error: no value");
      } else if (waited > 10000) {
        clearInterval(timer);
        record("selftest", "error: the click showed no value");
      }
    }, 100);
  }

  map.on("click", function (e) { pointForecast(e.latlng).catch(function () {}); });
  $("run").addEventListener("change", function () { state.run = this.value; state.variable = null; state.click = null; showRun(); });
  $("var").addEventListener("change", function () { state.variable = this.value; fillTimes(); showLayer(); });
  $("time").addEventListener("change", function () { state.time = this.value || null; showLayer(); });
  $("opacity").addEventListener("input", function () { if (state.layer) { state.layer.setOpacity(parseFloat(this.value)); } });

  function load(attempt) {
    setStatus("loading runs…");
    fetchJSON("/v1/runs").then(function (body) {
      state.runs = body.runs;
      if (!state.runs.length) { setStatus("no runs yet: submit a job to POST /v1/jobs"); if (selftest) { record("selftest", "error: no runs"); } return; }
      state.run = params.get("run") && state.runs.some(function (r) { return r.id === params.get("run"); }) ? params.get("run") : state.runs[0].id;
      fillRuns(); showRun(); setStatus("");
    }).catch(function (e) {
      // 503 while the demo run is being made: try again shortly.
      if (attempt < 30) { setStatus("waiting for the server: " + e.message); setTimeout(function () { load(attempt + 1); }, 1000); } else { fail(e.message); }
    });
  }
  window.finecastViewer = { map: map, state: state, pointForecast: pointForecast };
  load(0);
})();
