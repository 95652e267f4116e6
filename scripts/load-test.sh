#!/usr/bin/env bash
# The server under load: `finecast serve` on loopback, driven by oha
# (crates.io) from other processes for DURATION (default 60s) at 64
# connections in all, each endpoint at a bounded request rate:
#   XYZ tiles across zooms   32 connections, up to TILE_QPS   (default 1000/s)
#   point forecasts          16 connections, up to POINT_QPS  (default 500/s)
#   WMS GetMap               12 connections, up to WMS_QPS    (default 40/s)
#   job submissions           4 connections, up to JOB_QPS    (default 1/s)
# Prints the CPU, requests/s, p50/p99/p99.9 latency, error counts and renders
# shed (503 "overloaded", finecast_renders_shed_total) per endpoint, and the
# server's resident memory over time; everything lands in OUT (default
# target/load-test/), with a summary in OUT/report.json.
#
#   ./scripts/load-test.sh            # after ./scripts/setup.sh
#   DURATION=20s ./scripts/load-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60s}
TILE_QPS=${TILE_QPS:-1000}
POINT_QPS=${POINT_QPS:-500}
WMS_QPS=${WMS_QPS:-40}
JOB_QPS=${JOB_QPS:-1}
OUT=${OUT:-target/load-test}
OHA_VERSION=1.16.0

cargo build --release -p finecast
bin="${CARGO_TARGET_DIR:-target}/release/finecast"
if ! command -v oha >/dev/null || [ "$(oha --version | awk '{print $2}')" != "$OHA_VERSION" ]; then
  cargo install oha --locked --version "$OHA_VERSION"
fi

CPU=$(grep -m1 -E '^(model name|Hardware|CPU part)' /proc/cpuinfo | cut -d: -f2- | xargs || uname -m)
echo "CPU: $CPU ($(nproc) cores)"
rm -rf "$OUT"
mkdir -p "$OUT/data/inputs"
cp data/sample/forecast_alps_0p25.nc "$OUT/data/inputs/"
"$bin" serve --bind 127.0.0.1:0 --data-dir "$OUT/data" >"$OUT/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT

base=""
for _ in $(seq 1 300); do
  base=$(grep -o 'http://127.0.0.1:[0-9]*' "$OUT/server.log" | head -1 || true)
  if [ -n "$base" ] && curl -sf "$base/v1/runs/latest" >/dev/null; then break; fi
  kill -0 $server 2>/dev/null || { cat "$OUT/server.log"; exit 1; }
  sleep 0.2
done
curl -sf "$base/v1/runs/latest" >/dev/null || { echo "the demo run never appeared"; exit 1; }
echo "server $base (pid $server)"

# URL lists from the demo run's own extent.
curl -sf "$base/v1/tiles/latest/tilejson.json?var=t2m" >"$OUT/tilejson.json"
python3 - "$base" "$OUT" <<'EOF'
import json, math, random, sys
base, out = sys.argv[1], sys.argv[2]
tj = json.load(open(f"{out}/tilejson.json"))
w, s, e, n = tj["bounds"]
run = tj["finecast"]["run"]  # pinned: finished jobs become "latest" during the test
rng = random.Random(7)

def tile_xy(lon, lat, z):
    k = 2 ** z
    x = int((lon + 180) / 360 * k)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * k)
    return min(max(x, 0), k - 1), min(max(y, 0), k - 1)

urls = []
# Zooms from the overview to three past the native resolution (clients
# overzoom): cached tiles and fresh renders mixed.
zooms = range(max(tj["minzoom"], 4), tj["maxzoom"] + 4)
for z in zooms:
    x0, y0 = tile_xy(w, n, z)
    x1, y1 = tile_xy(e, s, z)
    zoom = [f"{base}/v1/tiles/{run}/t2m/{z}/{x}/{y}.png" for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    urls += rng.sample(zoom, min(len(zoom), 600))
open(f"{out}/tiles.txt", "w").write("\n".join(urls) + "\n")

points = []
for _ in range(2000):
    lat = rng.uniform(s + 0.15 * (n - s), n - 0.15 * (n - s))
    lon = rng.uniform(w + 0.15 * (e - w), e - 0.15 * (e - w))
    points.append(f"{base}/v1/forecast?latitude={lat:.4f}&longitude={lon:.4f}&hourly=t2m,u10,v10,tp&run={run}")
open(f"{out}/points.txt", "w").write("\n".join(points) + "\n")

wms = []
for _ in range(500):
    dx = rng.uniform(0.2, 1.0) * (e - w)
    dy = rng.uniform(0.2, 1.0) * (n - s)
    x0, y0 = rng.uniform(w, e - dx), rng.uniform(s, n - dy)
    size = rng.choice([256, 512])
    wms.append(
        f"{base}/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS={run}/t2m&STYLES=&CRS=EPSG:4326"
        f"&BBOX={y0:.4f},{x0:.4f},{y0 + dy:.4f},{x0 + dx:.4f}&WIDTH={size}&HEIGHT={size}&FORMAT=image/png"
    )
open(f"{out}/wms.txt", "w").write("\n".join(wms) + "\n")
print(f"run {run}: {len(urls)} tile URLs over zooms {zooms.start}-{zooms.stop - 1}, {len(points)} points, {len(wms)} WMS maps")
EOF

# One point request loads the field into the server's field cache, as any
# earlier client would have; rendered tiles start cold.
curl -sf "$(head -1 "$OUT/points.txt")" >/dev/null

# Resident memory of the server, once a second.
(
  echo "seconds,rss_mib"
  start=$(date +%s)
  while kill -0 $server 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status 2>/dev/null || echo 0)
    echo "$(( $(date +%s) - start )),$(( rss / 1024 ))"
    sleep 1
  done
) >"$OUT/memory.csv" &
sampler=$!

