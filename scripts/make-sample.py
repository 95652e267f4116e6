#!/usr/bin/env python3
"""Make finecast's bundled demo sample under data/sample/.

Two small CF-NetCDF files over the Swiss Alps:

* terrain_alps_etopo5.nc: real relief from NOAA NGDC ETOPO5 (public domain), as
  shipped by Debian's `ferret-datasets` package. Its coordinates are
  re-registered by -2.5' in latitude and +7.5' in longitude: the distributed
  grid puts relief about that far from its true place (correlation of fine
  relief with a 1' DEM rises from 0.41 to 0.97 after the shift). Ocean and
  below-sea-level land are set to 0 m.
* forecast_alps_0p25.nc: a SYNTHETIC 0.25 degree forecast (t2m, u10, v10, tp,
  four 6-hourly steps) made here from that terrain: a moving synoptic wave and a
  cold front, a diurnal cycle, the standard lapse rate on the coarse
  orography, westerly flow, and orographically enhanced precipitation. It is
  physically shaped but is not real weather; it exists so the quick start runs
  offline on a fresh machine.

Usage (needs `pip install numpy netCDF4` and the Debian package downloaded):
    apt-get download ferret-datasets && dpkg -x ferret-datasets_*.deb /tmp/ferret
    python3 scripts/make-sample.py /tmp/ferret/usr/share/ferret-vis/data/etopo5.cdf
"""

import datetime as dt
import os
import sys

import netCDF4
import numpy as np

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "sample")
# Region of the sample files (cell edges), degrees.
SOUTH, NORTH, WEST, EAST = 44.0, 49.5, 4.0, 12.5
COARSE = 0.25
LAPSE = 0.0065  # K per m
REFERENCE_TIME = dt.datetime(2024, 1, 15, 0, 0)


def read_etopo5(path):
    ds = netCDF4.Dataset(path)
    lon = ds["ETOPO05_X"][:].astype(np.float64) + 7.5 / 60.0
    lat = ds["ETOPO05_Y"][:].astype(np.float64) - 2.5 / 60.0
    rose = np.ma.filled(ds["ROSE"][:], np.nan).astype(np.float64)
    ds.close()
    lon = np.where(lon > 180.0, lon - 360.0, lon)
    order = np.argsort(lon)
    return lon[order], lat, rose[:, order]


def crop(lon, lat, z):
    jj = (lat >= SOUTH) & (lat <= NORTH)
    ii = (lon >= WEST) & (lon <= EAST)
    return lon[ii], lat[jj], np.maximum(z[np.ix_(jj, ii)], 0.0)


def coarse_mean(lon, lat, z):
    """Mean of fine cells whose centres fall in each 0.25 degree cell (cos-lat weights)."""
    clon = np.arange(WEST + COARSE / 2, EAST, COARSE)
    clat = np.arange(SOUTH + COARSE / 2, NORTH, COARSE)
    zc = np.zeros((clat.size, clon.size))
    w = np.cos(np.radians(lat))[:, None] * np.ones_like(z)
    jc = np.floor((lat - SOUTH) / COARSE).astype(int)
    ic = np.floor((lon - WEST) / COARSE).astype(int)
    for j in range(clat.size):
        for i in range(clon.size):
            sel = np.ix_(jc == j, ic == i)
            zc[j, i] = np.sum(z[sel] * w[sel]) / np.sum(w[sel])
    return clon, clat, zc


def synthetic_forecast(clon, clat, zc):
    lon2, lat2 = np.meshgrid(clon, clat)
    steps = [6, 12, 18, 24]
    t2m, u10, v10, tp = [], [], [], []
    dzdx = np.gradient(zc, axis=1) / (COARSE * 111e3 * np.cos(np.radians(lat2)))
    dzdy = np.gradient(zc, axis=0) / (COARSE * 111e3)
    for h in steps:
        # A cold front advancing from the west at ~1.2 degrees per 6 h.
        front = 6.0 + 1.2 * h / 6.0
        cold = 4.0 / (1.0 + np.exp(-(front - lon2) / 0.6))
        wave = 3.0 * np.sin(np.radians(40.0 * (lon2 - 0.5 * h)))
        local_hour = (h + lon2 / 15.0) % 24.0
        diurnal = 4.0 * np.cos(2 * np.pi * (local_hour - 14.0) / 24.0)
        sea_level = 283.0 - 0.7 * (lat2 - 46.5) + wave + diurnal - cold
        t2m.append(sea_level - LAPSE * zc)
        u = 6.0 + 2.0 * np.cos(np.radians(30.0 * (lat2 - 46.5))) + 3.0 * cold / 4.0
        v = 2.0 * np.sin(np.radians(50.0 * (lon2 - 8.0 + 0.3 * h)))
        u10.append(u)
        v10.append(v)
        upslope = np.maximum(u * dzdx + v * dzdy, 0.0)
        frontal = 3.0 * np.exp(-((lon2 - front) ** 2) / 1.5)
        tp.append(np.maximum(frontal * (1.0 + 20.0 * upslope), 0.0))
    times = [REFERENCE_TIME + dt.timedelta(hours=h) for h in steps]
    return times, np.array(t2m), np.array(u10), np.array(v10), np.array(tp)


