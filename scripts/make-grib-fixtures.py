#!/usr/bin/env python3
"""Write the small GRIB2 test fixtures of crates/io from real shared data.

The fixtures (and a JSON file of expected values next to each) are committed,
so this script only needs to run again if the fixtures must change. The shared
NetCDF files it reads are not committed.

Requirements (all from PyPI; the `eccodes` wheel bundles the ecCodes library
through `eccodeslib`, so no system package is needed):

    python3 -m venv /tmp/fixtures-venv
    /tmp/fixtures-venv/bin/pip install eccodes netCDF4 numpy
    /tmp/fixtures-venv/bin/python scripts/make-grib-fixtures.py

Options: --data DIR (default ../shared/data relative to the repository, or
$FINECAST_SHARED_DATA) and --out DIR (default crates/io/tests/fixtures).

Fixtures:

* era5_switzerland_latlon.grib2 - regular lat/lon (template 3.0), north-up rows
  (scanning mode 0), ERA5 2016-01-01: t2m and u10 at 00 and 01 UTC (product
  template 4.0, forecast times 0 h and 1 h), tp summed over 00-01 UTC (template
  4.8).
* era5_conus_west_latlon.grib2 - regular lat/lon with longitudes stored as
  235..255 (0..360 convention), north-up, ERA5 1995-07-14 12 UTC t2m and
  surface pressure (PRES at the surface), 125-105 W, 35-45 N.
* ndfd_lambert_tmax.grib2 - Lambert conformal (template 3.30, 25 N tangent,
  95 W, sphere 6371200 m), NDFD 12 h maximum temperature (template 4.8,
  statistical process 2) for two periods, south-up rows (scanning mode 0x40),
  with a bit map for the cells outside the forecast area (Gulf of Mexico).
* wrf_lambert_wind.grib2 - Lambert conformal (45 N tangent, 120 W, sphere
  6370000 m), WRF Columbia basin t2m and grid-relative u10 (resolution and
  component flag 0x08 set), south-up rows.

Values are simple-packed with 16 bits; the JSON files hold the values the
reader must produce (rows and columns in the order the GRIB scans them) and
"probes": longitude/latitude of cell centres with their values, which check
the orientation independently of the array layout.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import eccodes as ec
import netCDF4
import numpy as np

BITS_PER_VALUE = 16
MISSING = 9999.0


def repository_root() -> Path:
    return Path(__file__).resolve().parent.parent


def new_message(earth):
    """A GRIB2 message from the bundled sample, with the figure of the Earth set."""
    h = ec.codes_grib_new_from_samples("GRIB2")
    kind, radius = earth
    if kind == "shape0":
        ec.codes_set(h, "shapeOfTheEarth", 0)  # sphere 6367470 m
    else:
        ec.codes_set(h, "shapeOfTheEarth", 1)
        ec.codes_set(h, "scaleFactorOfRadiusOfSphericalEarth", 0)
        ec.codes_set(h, "scaledValueOfRadiusOfSphericalEarth", int(radius))
    return h


def set_latlon_grid(h, lats, lons):
    """Template 3.0; lats and lons are the centres in scan order."""
    ec.codes_set(h, "gridDefinitionTemplateNumber", 0)
    ec.codes_set(h, "Ni", len(lons))
    ec.codes_set(h, "Nj", len(lats))
    ec.codes_set(h, "iScansNegatively", 0)
    ec.codes_set(h, "jScansPositively", 1 if lats[1] > lats[0] else 0)
    ec.codes_set(h, "latitudeOfFirstGridPointInDegrees", float(lats[0]))
    ec.codes_set(h, "longitudeOfFirstGridPointInDegrees", float(lons[0]))
    ec.codes_set(h, "latitudeOfLastGridPointInDegrees", float(lats[-1]))
    ec.codes_set(h, "longitudeOfLastGridPointInDegrees", float(lons[-1]))
    ec.codes_set(h, "iDirectionIncrementInDegrees", float(abs(lons[1] - lons[0])))
    ec.codes_set(h, "jDirectionIncrementInDegrees", float(abs(lats[1] - lats[0])))


def set_lambert_grid(h, nx, ny, la1, lo1, lov, latin, dx, dy, grid_relative_winds):
    """Template 3.30 with +i, +j scanning (rows south to north)."""
    ec.codes_set(h, "gridDefinitionTemplateNumber", 30)
    ec.codes_set(h, "Nx", nx)
    ec.codes_set(h, "Ny", ny)
    ec.codes_set(h, "latitudeOfFirstGridPointInDegrees", float(la1))
    ec.codes_set(h, "longitudeOfFirstGridPointInDegrees", float(lo1 % 360.0))
    ec.codes_set(h, "LaDInDegrees", float(latin))
    ec.codes_set(h, "LoVInDegrees", float(lov % 360.0))
    ec.codes_set(h, "Latin1InDegrees", float(latin))
    ec.codes_set(h, "Latin2InDegrees", float(latin))
    ec.codes_set(h, "latitudeOfSouthernPoleInDegrees", -90.0)
    ec.codes_set(h, "longitudeOfSouthernPoleInDegrees", 0.0)
    ec.codes_set(h, "DxInMetres", float(dx))
    ec.codes_set(h, "DyInMetres", float(dy))
    ec.codes_set(h, "iScansNegatively", 0)
    ec.codes_set(h, "jScansPositively", 1)
    ec.codes_set(h, "uvRelativeToGrid", 1 if grid_relative_winds else 0)


def set_product(h, param, surface, ref, forecast_hours, statistics=None):
    """param = (discipline, category, number); surface = (type, value).

    statistics = (process, length_hours, end datetime) selects template 4.8.
    """
    discipline, category, number = param
    ec.codes_set(h, "discipline", discipline)
    ec.codes_set(h, "significanceOfReferenceTime", 1)
    ec.codes_set(h, "dataDate", int(ref.strftime("%Y%m%d")))
    ec.codes_set(h, "dataTime", int(ref.strftime("%H%M")))
    ec.codes_set(h, "productDefinitionTemplateNumber", 8 if statistics else 0)
    ec.codes_set(h, "parameterCategory", category)
    ec.codes_set(h, "parameterNumber", number)
    ec.codes_set(h, "indicatorOfUnitOfTimeRange", 1)
    ec.codes_set(h, "forecastTime", forecast_hours)
    surface_type, surface_value = surface
    ec.codes_set(h, "typeOfFirstFixedSurface", surface_type)
    if surface_value is None:
        ec.codes_set_missing(h, "scaleFactorOfFirstFixedSurface")
        ec.codes_set_missing(h, "scaledValueOfFirstFixedSurface")
    else:
        ec.codes_set(h, "scaleFactorOfFirstFixedSurface", 0)
        ec.codes_set(h, "scaledValueOfFirstFixedSurface", int(surface_value))
    ec.codes_set(h, "typeOfSecondFixedSurface", 255)
    if statistics:
        process, length_hours, end = statistics
        ec.codes_set(h, "typeOfStatisticalProcessing", process)
        ec.codes_set(h, "indicatorOfUnitForTimeRange", 1)
        ec.codes_set(h, "lengthOfTimeRange", length_hours)
        for key, value in [
            ("yearOfEndOfOverallTimeInterval", end.year),
            ("monthOfEndOfOverallTimeInterval", end.month),
            ("dayOfEndOfOverallTimeInterval", end.day),
            ("hourOfEndOfOverallTimeInterval", end.hour),
            ("minuteOfEndOfOverallTimeInterval", end.minute),
            ("secondOfEndOfOverallTimeInterval", end.second),
        ]:
            ec.codes_set(h, key, value)


def set_values(h, values):
    """values: 2-D array in scan order (row j, column i), NaN = missing."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    ec.codes_set(h, "packingType", "grid_simple")
    ec.codes_set(h, "bitsPerValue", BITS_PER_VALUE)
    if np.isnan(flat).any():
        ec.codes_set(h, "bitmapPresent", 1)
        ec.codes_set(h, "missingValue", MISSING)
        flat = np.where(np.isnan(flat), MISSING, flat)
    ec.codes_set_values(h, flat)


