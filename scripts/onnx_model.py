#!/usr/bin/env python3
"""finecast's network in ONNX, for the onnxruntime comparison.

    onnx_model.py build --weights W.safetensors --out model.onnx
    onnx_model.py bench --weights W.safetensors --tiles tiles.safetensors [--threads N] [--reps R]

`build` rebuilds the network from the weights that `finecast export-weights`
writes (the architecture comes from the sidecar stored in the file's
metadata): stem 3x3 conv -> ReLU -> per dilation d: x + ReLU(conv3x3_d(x))
-> 1x1 head, zero padding, float32, dynamic batch and tile size.

`bench` times onnxruntime on the tiles the Rust benchmark wrote (tensor
`features` [N, C, H, W]; tensor `expected` [N, out_channels, H, W] holds flex's output),
checks that both runtimes agree, and prints one JSON object on stdout:
pixels per second for one tile at a time on every core (onnxruntime's own
threading) and for tiles side by side, one per thread.
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors import safe_open
from safetensors.numpy import load_file


def load_weights(path):
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    if "finecast_sidecar" not in meta:
        sys.exit(f"{path}: no finecast_sidecar metadata (write it with `finecast export-weights`)")
    return load_file(path), json.loads(meta["finecast_sidecar"])


def build_model(weights, sidecar):
    config = sidecar["model"]
    dilations = config["dilations"]
    inits, nodes = [], []

    def conv(name, x, out, kernel, dilation):
        w = weights[f"{name}.weight"].astype(np.float32)
        b = weights[f"{name}.bias"].astype(np.float32)
        if w.shape[2:] != (kernel, kernel):
            sys.exit(f"{name}.weight has shape {w.shape}, expected a {kernel}x{kernel} kernel")
        inits.append(numpy_helper.from_array(w, f"{name}.weight"))
        inits.append(numpy_helper.from_array(b, f"{name}.bias"))
        pad = dilation * (kernel // 2)
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.weight", f"{name}.bias"],
                [out],
                kernel_shape=[kernel, kernel],
                dilations=[dilation, dilation],
                pads=[pad, pad, pad, pad],
            )
        )
        return out

    h = conv("stem", "features", "stem_out", 3, 1)
    nodes.append(helper.make_node("Relu", [h], ["h0"]))
    h = "h0"
    for k, d in enumerate(dilations):
        c = conv(f"body.{k}", h, f"body{k}_conv", 3, d)
        nodes.append(helper.make_node("Relu", [c], [f"body{k}_relu"]))
        nodes.append(helper.make_node("Add", [h, f"body{k}_relu"], [f"h{k + 1}"]))
        h = f"h{k + 1}"
    conv("head", h, "residual", 1, 1)

    graph = helper.make_graph(
        nodes,
        "finecast_residual_net",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", config["in_channels"], "H", "W"])],
        [helper.make_tensor_value_info("residual", TensorProto.FLOAT, ["N", config.get("out_channels", 1), "H", "W"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def session(model_bytes, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def best_rate(run, pixels, reps):
    """Pixels per second of the fastest of `reps` timed calls (after a warm-up)."""
    run()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return pixels / best


def bench(args):
    weights, sidecar = load_weights(args.weights)
    model_bytes = build_model(weights, sidecar).SerializeToString()
    tiles = load_file(args.tiles)
    feats, expected = tiles["features"].astype(np.float32), tiles["expected"]
    n, _, hgt, wid = feats.shape
    pixels = n * hgt * wid
    threads = args.threads or os.cpu_count()

    every_core = session(model_bytes, threads)
    outputs = np.concatenate([every_core.run(None, {"features": feats[k : k + 1]})[0] for k in range(n)])
    max_abs_diff = float(np.max(np.abs(outputs - expected)))

    def one_at_a_time():
        for k in range(n):
            every_core.run(None, {"features": feats[k : k + 1]})

    single = session(model_bytes, 1)
    pool = ThreadPoolExecutor(max_workers=threads)

    def side_by_side():
        # onnxruntime releases the GIL while it runs, so the threads compute in parallel.
        list(pool.map(lambda k: single.run(None, {"features": feats[k : k + 1]}), range(n)))

    def batched():
        every_core.run(None, {"features": feats})

    result = {
        "onnxruntime": ort.__version__,
        "threads": threads,
        "tiles": n,
        "tile_shape": [hgt, wid],
        "max_abs_diff_vs_flex": max_abs_diff,
        "px_per_s": {
            "one_tile_at_a_time": best_rate(one_at_a_time, pixels, args.reps),
            "tiles_side_by_side": best_rate(side_by_side, pixels, args.reps),
            "batched": best_rate(batched, pixels, args.reps),
        },
    }
    pool.shutdown()
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the network as ONNX")
    b.add_argument("--weights", required=True)
    b.add_argument("--out", required=True)
    r = sub.add_parser("bench", help="time onnxruntime on the benchmark's tiles")
    r.add_argument("--weights", required=True)
    r.add_argument("--tiles", required=True)
    r.add_argument("--threads", type=int, default=0, help="default: every core")
    r.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.command == "build":
        model = build_model(*load_weights(args.weights))
        tmp = args.out + ".tmp"
        onnx.save(model, tmp)
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    else:
        bench(args)


if __name__ == "__main__":
    main()
