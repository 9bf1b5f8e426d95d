"""SimpleBits at lambda = 0 must leave the data as it is (issue #20, item 1): the simplified set's
bpd within 2% of the originals' and a classifier retrained on it within 1 point of one retrained
on the originals (same retraining, tested on the original test images).

    python benchmarks/simplify_identity.py [--datasets fashion-mnist,mnist-5k] [--train-size 4000]
        [--seeds 0,1] [--retrain-seeds 3] [--variants paper-schedule,warmup,quick]

Runs the `quick` preset through `simplify()` (the API behind `simplebits simplify`) once per
variant, so the fix and the behaviour without it are measured in the same run:
``paper-schedule`` the 0.1 quick preset (no warm-up, the paper's loss terms), ``warmup`` one
classifier-only epoch first, ``quick`` the 0.2 preset (warm-up and the classification terms
relative to the originals'). Writes benchmarks/results/simplify_identity.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from simplebits.data import load_dataset, real_subset
from simplebits.io import atomic_write_json
from simplebits.simplify import make_simplify_config, simplify

VARIANTS = {"paper-schedule": {"warmup_epochs": 0, "relative": False},
            "warmup": {"warmup_epochs": 1, "relative": False},
            "quick": {}}
RESULTS = Path(__file__).resolve().parent / "results" / "simplify_identity.json"


def _ms(v: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(v), "std": statistics.pstdev(v) if len(v) > 1 else 0.0, "values": v}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="fashion-mnist,mnist-5k")
    ap.add_argument("--train-size", type=int, default=4000)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--retrain-seeds", type=int, default=3)
    ap.add_argument("--variants", default="paper-schedule,warmup,quick")
    args = ap.parse_args()
    torch.set_num_threads(2)
    seeds = [int(s) for s in args.seeds.split(",")]
    doc: dict = {"benchmark": "simplify_identity", "targets": {"bpd_ratio": "within 2%", "retrain": "within 1 point"},
                 "seeds": seeds, "retrain_seeds": args.retrain_seeds, "datasets": {}}
    if RESULTS.exists():  # variants not run now keep their rows (each row names its settings' digest)
        old = json.loads(RESULTS.read_text())
        if old.get("seeds") == seeds and old.get("retrain_seeds") == args.retrain_seeds:
            doc["datasets"] = old.get("datasets", {})
    t_all = time.perf_counter()
    for name in args.datasets.split(","):
        train = load_dataset(f"{name}:train")
        if len(train) > args.train_size:
            train = real_subset(train, args.train_size // train.num_classes, seed=0).with_meta(
                name=f"{name}:train[{args.train_size}]")
        test = load_dataset(f"{name}:test")
        doc["datasets"].setdefault(name, {})
        for variant in args.variants.split(","):
            cfg = make_simplify_config(preset="quick", retrain_seeds=args.retrain_seeds, **VARIANTS[variant])
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                res = simplify(train, test, lambdas=[0.0], seeds=seeds, config=cfg, out=tmp, progress=False)
            cells = res.cells
            ratio = [c["bpd"] / c["bpd_original"] for c in cells]
            drop = [100 * (c["accuracy"]["retrain"] - c["accuracy"]["retrain_original"]) for c in cells]
            row = {
                "variant": variant, "warmup_epochs": cfg.warmup_epochs, "relative": cfg.relative,
                "digest": cfg.digest(),
                "bpd_original": cells[0]["bpd_original"],
                "bpd": _ms([c["bpd"] for c in cells]),
                "bpd_change_pct": _ms([100 * (r - 1) for r in ratio]),
                "retrain_original": _ms(cells[0]["accuracy"]["retrain_original_runs"]),
                "retrain": _ms([a for c in cells for a in c["accuracy"]["retrain_runs"]]),
                "retrain_change_points": _ms(drop),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            row["met"] = abs(row["bpd_change_pct"]["mean"]) <= 2 and row["retrain_change_points"]["mean"] >= -1
            doc["datasets"][name][variant] = row
            print(name, json.dumps({k: (v["mean"] if isinstance(v, dict) else v) for k, v in row.items()}), flush=True)
            atomic_write_json(RESULTS, doc)
    doc["seconds"] = round(time.perf_counter() - t_all, 1)
    atomic_write_json(RESULTS, doc)
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
