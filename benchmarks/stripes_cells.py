"""Finished stripes cells, looked into: what the simplified images keep (a grid, originals above
the simplified images of each cell, five per class: horizontal, then vertical) and whether the
simplifier's output sigmoid is saturated (the black trap, docs/simplify.md "Stripes at small
lambda").

    python benchmarks/stripes_cells.py CELL [CELL ...] [--grid docs/img/simplify_stripes_small.png]
        [--out benchmarks/results/simplify/stripes-small/saturation.json] [--n-train 4000]
        [--retrain-seeds K]
    python benchmarks/stripes_cells.py --ideal 4,16,64 --out benchmarks/results/simplify/stripes-small/ideal.json
    python benchmarks/stripes_cells.py --ideal 4 --blank vertical [--blank-level 0] --out FILE

CELL is a cell folder written by ``benchmarks/simplify_distractors.py --sets stripes`` (it holds
``simplified.safetensors`` and ``simplifier.safetensors``, which are not committed: re-run the
benchmark first). Per cell, on the first 512 training images: the residual scale ``w``, the median
pre-sigmoid logit ``z = logit(x) + w * unet(x)``, the fraction of output pixels whose sigmoid
derivative ``s (1 - s)`` is below 1e-6 (no gradient reaches the simplifier through them) and the
fraction below half a grey level (black once stored in 8 bits); and, on the whole simplified set,
whether each image still shows its stripe direction (``direction``, below).

``--retrain-seeds K``: per cell, K fresh classifiers (seeds 0..K-1) trained on the whole simplified
set with the cell's own retraining settings (its ``result.json`` config), each tested on the 1000
original test images; ``retrain`` holds each accuracy and their mean and std. The run's own figure
is one such classifier (the cell's seed); this says how much of it is the classifier's draw.

``--check-split K``: per cell, the ``--select-within`` check's own classifiers (the first K of its
seeds, ``retrain_seeds(cell seed, K, "select")``), each trained as the check trains it on the
simplified *fit* part of the check's seeded split (:func:`simplebits.simplify.select.holdout_split`),
then tested both on the held-out training originals (the check's figure) and on the 1000 original
test images. Does the check's held-out figure read the test images' figure, or
is the gap between a passed check and the run's own retraining the classifiers' draw?

Direction kept (issue #20: "the stripe direction visibly kept"), a fixed rule, no training: an
image shows horizontal stripes when its mean absolute difference between vertically adjacent
pixels exceeds that between horizontally adjacent ones, vertical stripes otherwise; an image whose
larger mean difference is under a quarter of a grey level shows nothing (blank). ``kept`` is the
fraction of images that show their own label's direction (per class in ``by_class``; the
originals' figure in ``direction_originals``: 1.0 for this set). A set that codes a class by
brightness (a white or black image) fails the rule for that class even when a classifier retrained
on it still reads the originals.

``--ideal A,B,..``: instead, the images a perfect simplifier of this task would keep, each
training image's own stripes (same direction and phase) at A grey levels on a black ground: their
bpd under ``gray32`` (the first 500) and the accuracy on the original test images (1000) of a fresh
classifier trained on all of them with the quick preset's retraining (seed 0). Does a set that
meets the target exist? ``--blank CLASS``: the same, but every image of that class replaced by a
constant image at ``--blank-level`` (0-255; 0, black, by default): the class coded by brightness,
the other's stripes kept. What the objective (bpd, and transfer to the originals) says about such a
set against the one that keeps both directions.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from simplebits.data import ImageSet, stripes
from simplebits.data.composites import _DIRECTION, _PHASE, _rng, _stripe_pattern
from simplebits.data.condensed import load_condensed
from simplebits.density import score_bpd
from simplebits.density.store import fit_images, load_flow
from simplebits.io import atomic_write_json
from simplebits.models.unet import CLAMP_EPS
from simplebits.simplify import load_simplifier, make_simplify_config, retrain
from simplebits.simplify.config import config_from_dict
from simplebits.simplify.evaluate import fit, fresh_classifier, retrain_seeds
from simplebits.simplify.select import holdout_split
from simplebits.train.loop import accuracy
from simplebits.simplify.figures import comparison_grid, pick_per_class, save_png


@torch.no_grad()
def saturation(cell: Path, x: torch.Tensor) -> dict:
    sim = load_simplifier(cell / "simplifier.safetensors").eval()
    z = torch.logit(x.clamp(CLAMP_EPS, 1 - CLAMP_EPS)) + sim.w * sim.unet(x)
    s = torch.sigmoid(z)
    return {"w": round(float(sim.w), 4), "median_logit": round(float(z.median()), 2),
            "no_gradient": round(float((s * (1 - s) < 1e-6).float().mean()), 4),
            "black": round(float((s < 0.5 / 255).float().mean()), 4)}


def shows_direction(images: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...]) -> dict:
    """The fraction of ``images`` that show their own label's stripe direction (module docstring)."""
    if tuple(classes) != ("horizontal", "vertical"):
        raise SystemExit(f"expected the stripes classes (horizontal, vertical), got {classes}")
    x = images.float()
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean((1, 2, 3))  # large for horizontal stripes
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean((1, 2, 3))
    blank = torch.maximum(dx, dy) < 0.25 / 255
    shows = ((dx > dy).long() == labels) & ~blank
    return {"kept": round(float(shows.float().mean()), 4),
            "by_class": {c: round(float(shows[labels == k].float().mean()), 4) for k, c in enumerate(classes)},
            "blank": round(float(blank.float().mean()), 4), "images": len(labels)}


