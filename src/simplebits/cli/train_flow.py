"""`simplebits train-flow DATASET[,DATASET...] --out FILE`: train a Glow density model."""

from __future__ import annotations

import argparse
import json
import shlex
import warnings
from dataclasses import dataclass

import torch

from ..data import ImageSet, combine
from ..data.inputs import default_test_spec
from ..density import FlowTrainConfig, GlowConfig, flow_digest, load_flow, score_bpd, train_flow
from ..density.train import card_path
from ..density.store import FLOW_BOUNDS
from ..errors import BadInputError
from ..io import atomic_write_json
from ..settings import overrides, setting
from .common import (add_data_root, add_deprecated, add_device, add_force, add_json, add_max_train, add_options,
                     add_out, check_out, emit, load_input, table)
from .evaluate import resolve_device


_GLOW = GlowConfig()


@dataclass(frozen=True)
class TrainFlowOptions:
    """The Glow's shape and what train-flow holds out; the optimiser's settings are FlowTrainConfig's."""

    test: str | None = setting(None, "test sets for the per-epoch bpd (default: the test split of each data set spec)",
                               metavar="DATASET[,...]")
    channels: int | None = setting(None, "model channels (default: the data's; gray and RGB sets mixed: RGB, gray "
                                         "repeated, with a note)", choices=(1, 3))
    size: int | None = setting(None, "model image size", default_text="the data's: its larger side rounded up to a "
                                                                       "power of two, at least 2**levels (28 -> 32, "
                                                                       "8 -> 8)")
    levels: int = setting(_GLOW.levels, "Glow levels L")
    depth: int = setting(_GLOW.steps, "flow steps per level K", metavar="K")
    width: int = setting(_GLOW.width, "coupling-network width")
    holdout: float = setting(0.1, "share of the training images held out as the test set when no --test and no named "
                                  "test split exists", metavar="FRACTION")
    resume: bool = setting(False, "continue from OUT.ckpt")
    keep_checkpoint: bool = setting(False, "keep OUT.ckpt when training finishes, so that --resume --epochs MORE can "
                                           "extend the run later", default_text="removed when the run finishes")
    init: str | None = setting(None, "start from the weights of MODEL (gray32, rgb32 or a train-flow file) and "
                                     "fine-tune it on DATASET; the model's shape (channels, size, levels, depth, "
                                     "width) is MODEL's", metavar="MODEL", default_text="a fresh model")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-flow", help="train a Glow density model (for bpd) on one or more data sets",
        description="Train a multi-scale Glow by maximum likelihood on DATASET (comma-separated specs are mixed, "
                    "e.g. fashion-mnist,mnist-5k,photo-patches-gray). Images are zero-padded to --size when "
                    "smaller (by default the data's own size rounded up to a power of two: 28 -> 32, 8x8 digits "
                    "stay 8x8) and converted to --channels. Each epoch scores held-out images with the "
                    "dequantisation bound (bits per model dimension): the named sets' test splits, the test/ "
                    "subfolder of a folder laid out as train/ and test/, or, for your other files (an .npz, a flat "
                    "class folder, idx:), a seeded --holdout share of them that is never trained on. Training "
                    "stops after --patience epochs without a better held-out bpd and the "
                    "best epoch is written. Checkpoints OUT.ckpt every epoch (atomic), logs to OUT.log.json, and "
                    "writes a model card (data, sizes, epochs, time, test bpd per set, the command) beside the "
                    "weights as OUT.card.json; --resume continues to the same result.",
    )
    p.add_argument("datasets", metavar="DATASET[,DATASET...]")
    add_out(p, "FILE.safetensors")
    add_options(p, TrainFlowOptions)
    add_options(p, FlowTrainConfig)
    add_max_train(p, "use at most N training images per data set")
    add_deprecated(p, "--steps", "--depth", dest="depth", type=int)
    add_force(p, help="replace an existing OUT that is not a density model, or delete an interrupted run's OUT.ckpt "
                      "and start over (default: refuse both)")
    add_device(p)
    add_data_root(p)
    add_json(p)
    p.set_defaults(func=run)


def fitted_size(sets: list[ImageSet], levels: int) -> int:
    """The default model size for ``sets``: their larger side rounded up to a power of two, at least
    ``2**levels`` (each level halves it). Padding 8x8 digits to 32x32 made 94% of the model's input
    zeros: a model trained that way for 10 epochs coded the digits in 35 bits per value, where an
    8x8 model took 6.7 (and 5.7 after 73 epochs). A size past the largest model a loader reads back
    is refused."""
    side = max(max(s.shape[1], s.shape[2]) for s in sets)
    lo, hi = FLOW_BOUNDS["image_size"]
    size = max(1 << max(side - 1, 0).bit_length(), 1 << levels, lo)
    if size > hi:
        raise BadInputError(f"images of up to {side} pixels a side need a {size}x{size} model, larger than the "
                            f"largest density model ({hi}x{hi}); resize or crop them to at most {hi} pixels first")
    return size


