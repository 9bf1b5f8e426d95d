"""`simplebits simplify`, `simplebits simplify-baselines`, `simplebits tradeoff`: SimpleBits during
training (paper §3), its S8 baselines and the trade-off plots."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .. import settings
from ..data import real_subset
from ..data.inputs import default_test_spec
from ..errors import BadInputError
from ..settings import setting
from ..simplify import PRESETS, make_simplify_config, simplify, simplify_baselines, tradeoff
from ..simplify.config import SimplifyConfig
from .common import (add_data_root, add_deprecated, add_device, add_force, add_json, add_max_train, add_options,
                     add_out, add_seeds, check_out, emit, int_list, load_input, seed_list, table)
from .evaluate import resolve_device


def float_list(values: list[str], option: str) -> list[float]:
    """``["0,0.4", "1"]`` (repeated flags and/or commas) -> ``[0.0, 0.4, 1.0]``."""
    out = []
    for v in values:
        for part in str(v).split(","):
            if not part.strip():
                continue
            try:
                out.append(float(part))
            except ValueError:
                raise BadInputError(f"{option} takes numbers (e.g. {option} 0,0.4,1.0), got {part!r}") from None
    if not out:
        raise BadInputError(f"{option} is empty")
    return out


@dataclass(frozen=True)
class SimplifyOptions:
    """The preset, the networks' sizes and the test set of a simplify run (SimplifyConfig has the rest)."""

    preset: str = setting("quick", "quick: ConvNet-3 w32 + UNet ngf16, minutes on a CPU; paper: NF-WRN-16-2 + UNet "
                                   "ngf64, batch 32, AdamW 5e-4 (GPU)", choices=PRESETS)
    width: int | None = setting(None, "classifier width option (convnet)", default_text="preset's")
    ngf: int | None = setting(None, "simplifier UNet base width", default_text="preset's")
    downsamples: int | None = setting(None, "simplifier UNet stride-2 levels", default_text="preset's")
    grad_floor: float | None = setting(None, "floor under the simplifier's output-sigmoid derivative in the backward "
                                             "pass, so pixels driven to black can come back (0: none, the paper; "
                                             "docs/simplify.md)", metavar="F", default_text="preset's, 0")
    test: str | None = setting(None, "test set: a data set spec, a file or a folder (default: the data set's test "
                                     "split; needed for a file or folder of your own)", metavar="DATASET")


@dataclass(frozen=True)
class BaselineOptions:
    """The S8 baselines' sweeps."""

    sigmas: str = setting("0.5,1,1.5,2,3", "blur sigmas in pixels ('none' to skip)", metavar="X[,...]")
    qualities: str = setting("5,10,25,50,90", "JPEG qualities 1-95 ('none' to skip)", metavar="Q[,...]")
    mse_lambdas: str = setting("0.001,0.003,0.01,0.03", "bpd weights of the MSE+bpd simplifier ('none' to skip)",
                               metavar="L[,...]")