def check_split(sim: ImageSet, originals: torch.Tensor, order: torch.Tensor, test: ImageSet, cfg, k: int) -> dict:
    """``--check-split``: the check's K classifiers on its fit part, each on held-out originals and test."""
    back = torch.empty_like(order)
    back[order] = torch.arange(order.numel())  # the stored set is class by class; the split is on the run's order
    run_sim = ImageSet(sim.images[back], sim.labels[back], sim.classes, dict(sim.meta))
    fit_sim, held_sim = holdout_split(run_sim, cfg.seed)
    _, held_orig = holdout_split(ImageSet(originals[back], sim.labels[back], sim.classes, dict(sim.meta)), cfg.seed)
    seeds, held, tested = retrain_seeds(cfg.seed, k, "select"), [], []
    for s in seeds:  # evaluate.retrain's steps, keeping the model to test it twice
        model = fresh_classifier(cfg, fit_sim, seed=s, device="cpu")
        held.append(float(fit(model, fit_sim, held_orig, cfg=cfg, epochs=cfg.retrain_epochs, seed=s)["accuracy"]))
        tested.append(float(accuracy(model, test)))
    return {"seeds": seeds, "held_out": held, "test": tested,
            "held_out_mean": statistics.fmean(held), "test_mean": statistics.fmean(tested),
            "images": {"fit": len(fit_sim), "held_out": len(held_sim), "test": len(test)}}


