"""Which part of SimpleBits decides its trade-off (issue #20, item 5): one lambda, one data set,
one change to the quick preset per run, each point read against the full method's curve.

    python benchmarks/simplify_ablation.py [--dataset mnist-5k] [--lambda-sim 2] [--train-size 4000]
        [--retrain-seeds 3] [--variants base,paper-terms,no-unrolled,no-gate,ngf8,ngf32,epochs8,retrain16,reinit1,reinit1-epochs8,
        flow-mnist,flow-small,flow-tuned] [--joint-seed 0] [--flows-dir DIR] [--plot-variants NAMES] [--grid PNG]

Variants (each is the quick preset with one change; the same joint seed, 0 unless ``--joint-seed``, and
retraining seeds):

* ``base``        the quick preset as it is;
* ``paper-terms`` the paper's absolute classification terms (``relative=False``);
* ``no-unrolled`` no unrolled classifier step: the simplifier is trained on ``l(f(X_sim))`` of the
  classifier as it is (``unrolled=False``);
* ``no-gate``     every example's bpd counts fully (``gated=False``);
* ``ngf8`` / ``ngf32`` simplifier capacity: UNet base width 8 or 32 instead of 16;
* ``epochs8``     training length: 8 joint-training epochs instead of 4 (1 warm-up in both);
* ``retrain16``   the evaluation's length: the fresh classifiers (on the simplified set and on the
  originals) train 16 epochs instead of 4; the simplifier is the base one's. Read it against its
  own originals (``points_vs_originals``), not against the curve, which was retrained 4 epochs.
* ``reinit1``     the joint classifier re-initialised at every joint epoch after the first, each new
  one first trained one pass on the simplified images alone (``reinit_every=1``);
* ``reinit1-epochs8`` the same with 8 joint epochs (so 6 re-initialisations; ``epochs8``'s length).

Each variant whose simplifier is on disk also gets ``probe_simplified``: a fresh classifier (retraining
seed 0) trained on the simplified training set and tested on the *simplified* test images. Set
beside its accuracy on the original test images, it separates information the simplifier removed
from a shift that a classifier trained on simplified images cannot cross.

* ``flow-mnist`` the density model: a flow of gray32's size (3 levels, 8 steps, width 96) trained on
  the data set's own training split only (in-domain) instead of the shipped ``gray32`` (mixed gray data);
* ``flow-small`` the density model: a much smaller flow (3 levels, 2 steps, width 32) trained on
  gray32's data, a weaker model of the same images;
* ``flow-tuned`` the density model: the shipped ``gray32`` fine-tuned on the data set's own training
  split (``train-flow --init gray32``), a better model of these images than gray32 itself.

The flows are made once with ``simplebits train-flow`` (the commands are in FLOWS below and in
docs/simplify.md; a missing file stops the script with the command to run) into ``--flows-dir``; their
cards are kept in git, their weights are not. The flow is the *loss's* density model only: every
figure of a variant (its ``bpd``, ``bpd_original``, the comparison with the curve) is scored with the
shipped ``gray32`` as everywhere else, and the loss model's own scores are kept beside them
(``bpd_loss_model``, ``bpd_original_loss_model``).

Each point (bpd, retrained accuracy, mean ± std over the retraining seeds) is compared with the
full method's trade-off curve and with the MSE + bpd baseline's, both read from the curve run
(``--curve``, default benchmarks/results/simplify-v2/results.json) and interpolated at the point's bpd:
``vs_curve`` > 0 means the variant sits above the full method's curve. Runs are resumable (finished
cells are skipped). Results: benchmarks/results/simplify-ablation/ (cells), results.json (another
``--lambda-sim``: results-lam<L>.json beside it, drawn as open markers; another ``--joint-seed``:
results-lam<L>-s<SEED>.json, drawn only by runs of that seed), and the figure
docs/img/simplify_ablation.png. ``simplify_ablation_seeds.py`` reads the joint seeds together, each
against its own seed's curve.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

from simplify_compare import interp, shown  # noqa: I001 (a sibling script: benchmarks/ is on sys.path)

from simplebits.data import ImageSet, load_dataset, real_subset
from simplebits.data.condensed import load_condensed
from simplebits.density import BpdTerm
from simplebits.io import atomic_write_json
from simplebits.simplify import apply_simplifier, load_simplifier, make_simplify_config, retrain, simplify

ROOT = Path(__file__).resolve().parent
QUICK_UNET = {"ngf": 16, "downsamples": 3, "ws": True}
VARIANTS = {
    "base": {},
    "paper-terms": {"relative": False},
    "no-unrolled": {"unrolled": False},
    "no-gate": {"gated": False},
    "ngf8": {"simplifier_options": {**QUICK_UNET, "ngf": 8}},
    "ngf32": {"simplifier_options": {**QUICK_UNET, "ngf": 32}},
    "epochs8": {"epochs": 8},
    "retrain16": {"retrain_epochs": 16},
    "reinit1": {"reinit_every": 1},
    "reinit1-epochs8": {"reinit_every": 1, "epochs": 8},
    "flow-mnist": {"density": "flow-mnist.safetensors"},  # a file in --flows-dir (FLOWS)
    "flow-small": {"density": "flow-small.safetensors"},
    "flow-tuned": {"density": "flow-tuned.safetensors"},
}
# how each variant's density model is made (simplebits train-flow; the file name is the variant's "density")
FLOWS = {
    "flow-mnist.safetensors": "simplebits train-flow mnist-5k --depth 8 --width 96 --epochs 80 --lr 5e-4 --patience 8",
    "flow-small.safetensors": ("simplebits train-flow fashion-mnist,mnist-5k,printed-digits,photo-patches-gray "
                               "--depth 2 --width 32 --epochs 8 --patience 2"),
    "flow-tuned.safetensors": "simplebits train-flow mnist-5k --init gray32 --lr 2e-4 --epochs 30 --patience 5",
}


def _fail(message: str) -> None:
    """One line on stderr and exit status 2, as the package's CLI does for bad input."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _variant_change(name: str, flows_dir: Path) -> dict:
    """The config change of variant ``name``; a density-model variant's flow file is looked up in
    ``flows_dir`` (exit 2 with the command that makes it when it is missing)."""
    change = dict(VARIANTS[name])
    if "density" in change:
        path = flows_dir / change["density"]
        if not path.is_file():
            _fail(f"variant {name!r} needs the density model {path}; make it with "
                  f"`{FLOWS[change['density']]} --out {path}` (a few minutes to half an hour)")
        # relative to the repository (as results show paths) when run from its root, else absolute
        change["density"] = shown(path) if Path.cwd().resolve() == ROOT.parent.resolve() else str(path.resolve())
    return change


