"""Read a trade-off run against issue #20's targets: SimpleBits against each baseline at matched bpd,
and the retrained accuracy at a given bpd cut, both interpolated along SimpleBits' curve.

    python benchmarks/simplify_compare.py [--run benchmarks/results/simplify-v3/results.json]
        [--cut 40] [--seeds-run benchmarks/results/simplify-v3-seeds/results.json] [--out FILE]
        [--baselines-from benchmarks/results/simplify-v3/results.json] [--originals-point]
        [--curve run|means]

For every data set of the run (a ``simplify_tradeoff.py`` results file):

* ``vs_baselines``: for each baseline point (blur, JPEG, MSE + bpd) whose bpd lies inside the range
  of SimpleBits' curve, SimpleBits' retrained accuracy linearly interpolated at that bpd minus the
  baseline's (points; > 0 is SimpleBits above), with the baseline's retraining std beside it;
  points outside the range have no matched bpd and are listed as such.
* ``at_cut``: SimpleBits' retrained accuracy interpolated at ``cut`` % below the originals' bpd,
  minus the originals' retrained accuracy (the target: within 5 points on mnist-5k at 40 %).
* ``joint_seeds`` (with ``--seeds-run``, which may be given more than once): the cells of all runs'
  folders pooled by λ: bpd and retrained accuracy as mean ± std over joint seeds (each seed's value
  is the mean of its retraining seeds), for every λ run with at least two joint seeds; the
  originals' retrained accuracy is pooled over the runs' own (each run retrains them from its
  first seed; runs with the same first seed count once).
* ``frontier``: the same comparison along the curve's non-dominated points only (a point is
  dropped when another has no more bpd and at least its accuracy): the curve a user choosing λ
  for a bit budget gets. It is reported beside the curve through every point, never instead of it.

``--curve means``: the curve's points are each λ's mean over all its joint seeds in the run's and
the seeds runs' folders (λ with one seed enter with that seed), and the originals' accuracy is the
pooled one; ``n_seeds`` gives each point's count. The default, ``run``, reads the run's own
summary (its seeds only).

``--baselines-from RUN``: the baseline points of another run's results file, for a run made with
``--no-baselines`` under the same retraining (training subset, retrain epochs and seeds).
``--originals-point``: the originals (their bpd and retrained accuracy) are a point of the curve,
its λ = 0 end, for a run without a λ = 0 cell (λ = 0 is the identity: docs/simplify.md); the
output says so (``originals_point``).

``--mse-means``: the same for the joint seeds of the run's (or ``--baselines-from``'s) own baseline
folder alone, for a baseline run made with several ``--seeds``.

``--mse-seeds-run RUN`` (repeatable): more joint seeds of the MSE + bpd baseline, from a run made with
``simplify_tradeoff.py --mse-only --seeds ...`` under the same settings. Each MSE point then becomes
its λ's mean over every joint seed found in the baseline folders of the run (or of
``--baselines-from``) and of these runs (bpd, and retrained accuracy with its std over joint seeds,
each seed's value the mean of its retraining seeds), as SimpleBits' points are with ``--curve
means``; ``n_seeds`` says how many.

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
from simplebits.simplify.runner import originals_entries

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


def frontier(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points: sorted by bpd, each kept only when its accuracy is above every
    point with less or equal bpd (ties in bpd keep the more accurate)."""
    out: list[tuple[float, float]] = []
    for b, a in sorted(pts, key=lambda p: (p[0], -p[1])):
        if not out or a > out[-1][1]:
            out.append((b, a))
    return out


def _versus(points: list[dict], curve: list[tuple[float, float]]) -> tuple[list[dict], float | None]:
    rows = []
    for b in points:
        at = interp(b["bpd"], curve)
        rows.append({"kind": b["kind"], "param": b["param"], "bpd": round(b["bpd"], 4),
                     "baseline": round(100 * b["retrain"]["mean"], 2),
                     "baseline_std": round(100 * b["retrain"]["std"], 2),
                     "simplebits": None if at is None else round(at, 2),
                     "simplebits_minus_baseline": None if at is None else round(at - 100 * b["retrain"]["mean"], 2),
                     **({"n_seeds": b["n_seeds"]} if "n_seeds" in b else {})})
    worst = min((r["simplebits_minus_baseline"] for r in rows if r["simplebits"] is not None), default=None)
    return rows, worst