def ideal(levels: list[int], n_train: int, blank: str | None = None, blank_level: int = 0) -> dict:
    """bpd and retrained accuracy of each training image's own stripes at ``levels`` grey levels
    (``blank``: that class's images a constant ``blank_level`` instead; module docstring)."""
    train, test = stripes(split="train", n=n_train), stripes(split="test", n=1000)
    m, period = len(train), train.meta["composite"]["period"]
    rd = _rng(0, "train", _DIRECTION)  # the draws of stripes(split="train", seed=0), in its order
    direction = rd.permutation(np.concatenate([np.arange(m - m % 2) % 2, rd.integers(0, 2, size=m % 2)]))
    direction = torch.from_numpy(direction.astype(np.int64))
    if not torch.equal(direction, train.labels):
        raise SystemExit("the stripes generator changed: the directions drawn here are not the set's labels")
    phase = torch.from_numpy(_rng(0, "train", _PHASE).integers(0, period, size=m))
    s = _stripe_pattern(direction, phase, period, *train.shape[1:]).expand(m, *train.shape).clone()
    flow, cfg, out = load_flow("gray32"), make_simplify_config(preset="quick"), {}
    for a in levels:
        x = torch.round(s * a) / 255.0
        if blank is not None:
            x[train.labels == train.classes.index(blank)] = blank_level / 255.0
        ds = ImageSet(x, train.labels, train.classes, {"name": f"ideal-stripes-{a}", "flip_ok": True})
        out[str(a)] = {"bpd": round(float(score_bpd(flow, fit_images(x[:500], flow)).mean()), 4),
                       "bpd_original": round(float(score_bpd(flow, fit_images(train.images[:500], flow)).mean()), 4),
                       "retrain": retrain(ds, test, cfg=cfg, seed=0)["accuracy"],
                       "direction": shows_direction(x, train.labels, train.classes)}
        print(a, json.dumps(out[str(a)]), flush=True)
    return {"n_train": n_train, "n_test": len(test), "levels": out,
            **({"blank": blank, "blank_level": blank_level} if blank is not None else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cells", nargs="*", help="cell folders (lam*-s*) of a stripes run")
    ap.add_argument("--ideal", default=None, metavar="A,B,..", help="grey levels of ideal stripes to score instead")
    ap.add_argument("--blank", default=None, choices=("horizontal", "vertical"),
                    help="with --ideal: that class's images a constant grey level instead of stripes")
    ap.add_argument("--blank-level", type=int, default=0, help="the constant of --blank, 0-255 (0: black)")
    ap.add_argument("--grid", default=None, help="PNG to write: originals, then one row per cell")
    ap.add_argument("--out", default=None, help="JSON to write the saturation figures to")
    ap.add_argument("--n-train", type=int, default=4000, help="the run's --n-train")
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--retrain-seeds", type=int, default=0, metavar="K",
                    help="retrain K fresh classifiers on each cell's simplified set (seeds 0..K-1), tested on the "
                         "original test images (default 0: none)")
    ap.add_argument("--check-split", type=int, default=0, metavar="K",
                    help="the select-within check's first K classifiers, each tested on the held-out training "
                         "originals and on the original test images (default 0: none)")
    args = ap.parse_args()
    if args.retrain_seeds < 0 or args.check_split < 0:
        ap.error("--retrain-seeds and --check-split take a count >= 0")
    if args.ideal:
        if not 0 <= args.blank_level <= 255:
            ap.error(f"--blank-level must be in 0..255, got {args.blank_level}")
        doc = ideal([int(v) for v in args.ideal.split(",")], args.n_train, args.blank, args.blank_level)
        if args.out:
            atomic_write_json(args.out, doc)
        return
    if not args.cells:
        ap.error("give cell folders, or --ideal")
    train = stripes(split="train", n=args.n_train)
    order = torch.argsort(train.labels, stable=True)  # simplified sets are stored class by class
    originals, labels = train.images[order], train.labels[order]
    rows, report = [], {}
    kept_originals = shows_direction(originals, labels, train.classes)
    print(f"originals: direction {json.dumps(kept_originals)}")
    test = stripes(split="test", n=1000) if args.retrain_seeds > 0 or args.check_split > 0 else None
    for cell in map(Path, args.cells):
        sim = load_condensed(cell / "simplified.safetensors")
        if sim.labels.tolist() != labels.tolist():
            raise SystemExit(f"{cell}: not a stripes run on {args.n_train} training images (labels differ)")
        rows.append(sim.images)
        report[f"{cell.parent.parent.name}/{cell.name}"] = {**saturation(cell, train.images[:512]),
                                                           "direction": shows_direction(sim.images, labels, train.classes)}
        cfg = config_from_dict(json.loads((cell / "result.json").read_text())["config"])
        if args.check_split > 0:
            report[f"{cell.parent.parent.name}/{cell.name}"]["check_split"] = check_split(
                sim, originals, order, test, cfg, args.check_split)
        if args.retrain_seeds > 0:
            accs = [retrain(sim, test, cfg=cfg, seed=k)["accuracy"] for k in range(args.retrain_seeds)]
            report[f"{cell.parent.parent.name}/{cell.name}"]["retrain"] = {
                "seeds": list(range(args.retrain_seeds)), "accuracy": accs, "mean": statistics.fmean(accs),
                "std": statistics.pstdev(accs), "min": min(accs)}
        print(f"{cell}: {json.dumps(report[f'{cell.parent.parent.name}/{cell.name}'])}")
    if args.grid:
        idx = pick_per_class(labels, 2, per_class=args.per_class)
        save_png(args.grid, comparison_grid(originals, rows, indices=idx, scale=2))
        print(f"wrote {args.grid}")
    if args.out:
        atomic_write_json(args.out, {"n_train": args.n_train, "images": 512, "cells": report,
                                     "direction_originals": kept_originals})
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
