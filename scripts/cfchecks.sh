#!/usr/bin/env bash
# Check NetCDF files against the CF conventions with the checker that
# scripts/install-cfchecker.sh installs, offline. Exits 3 when it is not
# installed; otherwise with cfchecks' own status.
set -euo pipefail
dest="$(cd "$(dirname "$0")/.." && pwd)/target/cfchecker"
if [ ! -x "$dest/bin/cfchecks" ]; then
  echo "cfchecks is not installed: run scripts/install-cfchecker.sh" >&2
  exit 3
fi
exec "$dest/bin/cfchecks" -s "$dest/tables/cf-standard-name-table.xml" \
  -a "$dest/tables/area-type-table.xml" -r "$dest/tables/region-names.xml" "$@"