def compare(run: dict, *, cut: float, baselines: dict | None = None, originals_point: bool = False,
            means: dict | None = None, mse: dict | None = None) -> dict:
    """``baselines``: another run's results, whose data sets' baseline points are used (see the
    module docstring); ``originals_point``: the originals are a point of the curve, its λ = 0 end;
    ``means``: ``curve_means``' output, whose points replace the run's own (``--curve means``)."""
    out = {}
    for name, d in run["datasets"].items():
        first = d["summary"][0]
        if means is None:
            pts = [{"lambda": c["lambda_sim"], "bpd": c["bpd"]["mean"], "retrain": 100 * c["retrain"]["mean"],
                    "n_seeds": c["bpd"]["n"]} for c in d["summary"]]
            orig_bpd, orig_acc = first["bpd_original"]["mean"], 100 * first["retrain_original"]["mean"]
        else:
            pts, orig_bpd, orig_acc = means[name]["points"], means[name]["bpd_original"], means[name]["retrain_original"]
        curve = [(p["bpd"], p["retrain"]) for p in pts]
        if originals_point:
            curve.append((orig_bpd, orig_acc))
        points = d.get("baselines", []) if baselines is None else baselines["datasets"].get(name, {}).get("baselines", [])
        if mse is not None and name in mse:  # the MSE points as means over their joint seeds
            points = [p for p in points if p["kind"] != "mse"] + mse[name]
        rows, worst = _versus(points, curve)
        front = frontier(curve)
        front_rows, front_worst = _versus(points, front)
        at_cut = interp(orig_bpd * (1 - cut / 100), curve)
        out[name] = {
            "bpd_original": round(orig_bpd, 4), "retrain_original": round(orig_acc, 2),
            "originals_point": originals_point,
            "curve_from": "run" if means is None else "means over joint seeds",
            "points": [{"lambda": p["lambda"], "bpd": round(p["bpd"], 4), "retrain": round(p["retrain"], 2),
                        "n_seeds": p["n_seeds"]} for p in sorted(pts, key=lambda p: p["bpd"])],
            "curve": [(round(b, 4), round(a, 2)) for b, a in sorted(curve)],
            "vs_baselines": rows,
            "matched": sum(r["simplebits"] is not None for r in rows),
            "worst_matched": worst,
            "frontier": {"curve": [(round(b, 4), round(a, 2)) for b, a in front], "vs_baselines": front_rows,
                         "matched": sum(r["simplebits"] is not None for r in front_rows), "worst_matched": front_worst},
            "at_cut": {"cut_pct": cut, "bpd": round(orig_bpd * (1 - cut / 100), 4),
                       "retrain": None if at_cut is None else round(at_cut, 2),
                       "points_vs_originals": None if at_cut is None else round(at_cut - orig_acc, 2)},
        }
    return out


def _cells(folders: list[Path]) -> tuple[dict, dict]:
    """The SimpleBits cells of ``folders`` by (data set, λ) and seed, and each data set's originals'
    retraining runs by what was retrained (a run's first seed and settings). The same (λ, seed) in
    two folders is one cell run twice: an error."""
    cells: dict[tuple[str, float], dict[int, dict]] = {}
    originals: dict[str, dict[str, list[float]]] = {}  # data set -> {their key: the originals' retraining runs}
    for folder in folders:
        seeds_in: dict[Path, set[int]] = {}  # a data set's folder -> the joint seeds of its cells read
        for f in sorted(folder.glob("*/lam*-s*/result.json")):
            c = json.loads(f.read_text())
            if c.get("mode", "simplebits") == "simplebits":
                by_seed = cells.setdefault((f.parent.parent.name, c["lambda_sim"]), {})
                if c["seed"] in by_seed:
                    raise SystemExit(f"λ {c['lambda_sim']:g} seed {c['seed']} is in two of the folders read "
                                     f"(one is {f.parent}): give each joint seed once")
                by_seed[c["seed"]] = c
                seeds_in.setdefault(f.parent.parent, set()).add(c["seed"])
        for d, seeds in seeds_in.items():  # the originals, retrained the same way by the runs read
            for o in originals_entries(d / "originals.json"):
                if o["key"].get("settings", {}).get("seed", min(seeds)) in seeds:
                    # keyed by what was retrained (two runs from the same first seed hold the same runs)
                    originals.setdefault(d.name, {})[json.dumps(o["key"], sort_keys=True)] = o["retrain_runs"]
    return cells, originals


def _pooled_original(originals: dict, name: str) -> float:
    # each run retrains the originals from its own first seed: pooled over the runs read
    return 100 * statistics.fmean(a for runs in originals[name].values() for a in runs)