def _add_config_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training settings (default: the preset's; see docs/simplify.md)")
    add_options(g, SimplifyOptions, only=["preset", "width", "ngf", "downsamples", "grad_floor"])
    settings.add_arguments(g, SimplifyConfig, default_text="preset's")
    add_deprecated(g, "--classifier", "--net", dest="classifier")
    add_seeds(p, count=1, what="joint runs per lambda", numbers=True)
    add_max_train(p, "train on a seeded class-balanced subset of N images (CPU-sized runs on large sets)")
    add_deprecated(p, "--train-size", "--max-train", dest="max_train", type=int)
    add_options(p, SimplifyOptions, only=["test"])
    add_out(p, "DIR")
    add_force(p, help="replace results in DIR made with other settings")
    add_device(p)
    add_data_root(p)
    add_json(p)


def _config(args: argparse.Namespace):
    clf_opts = {"width": args.width} if args.width is not None else None
    sim_opts = None
    floor = args.grad_floor
    if floor is not None and not 0 <= floor <= 0.25:
        raise BadInputError(f"--grad-floor must be in [0, 0.25] (the sigmoid's derivative is at most 0.25); got {floor}")
    if args.ngf is not None or args.downsamples is not None or floor:
        base = make_simplify_config(preset=args.preset).simplifier_options
        sim_opts = dict(base)
        if args.ngf is not None:
            sim_opts["ngf"] = args.ngf
        if args.downsamples is not None:
            sim_opts["downsamples"] = args.downsamples
        if floor:  # 0 is the simplifier's default: left out, so earlier digests hold
            sim_opts["grad_floor"] = floor
    if args.classifier is not None and clf_opts is None:
        clf_opts = {}
    given = {f.name for f in settings.user_fields(SimplifyConfig)}
    return make_simplify_config(
        preset=args.preset, classifier_options=clf_opts, simplifier_options=sim_opts,
        **{k: v for k, v in settings.overrides(args, SimplifyConfig).items() if k in given},
    )


def _data(args: argparse.Namespace):
    train = load_input(args.dataset, args, split="train")
    test_spec = args.test or default_test_spec(args.dataset)
    if test_spec is None:
        raise BadInputError(f"cannot tell the test set for {args.dataset!r}; pass --test DATASET")
    test = load_input(test_spec, args, split="test")
    if args.max_train is not None:
        if args.max_train < train.num_classes:
            raise BadInputError(f"--max-train must be at least the number of classes ({train.num_classes})")
        train = real_subset(train, args.max_train // train.num_classes, seed=0).with_meta(
            name=f"{train.name}[{args.max_train // train.num_classes * train.num_classes}]")
    return train, test


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simplify", help="train SimpleBits simplifiers (one per lambda) and evaluate the simplified data",
        description="Train a simplifier network jointly with a classifier through one unrolled classifier step "
                    "(paper §3): the simplified images keep what the classifier needs while their bits per "
                    "dimension under a Glow density model fall. Each --lambda-sim value (and seed) is one run in "
                    "DIR/lam<L>-s<seed>/: the simplifier, the joint classifier, the simplified training set "
                    "(condensed-set format, bpd in its metadata), a grid of originals above simplified images, "
                    "and result.json with three test accuracies on the original test images: (a) the jointly "
                    "trained classifier, (b) a fresh classifier retrained on the simplified set, (c) the joint "
                    "classifier finetuned on it. DIR/simplify.json collects all runs (mean ± std over seeds). "
                    "Several lambdas make the trade-off sweep; draw it with `simplebits tradeoff DIR`. "
                    "Checkpoints after every epoch; --resume continues interrupted runs, finished runs are skipped.",
    )
    p.add_argument("dataset", metavar="DATASET",
                   help="data set spec (mnist-5k, fashion-mnist, side-by-side, mnist-noise, stripes, npz:FILE ...)")
    p.add_argument("--lambda-sim", action="append", default=None, metavar="L",
                   help="bpd weight; repeat or give commas for a sweep (paper grid 0,0.1,0.2,0.4,...,2.0; default 1)")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs from their checkpoints")
    _add_config_options(p)
    p.set_defaults(func=run_simplify)

    b = sub.add_parser(
        "simplify-baselines", help="blur, JPEG and MSE+bpd simplification baselines (paper S8)",
        description="Simplify the training set with Gaussian blur (a sigma sweep), JPEG (a quality sweep) and a "
                    "simplifier trained on MSE-to-input + lambda * bpd; score each with the same density model "
                    "and evaluate it as SimpleBits is: a fresh classifier retrained on the simplified set and "
                    "tested on the original test images. The originals are retrained the same way, once, as the "
                    "row every point is read against. Use the same training settings as the `simplify` run "
                    "you compare with. Writes DIR/baselines.json, DIR/baselines.png and DIR/originals.json; "
                    "finished points are skipped when run again.",
    )
    b.add_argument("dataset", metavar="DATASET")
    add_options(b, BaselineOptions)
    _add_config_options(b)
    b.set_defaults(func=run_baselines)

    t = sub.add_parser(
        "tradeoff", help="accuracy-vs-bpd plot, image grids and learning curves from simplify/baseline runs",
        description="Read the DIRs written by `simplebits simplify` and `simplebits simplify-baselines` and draw "
                    "the accuracy-vs-bpd trade-off (paper Fig. 5: one line per evaluation and per baseline, one "
                    "panel per data set, the originals as a star: their bpd and their accuracy under the same "
                    "retraining, from either command's folder; without that accuracy, a dotted line at their "
                    "bpd), originals above the "
                    "simplified images for every lambda (Fig. 3/4), "
                    "the retraining learning curves (S7) and a table with the PNG-compressed size beside the flow "
                    "bpd (S6). Writes tradeoff.png, grids.png, curves.png, tradeoff.md, tradeoff.json to --out.",
    )
    t.add_argument("dirs", nargs="+", metavar="DIR")
    add_out(t, "DIR")
    add_force(t, "--out DIR holding other files")
    add_json(t)
    t.set_defaults(func=run_tradeoff)


def _pct(ms) -> str:
    if not ms:
        return "-"
    return f"{100 * ms['mean']:.2f} ± {100 * ms['std']:.2f}" if ms["n"] > 1 else f"{100 * ms['mean']:.2f}"


def _num(ms) -> str:
    """A mean (of a {"mean", ...} summary or a plain number) to 3 decimals; "-" when unknown."""
    if ms is None:
        return "-"
    return f"{(ms['mean'] if isinstance(ms, dict) else ms):.3f}"


def _selected_line(cell: dict) -> str:
    """One line per cell run with --select-within: which epoch it kept, and the held-out check."""
    sel = cell["select"]
    if sel.get("epoch") is None:
        return f"\n{cell['name']}: no epoch checked"
    line = (f"\n{cell['name']}: kept epoch {sel['epoch']} of {len(sel['checks']) - 1} checked (held-out bpd "
            f"{sel['bpd']:.3f}, transfer {100 * sel['accuracy']:.1f}% vs originals {100 * sel['reference']:.1f}%"
            + (f", mean of {sel['classifiers']} classifiers" if sel.get("classifiers", 1) > 1 else "") + ")")
    back = [r for r in cell.get("log", []) if "backtrack_to" in r]
    if back:  # --backtrack: how often the run went back to the best state, and its last learning rate
        line += (f"; went back {len(back)} time{'s' if len(back) > 1 else ''} after a failed check "
                 f"(simplifier learning rate now {back[-1]['lr_sim']:.3g})")
    return line + (f"; {sel['note']}" if sel.get("note") else "")