def _curves(path: Path, dataset: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]], dict]:
    """(full-method curve, MSE + bpd curve, the originals and the run's retrain_epochs) of ``dataset``
    from a simplify_tradeoff run."""
    run = json.loads(path.read_text())
    d = run["datasets"][dataset]
    curve = [(c["bpd"]["mean"], c["retrain"]["mean"]) for c in d["summary"]]
    mse = [(b["bpd"], b["retrain"]["mean"]) for b in d.get("baselines", []) if b["kind"] == "mse"]
    first = d["summary"][0]
    originals = {"bpd": first["bpd_original"]["mean"], "retrain": first["retrain_original"]["mean"],
                 "retrain_epochs": run["config"]["retrain_epochs"]}
    return curve, mse + [(originals["bpd"], originals["retrain"])], originals


def _probe_simplified(cell: Path, train, test, cfg) -> float | None:
    """Accuracy on the simplified test images of a classifier retrained (seed 0) on the simplified
    training images; None when the cell's simplifier is not on disk."""
    path = cell / "simplifier.safetensors"
    if not path.is_file():
        return None
    sim = load_simplifier(path)
    as_set = lambda ds: ImageSet(apply_simplifier(sim, ds.images), ds.labels, ds.classes, ds.meta)  # noqa: E731
    return retrain(as_set(train), as_set(test), cfg=cfg, seed=0, progress=False)["accuracy"]