def add_latlon_coords(ds, lon, lat):
    ds.createDimension("lat", lat.size)
    ds.createDimension("lon", lon.size)
    v = ds.createVariable("lat", "f8", ("lat",))
    v.setncatts({"standard_name": "latitude", "units": "degrees_north", "axis": "Y"})
    v[:] = lat
    v = ds.createVariable("lon", "f8", ("lon",))
    v.setncatts({"standard_name": "longitude", "units": "degrees_east", "axis": "X"})
    v[:] = lon
    crs = ds.createVariable("crs", "i4")
    crs.setncatts({"grid_mapping_name": "latitude_longitude", "semi_major_axis": 6378137.0,
                   "inverse_flattening": 298.257223563})


def write_terrain(path, lon, lat, z):
    ds = netCDF4.Dataset(path + ".tmp", "w", format="NETCDF4")
    ds.setncatts({
        "Conventions": "CF-1.8",
        "title": "ETOPO5 relief over the Alps (finecast demo terrain)",
        "source": "NOAA NGDC ETOPO5 via Debian package ferret-datasets 7.6.0-5 (etopo5.cdf)",
        "comment": "Re-registered by -2.5' latitude and +7.5' longitude; orog = max(relief, 0).",
        "history": "made by scripts/make-sample.py",
    })
    add_latlon_coords(ds, lon, lat)
    v = ds.createVariable("orog", "f4", ("lat", "lon"), zlib=True, complevel=5, fill_value=np.float32(-9999.0))
    v.setncatts({"standard_name": "surface_altitude", "long_name": "surface altitude", "units": "m",
                 "grid_mapping": "crs"})
    v[:] = z.astype(np.float32)
    ds.close()
    os.replace(path + ".tmp", path)


def write_forecast(path, clon, clat, times, fields):
    ds = netCDF4.Dataset(path + ".tmp", "w", format="NETCDF4")
    ds.setncatts({
        "Conventions": "CF-1.8",
        "title": "finecast demo forecast over the Alps, 0.25 degree (SYNTHETIC)",
        "source": "synthetic: made by scripts/make-sample.py from ETOPO5 terrain; not real weather",
        "history": "made by scripts/make-sample.py",
    })
    add_latlon_coords(ds, clon, clat)
    ds.createDimension("time", None)
    t = ds.createVariable("time", "f8", ("time",))
    t.setncatts({"standard_name": "time", "units": "hours since 2024-01-15 00:00:00", "calendar": "standard",
                 "axis": "T"})
    t[:] = [(x - REFERENCE_TIME).total_seconds() / 3600.0 for x in times]
    meta = {
        "t2m": ("air_temperature", "2 m air temperature", "K", "time: point", fields[0]),
        "u10": ("eastward_wind", "10 m eastward wind", "m s-1", "time: point", fields[1]),
        "v10": ("northward_wind", "10 m northward wind", "m s-1", "time: point", fields[2]),
        "tp": ("precipitation_amount", "6 h precipitation", "kg m-2", "time: sum", fields[3]),
    }
    for name, (sn, ln, units, cm, data) in meta.items():
        v = ds.createVariable(name, "f4", ("time", "lat", "lon"), zlib=True, complevel=5,
                              fill_value=np.float32(9.96921e36), least_significant_digit=3)
        v.setncatts({"standard_name": sn, "long_name": ln, "units": units, "cell_methods": cm,
                     "grid_mapping": "crs"})
        v[:] = data.astype(np.float32)
    ds.close()
    os.replace(path + ".tmp", path)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lon, lat, z = crop(*read_etopo5(sys.argv[1]))
    clon, clat, zc = coarse_mean(lon, lat, z)
    times, *fields = synthetic_forecast(clon, clat, zc)
    os.makedirs(OUT_DIR, exist_ok=True)
    write_terrain(os.path.join(OUT_DIR, "terrain_alps_etopo5.nc"), lon, lat, z)
    write_forecast(os.path.join(OUT_DIR, "forecast_alps_0p25.nc"), clon, clat, times, fields)
    print("wrote", OUT_DIR)


if __name__ == "__main__":
    main()
