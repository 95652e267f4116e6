#!/usr/bin/env bash
# Vendor Leaflet from the npm registry into crates/server/assets/leaflet/
# (dist/leaflet.js, leaflet.css, images/, LICENSE). The server embeds these
# files, so the web viewer works offline and loads nothing from a CDN.
# Usage: scripts/vendor-leaflet.sh [VERSION]   (default 1.9.4)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-1.9.4}"
dest=crates/server/assets/leaflet
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "leaflet@$version" >/dev/null)
tar -xzf "$tmp"/leaflet-*.tgz -C "$tmp"
rm -rf "$dest"
mkdir -p "$dest/images"
cp "$tmp/package/dist/leaflet.js" "$tmp/package/dist/leaflet.css" "$dest/"
cp "$tmp/package/dist/images/"*.png "$dest/images/"
cp "$tmp/package/LICENSE" "$dest/LICENSE"
echo "$version" > "$dest/VERSION"
echo "vendored leaflet $version into $dest:"
ls -l "$dest" "$dest/images"
