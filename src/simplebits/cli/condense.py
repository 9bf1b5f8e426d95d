"""`simplebits condense DATASET --ipc N --out FILE`: condense a data set (DC/DSA/IDC/DREAM/DM),
optionally with the SimpleBits simplification term.

The condensation flags are generated from :class:`~simplebits.condense.CondenseConfig`'s fields
(their help is the field's), and ``--method`` offers the registered methods: a method or setting
added there appears here without an edit. Flags left out take the preset's value.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Any

from ..condense import CondenseConfig, eval_protocol_for, condense, get_method, list_methods, make_config, start_warning
from ..condense import starting_set
from ..condense.config import COMPILE_MIN_ITERATIONS, NetOptions, compiles
from ..data import ImageSet
from ..data.inputs import default_test_spec, load_images
from ..errors import BadInputError
from ..settings import add_arguments, overrides
from ..train import get_protocol, list_protocols
from .common import add_data_root, add_deprecated, add_device, add_force, add_json, add_out, check_out, emit
from .common import load_input
from .evaluate import format_reports, resolve_device

COMPILE_NOTE = ("note: compiling the real-batch network in the first iteration (15-25 s when this machine's "
                "compile cache is empty, 2-3 s after); --no-compile skips it")


def _description() -> str:
    """The subcommand's description, naming every registered method with its help line."""
    methods = "; ".join(f"{m}: {get_method(m).help}" for m in list_methods())
    return ("Learn IPC synthetic images per class that train a network as well as the data set does "
            f"({methods}). --lambda-sim adds the SimpleBits term (bits per dimension under a Glow density model) "
            "so that the condensed images are also simple. Writes OUT (condensed-set file with settings, bpd and "
            "timings in its metadata), OUT.png (image grid), OUT.diff.png (class differences, paper Fig. 7), "
            "OUT.log.json (loss and bpd per iteration); checkpoints to OUT.ckpt, --resume continues to the same "
            "result. Presets: quick (this CPU, minutes) and paper (published settings, GPU).")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "condense", help="condense a data set into a few synthetic images per class (optionally simplified)",
        description=_description(),
    )
    p.add_argument("dataset", metavar="DATASET", help="data set spec (e.g. fashion-mnist, mnist-5k, npz:FILE)")
    p.add_argument("--ipc", type=int, required=True, help=_help(CondenseConfig, "ipc"))
    add_out(p, "FILE.safetensors")
    add_arguments(p, CondenseConfig, only=("method", "preset"), defaults={"method": "dc", "preset": "quick"})
    add_arguments(p, CondenseConfig, skip=("method", "preset"), default_text="preset's")
    add_arguments(p.add_argument_group("the matching network (net_options)"), NetOptions)
    cg = p.add_mutually_exclusive_group()
    cg.add_argument("--compile", dest="compile", action="store_const", const=True, default=None,
                    help=f"torch.compile the real-batch network even for a short run (default: only runs of "
                         f">= {COMPILE_MIN_ITERATIONS} iterations, where a first compile of 15-25 s pays back)")
    cg.add_argument("--no-compile", dest="compile", action="store_const", const=False,
                    help="never torch.compile the real-batch network")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    add_force(p)
    _add_evaluation(p)
    add_device(p)
    add_data_root(p)
    add_json(p)
    p.set_defaults(func=run)


def _help(cls: type, name: str) -> str:
    """The help line a setting of ``cls`` declares (for the flags written by hand)."""
    return next(f.metadata["help"] for f in fields(cls) if f.name == name)


def _add_evaluation(p: argparse.ArgumentParser) -> None:
    """``--evaluate [PROTOCOL]``, ``--seeds N`` (``--eval-seeds`` until 0.4) and ``--test``."""
    g = p.add_argument_group("evaluation after condensing")
    g.add_argument("--evaluate", nargs="?", const="auto", default=None, metavar="PROTOCOL",
                   help=f"after condensing, train fresh networks on the set and test them (protocols: "
                        f"{', '.join(q.name for q in list_protocols())}; no value: the method's own protocol, "
                        "dc-mnist for dc on MNIST as in the DC paper), "
                        "beside random real images and, for real/mix init, the images the run started from "
                        "(a warning when the set ends below them)")
    g.add_argument("--seeds", type=int, default=3, metavar="N",
                   help="number of networks trained by --evaluate, seeds S..S+N-1 with --seed S (default 3)")
    add_deprecated(g, "--eval-seeds", "--seeds", dest="seeds", type=int)
    g.add_argument("--test", default=None, metavar="DATASET",
                   help="test set for --evaluate: a data set spec, a file or a folder (default: the data set's "
                        "test split; needed for a file or folder of your own)")


def config_of(args: argparse.Namespace) -> CondenseConfig:
    """The validated config the flags describe: the preset, with what the user gave on top."""
    given = overrides(args, CondenseConfig)
    method, preset = given.pop("method", "dc"), given.pop("preset", "quick")
    given.pop("ipc", None)
    net_options = overrides(args, NetOptions)
    if net_options:
        given["net_options"] = net_options
    return make_config(method, ipc=args.ipc, preset=preset, **given)


