"""`simplebits condense DATASET --ipc N --out FILE`: condense a data set (DC/DSA/IDC/DREAM/DM),
optionally with the SimpleBits simplification term."""

from __future__ import annotations

import argparse
import sys

from ..condense import EVAL_PROTOCOL, MATCHES, METHODS, PRESETS, condense, make_config, start_warning, starting_set
from ..condense.config import COMPILE_MIN_ITERATIONS, compiles
from ..train import get_protocol, list_protocols
from .common import add_data_root, add_force, add_json, check_out, emit, load_input
from ..data import load_dataset
from ..errors import BadInputError
from .evaluate import _default_test, add_device, format_reports, resolve_device

COMPILE_NOTE = ("note: compiling the real-batch network in the first iteration (15-25 s when this machine's "
                "compile cache is empty, 2-3 s after); --no-compile skips it")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "condense", help="condense a data set into a few synthetic images per class (optionally simplified)",
        description="Learn IPC synthetic images per class that train a network as well as the data set does "
                    "(dc: gradient matching; dsa: with Siamese augmentation; idc: multi-formation; dream: idc "
                    "with k-means representative batches; dm: distribution matching). --lambda-sim adds the "
                    "SimpleBits term (bits per dimension under a Glow density model) so that the condensed "
                    "images are also simple. Writes OUT (condensed-set file with settings, bpd and timings in "
                    "its metadata), OUT.png (image grid), OUT.diff.png (class differences, paper Fig. 7), "
                    "OUT.log.json (loss and bpd per iteration); checkpoints to OUT.ckpt, --resume continues "
                    "to the same result. Presets: quick (this CPU, minutes) and paper (published settings, GPU).",
    )
    p.add_argument("dataset", metavar="DATASET", help="data set spec (e.g. fashion-mnist, mnist-5k, npz:FILE)")
    p.add_argument("--ipc", type=int, required=True, help="synthetic images per class to store")
    p.add_argument("--out", required=True, metavar="FILE.safetensors")
    p.add_argument("--method", default="dc", choices=METHODS, help="condensation method (default dc)")
    p.add_argument("--preset", default="quick", choices=PRESETS, help="settings preset (default quick)")
    p.add_argument("--iterations", type=int, default=None, help="outer iterations (default: preset's)")
    p.add_argument("--factor", type=int, default=None, help="multi-formation factor for idc/dream (preset: 2)")
    p.add_argument("--lambda-sim", type=float, default=None, metavar="L",
                   help="weight of the simplification term (paper Eq. 7); 0 = the SimpleBits parametrisation "
                        "without the bpd term; leave out for the plain method")
    p.add_argument("--density", default=None, metavar="MODEL",
                   help="density model for bpd: gray32, rgb32 or a flow file (default by channel count)")
    p.add_argument("--match", default=None, choices=MATCHES, help="matching distance (default: method's)")
    p.add_argument("--init", default=None, choices=["noise", "real", "mix"], help="initialisation (default: preset's)")
    p.add_argument("--batch-real", type=int, default=None, help="real images per class per update")
    p.add_argument("--outer-loop", type=int, default=None, help="image updates per network (default: derived from IPC)")
    p.add_argument("--inner-loop", type=int, default=None, help="network steps between updates (default: derived)")
    p.add_argument("--lr-img", type=float, default=None, help="image learning rate (default: preset's)")
    p.add_argument("--net", default="convnet", help="network to match with (default convnet)")
    p.add_argument("--width", type=int, default=None, help="network width (default 128)")
    p.add_argument("--norm", default=None, choices=["instance", "none", "batch", "group", "layer"],
                   help="network normalisation (default instance)")
    p.add_argument("--depth", type=int, default=None,
                   help="conv blocks of the convnet (default 3; 2 for images under 16x16, where a third instance "
                        "norm would normalise 2x2 maps and wreck matching: docs/condense.md, 'Small images')")
    p.add_argument("--act", default=None, choices=["relu", "elu", "leakyrelu"], help="network activation (default relu)")
    cg = p.add_mutually_exclusive_group()
    cg.add_argument("--compile", action="store_true",
                    help=f"torch.compile the real-batch network even for a short run (default: only runs of "
                         f">= {COMPILE_MIN_ITERATIONS} iterations, where a first compile of 15-25 s pays back)")
    cg.add_argument("--no-compile", action="store_true", help="never torch.compile the real-batch network")
    p.add_argument("--no-clamp", action="store_true",
                   help="do not clamp the images to [0, 1] after each update, as DC/DSA/DM do not; the set is "
                        "stored unbounded (evaluate/prune use its values, bpd and PNGs its clamped view)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    add_force(p)
    p.add_argument("--evaluate", nargs="?", const="auto", default=None, metavar="PROTOCOL",
                   help=f"after condensing, train fresh networks on the set and test them (protocols: "
                        f"{', '.join(p.name for p in list_protocols())}; no value: the method's own protocol), "
                        "beside random real images and, for real/mix init, the images the run started from "
                        "(a warning when the set ends below them)")
    p.add_argument("--eval-seeds", type=int, default=3, help="networks for --evaluate (default 3)")
    p.add_argument("--test", default=None, metavar="DATASET",
                   help="test set for --evaluate (default: the data set's test split)")
    add_device(p)
    add_data_root(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    net_options = {k: v for k, v in (("width", args.width), ("depth", args.depth), ("norm", args.norm),
                                                   ("act", args.act)) if v is not None}
    cfg = make_config(
        args.method, ipc=args.ipc, preset=args.preset, iterations=args.iterations, factor=args.factor,
        lambda_sim=args.lambda_sim, density=args.density, match=args.match, init=args.init,
        batch_real=args.batch_real, outer_loop=args.outer_loop, inner_loop=args.inner_loop, lr_img=args.lr_img,
        net=args.net, net_options=net_options or None, seed=args.seed, clamp=False if args.no_clamp else None,
        compile=False if args.no_compile else (True if args.compile else None),
    )
    check_out(args.out, kind="condensed", force=args.force, resume=args.resume)
    test_spec = None
    if args.evaluate:
        if args.evaluate != "auto":
            get_protocol(args.evaluate)  # unknown protocol: fail before the long run
        test_spec = args.test or _default_test(args.dataset)
        if test_spec is None:
            raise BadInputError(f"cannot tell the test set for {args.dataset!r}; pass --test DATASET")
    train = load_input(args.dataset, args, split="train")
    test = load_dataset(test_spec, split="test", root=args.data_root) if test_spec else None
    if compiles(cfg):
        print(COMPILE_NOTE, file=sys.stderr)
    result = condense(train, cfg, out=args.out, resume=args.resume, device=device,
                      progress=None if not args.json else False)
    out = result.to_dict()
    text = [f"condensed {train.name} with {cfg.method} to ipc {cfg.ipc}"
            + (f" (factor {cfg.factor})" if cfg.factor > 1 else "")
            + (f", lambda {cfg.lambda_sim}" if cfg.lambda_sim is not None else ""),
            (f"bpd {result.bpd:.3f} (bits per model dimension, dequantisation bound"
             + (f"; the loss term's last value {result.bpd_loss:.3f}, one draw before the last update"
                if result.bpd_loss is not None else "") + ")"
             if result.bpd is not None else "bpd: no density model for this data"),
            f"{result.seconds:.1f} s ({result.seconds_per_iteration:.2f} s/iteration), peak RSS {result.peak_rss_mb:.0f} MB",
            "wrote " + ", ".join(result.files.values())]
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
    if args.evaluate:
        from ..train import evaluate

        proto = EVAL_PROTOCOL[cfg.method] if args.evaluate == "auto" else args.evaluate
        rep = evaluate(result.images, test, protocol=proto, seeds=args.eval_seeds, baseline_from=train,
                       device=device, progress=None if not args.json else False)
        out["evaluation"] = rep.to_dict()
        reports = [rep]
        start = starting_set(train, cfg)  # None for noise init: the random-real baseline is the reference
        if start is not None:
            srep = evaluate(start, test, protocol=proto, seeds=args.eval_seeds, device=device,
                            progress=None if not args.json else False)
            out["start"] = srep.to_dict()
            reports.append(srep)
            warning = start_warning("the condensed set", rep.mean, srep.mean, cfg.init)
            if warning:
                out["warnings"] = [warning]
                print(warning, file=sys.stderr)
        text.append(format_reports(reports, args.dataset.split(":", 1)[0]))
    emit(args, out, "\n".join(text))
    return 0

