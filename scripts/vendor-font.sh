#!/usr/bin/env bash
# Re-vendor the DejaVu Sans font that finecast-render embeds with include_bytes!.
#
# plotters' default text path needs fontconfig/freetype at run time; we use its
# ab_glyph backend instead, which needs the TTF bytes, so the font is bundled in
# crates/render/assets together with its licence (Bitstream Vera licence, with
# DejaVu changes in the public domain), both taken from Debian's
# fonts-dejavu-core package. Needs apt-get and dpkg (run `apt-get update` first
# on a fresh machine).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="$repo_root/crates/render/assets"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
# apt-get download drops privileges to _apt; a world-writable dir avoids the warning.
chmod 777 "$work"
apt-get download fonts-dejavu-core
dpkg -x fonts-dejavu-core_*.deb extracted

mkdir -p "$assets"
install -m 0644 extracted/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf "$assets/DejaVuSans.ttf"
# Drop the first line of the Debian copyright file (packaging metadata, not licence text).
tail -n +2 extracted/usr/share/doc/fonts-dejavu-core/copyright >"$assets/DejaVuSans-LICENSE"
echo "vendored $(dpkg-deb -f fonts-dejavu-core_*.deb Package) $(dpkg-deb -f fonts-dejavu-core_*.deb Version) into $assets"