job='{"input":"forecast_alps_0p25.nc","target":{"region":[46,47,7,8.5],"resolution_km":5},"vars":["t2m"],"method":"lapse"}'
common=(--no-tui --output-format json -z "$DURATION")
oha "${common[@]}" -c 32 -q "$TILE_QPS" --urls-from-file "$OUT/tiles.txt" -o "$OUT/tiles.json" &
p1=$!
oha "${common[@]}" -c 16 -q "$POINT_QPS" --urls-from-file "$OUT/points.txt" -o "$OUT/points.json" &
p2=$!
oha "${common[@]}" -c 12 -q "$WMS_QPS" --urls-from-file "$OUT/wms.txt" -o "$OUT/wms.json" &
p3=$!
oha "${common[@]}" -c 4 -q "$JOB_QPS" -m POST -T application/json -d "$job" "$base/v1/jobs" -o "$OUT/jobs.json" &
p4=$!
wait $p1 $p2 $p3 $p4
sleep 2
kill $sampler 2>/dev/null || true
# What became of the submitted jobs (the demo run is a job too).
curl -sf "$base/v1/jobs" >"$OUT/jobs-after.json"
curl -sf "$base/metrics" >"$OUT/metrics-after.txt"

python3 - "$OUT" "$DURATION" "$CPU" "$(nproc)" <<'EOF'
import csv, json, sys
out, duration, cpu, cores = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
print(f"\nload test, {duration}, 64 connections ({out}); CPU: {cpu}, {cores} cores")
print(f"{'endpoint':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'2xx':>7} {'4xx':>6} {'5xx':>5} {'503':>5} {'errors':>7}")
report = {"cpu": cpu, "cores": cores, "duration": duration, "endpoints": {}}
for name in ["tiles", "points", "wms", "jobs"]:
    r = json.load(open(f"{out}/{name}.json"))
    codes = {int(k): v for k, v in r.get("statusCodeDistribution", {}).items()}
    count = lambda lo: sum(v for k, v in codes.items() if lo <= k < lo + 100)
    errors = sum(v for k, v in r.get("errorDistribution", {}).items() if "deadline" not in k)
    p = r["latencyPercentiles"]
    ms = lambda key: 1000 * (p.get(key) or float("nan"))
    total = sum(codes.values())
    print(f"{name:<10} {total:>9} {r['summary']['requestsPerSec']:>8.1f} {ms('p50'):>8.2f} {ms('p99'):>8.2f} {ms('p99.9'):>9.2f} "
          f"{count(200):>7} {count(400):>6} {count(500):>5} {codes.get(503, 0):>5} {errors:>7}")
    report["endpoints"][name] = {
        "requests": total, "requests_per_s": r["summary"]["requestsPerSec"],
        "p50_ms": ms("p50"), "p99_ms": ms("p99"), "p99_9_ms": ms("p99.9"),
        "2xx": count(200), "4xx": count(400), "5xx": count(500), "503": codes.get(503, 0), "errors": errors,
    }
shed = next((int(float(l.split()[1])) for l in open(f"{out}/metrics-after.txt")
             if l.startswith("finecast_renders_shed_total ")), None)
print(f"renders shed (503 overloaded, finecast_renders_shed_total): {shed}")
report["renders_shed"] = shed
states = {}
for j in json.load(open(f"{out}/jobs-after.json"))["jobs"]:
    states[j["status"]] = states.get(j["status"], 0) + 1
print(f"jobs after the run (demo included): {states}")
rows = list(csv.DictReader(open(f"{out}/memory.csv")))
rss = [int(r["rss_mib"]) for r in rows if int(r["rss_mib"]) > 0]
if rss:
    marks = [rss[min(len(rss) - 1, k * (len(rss) - 1) // 4)] for k in range(5)]
    print(f"server RSS MiB over the run (0/25/50/75/100 %): {marks}, max {max(rss)}")
    report["rss_mib_quartiles"] = marks
json.dump(report, open(f"{out}/report.json", "w"), indent=1)
EOF