def decoded(h, shape):
    """Values as ecCodes decodes them (what the Rust reader must match)."""
    values = ec.codes_get_values(h).reshape(shape)
    if ec.codes_get(h, "bitmapPresent"):
        values = np.where(values == ec.codes_get(h, "missingValue"), np.nan, values)
    return values


def to_json_rows(values):
    return [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in values]


def write_fixture(out_dir, name, messages, description):
    """messages: list of (handle, var name, valid time ISO, shape, probes, tolerance)."""
    grib_path = out_dir / f"{name}.grib2"
    expected = {"description": description, "fields": []}
    with open(grib_path, "wb") as f:
        for h, var, valid, shape, probes, tolerance in messages:
            ec.codes_write(h, f)
            values = decoded(h, shape)
            expected["fields"].append(
                {
                    "name": var,
                    "valid_time": valid,
                    "shape": list(shape),
                    "tolerance": tolerance,
                    "values": to_json_rows(values),
                    "probes": probes,
                }
            )
            ec.codes_release(h)
    (out_dir / f"{name}.expected.json").write_text(json.dumps(expected, separators=(",", ":")))
    print(f"wrote {grib_path} ({grib_path.stat().st_size} bytes)")


def probes_for(lats2d, lons2d, values, points):
    """[lon, lat, value] for the given (j, i) cells."""
    out = []
    for j, i in points:
        v = values[j, i]
        out.append(
            {
                "lon": round(float(lons2d[j, i]), 5),
                "lat": round(float(lats2d[j, i]), 5),
                "value": None if np.isnan(v) else round(float(v), 4),
            }
        )
    return out


