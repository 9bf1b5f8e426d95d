"""`simplebits demo` end to end: wall time and peak RSS of a fresh run, then of a rerun that finds
every stage finished (the skip path), as a ratio in the same run. Prints JSON.

    python benchmarks/pipeline_demo.py [--out benchmarks/results/pipeline_demo.json] [--keep DIR] [--fp32-baseline]
                                       [--before-src DIR]

Targets: a fresh `simplebits demo` in <= 15 minutes on a 2-core CPU (issue "The main job"), then
<= 6 minutes with every budget kept (issue "Fast where users wait"). The run goes to a temporary directory (or --keep DIR) with the built-in demo config.
``--fp32-baseline`` first runs the same demo with every ``precision`` key set to fp32 (the demo
before it trained in bf16; same budgets, a separate directory) and reports the speed-up and both
runs' figures: the baseline measured in the same run.
``--before-src DIR`` first runs the same demo with the package imported from ``DIR`` (the ``src``
folder of an earlier checkout, e.g. ``git worktree add /tmp/before HEAD~1`` then
``/tmp/before/src``): a code change's speed-up in one run, and whether the figures stayed the same.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simplebits.runtime import cpu_name


FP32 = [f"{k}.precision=\"fp32\"" for k in ("evaluate", "condense", "prune", "explain")]


def run_demo(out: Path, sets: list[str] | None = None, src: str | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    extra = [a for kv in sets or [] for a in ("--set", kv)]
    env = None
    if src is not None:  # the package from another checkout's src folder (first on the path)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    r = subprocess.run([sys.executable, "-m", "simplebits.cli.main", "demo", "--out", str(out), "--json", *extra],
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"demo failed ({r.returncode}): {r.stderr[-2000:]}")
    doc = json.loads(r.stdout)
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(doc["peak_rss_mb"], 1),
            "peak_rss_children_mb": round(peak_children, 1) if peak_children > before / 1024.0 else None,
            "stage_s": doc["seconds"], "skipped": doc["skipped"], "figures": doc["figures"]}


def headline(f: dict) -> dict:
    """The figures a reader compares: accuracies (mean, std, per seed), bpd, the explanation's numbers."""
    keep = ("mean", "std", "accuracies")
    return {
        "random_real_ipc1": {k: f["baseline"]["rows"][0]["accuracy"][k] for k in keep},
        "condensed": [{**{k: s[k] for k in ("label", "bpd", "png_bpd")},
                       "accuracy": {k: s["accuracy"][k] for k in keep}} for s in f["condense"]["sets"]],
        "pruned": [{**{k: r[k] for k in ("rule", "ipc_from", "ipc_to")},
                    "accuracy": {k: r["accuracy"][k] for k in keep}} for r in f["prune"]["rows"]],
        "simplify": f["simplify"]["rows"], "simplify_originals": f["simplify"]["original"],
        "explain": {k: f["explain"][k] for k in ("n", "bpd_orig", "bpd_sim", "prediction_kept", "classifier_accuracy")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--keep", default=None, help="run in this directory (kept) instead of a temporary one")
    ap.add_argument("--fp32-baseline", action="store_true",
                    help="first run the demo with every precision key set to fp32, as the baseline")
    ap.add_argument("--before-src", default=None, metavar="DIR",
                    help="first run the demo with the package from DIR (an earlier checkout's src), as the baseline")
    args = ap.parse_args()
    if args.before_src and not (Path(args.before_src) / "simplebits" / "__init__.py").is_file():
        sys.exit(f"--before-src {args.before_src}: no simplebits package there; give the src folder of a checkout")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(args.keep) if args.keep else Path(tmp) / "demo"
        base = run_demo(Path(str(d) + "-fp32"), FP32) if args.fp32_baseline else None
        prev = run_demo(Path(str(d) + "-before"), src=str(Path(args.before_src).resolve())) if args.before_src else None
        fresh = run_demo(d)
        again = run_demo(d)
        f = fresh["figures"]
        res = {
            "benchmark": "pipeline_demo", "cpu": cpu_name(), "threads": os.cpu_count(), "dataset": f["data"]["dataset"],
            "fresh_wall_s": fresh["wall_s"], "fresh_peak_rss_mb": fresh["peak_rss_mb"],
            "target_wall_s": 360, "meets_target": fresh["wall_s"] <= 360, "earlier_target_wall_s": 900,
            "stage_s": fresh["stage_s"],
            "rerun_wall_s": again["wall_s"], "rerun_skipped": again["skipped"],
            "rerun_speedup": round(fresh["wall_s"] / again["wall_s"], 1),
            "same_figures_on_rerun": again["figures"] == fresh["figures"],
            "report_bytes": (d / "report.html").stat().st_size,
            "headline": headline(f),
        }
        if base is not None:
            res["fp32_baseline"] = {"sets": FP32, "wall_s": base["wall_s"], "peak_rss_mb": base["peak_rss_mb"],
                                    "stage_s": base["stage_s"], "speedup": round(base["wall_s"] / fresh["wall_s"], 2),
                                    "figures": headline(base["figures"])}
        if prev is not None:
            res["before"] = {"src": args.before_src, "wall_s": prev["wall_s"], "peak_rss_mb": prev["peak_rss_mb"],
                             "stage_s": prev["stage_s"], "speedup": round(prev["wall_s"] / fresh["wall_s"], 2),
                             "same_figures": headline(prev["figures"]) == headline(f)}
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
