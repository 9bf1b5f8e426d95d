"""Distractors vanish (paper §3.1, Fig. 3): SimpleBits on side-by-side, mnist-noise and stripes
under the `quick` preset, measured by probes.

    python benchmarks/simplify_distractors.py [--sets side-by-side,mnist-noise,stripes]
        [--lambdas 2,8] [--seeds 0,1] [--n-train 4000] [--n-test 1000] [--epochs N] [--reinit-every N]
        [--absolute-terms] [--grad-floor F] [--select-within F] [--select-seeds K] [--backtrack FACTOR] [--escape-loss]
        [--gate-lr-mult M] [--betas-sim B1,B2]

* side-by-side (label = MNIST digit; the Fashion-MNIST half is the distractor): fresh probe
  classifiers are trained on the simplified training images and tested on the simplified test
  images, once with the Fashion-MNIST label and once with the MNIST label; the same probes on
  the original images give the reference. Targets: Fashion probe <= 30% on simplified vs >= 75%
  on originals; MNIST probe on simplified >= 95% of the MNIST probe on originals.
* mnist-noise: std of the background pixels (where the clean digit is 0) of the test images
  before and after simplification. Target: falls by >= 80%.
* stripes (Fashion-MNIST + stripes, label = direction): bpd of the simplified training set vs
  the original, and accuracy (b) retrained and (a) joint on the original test images.
  Target: bpd falls by >= 50% with accuracy >= 95%.
* every set: ``probe_task``, a fresh classifier trained on the simplified training images and
  tested on the simplified test images with the task's label (does the task survive?).

Every figure is mean ± std over the joint-training seeds. Results:
benchmarks/results/simplify_distractors.json and benchmarks/results/simplify/distractors/.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path


from simplebits.data import ImageSet, clean_mnist, mnist_noise, side_by_side_parts, stripes
from simplebits.io import atomic_write_json
from simplebits.simplify import apply_simplifier, load_simplifier, make_simplify_config, retrain, simplify

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "simplify" / "distractors"
RESULTS = ROOT / "results" / "simplify_distractors.json"


def ms(vals):
    vals = [float(v) for v in vals]
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
            "values": vals}


def probe(train_x, train_y, test_x, test_y, classes, cfg, seed):
    tr = ImageSet(train_x, train_y, classes, {"name": "probe-train", "flip_ok": False})
    te = ImageSet(test_x, test_y, classes, {"name": "probe-test"})
    return retrain(tr, te, cfg=cfg, seed=seed)["accuracy"]



def add_epoch_choice_options(ap: argparse.ArgumentParser) -> None:
    """--select-within, --select-seeds, --backtrack, --escape-loss (shared with simplify_tradeoff.py)."""
    ap.add_argument("--select-within", type=float, default=None,
                    help="keep the joint epoch with the lowest held-out bpd whose held-out transfer is within F of "
                         "the originals' (default: off, the last epoch, as the presets)")
    ap.add_argument("--select-seeds", type=int, default=None, metavar="K",
                    help="with --select-within: fresh classifiers per check, their mean transfer decides "
                         "(default: 1, as the presets)")
    ap.add_argument("--backtrack", type=float, default=None, metavar="FACTOR",
                    help="with --select-within: after a failed check, return to the best state that passed and "
                         "multiply the simplifier's learning rate by FACTOR (default: off, as the presets)")
    ap.add_argument("--escape-loss", action="store_true",
                    help="the bpd loss takes the raw 8-bit escape where the flow alone says more than 8 bpd "
                         "(default: off, the flow alone, as the presets)")


def epoch_choice_settings(args: argparse.Namespace) -> dict:
    """The SimplifyConfig settings of :func:`add_epoch_choice_options` (None: the preset's)."""
    return {"select_within": args.select_within, "select_seeds": args.select_seeds, "backtrack": args.backtrack,
            "escape_loss": args.escape_loss or None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="side-by-side,mnist-noise,stripes")
    ap.add_argument("--lambdas", default="2,8")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=None, help="joint epochs (default: the quick preset's)")
    ap.add_argument("--reinit-every", type=int, default=None,
                    help="re-initialise the joint classifier every N joint epochs (default: the quick preset's, never)")
    ap.add_argument("--absolute-terms", action="store_true",
                    help="the paper's classification terms instead of the quick preset's relative ones")
    ap.add_argument("--grad-floor", type=float, default=0.0,
                    help="floor under the simplifier's output-sigmoid derivative (default 0: none, the presets')")
    ap.add_argument("--gate-lr-mult", type=float, default=None, metavar="M",
                    help="learning-rate multiplier of the simplifier's residual scale w (default: the quick preset's 20)")
    ap.add_argument("--betas-sim", default=None, metavar="B1,B2",
                    help="the simplifier's Adam betas (default: the reference's 0.5,0.99)")
    add_epoch_choice_options(ap)
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results/...)")
    args = ap.parse_args()
    global OUT, RESULTS
    if args.out:
        OUT = Path(args.out)
        RESULTS = OUT / "results.json"
    lambdas = [float(v) for v in args.lambdas.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    sim_opts = None
    if args.grad_floor:
        sim_opts = {**make_simplify_config(preset="quick").simplifier_options, "grad_floor": args.grad_floor}
    cfg = make_simplify_config(preset="quick", epochs=args.epochs, reinit_every=args.reinit_every,
                               relative=False if args.absolute_terms else None, simplifier_options=sim_opts,
                               gate_lr_mult=args.gate_lr_mult,
                               betas_sim=tuple(float(b) for b in args.betas_sim.split(",")) if args.betas_sim else None,
                               **epoch_choice_settings(args))
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    doc.update({"config": cfg.to_dict(), "lambdas": lambdas, "seeds": seeds})
    t0 = time.perf_counter()
    for name in args.sets.split(","):
        t1 = time.perf_counter()
        if name == "side-by-side":
            train, fy_tr, _ = side_by_side_parts(split="train", n=args.n_train)
            test, fy_te, _ = side_by_side_parts(split="test", n=args.n_test)
        elif name == "mnist-noise":
            train, test = mnist_noise(split="train", n=args.n_train), mnist_noise(split="test", n=args.n_test)
        elif name == "stripes":
            train, test = stripes(split="train", n=args.n_train), stripes(split="test", n=args.n_test)
        else:
            raise SystemExit(f"unknown set {name}")
        res = simplify(train, test, lambdas=lambdas, seeds=seeds, config=cfg, out=OUT / name, resume=True,
                       progress=False)
        entry: dict = {"summary": res.summary(), "by_lambda": {}}
        if name == "side-by-side":
            fclasses = tuple(str(i) for i in range(10))
            ref = {"fashion": [], "mnist": []}
            for s in seeds:
                ref["fashion"].append(probe(train.images, fy_tr, test.images, fy_te, fclasses, cfg, s))
                ref["mnist"].append(probe(train.images, train.labels, test.images, test.labels, train.classes, cfg, s))
            entry["probe_original"] = {k: ms(v) for k, v in ref.items()}
        for lam in lambdas:
            vals: dict[str, list[float]] = {}
            for s in seeds:
                cell = next(c for c in res.cells if c["lambda_sim"] == lam and c["seed"] == s)
                sim = load_simplifier(OUT / name / cell["name"] / "simplifier.safetensors")
                s_tr, s_te = apply_simplifier(sim, train.images), apply_simplifier(sim, test.images)
                vals.setdefault("bpd_original", []).append(cell["bpd_original"])
                vals.setdefault("bpd", []).append(cell["bpd"])
                vals.setdefault("retrain", []).append(cell["accuracy"]["retrain"])
                vals.setdefault("joint", []).append(cell["accuracy"]["joint"])
                # the task itself, learned from simplified images and tested on simplified images
                vals.setdefault("probe_task", []).append(
                    probe(s_tr, train.labels, s_te, test.labels, train.classes, cfg, s))
                if name == "side-by-side":
                    vals.setdefault("probe_fashion", []).append(
                        probe(s_tr, fy_tr, s_te, fy_te, fclasses, cfg, s))
                    vals.setdefault("probe_mnist", []).append(vals["probe_task"][-1])
                elif name == "mnist-noise":
                    clean = clean_mnist(split="test", n=args.n_test).images
                    bg = clean == 0
                    before = test.images[bg].std()
                    after = s_te[bg].std()
                    vals.setdefault("background_std_before", []).append(float(before))
                    vals.setdefault("background_std_after", []).append(float(after))
                    vals.setdefault("background_std_fall", []).append(float(1 - after / before))
                    vals.setdefault("digit_mean_after", []).append(float(s_te[~bg].mean()))
                elif name == "stripes":
                    vals.setdefault("bpd_fall", []).append(1 - cell["bpd"] / cell["bpd_original"])
                if "select" in cell:  # which epoch was kept, and its held-out check
                    vals.setdefault("selected_epoch", []).append(cell["select"]["epoch"])
                    vals.setdefault("select_heldout_accuracy", []).append(cell["select"]["accuracy"])
                    vals.setdefault("select_heldout_bpd", []).append(cell["select"]["bpd"])
            e = {k: ms(v) for k, v in vals.items()}
            if name == "side-by-side":
                e["mnist_probe_ratio"] = ms([a / b for a, b in zip(vals["probe_mnist"], ref["mnist"])])
            entry["by_lambda"][f"{lam:g}"] = e
            print(name, lam, json.dumps({k: round(v["mean"], 4) for k, v in e.items()}), flush=True)
        entry["seconds"] = round(time.perf_counter() - t1, 1)
        doc.setdefault("sets", {})[name] = entry
        atomic_write_json(RESULTS, doc)
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    doc["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    atomic_write_json(RESULTS, doc)
    print(json.dumps({"seconds": doc["seconds"], "peak_rss_mb": doc["peak_rss_mb"]}))


if __name__ == "__main__":
    main()
