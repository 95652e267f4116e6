#!/usr/bin/env python3
"""finecast's network in PyTorch: the GPU reference for `--device gpu`.

    torch_model.py --weights W.safetensors [--shape 1060,1800] [--reps 20] [--dtype float32|bfloat16]
                   [--tiles target/bench/tiles.safetensors]

Rebuilds the network from the weights `finecast export-weights` writes (the
architecture comes from the sidecar in the file's metadata; the same graph as
scripts/onnx_model.py), runs it on one CONUS-sized domain of random features
on CUDA when there is a GPU (else the CPU), synchronising before every clock
read, and prints one JSON object: milliseconds per forward pass (best and
median of `reps`) and pixels per second. With `--tiles` (written by
`cargo bench -p finecast-benches --bench model_runtime`) it first checks that
it reproduces flex's output on those tiles (`max_abs_diff_vs_flex`).
"""

import argparse
import json
import statistics
import sys
import time

import torch
from safetensors import safe_open
from safetensors.torch import load_file


class ResidualNet(torch.nn.Module):
    def __init__(self, weights, config):
        super().__init__()
        self.dilations = config["dilations"]

        def conv(name, dilation, kernel):
            w = weights[f"{name}.weight"]
            layer = torch.nn.Conv2d(
                w.shape[1], w.shape[0], kernel, padding=dilation * (kernel // 2), dilation=dilation
            )
            layer.weight.data.copy_(w)
            layer.bias.data.copy_(weights[f"{name}.bias"])
            return layer

        self.stem = conv("stem", 1, 3)
        self.body = torch.nn.ModuleList(conv(f"body.{k}", d, 3) for k, d in enumerate(self.dilations))
        self.head = conv("head", 1, 1)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        for layer in self.body:
            h = h + torch.relu(layer(h))
        return self.head(h)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--shape", default="1060,1800", help="ny,nx of the domain (default: CONUS at 3 km)")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--tiles", help="tiles.safetensors with features and flex's expected output")
    args = parser.parse_args()

    with safe_open(args.weights, framework="pt") as f:
        meta = f.metadata() or {}
    if "finecast_sidecar" not in meta:
        sys.exit(f"{args.weights}: no finecast_sidecar metadata (write it with `finecast export-weights`)")
    config = json.loads(meta["finecast_sidecar"])["model"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, args.dtype)
    net = ResidualNet(load_file(args.weights), config).to(device=device, dtype=dtype).eval()
    check = {}
    if args.tiles:
        tiles = load_file(args.tiles)
        with torch.inference_mode():
            got = net(tiles["features"].to(device=device, dtype=dtype)).float().cpu()
        check["max_abs_diff_vs_flex"] = float((got - tiles["expected"]).abs().max())
    ny, nx = (int(v) for v in args.shape.split(","))
    x = torch.randn(1, config["in_channels"], ny, nx, device=device, dtype=dtype)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    times = []
    with torch.inference_mode():
        for _ in range(3):
            net(x)
        sync()
        for _ in range(args.reps):
            t = time.perf_counter()
            y = net(x)
            sync()
            times.append(time.perf_counter() - t)
    best = min(times)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                "dtype": args.dtype,
                "shape": [ny, nx],
                "ms_best": 1e3 * best,
                "ms_median": 1e3 * statistics.median(times),
                "px_per_s": ny * nx / best,
                "output_mean": float(y.float().mean()),
                **check,
            }
        )
    )


if __name__ == "__main__":
    main()
