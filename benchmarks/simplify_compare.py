"""Read a trade-off run against issue #20's targets: SimpleBits against each baseline at matched bpd,
and the retrained accuracy at a given bpd cut, both interpolated along SimpleBits' curve.

    python benchmarks/simplify_compare.py [--run benchmarks/results/simplify-v3/results.json]
        [--cut 40] [--seeds-run benchmarks/results/simplify-v3-seeds/results.json] [--out FILE]
        [--baselines-from benchmarks/results/simplify-v3/results.json] [--originals-point]

For every data set of the run (a ``simplify_tradeoff.py`` results file):

* ``vs_baselines``: for each baseline point (blur, JPEG, MSE + bpd) whose bpd lies inside the range
  of SimpleBits' curve, SimpleBits' retrained accuracy linearly interpolated at that bpd minus the
  baseline's (points; > 0 is SimpleBits above), with the baseline's retraining std beside it;
  points outside the range have no matched bpd and are listed as such.
* ``at_cut``: SimpleBits' retrained accuracy interpolated at ``cut`` % below the originals' bpd,
  minus the originals' retrained accuracy (the target: within 5 points on mnist-5k at 40 %).
* ``joint_seeds`` (with ``--seeds-run``): the cells of both runs' folders pooled by λ: bpd and
  retrained accuracy as mean ± std over joint seeds (each seed's value is the mean of its
  retraining seeds), for every λ run with at least two joint seeds; the originals' retrained
  accuracy is pooled over the runs' own (each run retrains them from its first seed).

``--baselines-from RUN``: the baseline points of another run's results file, for a run made with
``--no-baselines`` under the same retraining (training subset, retrain epochs and seeds).
``--originals-point``: the originals (their bpd and retrained accuracy) are a point of the curve,
its λ = 0 end, for a run without a λ = 0 cell (λ = 0 is the identity: docs/simplify.md); the
output says so (``originals_point``).

``interp`` and ``shown`` are shared with ``simplify_ablation.py`` and ``simplify_tradeoff.py``.
No training: it reads JSON and prints JSON (written to ``--out``, default ``compare.json`` beside
the run).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from simplebits.io import atomic_write_json

ROOT = Path(__file__).resolve().parent


def interp(x: float, pts: list[tuple[float, float]]) -> float | None:
    """The curve's value at ``x`` (linear between points sorted by bpd; None outside its range)."""
    pts = sorted(pts)
    if not pts or x < pts[0][0] or x > pts[-1][0]:
        return None
    return float(np.interp(x, [p[0] for p in pts], [p[1] for p in pts]))