def corner_and_centre_points(ny, nx):
    return [(0, 0), (0, nx - 1), (ny - 1, 0), (ny - 1, nx - 1), (ny // 2, nx // 3), (ny // 3, nx // 2)]


def masked_to_nan(a):
    return np.ma.filled(np.ma.asarray(a, dtype=np.float64), np.nan)


def era5_switzerland(data, out_dir):
    from datetime import datetime, timezone

    ds = netCDF4.Dataset(data / "coarse" / "era5_switzerland_2016-01-01_02.nc")
    lat = np.round(ds["lat"][:].astype(np.float64), 4)[::-1]  # north-up
    lon = np.round(ds["lon"][:].astype(np.float64), 4)
    ref = datetime(2016, 1, 1, 0, tzinfo=timezone.utc)
    lat2d, lon2d = np.meshgrid(lat, lon, indexing="ij")
    messages = []
    for var, param, surface, tolerance in [
        ("t2m", (0, 0, 0), (103, 2), 0.01),
        ("u10", (0, 2, 2), (103, 10), 0.01),
    ]:
        for step in (0, 1):
            values = masked_to_nan(ds[var][step])[::-1, :]
            h = new_message(("shape0", None))
            set_latlon_grid(h, lat, lon)
            set_product(h, param, surface, ref, step)
            set_values(h, values)
            valid = f"2016-01-01T{step:02d}:00:00Z"
            shape = values.shape
            points = corner_and_centre_points(*shape)
            messages.append((h, var, valid, shape, probes_for(lat2d, lon2d, decoded(h, shape), points), tolerance))
    # ERA5 tp at time index 1 is the sum over 00-01 UTC.
    values = masked_to_nan(ds["tp"][1])[::-1, :]
    end = datetime(2016, 1, 1, 1, tzinfo=timezone.utc)
    h = new_message(("shape0", None))
    set_latlon_grid(h, lat, lon)
    set_product(h, (0, 1, 8), (1, None), ref, 0, statistics=(1, 1, end))
    set_values(h, values)
    shape = values.shape
    messages.append(
        (h, "tp", "2016-01-01T01:00:00Z", shape,
         probes_for(lat2d, lon2d, decoded(h, shape), corner_and_centre_points(*shape)), 0.001)
    )
    write_fixture(out_dir, "era5_switzerland_latlon", messages,
                  "ERA5 2016-01-01 over Switzerland, regular 0.25 deg lat/lon, north-up")


def era5_conus_west(data, out_dir):
    from datetime import datetime, timezone

    ds = netCDF4.Dataset(data / "coarse" / "era5_conus_1995-07-14T12.nc")
    lat = ds["lat"][:].astype(np.float64)
    lon = ds["lon"][:].astype(np.float64)
    jsel = np.where((lat >= 35.0) & (lat <= 45.0))[0][::-1]  # north-up
    isel = np.where((lon >= -125.0) & (lon <= -105.0))[0]
    lat_c, lon_c = lat[jsel], lon[isel] + 360.0  # 0..360 convention
    lat2d, lon2d = np.meshgrid(lat_c, lon_c - 360.0, indexing="ij")
    ref = datetime(1995, 7, 14, 12, tzinfo=timezone.utc)
    messages = []
    for var, param, surface, tolerance in [
        ("t2m", (0, 0, 0), (103, 2), 0.01),
        ("sp", (0, 3, 0), (1, None), 2.0),
    ]:
        values = masked_to_nan(ds[var][0])[np.ix_(jsel, isel)]
        h = new_message(("shape0", None))
        set_latlon_grid(h, lat_c, lon_c)
        set_product(h, param, surface, ref, 0)
        set_values(h, values)
        shape = values.shape
        messages.append(
            (h, var, "1995-07-14T12:00:00Z", shape,
             probes_for(lat2d, lon2d, decoded(h, shape), corner_and_centre_points(*shape)), tolerance)
        )
    write_fixture(out_dir, "era5_conus_west_latlon", messages,
                  "ERA5 1995-07-14 12 UTC, 125-105 W / 35-45 N, longitudes stored as 235..255, north-up")


def ndfd_lambert(data, out_dir):
    from datetime import datetime, timedelta, timezone

    ds = netCDF4.Dataset(data / "fine" / "ndfd_conus_tmax_2011-09-30.nc")
    lat2 = ds["lat"][:].astype(np.float64)
    lon2 = ds["lon"][:].astype(np.float64)
    x = ds["x"][:].astype(np.float64)
    # Florida panhandle and the Gulf: cells outside the forecast area are missing.
    j0, i0 = 139, 694
    ny, nx = 60, 80
    rows, cols = slice(j0, j0 + ny), slice(i0, i0 + nx)
    lat_c, lon_c = lat2[rows, cols], lon2[rows, cols]
    dx = round(float(x[1] - x[0]), 3)
    ref = datetime(2011, 9, 29, 22, tzinfo=timezone.utc)
    epoch = datetime(2011, 9, 29, 0, tzinfo=timezone.utc)
    messages = []
    for step in (0, 1):
        end = epoch + timedelta(hours=float(ds["time"][step]))
        start = end - timedelta(hours=12)
        values = masked_to_nan(ds["tmax"][step])[rows, cols]
        h = new_message(("sphere", 6371200))
        set_lambert_grid(h, nx, ny, lat_c[0, 0], lon_c[0, 0], -95.0, 25.0, dx, dx, False)
        lead = int((start - ref).total_seconds() // 3600)
        set_product(h, (0, 0, 4), (103, 2), ref, lead, statistics=(2, 12, end))
        set_values(h, values)
        shape = values.shape
        messages.append(
            (h, "tmax_2m", end.strftime("%Y-%m-%dT%H:%M:%SZ"), shape,
             probes_for(lat_c, lon_c, decoded(h, shape), corner_and_centre_points(*shape)), 0.01)
        )
    write_fixture(out_dir, "ndfd_lambert_tmax", messages,
                  "NDFD 12 h maximum temperature, Lambert conformal 25 N / 95 W, 5079.406 m, with bit map")


def wrf_lambert(data, out_dir):
    from datetime import datetime, timezone

    ds = netCDF4.Dataset(data / "fine" / "wrf_columbia_1980-01-12T17.nc")
    lat2 = ds["lat"][:].astype(np.float64)
    lon2 = ds["lon"][:].astype(np.float64)
    x = ds["x"][:].astype(np.float64)
    j0, i0, ny, nx = 100, 120, 40, 50
    rows, cols = slice(j0, j0 + ny), slice(i0, i0 + nx)
    lat_c, lon_c = lat2[rows, cols], lon2[rows, cols]
    ref = datetime(1980, 1, 12, 17, tzinfo=timezone.utc)
    messages = []
    for var, param, surface in [("t2m", (0, 0, 0), (103, 2)), ("u10", (0, 2, 2), (103, 10))]:
        values = masked_to_nan(ds[var][0])[rows, cols]
        h = new_message(("sphere", 6370000))
        set_lambert_grid(h, nx, ny, lat_c[0, 0], lon_c[0, 0], -120.0, 45.0,
                         float(x[1] - x[0]), float(x[1] - x[0]), True)
        set_product(h, param, surface, ref, 0)
        set_values(h, values)
        shape = values.shape
        messages.append(
            (h, var, "1980-01-12T17:00:00Z", shape,
             probes_for(lat_c, lon_c, decoded(h, shape), corner_and_centre_points(*shape)), 0.01)
        )
    write_fixture(out_dir, "wrf_lambert_wind", messages,
                  "WRF Columbia basin, Lambert conformal 45 N / 120 W, 4000 m, grid-relative wind")


def main():
    root = repository_root()
    default_data = os.environ.get("FINECAST_SHARED_DATA", str(root.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(default_data))
    parser.add_argument("--out", type=Path, default=root / "crates" / "io" / "tests" / "fixtures")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"shared data not found at {args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    era5_switzerland(args.data, args.out)
    era5_conus_west(args.data, args.out)
    ndfd_lambert(args.data, args.out)
    wrf_lambert(args.data, args.out)


if __name__ == "__main__":
    main()
