"""`simplebits bpd INPUT...`: bits per dimension of images under a density model / codec."""

from __future__ import annotations

import argparse
import csv
import io as _io

from ..density import SHIPPED, bits_summary, default_flow, fit_images, load_flow, score_bpd
from ..density.compress import codec_bpd
from ..errors import BadInputError
from ..io import atomic_write_text
from .common import add_data_root, add_import_options, add_json, emit, load_input, table
from .evaluate import add_device, resolve_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bpd", help="bits per dimension of images under a Glow density model (and PNG/JPEG size)",
        description="Score images in bits per dimension: -(log p(x) - D ln 256) / (D ln 2) under a Glow "
                    "(deterministic midpoint dequantisation), and optionally the compressed size 8*bytes/D. "
                    "INPUT: image files, a folder, an .npz, a condensed-set file or a data set spec "
                    "(fashion-mnist:test, mnist-5k). 28x28 images are zero-padded to 32x32 for the shipped "
                    f"models ({', '.join(SHIPPED)}).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--model", default="auto",
                   help="density model: gray32, rgb32, a file from train-flow, 'auto' (by channel count) or 'none'")
    p.add_argument("--codec", choices=["png", "jpeg"], default=None, help="also report compressed-size bpd")
    p.add_argument("--quality", type=int, default=75, help="JPEG quality for --codec jpeg (default 75)")
    p.add_argument("--subtract-overhead", action="store_true", help="subtract the codec's container bytes")
    p.add_argument("--split", default="test", help="split for data set specs that name none (default test)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N images of each input")
    p.add_argument("--resize", type=int, default=None, metavar="N", help="resize image files/folders to NxN")
    p.add_argument("--gray-to-rgb", action="store_true", help="repeat gray images to 3 channels (for rgb32)")
    p.add_argument("--per-image", default=None, metavar="CSV", help="write one row per image to this CSV file")
    add_device(p)
    add_data_root(p)
    add_import_options(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if args.limit is not None and args.limit < 1:
        raise BadInputError(f"--limit must be >= 1, got {args.limit}")
    if args.model == "none" and not args.codec:
        raise BadInputError("--model none leaves nothing to compute; add --codec png or --codec jpeg")
    models: dict[str, object] = {}
    results, rows, per_image, notes = [], [], [], []
    for arg in args.inputs:
        ds = load_input(arg, args, split=args.split, size=args.resize)
        clamped = None
        if ds.out_of_range_fraction() > 0.0:  # an unbounded set: bits are defined for pixels in [0, 1] only
            ds = ds.clamped()
            clamped = ds.meta["clamped_fraction"]
            notes.append(f"note: {arg} holds values outside [0, 1] (an unbounded set); its clamped view was scored "
                         f"({100 * clamped:.2f}% of values clamped)")
        x = ds.images[: args.limit] if args.limit else ds.images
        res: dict[str, object] = {"input": arg, "n": int(x.shape[0]), "shape": list(x.shape[1:])}
        if clamped is not None:
            res["clamped_fraction"] = clamped
        vals = {}
        if args.model != "none":
            channels = 3 if args.gray_to_rgb else x.shape[1]
            name = args.model if args.model != "auto" else default_flow(channels)
            if name not in models:
                models[name] = load_flow(name, device=device)
            model = models[name]
            xf = fit_images(x, model, gray_to_rgb=args.gray_to_rgb)
            vals["flow"] = score_bpd(model, xf, progress=None)
            res["model"] = name
            res["bpd"] = bits_summary(vals["flow"])
        if args.codec:
            kw = {"quality": args.quality} if args.codec == "jpeg" else {}
            vals["codec"] = codec_bpd(x, args.codec, subtract_overhead=args.subtract_overhead, **kw).float().cpu()
            res["codec"] = args.codec
            res["codec_bpd"] = bits_summary(vals["codec"])
        results.append(res)
        for kind, key in (("flow", "bpd"), ("codec", "codec_bpd")):
            if kind in vals:
                s = res[key]
                label = res.get("model") if kind == "flow" else f"{args.codec}" + (
                    f" q{args.quality}" if args.codec == "jpeg" else "")
                rows.append([arg, label, s["count"], f"{s['mean']:.3f}", f"{s['median']:.3f}", f"{s['std']:.3f}"])
        for i in range(x.shape[0]):
            per_image.append([arg, i, int(ds.labels[i])] + [f"{float(vals[k][i]):.5f}" for k in ("flow", "codec") if k in vals])
    if args.per_image:
        buf = _io.StringIO()
        w = csv.writer(buf)
        w.writerow(["input", "index", "label"] + [k for k in ("bpd", "codec_bpd") if
                                                  (k == "bpd" and args.model != "none") or (k == "codec_bpd" and args.codec)])
        w.writerows(per_image)
        atomic_write_text(args.per_image, buf.getvalue())
    emit(args, results, "\n".join([table(["input", "model", "count", "mean bpd", "median", "std"], rows), *notes]))
    return 0