def mix(specs: list[str], args: argparse.Namespace, *, split: str, channels: int | None, size: int | None,
        limit: int | None) -> ImageSet:
    """The sets of ``specs`` as one (converted to ``channels``, padded to ``size``); with ``size`` None
    the training data's :func:`fitted_size`, which is then set on ``args`` (the card's command names it)."""
    sets = [load_input(s, args, split=split) for s in specs]
    if size is None:
        size = args.size = fitted_size(sets, args.levels)
    if getattr(args, "init", None) is not None:
        _fit_init(sets, args.init, channels=channels, size=size)
    elif channels is None:  # the data's channels: a mix of gray and RGB sets makes an RGB model; say so
        most = max(s.channels for s in sets)
        for s in sets:
            if s.channels != most:
                warnings.warn(f"{s.name}: gray images repeated to RGB, to train one {most}-channel model with the "
                              "other sets (pass --channels 1 for a gray model)", UserWarning, stacklevel=2)
    return combine(sets, channels=channels or max(s.channels for s in sets), size=size, limit=limit)


def _fit_init(sets: list[ImageSet], init: str, *, channels: int | None, size: int) -> None:
    """With ``--init``, the model's shape is fixed: images larger than its input are refused with
    what to do instead (not ``--size``, which would contradict the model), and images of another
    channel count are converted with a note (combine converts them; the user did not ask for it)."""
    for s in sets:
        _, h, w = s.shape
        if h > size or w > size:
            raise BadInputError(
                f"{s.name}: images are {h}x{w}, larger than the {size}x{size} input of --init {init}; fine-tune a "
                f"model of at least {max(h, w)}x{max(h, w)}, or train a fresh one (leave out --init; --size "
                f"{max(h, w)})")
        if channels is not None and s.channels != channels:
            how = "converted to gray" if channels == 1 else "repeated to RGB"
            warnings.warn(f"{s.name}: {s.channels}-channel images {how} for --init {init}, a {channels}-channel "
                          "model (fine-tune a model of their channel count to keep them as they are)",
                          UserWarning, stacklevel=2)


