"""`simplebits train-flow DATASET[,DATASET...] --out FILE`: train a Glow density model."""

from __future__ import annotations

import argparse

import torch

from ..data import ImageSet, combine, get_source
from ..errors import SimplebitsError
from ..density import FlowTrainConfig, GlowConfig, train_flow
from .common import add_data_root, add_json, emit, load_input, table
from .evaluate import add_device, resolve_device


def register(sub: argparse._SubParsersAction) -> None:
    d, m = FlowTrainConfig(), GlowConfig()
    p = sub.add_parser(
        "train-flow", help="train a Glow density model (for bpd) on one or more data sets",
        description="Train a multi-scale Glow by maximum likelihood on DATASET (comma-separated specs are mixed, "
                    "e.g. fashion-mnist,mnist-5k,photo-patches-gray). Images are zero-padded to --size when "
                    "smaller (28 -> 32) and converted to --channels. Checkpoints OUT.ckpt every epoch "
                    "(atomic) and logs train/test bpd to OUT.log.json; --resume continues to the same result.",
    )
    p.add_argument("datasets", metavar="DATASET[,DATASET...]")
    p.add_argument("--out", required=True, metavar="FILE.safetensors")
    p.add_argument("--test", default=None, metavar="DATASET[,...]",
                   help="test sets for the per-epoch bpd (default: the test split of each data set spec)")
    p.add_argument("--channels", type=int, default=None, choices=[1, 3], help="model channels (default: data's)")
    p.add_argument("--size", type=int, default=m.image_size, help=f"model image size (default {m.image_size})")
    p.add_argument("--levels", type=int, default=m.levels, help=f"Glow levels L (default {m.levels})")
    p.add_argument("--steps", type=int, default=m.steps, help=f"flow steps per level K (default {m.steps})")
    p.add_argument("--width", type=int, default=m.width, help=f"coupling-network width (default {m.width})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    p.add_argument("--warmup", type=int, default=d.warmup_steps, help=f"warm-up steps (default {d.warmup_steps})")
    p.add_argument("--max-train", type=int, default=None, help="use at most N training images per data set")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    add_device(p)
    add_data_root(p)
    add_json(p)
    p.set_defaults(func=run)


def mix(specs: list[str], args: argparse.Namespace, *, split: str, channels: int | None, size: int,
        limit: int | None) -> ImageSet:
    sets = [load_input(s, args, split=split) for s in specs]
    return combine(sets, channels=channels or max(s.channels for s in sets), size=size, limit=limit)


def default_test_specs(specs: list[str]) -> list[str]:
    """The test split of every named source that has one; user paths (npz:, image-folder:) get
    no implicit test set (pass --test), so a training file is never scored as its own test."""
    out = []
    for s in specs:
        name, _, split = s.partition(":")
        try:
            info = get_source(name)
        except SimplebitsError:
            continue
        if not info.takes_path and "test" in info.splits and split in ("", "train"):
            out.append(f"{name}:test")
    return out


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    specs = [s for s in args.datasets.split(",") if s]
    train = mix(specs, args, split="train", channels=args.channels, size=args.size, limit=args.max_train)
    test_specs = [s for s in args.test.split(",") if s] if args.test else default_test_specs(specs)
    test = None
    if test_specs:
        test = mix(test_specs, args, split="test", channels=train.channels, size=args.size, limit=2000)
        g = torch.Generator().manual_seed(0)
        test = test.subset(torch.randperm(len(test), generator=g))  # interleave sources for the capped test score
    mcfg = GlowConfig(channels=train.channels, image_size=args.size, levels=args.levels, steps=args.steps,
                      width=args.width)
    tcfg = FlowTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup,
                           seed=args.seed)
    _, log = train_flow(train, test, model_config=mcfg, config=tcfg, out=args.out, resume=args.resume,
                        device=device, progress=None if not args.json else False)
    rows = [[e["epoch"], f"{e['train_bpd']:.3f}", f"{e['test_bpd']:.3f}" if "test_bpd" in e else "-", e["seconds"]]
            for e in log]
    emit(args, {"out": args.out, "log": log, "model": mcfg.to_dict()},
         table(["epoch", "train bpd", "test bpd", "seconds"], rows) + f"\nwrote {args.out}")
    return 0
