#!/usr/bin/env bash
# Fuzz finecast's own parsers with cargo-fuzz (libFuzzer; needs the nightly
# toolchain, which this machine image carries, and installs cargo-fuzz from
# crates.io when it is missing). Each target runs FUZZ_SECONDS (default 60)
# from a corpus seeded with the real files of the repository; a crash, hang
# or out-of-memory stops the script non-zero and leaves the input under
# crates/fuzz/artifacts/<target>/ (turn it into a regression test).
#
#   ./scripts/fuzz.sh                    # every target, 60 s each
#   FUZZ_SECONDS=600 ./scripts/fuzz.sh grib2_open
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(grib2_open times_and_units)

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi

# Seeds: the GRIB2 fixtures, and times and units as the API and files spell them.
mkdir -p crates/fuzz/corpus/grib2_open crates/fuzz/corpus/times_and_units
cp crates/io/tests/fixtures/*.grib2 crates/fuzz/corpus/grib2_open/
i=0
for s in "2024-01-15T12:00:00Z" "2024-01-15T12:00Z" "2024-01-15 12:00" "2024-01-15" \
         "t2m|K" "t2m|degC" "tp|kg m**-2" "tp|mm" "u10|knots" "orog|m" "d2m|degF" "tp|m"; do
  printf '%s' "$s" >"crates/fuzz/corpus/times_and_units/seed-$i"
  i=$((i + 1))
done

for t in "${targets[@]}"; do
  echo "== $t: ${SECONDS_EACH} s"
  log="target/fuzz-$t.log"
  mkdir -p target
  rc=0
  cargo +nightly fuzz run --fuzz-dir crates/fuzz "$t" -O "crates/fuzz/corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1 || rc=$?
  grep -E "Done [0-9]+ runs|stat::peak_rss_mb|ERROR|SUMMARY" "$log" || true
  if [ "$rc" -ne 0 ]; then
    echo "$t found a failing input (exit $rc): see crates/fuzz/artifacts/$t/ and $log"
    exit 1
  fi
  echo "corpus: $(ls "crates/fuzz/corpus/$t" | wc -l) inputs"
done