def shown(path: Path) -> str:
    """A path as the results show it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT.parent))
    except ValueError:
        return str(path)


def _mean_std(v: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(v), "std": statistics.pstdev(v), "n": len(v)}  # as the package reports


def compare(run: dict, *, cut: float, baselines: dict | None = None, originals_point: bool = False) -> dict:
    """``baselines``: another run's results, whose data sets' baseline points are used (see the
    module docstring); ``originals_point``: the originals are a point of the curve, its λ = 0 end."""
    out = {}
    for name, d in run["datasets"].items():
        curve = [(c["bpd"]["mean"], 100 * c["retrain"]["mean"]) for c in d["summary"]]
        first = d["summary"][0]
        orig_bpd, orig_acc = first["bpd_original"]["mean"], 100 * first["retrain_original"]["mean"]
        if originals_point:
            curve.append((orig_bpd, orig_acc))
        points = d.get("baselines", []) if baselines is None else baselines["datasets"].get(name, {}).get("baselines", [])
        rows = []
        for b in points:
            at = interp(b["bpd"], curve)
            rows.append({"kind": b["kind"], "param": b["param"], "bpd": round(b["bpd"], 4),
                         "baseline": round(100 * b["retrain"]["mean"], 2),
                         "baseline_std": round(100 * b["retrain"]["std"], 2),
                         "simplebits": None if at is None else round(at, 2),
                         "simplebits_minus_baseline": None if at is None else round(at - 100 * b["retrain"]["mean"], 2)})
        matched = [r for r in rows if r["simplebits"] is not None]
        at_cut = interp(orig_bpd * (1 - cut / 100), curve)
        out[name] = {
            "bpd_original": round(orig_bpd, 4), "retrain_original": round(orig_acc, 2),
            "originals_point": originals_point,
            "curve": [(round(b, 4), round(a, 2)) for b, a in sorted(curve)],
            "vs_baselines": rows,
            "matched": len(matched),
            "worst_matched": min((r["simplebits_minus_baseline"] for r in matched), default=None),
            "at_cut": {"cut_pct": cut, "bpd": round(orig_bpd * (1 - cut / 100), 4),
                       "retrain": None if at_cut is None else round(at_cut, 2),
                       "points_vs_originals": None if at_cut is None else round(at_cut - orig_acc, 2)},
        }
    return out


def joint_seeds(folders: list[Path]) -> dict:
    """Per data set and λ: bpd and retrained accuracy (%) over the joint seeds whose cells
    (``<data set>/lam<λ>-s<seed>/result.json``) lie in ``folders``; λ with one seed are left out."""
    cells: dict[tuple[str, float], dict[int, dict]] = {}
    originals: dict[str, dict[str, list[float]]] = {}  # data set -> {folder: the originals' retraining runs}
    for folder in folders:
        for f in sorted(folder.glob("*/lam*-s*/result.json")):
            c = json.loads(f.read_text())
            if c.get("mode", "simplebits") == "simplebits":
                cells.setdefault((f.parent.parent.name, c["lambda_sim"]), {})[c["seed"]] = c
                if (f.parent.parent / "originals.json").is_file():  # the originals, retrained the same way
                    originals.setdefault(f.parent.parent.name, {})[str(folder)] = json.loads(
                        (f.parent.parent / "originals.json").read_text())["retrain_runs"]
    out: dict[str, dict] = {}
    for (name, lam), by_seed in sorted(cells.items()):
        if len(by_seed) < 2:
            continue
        cs = [by_seed[k] for k in sorted(by_seed)]
        acc = [100 * c["accuracy"]["retrain"] for c in cs]
        # each run retrains the originals from its own first seed: pooled over the runs read
        orig = 100 * statistics.fmean(a for runs in originals[name].values() for a in runs)
        out.setdefault(name, {})[f"{lam:g}"] = {
            "seeds": sorted(by_seed), "bpd": _mean_std([c["bpd"] for c in cs]), "retrain": _mean_std(acc),
            "joint": _mean_std([100 * c["accuracy"]["joint"] for c in cs]),
            "bpd_change_pct": _mean_std([100 * (c["bpd"] / c["bpd_original"] - 1) for c in cs]),
            "retrain_original": round(orig, 2), "points_vs_originals": round(statistics.fmean(acc) - orig, 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(ROOT / "results" / "simplify-v3" / "results.json"))
    ap.add_argument("--cut", type=float, default=40.0, help="percent below the originals' bpd")
    ap.add_argument("--seeds-run", default=None, help="another run with more joint seeds of some λ")
    ap.add_argument("--out", default=None)
    ap.add_argument("--baselines-from", default=None,
                    help="take the baseline points from this results file (a run made under the same retraining)")
    ap.add_argument("--originals-point", action="store_true",
                    help="the originals are the curve's lambda = 0 end (for a run without a lambda 0 cell)")
    args = ap.parse_args()
    run_path = Path(args.run)
    run = json.loads(run_path.read_text())
    other = json.loads(Path(args.baselines_from).read_text()) if args.baselines_from else None
    doc = {"run": shown(run_path),
           "datasets": compare(run, cut=args.cut, baselines=other, originals_point=args.originals_point)}
    if other is not None:
        doc["baselines_from"] = shown(Path(args.baselines_from))
    if args.seeds_run:
        doc["seeds_run"] = shown(Path(args.seeds_run))
        doc["joint_seeds"] = joint_seeds([run_path.parent, Path(args.seeds_run).parent])
    atomic_write_json(Path(args.out) if args.out else run_path.parent / "compare.json", doc)
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
