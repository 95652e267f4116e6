#!/usr/bin/env bash
# Score the shipped networks on truth sources they never trained on (all
# times of each file pooled), with `finecast evaluate`: what a user bringing a
# new source should expect. The era5-to-haduk cases take ERA5 itself as the
# coarse input (a real coarse/fine pair, hourly aggregated to each day);
# the others coarsen the truth. Writes one JSON per case and a markdown table to
# docs/figures/unseen-sources.md. Needs ../shared/data (or FINECAST_SHARED_DATA).
#   scripts/unseen-sources.sh            # all cases
set -euo pipefail
cd "$(dirname "$0")/.."
data="${FINECAST_SHARED_DATA:-../shared/data}"
out=docs/figures/unseen
mkdir -p "$out"
cargo build --release -q -p finecast
fc=target/release/finecast
table=docs/figures/unseen-sources.md
{
  echo "| case | network | times | cells | best baseline | RMSE | model RMSE | model / best | model bias |"
  echo "|---|---|---|---|---|---|---|---|---|"
} > "$table.tmp"
# name | truth | variable | terrain | methods | coarse file (else the truth coarsened) | its variable
while IFS='|' read -r name truth var terrain methods coarse coarse_var; do
  [ -z "$name" ] && continue
  if [ ! -f "$data/$truth" ]; then echo "skipping $name: $truth missing" >&2; continue; fi
  json="$out/$name.json"
  extra=()
  if [ -n "${coarse:-}" ]; then extra=(--coarse "$data/$coarse" --coarse-var "$coarse_var"); fi
  "$fc" evaluate --truth "$data/$truth" --var "$var" --terrain "$data/$terrain" \
    --methods "$methods" "${extra[@]}" --json "$json" > "$out/$name.txt"
  python3 - "$json" "$name" >> "$table.tmp" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["methods"]
base = {k: v for k, v in m.items() if k != "model"}
best = min(base, key=lambda k: base[k]["rmse"])
net = "precipitation" if r["units"].startswith("kg") else "temperature"
print(f"| {sys.argv[2]} | {net} | {r['n_times']} | {r['n_scored']} | {best} | {base[best]['rmse']:.3f} | "
      f"{m['model']['rmse']:.3f} | {m['model']['rmse'] / base[best]['rmse']:.2f} | {m['model']['bias']:+.3f} |")
PY
done <<'CASES'
haduk-tmax-etopo5|fine/haduk_cornwall_1km_2018-05.nc|tmax|static/etopo5_orog.nc|bilinear,bicubic,lapse,gradient,model
haduk-tmin-etopo5|fine/haduk_cornwall_1km_2018-05.nc|tmin|static/etopo5_orog.nc|bilinear,bicubic,lapse,gradient,model
efas-t2m-etopo5|fine/efas_alps_5km_1951-01.nc|t2m|static/etopo5_orog.nc|bilinear,bicubic,lapse,gradient,model
haduk-ppt-etopo5|fine/haduk_cornwall_1km_2018-05.nc|ppt|static/etopo5_orog.nc|bilinear,bicubic,model
efas-tp-etopo5|fine/efas_alps_5km_1951-01.nc|tp|static/etopo5_orog.nc|bilinear,bicubic,model
arome-tp-own-relief|fine/arome_nw_france_tp_2018-05-01.nc|tp|fine/arome_nw_france_tp_2018-05-01.nc|bilinear,bicubic,model
radolan-tp-etopo5|fine/radolan_rw_germany_2022-10-18.nc|tp|static/etopo5_orog.nc|bilinear,bicubic,model
era5-to-haduk-tmax|fine/haduk_cornwall_1km_2018-05.nc|tmax|static/etopo5_orog.nc|bilinear,bicubic,lapse,gradient,model|coarse/era5_cornwall_2018-05.nc|t2m
era5-to-haduk-tmin|fine/haduk_cornwall_1km_2018-05.nc|tmin|static/etopo5_orog.nc|bilinear,bicubic,lapse,gradient,model|coarse/era5_cornwall_2018-05.nc|t2m
era5-to-haduk-ppt|fine/haduk_cornwall_1km_2018-05.nc|ppt|static/etopo5_orog.nc|bilinear,bicubic,model|coarse/era5_cornwall_2018-05.nc|tp
CASES
mv "$table.tmp" "$table"
cat "$table"
