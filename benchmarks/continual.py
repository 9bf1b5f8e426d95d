"""The continual-learning comparison of paper S12 on the default digit sequence
(printed-digits -> mnist-5k -> digits): no replay, replay of lambda=0 condensed sets, replay of
simplified condensed sets, each with and without knowledge distillation, mean ± std over seeds.

    python benchmarks/continual.py [--tasks printed-digits,mnist-5k,digits] [--lambda-sim 1000]
        [--method dm --ipc 10 --iterations 200] [--seeds 0,1,2] [--preset quick]

Step 1 condenses every task but the last twice (lambda 0 and --lambda-sim, both with the SimpleBits
parametrisation), or reuses the files in benchmarks/results/condensed/ (resumable). Step 2 runs
the comparison (the same API call as `simplebits continual`; finished runs are kept in
benchmarks/results/continual_<tag>/runs and re-running resumes). Prints the table and one JSON
line; writes benchmarks/results/continual_<tag>.json, .md and _curve.png.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

from simplebits.condense import condense, make_config as condense_config
from simplebits.continual import DEFAULT_TASKS, make_config, make_settings, plot_curve, run_continual
from simplebits.data import load_dataset
from simplebits.data.condensed import load_condensed
from simplebits.io import atomic_write_json, atomic_write_text, read_metadata

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def condensed_set(task: str, lam: float, args) -> Path:
    lam_s = f"{lam:g}"
    path = RESULTS / "condensed" / f"{task}-{args.method}-ipc{args.ipc}-lam{lam_s}-s0-it{args.iterations}.safetensors"
    if path.exists():
        return path
    cfg = condense_config(args.method, ipc=args.ipc, preset="quick", lambda_sim=lam, iterations=args.iterations, seed=0)
    resume = Path(f"{path}.ckpt").exists()
    condense(load_dataset(task, split="train"), cfg, out=path, resume=resume)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    ap.add_argument("--lambda-sim", type=float, default=1000.0, help="simplification weight of the simplified sets")
    ap.add_argument("--method", default="dm")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--tag", default="default")
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]

    t0 = time.perf_counter()
    groups: dict[str, list[str]] = {"lam0": [], f"lam{args.lambda_sim:g}": []}
    condense_seconds: dict[str, float] = {}  # as measured when each set was made
    for task in tasks[:-1]:
        for lam, key in ((0.0, "lam0"), (args.lambda_sim, f"lam{args.lambda_sim:g}")):
            p = condensed_set(task, lam, args)
            condense_seconds[p.name] = float(read_metadata(p).get("seconds") or 0.0)
            groups[key].append(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p))
    bpd = {k: [float(load_condensed(f).meta["condensed"]["bpd"]) for f in v] for k, v in groups.items()}
    t_cond = time.perf_counter() - t0

    out = RESULTS / f"continual_{args.tag}"
    settings = make_settings(groups, no_replay=True, kd=(False, True))
    config = make_config(args.preset)
    t1 = time.perf_counter()
    result = run_continual(tasks, settings, config=config, seeds=seeds, out=out, resume=True,
                           log=lambda s: print(s, flush=True))
    t_cl = time.perf_counter() - t1
    curve = str(Path(plot_curve(result, RESULTS / f"continual_{args.tag}_curve.png")).relative_to(ROOT))
    table = result.markdown()
    atomic_write_text(RESULTS / f"continual_{args.tag}.md", table + "\n")
    print(result.format())

    simple = f"lam{args.lambda_sim:g}"
    lower = [1 - s / z for s, z in zip(bpd[simple], bpd["lam0"])]
    final = {r.setting.label: {"mean": 100 * r.stats(len(tasks) - 1)[0], "std": 100 * r.stats(len(tasks) - 1)[1]}
             for r in result.results}
    runs = [sec for r in result.results for sec in r.seconds.values()]
    stage1 = list(result.stage1_seconds.values())
    summary = {
        "benchmark": "continual",
        "tasks": tasks,
        "seeds": seeds,
        "preset": args.preset,
        "replay": {k: {"files": v, "bpd": bpd[k]} for k, v in groups.items()},
        "bpd_lower_fraction": lower,
        "final_mean_accuracy": final,
        "table": result.to_dict(),
        "wall_s_condense_step": round(t_cond, 1),
        "condense_seconds": condense_seconds,
        # wall time of this invocation (small when the runs were finished before and resumed) and
        # the measured compute of all runs (each run's seconds, kept in its file: survives a resume;
        # the first run of each seed includes the shared first stage)
        "wall_s_comparison": round(t_cl, 1),
        "run_seconds_total": round(sum(runs), 1),
        "seconds_per_run_mean": round(statistics.mean(runs), 1) if runs else None,
        # the first stage is shared by all settings of a seed: measured time of one first stage,
        # and the time it saves (it would otherwise be trained once per setting)
        "stage1_seconds_mean": round(statistics.mean(stage1), 1) if stage1 else None,
        "stage1_seconds_saved": round(sum(stage1) * (len(settings) - 1), 1) if stage1 else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "curve": curve,
    }
    atomic_write_json(RESULTS / f"continual_{args.tag}.json", summary)
    print(json.dumps({k: summary[k] for k in ("final_mean_accuracy", "bpd_lower_fraction", "wall_s_comparison",
                                               "run_seconds_total", "stage1_seconds_saved", "peak_rss_mb")}))


if __name__ == "__main__":
    main()