def _test_spec(args: argparse.Namespace) -> str | None:
    """The test set of ``--evaluate`` (checked before the long run), or None without it."""
    if not args.evaluate:
        return None
    if args.seeds < 1:
        raise BadInputError(f"--seeds must be >= 1 (networks trained by --evaluate), got {args.seeds}")
    if args.evaluate != "auto":
        get_protocol(args.evaluate)  # unknown protocol: fail before the long run
    spec = args.test or default_test_spec(args.dataset)
    if spec is None:
        raise BadInputError(f"cannot tell the test set for {args.dataset!r}; pass --test DATASET")
    return spec


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    cfg = config_of(args)
    check_out(args.out, kind="condensed", force=args.force, resume=args.resume)
    test_spec = _test_spec(args)
    # the input is read as before this command had --clamp: only its data root and --factor reach the reader
    train = load_input(args.dataset, argparse.Namespace(data_root=args.data_root, factor=args.factor), split="train")
    test = load_images(test_spec, split="test", root=args.data_root) if test_spec else None
    if compiles(cfg):
        print(COMPILE_NOTE, file=sys.stderr)
    result = condense(train, cfg, out=args.out, resume=args.resume, device=device,
                      progress=None if not args.json else False)
    out, text = _summary(result, cfg, train)
    if args.evaluate:
        _evaluate(args, result, cfg, train, test, device, out, text)
    emit(args, out, "\n".join(text))
    return 0


def _summary(result: Any, cfg: CondenseConfig, train: ImageSet) -> tuple[dict[str, Any], list[str]]:
    """The JSON document and the text lines of a finished run (before any evaluation)."""
    out = result.to_dict()
    text = [f"condensed {train.name} with {cfg.method} to ipc {cfg.ipc}"
            + (f" (factor {cfg.factor})" if cfg.factor > 1 else "")
            + (f", lambda {cfg.lambda_sim}" if cfg.lambda_sim is not None else ""),
            (f"bpd {result.bpd:.3f} (bits per model dimension, dequantisation bound"
             + (f"; the loss term's last value {result.bpd_loss:.3f}, one draw before the last update"
                if result.bpd_loss is not None else "") + ")"
             + (f"; native bpd {result.bpd_native:.3f}\nnote: {result.units['note']}"
                if result.units and result.units.get("note") else "")
             if result.bpd is not None else "bpd: no density model for this data"),
            f"{result.seconds:.1f} s ({result.seconds_per_iteration:.2f} s/iteration), peak RSS {result.peak_rss_mb:.0f} MB",
            "wrote " + ", ".join(result.files.values())]
    if result.blind_spot_note:
        text.insert(2, f"note: {result.blind_spot_note}")
    if result.config.net_options != cfg.net_options:
        _, h, w = train.shape
        text.insert(1, f"network: {cfg.net} depth {result.config.net_options.get('depth')}, fitted to {h}x{w} images "
                       "(small-image rule; --depth overrides)")
    if result.images.unbounded:
        lo, hi = result.images.value_range()
        out["range"] = {"kind": "unbounded", "value_range": [lo, hi],
                        "out_of_range_fraction": result.images.out_of_range_fraction()}
        text.insert(2, f"unbounded (--no-clamp): range [{lo:.3g}, {hi:.3g}], "
                       f"{100 * result.images.out_of_range_fraction():.2f}% of values outside [0, 1]; "
                       "the PNG grid shows the clamped view")
    return out, text


def _evaluate(args: argparse.Namespace, result: Any, cfg: CondenseConfig, train: ImageSet, test: ImageSet,
              device: str, out: dict[str, Any], text: list[str]) -> None:
    """``--evaluate``: the set and (real/mix init) its starting images under one protocol; into ``out``/``text``."""
    from ..train import evaluate

    proto = eval_protocol_for(cfg.method, train) if args.evaluate == "auto" else args.evaluate
    progress = None if not args.json else False
    seeds = list(range(cfg.seed, cfg.seed + args.seeds))  # the vocabulary's S..S+N-1 (0..N-1 by default, as before)
    rep = evaluate(result.images, test, protocol=proto, seeds=seeds, baseline_from=train, device=device,
                   progress=progress)
    out["evaluation"] = rep.to_dict()
    reports = [rep]
    start = starting_set(train, cfg)  # None for noise init: the random-real baseline is the reference
    if start is not None:
        srep = evaluate(start, test, protocol=proto, seeds=seeds, device=device, progress=progress)
        out["start"] = srep.to_dict()
        reports.append(srep)
        warning = start_warning("the condensed set", rep.mean, srep.mean, cfg.init)
        if warning:
            out["warnings"] = [warning]
            print(warning, file=sys.stderr)
    text.append(format_reports(reports, args.dataset.split(":", 1)[0]))