def _plot(doc: dict, curve, mse, originals, out: Path, others: list[dict] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    c = sorted(curve)
    ax.plot([p[0] for p in c], [100 * p[1] for p in c], "o-", color="C0", label="SimpleBits (quick), λ 0-8")
    m = sorted(mse)
    ax.plot([p[0] for p in m], [100 * p[1] for p in m], "s--", color="C1", label="MSE + bpd")
    ax.plot([originals["bpd"]], [100 * originals["retrain"]], "k*", ms=12, label="originals")
    order = list(VARIANTS)  # colours by the variants' fixed order, whichever runs came first
    ranked = sorted(doc["variants"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    for i, (name, r) in enumerate(ranked):
        ax.errorbar([r["bpd"]], [100 * r["retrain"]["mean"]], yerr=[100 * r["retrain"]["std"]], fmt="D",
                    color=f"C{i + 2}", label=f"{name} (λ {doc['lambda_sim']:g})")
    colours = {name: f"C{i + 2}" for i, (name, _) in enumerate(ranked)}
    for other in others:  # the same variants at other lambdas: open markers, joined to their lambda-2 point
        for name, r in other["variants"].items():
            ax.errorbar([r["bpd"]], [100 * r["retrain"]["mean"]], yerr=[100 * r["retrain"]["std"]], fmt="D",
                        mfc="none", color=colours.get(name, "grey"))
            k = list(colours).index(name) if name in colours else 0  # labels of nearby points stagger by variant
            seed = f", seed {other['joint_seed']}" if other.get("joint_seed") else ""
            ax.annotate(f"{name}, λ {other['lambda_sim']:g}{seed}", (r["bpd"], 100 * r["retrain"]["mean"]), fontsize=7,
                        xytext=(4, -10 - 8 * (k % 3)), textcoords="offset points")
    ax.set_title(f"{doc['dataset']}: one change to the quick preset per point")
    save_tradeoff_figure(fig, ax, out)


def save_tradeoff_figure(fig, ax, out: Path) -> None:
    """The ablation figures' axes, grid and legend; written atomically to ``out`` and closed."""
    import matplotlib.pyplot as plt

    ax.set_xlabel("bpd of the simplified training set (gray32, per model dimension)")
    ax.set_ylabel("retrained accuracy on original test images (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(out)
    plt.close(fig)


def _grid(train, cells: Path, names: list[str], out: Path) -> list[str]:
    """Originals on top, then one row per (variant, lambda) whose simplified set is on disk under
    ``cells`` (variants in ``names`` order, lambdas rising): the same image of each class in every
    row. Returns the rows' labels, top to bottom after the originals."""
    from simplebits.images import save_png
    from simplebits.simplify.figures import comparison_grid

    rows, shown_rows = [], []
    for name in names:
        found = sorted((float(d.name[3:].split("-s")[0]), d) for d in (cells / name).glob("lam*-s0")
                       if (d / "simplified.safetensors").is_file())
        for lam, d in found:
            made = load_condensed(d / "simplified.safetensors")
            if not bool((made.labels == train.labels).all()):
                _fail(f"{d} was not made from this training set; run it again or choose --out")
            rows.append(made.images)
            shown_rows.append(f"{name}, λ {lam:g}")
    if rows:
        save_png(out, comparison_grid(train.images, rows, labels=train.labels, num_classes=train.num_classes))
    return shown_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist-5k")
    ap.add_argument("--lambda-sim", type=float, default=2.0)
    ap.add_argument("--train-size", type=int, default=4000, help="class-balanced training subset")
    ap.add_argument("--retrain-seeds", type=int, default=3)
    ap.add_argument("--joint-seed", type=int, default=0,
                    help="seed of the joint run (0 for every point in results.json / results-lam<L>.json); another "
                         "seed's points go to results-lam<L>-s<SEED>.json; the figure shows the points of the run's own "
                         "joint seed (simplify_ablation_seeds.py reads the seeds together)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--curve", default=str(ROOT / "results" / "simplify-v2" / "results.json"),
                    help="simplify_tradeoff.py results with the full method's curve and the MSE baseline")
    ap.add_argument("--out", default=str(ROOT / "results" / "simplify-ablation"))
    ap.add_argument("--figure", default=str(ROOT.parent / "docs" / "img" / "simplify_ablation.png"))
    ap.add_argument("--flows-dir", default=str(ROOT / "results" / "simplify-ablation" / "flows"),
                    help="where the density-model variants' flow files are (FLOWS in this script makes them)")
    ap.add_argument("--plot-variants", default=None,
                    help="comma-separated variants drawn in --figure (default: every variant in the results)")
    ap.add_argument("--grid", default=None,
                    help="also write a PNG: the originals, then every simplified set of --plot-variants on disk")
    args = ap.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    out = Path(args.out)
    train = load_dataset(f"{args.dataset}:train")
    if args.train_size and len(train) > args.train_size:
        train = real_subset(train, args.train_size // train.num_classes, seed=0).with_meta(
            name=f"{args.dataset}:train[{args.train_size}]")
    test = load_dataset(f"{args.dataset}:test")
    curve, mse, originals = _curves(Path(args.curve), args.dataset)
    curve_retrain_epochs = originals["retrain_epochs"]
    changes = {name: _variant_change(name, Path(args.flows_dir)) for name in names}  # missing flows fail first
    gray32 = BpdTerm(None, shape=train.shape)  # the measure every figure is read in, whatever the loss's model
    gray32_original = None
    doc = {"benchmark": "simplify_ablation", "dataset": args.dataset, "n_train": len(train),
           "lambda_sim": args.lambda_sim, "retrain_seeds": args.retrain_seeds, "curve_from": shown(Path(args.curve)),
           "curve": curve, "mse_curve": mse, "originals_in_curve_run": originals, "variants": {}}
    # the default lambda's results are results.json; another lambda's go beside them (results-lam4.json),
    # and another joint seed's too (results-lam4-s1.json)
    if args.joint_seed:
        doc["joint_seed"] = args.joint_seed  # absent for seed 0, as in every file written before the option
        results = out / f"results-lam{args.lambda_sim:g}-s{args.joint_seed}.json"
    else:
        results = out / ("results.json" if args.lambda_sim == 2.0 else f"results-lam{args.lambda_sim:g}.json")
    if results.is_file():  # keep the variants of earlier runs with the same data and evaluation
        before = json.loads(results.read_text())
        if all(before.get(k) == doc.get(k) for k in ("dataset", "n_train", "lambda_sim", "retrain_seeds", "joint_seed")):
            doc["variants"] = {k: v for k, v in before.get("variants", {}).items() if k not in names}
            doc["peak_rss_mb"] = before.get("peak_rss_mb", 0.0)
    for name in names:
        cfg = make_simplify_config(preset="quick", retrain_seeds=args.retrain_seeds, **changes[name])
        res = simplify(train, test, lambdas=[args.lambda_sim], seeds=[args.joint_seed], config=cfg,
                       out=out / args.dataset / name,
                       resume=True, progress=False)
        cell = res.summary()[0]
        r = {"change": changes[name], "bpd": cell["bpd"]["mean"], "bpd_original": cell["bpd_original"]["mean"],
             "retrain": cell["retrain"], "retrain_original": cell["retrain_original"],
             "joint": cell["joint"]["mean"], "finetune": cell["finetune"]["mean"],
             "per_step_s": res.cells[0]["seconds"]["per_step"],
             # the cell's own joint training and evaluation (also when a finished cell is read back)
             "seconds": round(res.cells[0]["seconds"]["joint"] + res.cells[0]["seconds"]["evaluation"], 1)}
        if "density" in changes[name]:  # the loss's own model: read the figures in gray32 like every other point
            if gray32_original is None:
                gray32_original = float(gray32.score(train.images).mean())
            made = load_condensed(out / args.dataset / name / res.cells[0]["name"] / "simplified.safetensors")
            r["bpd_loss_model"], r["bpd_original_loss_model"] = r["bpd"], r["bpd_original"]
            r["bpd"], r["bpd_original"] = float(gray32.score(made.images).mean()), gray32_original
        r["bpd_change_pct"] = round(100 * (r["bpd"] / r["bpd_original"] - 1), 2)
        r["points_vs_originals"] = round(100 * (r["retrain"]["mean"] - r["retrain_original"]["mean"]), 2)
        on_curve, on_mse = interp(r["bpd"], curve), interp(r["bpd"], mse)
        if cfg.retrain_epochs != curve_retrain_epochs:  # another evaluation than the curve's: not comparable
            on_curve = on_mse = None
        r["vs_curve_points"] = None if on_curve is None else round(100 * (r["retrain"]["mean"] - on_curve), 2)
        r["vs_mse_points"] = None if on_mse is None else round(100 * (r["retrain"]["mean"] - on_mse), 2)
        r["probe_simplified"] = _probe_simplified(out / args.dataset / name / res.cells[0]["name"], train, test, cfg)
        doc["variants"][name] = r
        print(name, json.dumps({k: r[k] for k in ("bpd", "bpd_change_pct", "retrain", "points_vs_originals",
                                                  "vs_curve_points", "vs_mse_points", "probe_simplified",
                                                  "seconds")}), flush=True)
        doc["seconds"] = round(sum(v["seconds"] for v in doc["variants"].values()), 1)  # the cells' own run times
        atomic_write_json(results, doc)
    doc["peak_rss_mb"] = max(doc.get("peak_rss_mb", 0.0),  # the largest of this and the kept runs
                             round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    atomic_write_json(results, doc)
    main_doc = out / "results.json"
    if main_doc.is_file() and results != main_doc:  # the figure shows every lambda run so far (λ 2, seed 0 filled)
        doc_for_plot = json.loads(main_doc.read_text())
    else:
        doc_for_plot = doc
    others = [json.loads(f.read_text()) for f in sorted(out.glob("results-lam*.json"))]
    # this run's joint seed only: other seeds are read against their own curves (simplify_ablation_seeds.py)
    others = [o for o in others if o.get("joint_seed", 0) == args.joint_seed]
    if args.plot_variants:  # a figure of some variants only (the density models' has its own)
        keep = set(args.plot_variants.split(","))
        doc_for_plot = {**doc_for_plot, "variants": {k: v for k, v in doc_for_plot["variants"].items() if k in keep}}
        others = [{**o, "variants": {k: v for k, v in o["variants"].items() if k in keep}} for o in others]
    _plot(doc_for_plot, curve, mse, originals, Path(args.figure), others)
    if args.grid:
        rows = _grid(train, out / args.dataset, (args.plot_variants or ",".join(VARIANTS)).split(","), Path(args.grid))
        print(f"{args.grid}: originals, then " + "; ".join(rows), flush=True)
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