def run_simplify(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    lambdas = float_list(args.lambda_sim or ["1"], "--lambda-sim")
    seeds = seed_list(args)
    cfg = _config(args)
    check_out(args.out, kind="simplify.json", folder=True, force=True)  # DIR's own rules are simplify's
    train, test = _data(args)
    res = simplify(train, test, lambdas=lambdas, seeds=seeds, config=cfg, out=args.out, resume=args.resume,
                   force=args.force, device=device, progress=None if not args.json else False)
    native = bool(res.units and res.units.get("transform"))  # padded or repeated: both units, side by side
    rows = [[f"{r['lambda_sim']:g}", len(r["seeds"]), f"{r['bpd_original']['mean']:.3f}", f"{r['bpd']['mean']:.3f}"]
            + ([_num(r.get("bpd_original_native")), _num(r.get("bpd_native"))] if native else [])
            + [f"{r['png_bpd_original']['mean']:.3f}" if r.get("png_bpd_original") else "-",
               f"{r['png_bpd']['mean']:.3f}", _pct(r["joint"]), _pct(r["retrain_original"]), _pct(r["retrain"]),
               _pct(r["finetune"])]
            for r in res.summary()]
    text = (f"SimpleBits on {train.name} ({len(train)} images), tested on {test.name}\n"
            + table(["lambda", "seeds", "bpd orig", "bpd simpl"] + (["native orig", "native simpl"] if native else [])
                    + ["PNG orig", "PNG simpl", "joint %", "retrained orig %", "retrained %", "finetuned %"], rows)
            + "\nbpd: bits per model dimension (dequantisation bound); PNG: bpd of the PNG files of the images as given; "
              "retrained orig: the same retraining on the original images"
            + (f"\nnote: {res.units['note']}" if native else "")
            + (f"\nnote: {res.blind_spot_note}" if res.blind_spot_note else "")
            + "".join(_selected_line(c) for c in res.cells if "select" in c)
            + f"\n{res.seconds:.0f} s, peak RSS {res.peak_rss_mb:.0f} MB; wrote {args.out}/ "
              f"(draw it: simplebits tradeoff {args.out} --out {args.out}/plots)")
    emit(args, res.to_dict(), text)
    return 0


def run_baselines(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    sigmas = float_list([args.sigmas], "--sigmas") if args.sigmas.strip().lower() != "none" else []
    qualities = int_list(args.qualities, "--qualities", minimum=1, example="5,10,25") \
        if args.qualities.strip().lower() != "none" else []
    mse = float_list([args.mse_lambdas], "--mse-lambdas") if args.mse_lambdas.strip().lower() != "none" else []
    seeds = seed_list(args)
    cfg = _config(args)
    train, test = _data(args)
    res = simplify_baselines(train, test, sigmas=sigmas, qualities=qualities, mse_lambdas=mse, seeds=seeds,
                             config=cfg, out=args.out, force=args.force, device=device,
                             progress=None if not args.json else False)
    native = bool(res["units"].get("transform"))  # padded or repeated: both units, side by side
    rows = [["originals", "-", f"{res['bpd_original']:.3f}"] + ([_num(res["bpd_original_native"])] if native else [])
            + [f"{res['png_bpd_original']:.3f}", _pct(res["retrain_original"])]]  # every point is read against them
    rows += [[p["kind"], f"{p['param']:g}", f"{p['bpd']:.3f}"] + ([_num(p.get("bpd_native"))] if native else [])
             + [f"{p['png_bpd']:.3f}", _pct(p["retrain"])] for p in res["points"]]
    text = (f"baselines on {train.name} ({len(train)} images), tested on {test.name}\n"
            + table(["kind", "setting", "bpd"] + (["native bpd"] if native else []) + ["PNG bpd", "retrained %"], rows)
            + "\nbpd: bits per model dimension (dequantisation bound); PNG bpd: of the images as given; "
              "originals: the same retraining on the original images"
            + (f"\nnote: {res['units']['note']}" if native else "")
            + (f"\nnote: {res['blind_spot_note']}" if res["blind_spot_note"] else "")
            + f"\n{res['seconds']:.0f} s; wrote {args.out}/baselines.json")
    emit(args, res, text)
    return 0


def run_tradeoff(args: argparse.Namespace) -> int:
    check_out(args.out, kind="tradeoff.json", folder=True, force=args.force)
    doc = tradeoff(args.dirs, out=args.out)
    text = doc["table"] + "\nwrote " + ", ".join(doc["files"].values())
    emit(args, {k: v for k, v in doc.items() if k != "table"}, text)
    return 0