def default_test_specs(specs: list[str]) -> list[str]:
    """The test set of every training spec that has one (:func:`simplebits.data.inputs.default_test_spec`):
    a named source's test split, a folder's ``test/`` beside its ``train/``. Other user files (an
    .npz, a flat class folder, idx:) get none, and the run holds out a share of the training
    images instead, so a training file is never scored as its own test."""
    return [t for t in (default_test_spec(s) for s in specs) if t is not None]


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (for the model card)."""
    parts = ["simplebits", "train-flow", args.datasets, "--out", str(args.out)]
    for flag, val in (("--test", args.test), ("--channels", args.channels), ("--max-train", args.max_train),
                      ("--init", args.init)):
        if val is not None:
            parts += [flag, str(val)]
    parts += ["--size", str(args.size), "--levels", str(args.levels), "--depth", str(args.depth), "--width",
              str(args.width), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
              "--warmup", str(args.warmup_steps), "--holdout", str(args.holdout), "--patience", str(args.patience),
              "--seed", str(args.seed)]
    return " ".join(shlex.quote(p) for p in parts)


def _starting_model(args: argparse.Namespace):
    """The density model ``--init`` names (None without it); its shape replaces the shape options,
    and a shape option set to something else than both its default and the model's is an error."""
    if args.init is None:
        return None
    start = load_flow(args.init)
    cfg = start.config
    for flag, name, default, has in (("--channels", "channels", None, cfg.channels),
                                     ("--size", "size", None, cfg.image_size),
                                     ("--levels", "levels", _GLOW.levels, cfg.levels),
                                     ("--depth", "depth", _GLOW.steps, cfg.steps),
                                     ("--width", "width", _GLOW.width, cfg.width)):
        given = getattr(args, name)
        if given not in (default, has):
            raise BadInputError(f"{flag} {given} contradicts --init {args.init} ({name} {has}); leave {flag} out: "
                                "a fine-tuned model keeps its starting model's shape")
        setattr(args, name, has)
    return start


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if not 0.0 < args.holdout < 1.0:
        raise BadInputError(f"--holdout must be a fraction in (0, 1), got {args.holdout}")
    if args.patience < 0:
        raise BadInputError(f"--patience must be >= 0, got {args.patience}")
    lo, hi = FLOW_BOUNDS["image_size"]
    if args.size is not None and not (lo <= args.size <= hi and args.size & (args.size - 1) == 0):
        raise BadInputError(f"--size must be a power of two in {lo}..{hi}, got {args.size}")
    check_out(args.out, kind="flow", force=args.force, resume=args.resume)
    start = _starting_model(args)  # before the data: a wrong --init fails at once
    specs = [s for s in args.datasets.split(",") if s]
    train = mix(specs, args, split="train", channels=args.channels, size=args.size, limit=args.max_train)
    test_specs = [s for s in args.test.split(",") if s] if args.test else default_test_specs(specs)
    test, per_set, held = None, {}, None
    if test_specs:
        for s in test_specs:  # each set alone, for the card's test bpd per set
            per_set[s] = mix([s], args, split="test", channels=train.channels, size=args.size, limit=2000)
        test = combine(list(per_set.values()), channels=train.channels, size=args.size)
        g = torch.Generator().manual_seed(0)
        test = test.subset(torch.randperm(len(test), generator=g)[:2000])  # interleave sources for the capped score
    else:  # user files: a seeded share never trained on, so the training file is never its own test
        n_held = max(1, round(args.holdout * len(train)))
        if len(train) - n_held < 1:
            raise BadInputError(f"{len(train)} image(s) leave nothing to train on after --holdout {args.holdout}; "
                                "give more images or a --test set")
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed * 1000 + 7))
        test, train = train.subset(order[:n_held]), train.subset(order[n_held:])
        held = {"images": n_held, "fraction": args.holdout}
        per_set[f"held-out {100 * args.holdout:g}% of the training images"] = test
    mcfg = GlowConfig(channels=train.channels, image_size=args.size, levels=args.levels, steps=args.depth,
                      width=args.width)
    tcfg = FlowTrainConfig(**overrides(args, FlowTrainConfig))
    card = {"trained_on": specs, "test_sets": list(per_set), "held_out": held, "command": command_line(args)}
    init_state = None
    if start is not None:
        init_state = {k: v.contiguous() for k, v in start.state_dict().items()}
        card["continued_from"] = {"model": args.init, "weights": flow_digest(args.init),
                                  "data": start.meta.get("data"), "epochs": start.meta.get("epochs")}
    model, log = train_flow(train, test, model_config=mcfg, config=tcfg, out=args.out, resume=args.resume,
                            keep_checkpoint=args.keep_checkpoint, restart=args.force, device=device,
                            progress=None if not args.json else False, card=card, init_state=init_state)
    # the card's test bpd per set, scored with the kept weights
    card_file = card_path(args.out)
    doc = json.loads(card_file.read_text())
    doc["test_bpd_per_set"] = {k: float(score_bpd(model, v.images.to(device)).mean()) for k, v in per_set.items()}
    atomic_write_json(card_file, doc)
    rows = [[e["epoch"], f"{e['train_bpd']:.3f}", f"{e['test_bpd']:.3f}" if "test_bpd" in e else "-", e["seconds"]]
            for e in log]
    kept = doc["kept_epoch"]
    note = warmup_note(log[-1]["step"] if log else 0, tcfg)
    tail = (f"\nkept epoch {kept} (held-out bpd {doc['test_bpd']:.3f}, bits per model dimension, dequantisation bound)"
            + (f"; stopped early after {len(log)} epochs" if doc["stopped_early"] else "")
            + (f"\nnote: {note}" if note else "")
            + f"\nwrote {args.out} and its model card {card_file}")
    emit(args, {"out": args.out, "card": str(card_file), "log": log, "model": mcfg.to_dict(), "kept_epoch": kept,
                "test_bpd": doc["test_bpd"], "test_bpd_per_set": doc["test_bpd_per_set"],
                **({"note": note} if note else {})},
         table(["epoch", "train bpd", "test bpd", "seconds"], rows) + tail)
    return 0


def warmup_note(steps: int, cfg: FlowTrainConfig) -> str | None:
    """One line when the run ended inside its learning-rate warm-up (a small data set, few epochs):
    the rate never reached --lr, so the model is far less trained than the epochs suggest."""
    if steps <= 0 or steps >= cfg.warmup_steps:
        return None
    reached = 100 * steps / cfg.warmup_steps
    share = f"{reached:.0f}%" if reached >= 1 else f"{reached:.1g}%"
    return (f"the run took {steps} Adam step{'s' if steps > 1 else ''} but the learning rate warms up over "
            f"{cfg.warmup_steps} (--warmup): it reached only {share} of --lr {cfg.lr:g}; for a run this short pass "
            f"e.g. --warmup {max(1, steps // 10)} (a tenth of its steps), or more --epochs")
