"""Condensation on small images never ends below its start: dc, dsa, dm, idc at IPC 1 on three
image sizes, each set beside the real images it started from, under the same protocol and seeds.

    python benchmarks/condense_small.py [--out benchmarks/results/condense_small.json] [--seeds 3]

Data (real, bundled): ``digits`` (8x8, scikit-learn), ``mnist-5k`` resized to 16x16 (bilinear,
antialiased: USPS-sized digits), ``mnist-5k`` at 28x28. Quick preset; iterations cut to fit a
CPU (dc/dsa 10, dm 50, idc 3 x 10 image updates). Quick protocol (300 steps), ``--seeds`` networks
per set, each on the data set's own test split.

Before/after in one run: on 8x8 images every method also runs with ``depth 3`` forced, the
network every run used before the small-image rule (:func:`simplebits.condense.fit_network`).
At 16x16 and 28x28 the rule keeps depth 3, so those rows are the same network as before.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

import simplebits as sb
from simplebits.condense import condense, fit_network, make_config, starting_set
from simplebits.data import resize

SIZES = [("digits", None), ("mnist-5k", 16), ("mnist-5k", None)]
ITERATIONS = {"dc": 10, "dsa": 10, "dm": 50, "idc": 3}


def load(name: str, size: int | None) -> tuple[sb.ImageSet, sb.ImageSet, str]:
    train, test = sb.load_dataset(name, split="train"), sb.load_dataset(name, split="test")
    if size:
        train, test = resize(train, size, mode="bilinear"), resize(test, size, mode="bilinear")
    _, h, w = train.shape
    return train, test, f"{name} {h}x{w}"


def acc(ds: sb.ImageSet, test: sb.ImageSet, seeds: int) -> dict:
    r = sb.evaluate(ds, test, protocol="quick", seeds=seeds, progress=False)
    return {"mean": round(100 * r.mean, 2), "std": round(100 * r.std, 2), "accuracies": [round(100 * a, 2) for a in r.accuracies]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default="dc,dsa,dm,idc")
    args = ap.parse_args()
    rows = []
    t_all = time.perf_counter()
    for name, size in SIZES:
        train, test, label = load(name, size)
        starts: dict = {}
        for method in args.methods.split(","):
            cfg = make_config(method, ipc=1, iterations=ITERATIONS[method], compile=False)
            key = (cfg.init, cfg.factor)
            if key not in starts:
                starts[key] = acc(starting_set(train, cfg), test, args.seeds)
            variants = [("rule", cfg)]
            if fit_network(cfg, tuple(train.shape[1:])) is not cfg:
                variants.append(("depth 3 (before)", make_config(method, ipc=1, iterations=ITERATIONS[method],
                                                                 compile=False, net_options={"depth": 3})))
            for which, c in variants:
                t0 = time.perf_counter()
                res = condense(train, c, progress=False)
                a = acc(res.images, test, args.seeds)
                row = {"data": label, "method": method, "network": which,
                       "depth": res.config.net_options.get("depth", 3), "iterations": c.iterations,
                       "start": starts[key], "result": a, "minus_start": round(a["mean"] - starts[key]["mean"], 2),
                       "condense_seconds": round(res.seconds, 1), "seconds": round(time.perf_counter() - t0, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    out = {"benchmark": "condense_small", "protocol": "quick", "eval_seeds": args.seeds, "ipc": 1,
           "iterations": ITERATIONS, "torch": torch.__version__, "machine": platform.machine(),
           "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t_all, 1), "rows": rows}
    text = json.dumps(out, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
