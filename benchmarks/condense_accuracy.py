"""Condense, then evaluate: accuracy, bpd, seconds per iteration and peak RSS of condensation runs,
with the random-real baseline at the same IPC under the same protocols and seeds.

    python benchmarks/condense_accuracy.py --data fashion-mnist --method dc --ipc 1 \
        --seeds 0 1 2 [--lambdas none 0 1 4] [--iterations N] [--set KEY=VALUE ...] \
        [--protocols dc quick] [--eval-seeds 3] [--out-dir benchmarks/results/condensed]

Each (lambda, seed) run writes its condensed set under --out-dir and is skipped when that file
exists (so an interrupted sweep resumes). Prints one JSON object: per run the test accuracy of
each evaluation seed, and per lambda the mean +- std over condensation seeds (population std).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from simplebits.condense import condense, make_config
from simplebits.data import load_dataset
from simplebits.data.condensed import load_condensed
from simplebits.io import read_metadata
from simplebits.train.evaluate import evaluate, evaluate_real_subset


def _value(v: str):
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(v.lower(), v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--method", default="dc")
    ap.add_argument("--ipc", type=int, default=1)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--lambdas", nargs="+", default=["none"], help="'none' = no simplification term")
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--set", nargs="*", default=[], help="extra settings KEY=VALUE")
    ap.add_argument("--protocols", nargs="+", default=["dc", "quick"])
    ap.add_argument("--eval-seeds", type=int, default=3)
    ap.add_argument("--out-dir", default="benchmarks/results/condensed")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()

    train = load_dataset(f"{a.data}:train")
    test = load_dataset(f"{a.data}:test")
    extra = {k: _value(v) for k, v in (s.split("=", 1) for s in a.set)}
    if a.iterations:
        extra["iterations"] = a.iterations
    runs, summary = [], {}
    for lam_s in a.lambdas:
        lam = None if lam_s == "none" else float(lam_s)
        per_lambda = []
        for seed in a.seeds:
            cfg = make_config(a.method, ipc=a.ipc, preset=a.preset, lambda_sim=lam, seed=seed, **extra)
            name = f"{a.data}-{a.method}-ipc{a.ipc}-lam{lam_s}-s{seed}{a.tag}.safetensors"
            out = Path(a.out_dir) / name
            t0 = time.perf_counter()
            if out.exists():
                meta = read_metadata(out)
                info = {"bpd": meta.get("bpd"), "seconds": meta.get("seconds"),
                        "seconds_per_iteration": meta.get("seconds_per_iteration"),
                        "peak_rss_mb": meta.get("peak_rss_mb"), "reused": True}
            else:
                r = condense(train, cfg, out=out, resume=Path(f"{out}.ckpt").exists())
                info = {k: v for k, v in r.to_dict().items() if k in ("bpd", "seconds", "seconds_per_iteration",
                                                                       "peak_rss_mb")}
            ds = load_condensed(out)
            evals = {}
            for proto in a.protocols:
                rep = evaluate(ds, test, protocol=proto, seeds=a.eval_seeds)
                evals[proto] = {"mean": rep.mean, "std": rep.std, "accuracies": rep.accuracies}
            run = {"lambda": lam, "seed": seed, "file": str(out), **info, "eval": evals,
                   "wall_s": round(time.perf_counter() - t0, 1)}
            print(json.dumps(run), flush=True)
            runs.append(run)
            per_lambda.append(run)
        summ = {"bpd_mean": statistics.fmean(r["bpd"] for r in per_lambda if r["bpd"] is not None)
                if any(r["bpd"] is not None for r in per_lambda) else None}
        for proto in a.protocols:
            accs = [r["eval"][proto]["mean"] for r in per_lambda]
            summ[proto] = {"mean": statistics.fmean(accs), "std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
                           "per_seed": accs}
        summary[lam_s] = summ
    baseline = {}
    for proto in a.protocols:
        rep = evaluate_real_subset(train, test, ipc=a.ipc * int(extra.get("factor", 2 if a.method in ("idc", "dream") else 1)) ** 2,
                                   protocol=proto, seeds=a.eval_seeds)
        baseline[proto] = {"mean": rep.mean, "std": rep.std, "accuracies": rep.accuracies}
    print(json.dumps({"benchmark": "condense_accuracy", "data": a.data, "method": a.method, "ipc": a.ipc,
                      "preset": a.preset, "settings": extra, "seeds": a.seeds, "summary": summary,
                      "random_real_baseline": baseline, "runs": runs}, indent=2), flush=True)


if __name__ == "__main__":
    main()
