"""The ablation's points over joint seeds (issue #20, item 5): each variant read against the full
method's curve *of its own joint seed*, then averaged over the seeds that ran it.

    python benchmarks/simplify_ablation_seeds.py [--dir benchmarks/results/simplify-ablation]
        [--variants flow-mnist,flow-small,flow-tuned] [--out DIR/seeds.json] [--figure PNG] [--title T]

``simplify_ablation.py`` compares every point with one curve, the full method's at joint seed 0
(``--curve``, simplify-v2). A point from joint seed 1 set against it mixes two things: the variant and
the seed. Here each joint seed has its own curve:

* seed 0: the curve the results name (``curve``: the originals and the full method at λ 1, 2, 4, 8);
* seed s > 0: the originals (their gray32 bpd and their retraining from seed s, as the cells record
  them) and the ``base`` cells of seed s at every λ run (``results-lam<L>-s<s>.json``).

A point's ``vs_own_curve`` is its retrained accuracy minus that curve's, interpolated at the point's
gray32 bpd (points; None outside the curve's bpd range). A point at a lower bpd than any of its own
curve's carries ``below_own_curve``: that curve's lowest-bpd point and ``vs_end``, the point's
accuracy minus that end's. A positive ``vs_end`` means the point dominates the curve's end (fewer bits
and more accuracy), so it is above the curve however that continues downwards; a negative one says
nothing (the curve may fall further). Per variant and λ: every seed's figures, and
mean ± std (population std, as everywhere in the benchmarks) over the seeds. Every point also
carries ``vs_seed0_curve`` (against seed 0's curve, what simplify_ablation.py reports). The base
cells of seeds > 0 are listed too (``base``): they make their own curve, so their ``vs_own_curve`` is
0 by construction, and their ``vs_seed0_curve`` is the joint seed's own effect on the full method.
Reads JSON only (seconds, no training). Prints one JSON document (also written to ``--out``).
``--figure``: every joint seed's curve (thin lines) and each variant's mean over seeds at each λ
(error bars: std over seeds of its bpd and of its retrained accuracy).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from simplify_ablation import _fail, save_tradeoff_figure  # noqa: I001 (sibling scripts: benchmarks/ is on sys.path)
from simplify_compare import interp, shown

from simplebits.io import atomic_write_json

ROOT = Path(__file__).resolve().parent


def _ms(vals: list[float]) -> dict | None:
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"mean": round(statistics.fmean(vals), 4), "std": round(statistics.pstdev(vals), 4), "n": len(vals)}


def read_points(folder: Path) -> tuple[dict, dict]:
    """``({(variant, λ, seed): point}, {seed 0's curve, from the results})`` of every results file in ``folder``."""
    points: dict[tuple[str, float, int], dict] = {}
    curve0 = None
    for f in sorted(folder.glob("results*.json")):
        doc = json.loads(f.read_text())
        if doc.get("benchmark") != "simplify_ablation":
            continue
        seed, lam = int(doc.get("joint_seed", 0)), float(doc["lambda_sim"])
        if seed == 0 and curve0 is None:
            curve0 = [tuple(p) for p in doc["curve"]]
        for name, r in doc["variants"].items():
            key = (name, lam, seed)
            if key in points and points[key]["bpd"] != r["bpd"]:
                _fail(f"{name} at λ {lam:g}, joint seed {seed}, differs between two results files ({f.name}); "
                      "re-run simplify_ablation.py for it")
            points[key] = {"bpd": r["bpd"], "retrain": r["retrain"]["mean"], "retrain_std": r["retrain"]["std"],
                           "bpd_original": r.get("bpd_original"),
                           "retrain_original": (r.get("retrain_original") or {}).get("mean"),
                           "comparable": "retrain_epochs" not in r.get("change", {}), "file": f.name}
    if curve0 is None:
        _fail(f"{folder} holds no seed-0 results of simplify_ablation.py; run it first")
    return points, {0: curve0}


def seed_curves(points: dict, curves: dict) -> dict[int, list[tuple[float, float]]]:
    """Every joint seed's curve: seed 0's from the results, the others' from their base cells."""
    for seed in sorted({s for (_, _, s) in points} - {0}):
        base = [p for (name, _, s), p in points.items() if name == "base" and s == seed]
        if not base:
            continue
        orig = (base[0]["bpd_original"], base[0]["retrain_original"])
        curves[seed] = sorted([orig] + [(p["bpd"], p["retrain"]) for p in base])
    return curves


def summarise(points: dict, curves: dict, variants: list[str]) -> dict:
    out: dict[str, dict[str, dict]] = {}
    for name in variants + ["base"]:
        lams = sorted({lam for (n, lam, _) in points if n == name})
        for lam in lams:
            seeds = sorted(s for (n, la, s) in points if n == name and la == lam)
            rows = []
            for s in seeds:
                p = points[(name, lam, s)]
                own = interp(p["bpd"], curves[s]) if s in curves and p["comparable"] else None
                first = interp(p["bpd"], curves[0]) if p["comparable"] else None
                row = {"seed": s, "bpd": round(p["bpd"], 4),
                       "bpd_change_pct": round(100 * (p["bpd"] / p["bpd_original"] - 1), 2),
                       "retrain": round(100 * p["retrain"], 2), "retrain_std": round(100 * p["retrain_std"], 2),
                       "vs_own_curve": None if own is None else round(100 * (p["retrain"] - own), 2),
                       "vs_seed0_curve": None if first is None else round(100 * (p["retrain"] - first), 2)}
                if own is None and s in curves and p["comparable"] and p["bpd"] < min(curves[s])[0]:
                    end = min(curves[s])  # the curve's lowest-bpd point: where its own run stopped
                    row["below_own_curve"] = {"end_bpd": round(end[0], 4), "end_retrain": round(100 * end[1], 2),
                                              "vs_end": round(100 * (p["retrain"] - end[1]), 2)}
                rows.append(row)
            if name == "base" and all(r["seed"] == 0 for r in rows):
                continue  # seed 0's base is the curve itself
            out.setdefault(name, {})[f"{lam:g}"] = {
                "seeds": rows,
                "bpd_change_pct": _ms([r["bpd_change_pct"] for r in rows]),
                "retrain": _ms([r["retrain"] for r in rows]),
                "vs_own_curve": _ms([r["vs_own_curve"] for r in rows]),
                "vs_seed0_curve": _ms([r["vs_seed0_curve"] for r in rows]),
            }
    return out


DENSITY_TITLE = "loss's density model varied: means over joint seeds (number in brackets)"


def plot(curves: dict, summary: dict, out: Path, title: str = DENSITY_TITLE) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    styles = ["-", "--", ":", "-."]
    for s, c in sorted(curves.items()):
        ax.plot([p[0] for p in c], [100 * p[1] for p in c], styles[s % len(styles)], color="C0", lw=1.2, marker=".",
                label=f"full method (gray32), joint seed {s}")
    orig = max(curves[0])  # the originals: the curve's highest bpd
    ax.plot([orig[0]], [100 * orig[1]], "k*", ms=12, label="originals (seed 0)")
    for i, (name, by_lam) in enumerate(summary.items()):
        if name == "base":
            continue
        xs, ys, xe, ye, lams = [], [], [], [], []
        for lam, r in by_lam.items():
            bp = [p["bpd"] for p in r["seeds"]]
            xs.append(statistics.fmean(bp))
            xe.append(statistics.pstdev(bp))
            ys.append(r["retrain"]["mean"])
            ye.append(r["retrain"]["std"])
            lams.append((lam, len(bp)))
        ax.errorbar(xs, ys, xerr=xe, yerr=ye, fmt="D", color=f"C{i + 2}", capsize=2, label=f"{name}, mean over seeds")
        for x, y, (lam, n) in zip(xs, ys, lams):
            ax.annotate(f"λ {lam} ({n})", (x, y), fontsize=7, color=f"C{i + 2}", xytext=(4, 3 - 9 * (i % 3)),
                        textcoords="offset points")
    ax.set_title(title, fontsize=9)
    save_tradeoff_figure(fig, ax, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=str(ROOT / "results" / "simplify-ablation"))
    ap.add_argument("--variants", default="flow-mnist,flow-small,flow-tuned")
    ap.add_argument("--out", default=None, help="default: DIR/seeds.json")
    ap.add_argument("--figure", default=None, help="draw the seeds' curves and the variants' means into this PNG")
    ap.add_argument("--title", default=DENSITY_TITLE, help="the figure's title")
    args = ap.parse_args()
    folder = Path(args.dir)
    if not folder.is_dir():
        _fail(f"{folder} is not a folder of simplify_ablation.py results")
    points, curves = read_points(folder)
    curves = seed_curves(points, curves)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    doc = {"benchmark": "simplify_ablation_seeds", "dir": shown(folder),
           "curves": {str(s): [(round(b, 4), round(100 * a, 2)) for b, a in c] for s, c in sorted(curves.items())},
           "unit": "bpd under gray32; accuracies in %; vs_*_curve in points",
           "variants": summarise(points, curves, variants)}
    out = Path(args.out) if args.out else folder / "seeds.json"
    if args.figure:
        plot(curves, doc["variants"], Path(args.figure), args.title)
        doc["figure"] = shown(Path(args.figure))
    atomic_write_json(out, doc)
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
