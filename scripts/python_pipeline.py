#!/usr/bin/env python3
"""The same downscaling job as `finecast downscale --method model`, written
the way a Python user would: xarray for reading and interpolation, numpy for
the terrain features, onnxruntime for the network, xarray to write.

    python_pipeline.py --input COARSE.nc --terrain DEM.nc --grid-like FINE.nc \
        --weights W.safetensors --out OUT.nc [--var t2m] [--tile 256] [--threads N]

The target grid is read from FINE.nc's 2-D `lat`/`lon` (a finecast output
of the same job, whose `t2m` it is then compared with). Prints one JSON
object: seconds per phase, cells per second, and the RMSE and largest
difference against FINE.nc's field. The e2e benchmark
(`cargo bench -p finecast-benches --bench e2e`) runs it beside finecast.

Method, as finecast's: coarse orography = area-weighted mean of the DEM
cells whose centres fall in each coarse cell; t, coarse orography and DEM bilinear to the
target; the network's 14 features (crates/model/src/features.rs, here for
fully valid inputs); the residual net on tiles with a halo of its receptive
field plus the feature radius, so no blending is needed; lapse baseline +
residual × residual_std.
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import xarray as xr

sys.path.insert(0, os.path.dirname(__file__))
from onnx_model import build_model, load_weights, session  # noqa: E402

LAPSE = 0.0065
RELIEF_RADII = (2, 7, 12)
REGRESSION_RADII = (8, 20)
SEA_LEVEL_RADII = (3, 12)
SHARPNESS_RADIUS, SHARPNESS_FLOOR_M = 7, 10.0
SLOPE_MIN, SLOPE_MAX, MIN_Z_STD = -0.010, 0.005, 30.0


def box_sum(a, r):
    """Sum over the (2r+1)^2 box around each cell, truncated at the edges."""
    ny, nx = a.shape
    s = np.zeros((ny + 1, nx + 1))
    s[1:, 1:] = a.astype(np.float64).cumsum(0).cumsum(1)
    j = np.arange(ny)
    i = np.arange(nx)
    j0, j1 = np.maximum(j - r, 0)[:, None], np.minimum(j + r + 1, ny)[:, None]
    i0, i1 = np.maximum(i - r, 0)[None, :], np.minimum(i + r + 1, nx)[None, :]
    return s[j1, i1] - s[j0, i1] - s[j1, i0] + s[j0, i0]


def features(t, zc, zf, dx_m):
    ones = np.ones_like(t)
    f = np.zeros((14,) + t.shape, np.float32)
    anomaly = zf - zc
    f[0] = anomaly
    for k, r in enumerate(RELIEF_RADII):
        f[1 + k] = zf - box_sum(zf, r) / box_sum(ones, r)
    f[4] = np.gradient(zf, dx_m, axis=1, edge_order=1)
    f[5] = np.gradient(zf, dx_m, axis=0, edge_order=1)
    for k, r in enumerate(REGRESSION_RADII):
        n = box_sum(ones, r)
        st, szc = box_sum(t, r) / n, box_sum(zc, r) / n
        szz, stz = box_sum(zc.astype(np.float64) ** 2, r) / n, box_sum(t.astype(np.float64) * zc, r) / n
        var = np.maximum(szz - szc**2, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.clip((stz - st * szc) / var, SLOPE_MIN, SLOPE_MAX)
        slope = np.where(np.sqrt(var) < MIN_Z_STD, -LAPSE, slope)
        f[6 + 2 * k] = slope * 1000.0
        f[7 + 2 * k] = (slope + LAPSE) * anomaly
    f[10] = box_sum(t, 3) / box_sum(ones, 3) - t
    sea = (zf <= 0.0).astype(np.float64)
    for k, r in enumerate(SEA_LEVEL_RADII):
        f[11 + k] = box_sum(sea, r) / box_sum(ones, r)

    def mean_square_departure(r):
        return box_sum((zf - box_sum(zf, r) / box_sum(ones, r)) ** 2, SHARPNESS_RADIUS) / box_sum(
            ones, SHARPNESS_RADIUS
        )

    fine, broad = mean_square_departure(1), mean_square_departure(SHARPNESS_RADIUS)
    f[13] = np.sqrt(np.maximum(fine, 0.0)) / (np.sqrt(np.maximum(broad, 0.0)) + SHARPNESS_FLOOR_M)
    return f


def coarse_orography(dem, coarse):
    """Mean of the DEM cells whose centres fall in each coarse cell."""
    lat, lon = coarse["lat"].values, coarse["lon"].values
    d = dem.sel(lat=slice(lat.min() - 0.5, lat.max() + 0.5), lon=slice(lon.min() - 0.5, lon.max() + 0.5))
    dlat = lat[1] - lat[0]
    dlon = lon[1] - lon[0]
    # A DEM centre exactly on a coarse-cell edge goes to the lower cell, as
    # finecast's area mean does; DEM cells are weighted by their area (cos lat).
    jj = np.ceil((d["lat"].values - lat[0]) / dlat - 0.5).astype(int)
    ii = np.ceil((d["lon"].values - lon[0]) / dlon - 0.5).astype(int)
    ok_j = (jj >= 0) & (jj < lat.size)
    ok_i = (ii >= 0) & (ii < lon.size)
    vals = d.values[np.ix_(ok_j, ok_i)].astype(np.float64)
    area = np.broadcast_to(np.cos(np.radians(d["lat"].values[ok_j]))[:, None], vals.shape)
    idx = jj[ok_j][:, None] * lon.size + ii[ok_i][None, :]
    sums = np.bincount(idx.ravel(), (vals * area).ravel(), lat.size * lon.size)
    counts = np.bincount(idx.ravel(), area.ravel(), lat.size * lon.size)
    with np.errstate(invalid="ignore"):
        mean = (sums / counts).reshape(lat.size, lon.size)
    return xr.DataArray(mean, coords={"lat": lat, "lon": lon}, dims=("lat", "lon"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True)
    p.add_argument("--terrain", required=True)
    p.add_argument("--grid-like", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--var", default="t2m")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    phases = {}
    start = clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - clock
        clock = now

    fine = xr.open_dataset(a.grid_like)
    lat2d, lon2d = fine["lat"].values, fine["lon"].values
    x = fine["x"].values
    coarse = xr.open_dataset(a.input)[a.var].isel(time=0).load()
    dem = xr.open_dataset(a.terrain)["orog"].load()
    lap("open")

    zc_coarse = coarse_orography(dem, coarse)
    points = dict(lat=xr.DataArray(lat2d, dims=("y", "x")), lon=xr.DataArray(lon2d, dims=("y", "x")))
    t = coarse.interp(**points).values.astype(np.float32)
    zc = zc_coarse.interp(**points).values.astype(np.float32)
    zf = dem.interp(**points).values.astype(np.float32)
    lap("terrain and interpolation")

    dx_m = float(abs(x[1] - x[0]))
    weights, sidecar = load_weights(a.weights)
    norm = sidecar["norm"]
    f = features(t, zc, zf, dx_m)
    f = (f - np.array(norm["mean"], np.float32)[:, None, None]) / np.array(norm["std"], np.float32)[:, None, None]
    lap("features")

    halo = sidecar["receptive_radius"]
    ny, nx = t.shape
    residual = np.zeros((ny, nx), np.float32)
    sess = session(build_model(weights, sidecar).SerializeToString(), 1)

    def run_tile(core):
        j0, i0 = core
        j1, i1 = min(j0 + a.tile, ny), min(i0 + a.tile, nx)
        wj0, wi0 = max(j0 - halo, 0), max(i0 - halo, 0)
        wj1, wi1 = min(j1 + halo, ny), min(i1 + halo, nx)
        out = sess.run(None, {"features": np.ascontiguousarray(f[None, :, wj0:wj1, wi0:wi1])})[0]
        residual[j0:j1, i0:i1] = out[0, 0, j0 - wj0 : j1 - wj0, i0 - wi0 : i1 - wi0]

    cores = [(j, i) for j in range(0, ny, a.tile) for i in range(0, nx, a.tile)]
    with ThreadPoolExecutor(a.threads) as pool:
        list(pool.map(run_tile, cores))
    lap("model")

    result = t + LAPSE * (zc - zf) + norm["residual_std"] * residual
    out = xr.Dataset(
        {a.var: (("y", "x"), result, {"units": "K", "standard_name": "air_temperature"})},
        coords={"y": fine["y"], "x": fine["x"], "lat": (("y", "x"), lat2d), "lon": (("y", "x"), lon2d)},
    )
    enc = {v: {"zlib": True, "complevel": 1, "shuffle": True} for v in [a.var, "lat", "lon"]}
    out.to_netcdf(a.out + ".tmp", encoding=enc)
    os.replace(a.out + ".tmp", a.out)
    lap("write")

    seconds = time.perf_counter() - start
    diff = result - fine[a.var].isel(time=0).values
    print(
        json.dumps(
            {
                "cells": ny * nx,
                "seconds": seconds,
                "cells_per_s": ny * nx / seconds,
                "phases": phases,
                "rmse_vs_finecast": float(np.sqrt(np.nanmean(diff**2))),
                "max_abs_diff_vs_finecast": float(np.nanmax(np.abs(diff))),
            }
        )
    )


if __name__ == "__main__":
    main()