def mse_means(folders: list[Path]) -> dict:
    """Per data set and MSE λ: the MSE + bpd cells (``<data set>-baselines/mse-lam<λ>-s<seed>/result.json``)
    of ``folders`` pooled over joint seeds, as baseline points (``kind``, ``param``, ``bpd``, ``retrain``
    with mean and std over joint seeds, ``n_seeds``, ``seeds``). The same (λ, seed) twice is an error."""
    cells: dict[tuple[str, float], dict[int, dict]] = {}
    for folder in folders:
        for f in sorted(folder.glob("*-baselines/mse-lam*-s*/result.json")):
            c = json.loads(f.read_text())
            name = f.parent.parent.name[: -len("-baselines")]
            by_seed = cells.setdefault((name, c["lambda_sim"]), {})
            if c["seed"] in by_seed:
                raise SystemExit(f"MSE λ {c['lambda_sim']:g} seed {c['seed']} is in two of the folders read "
                                 f"(one is {f.parent}): give each joint seed once")
            by_seed[c["seed"]] = c
    out: dict[str, list[dict]] = {}
    for (name, lam), by_seed in sorted(cells.items()):
        cs = [by_seed[k] for k in sorted(by_seed)]
        acc = [c["accuracy"]["retrain"] for c in cs]
        out.setdefault(name, []).append({
            "kind": "mse", "param": lam, "bpd": statistics.fmean(c["bpd"] for c in cs),
            "retrain": {"mean": statistics.fmean(acc), "std": statistics.pstdev(acc), "n": len(acc)},
            "n_seeds": len(cs), "seeds": sorted(by_seed)})
    return out


def curve_means(folders: list[Path]) -> dict:
    """Per data set: one point per λ, its bpd and retrained accuracy (%) as means over every joint
    seed in ``folders`` (``n_seeds`` of them, one allowed), and the originals' bpd and pooled
    retrained accuracy (``--curve means``)."""
    cells, originals = _cells(folders)
    out: dict[str, dict] = {}
    for (name, lam), by_seed in sorted(cells.items()):
        cs = list(by_seed.values())
        d = out.setdefault(name, {"points": [], "bpd_original": [], "retrain_original": _pooled_original(originals, name)})
        d["points"].append({"lambda": lam, "bpd": statistics.fmean(c["bpd"] for c in cs),
                            "retrain": statistics.fmean(100 * c["accuracy"]["retrain"] for c in cs),
                            "n_seeds": len(cs)})
        d["bpd_original"] += [c["bpd_original"] for c in cs]
    for d in out.values():
        d["bpd_original"] = statistics.fmean(d["bpd_original"])
    return out


def joint_seeds(folders: list[Path]) -> dict:
    """Per data set and λ: bpd and retrained accuracy (%) over the joint seeds whose cells
    (``<data set>/lam<λ>-s<seed>/result.json``) lie in ``folders``; λ with one seed are left out."""
    cells, originals = _cells(folders)
    out: dict[str, dict] = {}
    for (name, lam), by_seed in sorted(cells.items()):
        if len(by_seed) < 2:
            continue
        cs = [by_seed[k] for k in sorted(by_seed)]
        acc = [100 * c["accuracy"]["retrain"] for c in cs]
        orig = _pooled_original(originals, name)
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
    ap.add_argument("--seeds-run", action="append", default=[],
                    help="another run with more joint seeds of some λ (repeat for several)")
    ap.add_argument("--curve", choices=("run", "means"), default="run",
                    help="the curve's points: the run's own (default) or each λ's mean over all joint seeds read")
    ap.add_argument("--out", default=None)
    ap.add_argument("--baselines-from", default=None,
                    help="take the baseline points from this results file (a run made under the same retraining)")
    ap.add_argument("--originals-point", action="store_true",
                    help="the originals are the curve's lambda = 0 end (for a run without a lambda 0 cell)")
    ap.add_argument("--mse-means", action="store_true",
                    help="MSE points as means over the joint seeds in the baseline folder (implied by --mse-seeds-run)")
    ap.add_argument("--mse-seeds-run", action="append", default=[],
                    help="a simplify_tradeoff.py --mse-only run with more joint seeds of the MSE baseline: its "
                         "points become means over all their joint seeds (repeat for several)")
    args = ap.parse_args()
    run_path = Path(args.run)
    run = json.loads(run_path.read_text())
    other = json.loads(Path(args.baselines_from).read_text()) if args.baselines_from else None
    folders = [run_path.parent] + [Path(p).parent for p in args.seeds_run]
    means = curve_means(folders) if args.curve == "means" else None
    mse = None
    if args.mse_seeds_run or args.mse_means:
        base = Path(args.baselines_from).parent if args.baselines_from else run_path.parent
        mse = mse_means([base] + [Path(p).parent for p in args.mse_seeds_run])
    doc = {"run": shown(run_path),
           "datasets": compare(run, cut=args.cut, baselines=other, originals_point=args.originals_point, means=means,
                               mse=mse)}
    if mse is not None:
        doc["mse_seeds_run"] = [shown(Path(p)) for p in args.mse_seeds_run]
    if other is not None:
        doc["baselines_from"] = shown(Path(args.baselines_from))
    if args.seeds_run:
        doc["seeds_run"] = [shown(Path(p)) for p in args.seeds_run]
        doc["joint_seeds"] = joint_seeds(folders)
    atomic_write_json(Path(args.out) if args.out else run_path.parent / "compare.json", doc)
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
