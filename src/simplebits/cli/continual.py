"""`simplebits continual --tasks A,B,C --replay FILE_A,FILE_B --no-replay --out DIR`: train on a
sequence of tasks with (or without) the condensed sets of the earlier tasks replayed, and print
the stage-by-stage table and draw the curve of paper Fig. S12."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from .. import settings as flags
from ..continual import DEFAULT_TASKS, make_config, make_settings, plot_curve, run_continual
from ..continual.config import PRESETS, ContinualConfig
from ..errors import BadInputError, NotFoundError
from ..io import atomic_write_json, atomic_write_text
from ..settings import setting
from .common import (add_data_root, add_device, add_json, add_options, add_out, add_seeds, check_out, emit,
                     seed_list)
from .evaluate import resolve_device


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


@dataclass(frozen=True)
class ContinualOptions:
    """The task sequence, the preset and the network's width (ContinualConfig has the rest)."""

    tasks: str = setting(",".join(DEFAULT_TASKS), "data sets in training order, comma-separated", metavar="A,B,...")
    preset: str = setting("quick", "quick (this CPU: ConvNet width 32, 2x6 + 6 epochs) or paper (width 128, 3x50 + 50 "
                                   "epochs)", choices=PRESETS)
    width: int | None = setting(None, "ConvNet width", default_text="preset's")


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
    add_options(p, ContinualOptions, only=["tasks"])
    p.add_argument("--replay", action="append", default=[], metavar="[NAME=]FILE_A,FILE_B",
                   help="condensed sets of the tasks before the last, in order; repeat for several settings "
                        "(e.g. --replay lam0=a0.safetensors,b0.safetensors --replay simple=a1.safetensors,b1.safetensors)")
    p.add_argument("--no-replay", action="store_true", help="also run the baseline without replay (sequential training)")
    p.add_argument("--kd", dest="kd_on", action="store_true",
                   help="with knowledge distillation (give both --kd and --no-kd, or neither, for both)")
    p.add_argument("--no-kd", dest="kd_off", action="store_true", help="without knowledge distillation")
    add_options(p, ContinualOptions, only=["preset"])
    add_seeds(p, count=3, what="runs of every setting", numbers=True)
    flags.add_arguments(p, ContinualConfig)
    add_options(p, ContinualOptions, only=["width"])
    add_out(p, "DIR", "output folder")
    p.add_argument("--resume", action="store_true", help="skip the runs already finished in OUT/runs/")
    add_device(p)
    add_data_root(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    seeds = seed_list(args)
    groups: dict[str, list[str]] = {}
    for i, text in enumerate(args.replay):
        name, files = _replay_group(text)
        name = name or (f"replay{i + 1}" if len(args.replay) > 1 else "replay")
        if name in groups:
            raise BadInputError(f"two --replay groups are named {name!r}; name them NAME=FILES")
        groups[name] = files
    kd = [True, False] if args.kd_on == args.kd_off else [args.kd_on]
    settings = make_settings(groups or None, no_replay=args.no_replay, kd=kd)
    config = make_config(args.preset, **{k: v for k, v in flags.overrides(args, ContinualConfig).items()
                                         if k in {f.name for f in flags.user_fields(ContinualConfig)}})
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
