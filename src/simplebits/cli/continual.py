"""`simplebits continual --tasks A,B,C --replay FILE_A,FILE_B --no-replay --out DIR`: train on a
sequence of tasks with (or without) the condensed sets of the earlier tasks replayed, and print
the stage-by-stage table and draw the curve of paper Fig. S12."""

from __future__ import annotations

import argparse
import sys

from ..continual import DEFAULT_TASKS, make_config, make_settings, plot_curve, run_continual
from ..continual.config import HEADS, PRESETS
from ..errors import BadInputError, NotFoundError
from ..io import atomic_write_json, atomic_write_text
from .common import add_data_root, add_json, check_out, emit, int_list
from .evaluate import add_device, resolve_device


def _replay_group(text: str) -> tuple[str | None, list[str]]:
    name, sep, files = text.partition("=")
    if not sep:
        name, files = None, text
    elif not name.strip():
        raise BadInputError(f"--replay {text!r}: empty group name before '='")
    items = [f.strip() for f in files.split(",") if f.strip()]
    if not items:
        raise BadInputError(f"--replay {text!r} names no files; give FILE_A,FILE_B (one condensed set per earlier task)")
    return (name.strip() if name else None), items


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "continual", help="learn a sequence of tasks with condensed replay (paper S12)",
        description="Task-incremental continual learning (paper S12; Zhao & Bilen 2021): train on each task in turn; "
                    "with replay, also on the condensed sets of the earlier tasks; with --kd, also distil the "
                    "previous stage's network on the replay images (without replay: on the new images, LwF). "
                    "Tests every task after every stage and prints, per setting, the mean accuracy over the tasks "
                    "seen so far (mean ± std over seeds). Writes OUT/continual.json, OUT/table.md and "
                    "OUT/curve.png (Fig. S12); every finished run is saved to OUT/runs/ and --resume skips it. "
                    f"Default sequence (installable data): {','.join(DEFAULT_TASKS)}; the paper's is "
                    "svhn,mnist,usps (from your files, with --data-root).",
    )
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                   help=f"data sets in training order, comma-separated (default {','.join(DEFAULT_TASKS)})")
    p.add_argument("--replay", action="append", default=[], metavar="[NAME=]FILE_A,FILE_B",
                   help="condensed sets of the tasks before the last, in order; repeat for several settings "
                        "(e.g. --replay lam0=a0.safetensors,b0.safetensors --replay simple=a1.safetensors,b1.safetensors)")
    p.add_argument("--no-replay", action="store_true", help="also run the baseline without replay (sequential training)")
    p.add_argument("--kd", dest="kd_on", action="store_true",
                   help="with knowledge distillation (give both --kd and --no-kd, or neither, for both)")
    p.add_argument("--no-kd", dest="kd_off", action="store_true", help="without knowledge distillation")
    p.add_argument("--preset", default="quick", choices=PRESETS,
                   help="quick (this CPU: ConvNet width 32, 2x6 + 6 epochs) or paper (width 128, 3x50 + 50 epochs)")
    p.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per cosine cycle (default: preset's)")
    p.add_argument("--first-cycles", type=int, default=None, help="cosine cycles on the first task (default: preset's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate at each restart (default 0.1)")
    p.add_argument("--batch-size", type=int, default=None, help="new-task images per step (default: preset's)")
    p.add_argument("--replay-batch", type=int, default=None, help="replay images per step (default: preset's)")
    p.add_argument("--kd-weight", type=float, default=None, help="weight of the distillation term (default 1)")
    p.add_argument("--kd-temperature", type=float, default=None, help="distillation temperature T (default 2)")
    p.add_argument("--head", default=None, choices=HEADS,
                   help="auto (default): one shared head when all tasks have the same class names, else one per task")
    p.add_argument("--image-size", type=int, default=None, help="common image side (default: the largest task's)")
    p.add_argument("--channels", type=int, default=None, choices=[1, 3],
                   help="common channel count (default: 3 if any task is colour)")
    p.add_argument("--max-train", type=int, default=None, help="cap on each task's training images (class-balanced)")
    p.add_argument("--width", type=int, default=None, help="ConvNet width (default: preset's)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--resume", action="store_true", help="skip the runs already finished in OUT/runs/")
    add_device(p)
    add_data_root(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    seeds = int_list(args.seeds, "--seeds", minimum=0, example="0,1,2")
    groups: dict[str, list[str]] = {}
    for i, text in enumerate(args.replay):
        name, files = _replay_group(text)
        name = name or (f"replay{i + 1}" if len(args.replay) > 1 else "replay")
        if name in groups:
            raise BadInputError(f"two --replay groups are named {name!r}; name them NAME=FILES")
        groups[name] = files
    kd = [True, False] if args.kd_on == args.kd_off else [args.kd_on]
    settings = make_settings(groups or None, no_replay=args.no_replay, kd=kd)
    overrides = dict(epochs=args.epochs, first_cycles=args.first_cycles, lr=args.lr, batch_size=args.batch_size,
                     replay_batch=args.replay_batch, kd_weight=args.kd_weight, kd_temperature=args.kd_temperature,
                     head=args.head, image_size=args.image_size, channels=args.channels, max_train=args.max_train)
    config = make_config(args.preset, **overrides)
    if args.width is not None:
        config = config.with_overrides(model_options={**config.model_options, "width": args.width})
    out = check_out(args.out, kind="continual.json", folder=True, force=True)  # --resume rules: the runner's
    log = None if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    result = run_continual(tasks, settings, config=config, seeds=seeds, out=out, resume=args.resume,
                           root=args.data_root, device=device, progress=None if not args.json else False, log=log)
    files = {"results": str(out / "continual.json"), "table": str(out / "table.md")}
    try:
        files["curve"] = plot_curve(result, out / "curve.png")
    except NotFoundError as e:
        print(f"simplebits continual: note: {e} (table written, no curve)", file=sys.stderr)
    result.files = files
    atomic_write_text(out / "table.md", result.markdown() + "\n")
    atomic_write_json(out / "continual.json", result.to_dict())
    text = result.format() + f"\n\nwall time {result.seconds:.1f} s; " + ", ".join(f"{k}: {v}" for k, v in files.items())
    emit(args, result.to_dict(), text)
    return 0
