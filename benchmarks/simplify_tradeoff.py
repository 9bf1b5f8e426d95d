"""The accuracy-vs-bpd trade-off (paper Fig. 5) on mnist-5k and Fashion-MNIST with the S8
baselines on Fashion-MNIST, under the `quick` preset, then the plots.

    python benchmarks/simplify_tradeoff.py [--datasets mnist-5k,fashion-mnist] [--lambdas 0,1,2,4,8]
        [--train-size 4000] [--seeds 0] [--retrain-seeds 3] [--no-baselines] [--epochs N] [--reinit-every N]
        [--mse-lambdas 0.001,0.003,0.01,0.03] [--select-within F] [--select-seeds K] [--backtrack FACTOR] [--escape-loss]
        [--mse-only]

It makes the same API calls as `simplebits simplify`, `simplebits simplify-baselines` and
`simplebits tradeoff`. Finished cells are skipped when run again (resumable): ``seconds`` is this
invocation's wall time, ``cells_seconds`` / ``mse_cells_seconds`` the cells' own training and
evaluation time, whichever run made them. Results go to
benchmarks/results/simplify/; the summary JSON is printed and written to
benchmarks/results/simplify_tradeoff.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import replace
from pathlib import Path

from simplify_compare import shown  # noqa: I001 (a sibling script: benchmarks/ is on sys.path)
from simplify_distractors import add_epoch_choice_options, epoch_choice_settings

from simplebits.data import load_dataset, real_subset
from simplebits.io import atomic_write_json
from simplebits.simplify import make_simplify_config, simplify, simplify_baselines, tradeoff

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "simplify"
RESULTS = ROOT / "results" / "simplify_tradeoff.json"


def _cells_seconds(cells: list[dict]) -> float:
    """The joint training and evaluation time of finished cells, as each recorded it: unlike
    ``seconds`` (this invocation's wall time), it holds when a resumed run reads cells back."""
    return round(sum(c["seconds"]["joint"] + c["seconds"]["evaluation"] for c in cells), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="mnist-5k,fashion-mnist")
    ap.add_argument("--lambdas", default="0,1,2,4,8")
    ap.add_argument("--train-size", type=int, default=4000, help="class-balanced training subset per data set")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--retrain-seeds", type=int, default=3)
    ap.add_argument("--baselines-on", default="fashion-mnist", help="comma list of the data sets that get the baselines")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--mse-only", action="store_true",
                    help="only the MSE + bpd baseline at --seeds (its joint seeds): no SimpleBits cells, no blur or "
                         "JPEG (more joint seeds for a run's MSE points; simplify_compare.py --mse-seeds-run)")
    ap.add_argument("--mse-lambdas", default=None,
                    help="comma list of the MSE + bpd baseline's lambdas (default: the package's, 0.001-0.03)")
    ap.add_argument("--epochs", type=int, default=None, help="joint epochs (default: the quick preset's)")
    ap.add_argument("--reinit-every", type=int, default=None,
                    help="re-initialise the joint classifier every N joint epochs (default: the quick preset's, never)")
    add_epoch_choice_options(ap)
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results/...)")
    args = ap.parse_args()
    global OUT, RESULTS
    if args.out:
        OUT = Path(args.out)
        RESULTS = OUT / "results.json"
    lambdas = [float(v) for v in args.lambdas.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    cfg = make_simplify_config(preset="quick", retrain_seeds=args.retrain_seeds, epochs=args.epochs,
                               reinit_every=args.reinit_every, **epoch_choice_settings(args))
    t0 = time.perf_counter()
    doc = {"config": cfg.to_dict(), "lambdas": lambdas, "seeds": seeds, "datasets": {}}
    dirs = []
    for name in args.datasets.split(","):
        train = load_dataset(f"{name}:train")
        if args.train_size and len(train) > args.train_size:
            train = real_subset(train, args.train_size // train.num_classes, seed=0).with_meta(
                name=f"{name}:train[{args.train_size}]")
        test = load_dataset(f"{name}:test")
        d = OUT / name
        if not args.mse_only:
            dirs.append(d)
        t1 = time.perf_counter()
        if args.mse_only:
            doc["datasets"][name] = {"summary": []}
        else:
            res = simplify(train, test, lambdas=lambdas, seeds=seeds, config=cfg, out=d, resume=True, progress=False)
            doc["datasets"][name] = {"summary": res.summary(), "seconds": round(time.perf_counter() - t1, 1),
                                     "per_step_s": [c["seconds"]["per_step"] for c in res.cells],
                                     "cells_seconds": _cells_seconds(res.cells)}
            if args.select_within is not None:  # which epoch each cell kept, and its held-out check
                doc["datasets"][name]["select"] = [{"lambda": c["lambda_sim"], "seed": c["seed"], **{
                    k: c["select"][k] for k in ("epoch", "bpd", "accuracy", "reference")}} for c in res.cells]
            print(name, json.dumps(res.summary()), flush=True)
        if not args.no_baselines and name in args.baselines_on.split(","):
            t1 = time.perf_counter()
            more = {} if args.mse_lambdas is None else {"mse_lambdas": [float(v) for v in args.mse_lambdas.split(",")]}
            if args.mse_only:
                more.update(sigmas=[], qualities=[])
            b = simplify_baselines(train, test, seeds=list(range(args.retrain_seeds)), mse_seeds=seeds, **more,
                                   # no joint classifier to re-initialise, no joint epochs to choose between
                                   config=replace(cfg, reinit_every=0, select_within=None, select_seeds=1,
                                                  backtrack=None),
                                   out=OUT / f"{name}-baselines", progress=False)
            dirs.append(OUT / f"{name}-baselines")
            doc["datasets"][name]["baselines"] = b["points"]
            doc["datasets"][name]["mse_cells_seconds"] = _cells_seconds(
                [json.loads(f.read_text()) for f in sorted((OUT / f"{name}-baselines").glob("mse-*/result.json"))])
            doc["datasets"][name]["baseline_seconds"] = round(time.perf_counter() - t1, 1)
            print(name, "baselines", json.dumps([(p["kind"], p["param"], round(p["bpd"], 3),
                                                  p["retrain"]) for p in b["points"]]), flush=True)
        atomic_write_json(RESULTS, doc)
    plots = tradeoff(dirs, out=OUT / "plots")
    doc["plots"] = {k: shown(Path(v)) for k, v in plots["files"].items()}
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    doc["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    atomic_write_json(RESULTS, doc)
    print(plots["table"])
    print(json.dumps({k: doc[k] for k in ("seconds", "peak_rss_mb", "plots")}, indent=2))


if __name__ == "__main__":
    main()
