"""DD-Ranking's scores and storage bits of reduced sets: random real, dc, dm, idc.

For each data set and IPC: the sets (a random real subset drawn once, and condensed sets made
with the quick preset when their file is missing), each evaluated under the quick protocol with
hard labels and with a teacher's soft labels (kl), with and without DSA augmentation, 3 seeds;
the random-real subsets of the same size the same way; and networks on the whole training set
(cached) for HLR and as the teacher. Prints one JSON document (also written to --out) with every
accuracy, HLR, IOR, LRS, ARS (mean ± std over seeds), the storage bits of each set, wall time
and peak RSS. Evaluations are sequential (ensembled evaluation measured no gain on this CPU,
docs/evaluate.md). Resumable: condensation checkpoints (``.ckpt`` beside the set), every finished
evaluation is kept in ``--sets-dir``/DATASET-ipcN.evaluations.json, and rows already in ``--out``
are kept, so the same command after a kill loses at most one evaluation (three networks).

    python benchmarks/ranking.py --dataset fashion-mnist --ipc 1 --sets random,dc,dm,idc
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

from simplebits.condense import condense, make_config
from simplebits.data import load_dataset, real_subset
from simplebits.data.condensed import load_condensed
from simplebits.density import storage_bits
from simplebits.io import atomic_write_json
from simplebits.prune import prune_set
from simplebits.train import EvaluationMemo, full_data, get_protocol, ranking_scores

ROOT = Path(__file__).resolve().parent


def _budget(spec: str) -> tuple[str, dict]:
    """``dc`` -> ("dc", {}); ``dc@40`` -> ("dc", {"iterations": 40}): a stated, reduced budget."""
    method, at, iters = spec.partition("@")
    if at and not (iters.isdigit() and int(iters) >= 1):
        raise ValueError(f"set {spec!r}: the budget after '@' must be a whole number of iterations >= 1, e.g. dc@40")
    return method, ({"iterations": int(iters)} if iters else {})


def _condensed(method: str, dataset: str, ipc: int, real, folder: Path, log, *, precision: str | None = None) -> Path:
    method, budget = _budget(method)
    tag = "".join(f"-it{v}" for v in budget.values()) + (f"-{precision}" if precision else "")
    path = folder / f"{dataset}-{method}-ipc{ipc}{tag}-s0.safetensors"
    if not path.is_file():
        log(f"condensing {method} ipc {ipc} on {dataset} (quick preset{tag}) -> {path}")
        cfg = make_config(method, ipc=ipc, preset="quick", seed=0, precision=precision, **budget)
        condense(real, cfg, out=path, progress=False, resume=path.with_suffix(path.suffix + ".ckpt").exists())
    return path


def _set(name: str, dataset: str, ipc: int, real, folder: Path, log, precision: str | None = None) -> object:
    if name.startswith("yoco-"):  # e.g. yoco-dm10: the quick dm IPC 10 set pruned to ipc by YOCO
        method, parent_ipc = name[5:].rstrip("0123456789"), int(name[5:].lstrip("abcdefghijklmnopqrstuvwxyz"))
        parent = load_condensed(_condensed(method, dataset, parent_ipc, real, folder, log))
        out = folder / f"{dataset}-{name}-to{ipc}-s0.safetensors"
        if not out.is_file():
            log(f"pruning {method} ipc {parent_ipc} to {ipc} by yoco (3 dynamics runs)")
            prune_set(parent, ipc=ipc, rule="yoco", seed=0, out=out, progress=False,
                      dynamics=folder / f"{dataset}-{method}-ipc{parent_ipc}.dynamics.safetensors")
        return load_condensed(out).with_meta(name=f"{method} ipc{parent_ipc} -> {ipc} by yoco")
    if name == "random":
        # one random real subset, drawn with a seed the baseline draws never use
        return real_subset(real, ipc, seed=10_007).with_meta(name=f"random real ipc{ipc} (draw 10007)")
    method, budget = _budget(name)
    parts = ([f"{budget['iterations']} iterations"] if budget else []) + ([precision] if precision else [])
    note = f" ({', '.join(parts)})" if parts else ""
    path = _condensed(name, dataset, ipc, real, folder, log, precision=precision)
    return load_condensed(path).with_meta(name=f"{method} ipc{ipc}{note}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--ipc", type=int, default=1)
    ap.add_argument("--sets", default="random,dc,dm,idc",
                    help="comma list: random, dc, dm, idc, dsa, or yoco-METHODipc (e.g. yoco-dm10: that set pruned to "
                         "--ipc by YOCO); METHOD@N condenses with N outer iterations instead of the quick preset's "
                         "(a stated, reduced budget, e.g. dc@40); sets already in --out are kept")
    ap.add_argument("--precision", default=None, choices=("fp32", "bf16", "auto"),
                    help="real-side precision of sets condensed by this run (default: the quick preset's, fp32)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--labels", default="kl", help="soft-label loss (kl, sce, mse)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--protocol", default="quick")
    ap.add_argument("--sets-dir", default=str(ROOT / "results" / "ranking" / "sets"))
    ap.add_argument("--out", default=None, help="JSON file (default results/ranking/<dataset>-ipc<IPC>.json)")
    args = ap.parse_args()
    for name in args.sets.split(","):  # a malformed budget is a usage error before anything runs, not a traceback later
        try:
            _budget(name)
        except ValueError as e:
            ap.error(str(e))
    out = Path(args.out or ROOT / "results" / "ranking" / f"{args.dataset}-ipc{args.ipc}.json")
    folder = Path(args.sets_dir)
    folder.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True)  # noqa: E731

    t0 = time.perf_counter()
    real = load_dataset(args.dataset, split="train")
    test = load_dataset(args.dataset, split="test")
    proto = get_protocol(args.protocol)
    log(f"full-data networks on {len(real)} images ({args.seeds} seeds; cached)")
    tf = time.perf_counter()
    full = full_data(real, test, protocol=proto, seeds=args.seeds, progress=False)
    full_seconds = time.perf_counter() - tf
    teacher = full.teacher()
    probs = torch.softmax(teacher(real_subset(real, 10, seed=1).images), 1).max(1).values
    # every finished evaluation is kept on disk: a killed run resumes after the last one (not the last set)
    memo = EvaluationMemo(folder / f"{args.dataset}-ipc{args.ipc}.evaluations.json")
    rows, done, earlier = [], set(), []
    if out.is_file():  # sets already in the file (same data set, IPC, seeds, labels) are kept, not re-run
        old = json.loads(out.read_text())
        if (old.get("dataset"), old.get("ipc"), old.get("seeds"), old.get("soft_labels", {}).get("loss"),
                old.get("soft_labels", {}).get("temperature")) == (args.dataset, args.ipc, args.seeds, args.labels,
                                                                   args.temperature):
            rows = old["rows"]
            done = {r["set"] for r in rows}
            earlier = old.get("runs") or [{"sets": sorted(done), "wall_seconds": old.get("wall_seconds")}]
    def document() -> dict:
        doc = {"benchmark": "ranking", "dataset": args.dataset, "ipc": args.ipc, "seeds": args.seeds,
               "protocol": proto.to_dict(), "soft_labels": {"loss": args.labels, "temperature": args.temperature,
                                                            "teacher": "full-data network of seed 0"},
               "full_data": {"mean": full.mean, "std": full.std, "accuracies": full.accuracies,
                             "seconds": round(full_seconds, 1), "cached": full.cached,
                             "teacher_max_prob_median": float(probs.median())},
               "rows": rows, "runs": earlier + [{"sets": [r["set"] for r in rows if r["set"] not in done],
                                                 "wall_seconds": round(time.perf_counter() - t0, 1)}],
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               "evaluations": "sequential, one network per seed (no ensemble)"}
        doc["wall_seconds"] = round(sum(r["wall_seconds"] or 0 for r in doc["runs"]), 1)  # every run of this file
        return doc

    for name in args.sets.split(","):
        if name in done:
            log(f"{name}: already in {out}, kept")
            continue
        ds = _set(name, args.dataset, args.ipc, real, folder, log, args.precision)
        row = {"set": name, "name": ds.name, "n_stored": len(ds), "factor": int(ds.meta.get("factor", 1) or 1)}
        # a set condensed here with another budget than the quick preset's says so (yoco parents take neither)
        if "@" in name or (args.precision and not name.startswith(("random", "yoco-"))):
            row["condense_overrides"] = {**_budget(name)[1], **({"precision": args.precision} if args.precision else {})}
        reused_before = len(memo.reused)
        for labels in ("hard", args.labels):
            ts = time.perf_counter()
            log(f"{ds.name}: {labels} labels")
            rep = ranking_scores(ds, real, test, protocol=proto, labels=labels, temperature=args.temperature,
                                 seeds=args.seeds, teacher=teacher if labels != "hard" else None, progress=False,
                                 memo=memo)
            d = rep.to_dict()
            row[labels] = {"accuracies": {k: {"mean": v["mean"], "std": v["std"], "per_seed": v["per_seed"]}
                                          for k, v in d["accuracies"].items()},
                           "scores": d["scores"], "seconds": round(time.perf_counter() - ts, 1)}
            log(f"  {labels}: " + ", ".join(f"{k} {v['mean']:.2f}" for k, v in d["scores"].items()))
        # evaluations an earlier, killed run of this file finished (their time is not in this row's seconds)
        row["evaluations_reused"] = len(memo.reused) - reused_before
        row["storage_hard"] = storage_bits(ds)
        row["storage_soft"] = storage_bits(ds, labels="soft", teacher=teacher)
        rows.append(row)
        doc = document()
        atomic_write_json(out, doc)  # after every set: a killed run keeps the rows it finished
    print(json.dumps(document(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
