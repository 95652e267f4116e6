#!/usr/bin/env bash
# Install the CF checker (PyPI `cfchecker`, the CF community's cfchecks) into
# target/cfchecker for the tests that check written files against the CF
# conventions (crates/cli/tests/cli.rs). It runs offline: the CF standard
# name table comes from the PyPI package `compliance-checker`, which ships
# one, and scripts/cf-tables/ holds empty area-type and region tables (finecast
# writes neither). Safe to run repeatedly; exits 0 when the checker is usable
# afterwards, 1 otherwise (the tests then skip with a message).
set -uo pipefail
cd "$(dirname "$0")/.."
dest=target/cfchecker
if [ -x "$dest/bin/cfchecks" ] && [ -f "$dest/tables/cf-standard-name-table.xml" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  ldconfig -p 2>/dev/null | grep -q libudunits2 || missing+=(libudunits2-0)
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
set -e
python3 -m venv "$dest"
"$dest/bin/pip" install -q --disable-pip-version-check cfchecker
mkdir -p "$dest/wheels" "$dest/tables"
"$dest/bin/pip" download -q --disable-pip-version-check --no-deps -d "$dest/wheels" compliance-checker
"$dest/bin/python" - "$dest" <<'PY'
import glob, sys, zipfile
dest = sys.argv[1]
wheel = sorted(glob.glob(f"{dest}/wheels/compliance_checker-*.whl"))[-1]
with zipfile.ZipFile(wheel) as z:
    data = z.read("compliance_checker/data/cf-standard-name-table.xml")
with open(f"{dest}/tables/cf-standard-name-table.xml", "wb") as f:
    f.write(data)
PY
cp scripts/cf-tables/*.xml "$dest/tables/"
"$dest/bin/cfchecks" -h >/dev/null 2>&1 || { echo "cfchecks does not run" >&2; exit 1; }
echo "installed cfchecker in $dest"
