"""`simplebits bpd INPUT...`: bits per dimension of images under a density model / codec."""

from __future__ import annotations

import argparse
import csv
import io as _io
from dataclasses import dataclass

from ..density import DEFAULT_DRAWS, ESCAPE, SHIPPED, bits_summary, default_flow, load_flow, measure_bits
from ..density.compress import codec_bpd
from ..density.store import card_note
from ..errors import BadInputError
from ..io import atomic_write_text
from ..settings import setting
from .common import (add_data_root, add_deprecated, add_device, add_force, add_import_options, add_json, add_options,
                     check_out, emit, load_input, table)
from .evaluate import resolve_device


#: JPEG quality of ``--codec jpeg`` when ``--quality`` is not given
JPEG_QUALITY = 75


@dataclass(frozen=True)
class BpdOptions:
    """How `simplebits bpd` scores its inputs."""

    density: str = setting("auto", "density model: gray32, rgb32, a file from train-flow, 'auto' (by channel count) "
                                   "or 'none'", metavar="MODEL")
    codec: str | None = setting(None, "also report compressed-size bpd", choices=("png", "jpeg"))
    quality: int | None = setting(None, "JPEG quality for --codec jpeg", default_text="75")
    subtract_overhead: bool = setting(False, "subtract the codec's container bytes")
    split: str = setting("test", "split for data set specs that name none")
    max_images: int | None = setting(None, "score only the first N images of each input", metavar="N")
    resize: int | None = setting(None, "resize image files/folders to NxN", metavar="N")
    gray_to_rgb: bool = setting(False, "repeat gray images to 3 channels (for rgb32)")
    dequantize: str = setting("bound", "bound: the dequantisation bound, a code length; midpoint: the bin-centre "
                                       "point estimate, one pass, not a code length (can be negative)",
                              choices=("bound", "midpoint"))
    draws: int = setting(DEFAULT_DRAWS, f"noise draws for the bound ({DEFAULT_DRAWS}: per-image std < 0.01 bpd on "
                                        "95% of Fashion-MNIST images)")
    seed: int = setting(0, "seed of the bound's noise draws", metavar="S")
    flow_only: bool = setting(False, "score the flow alone, without the raw 8-bit escape (figures can then exceed "
                                     "8 bpd by any amount where the model puts almost no mass)")
    per_image: str | None = setting(None, "write one row per image to this CSV file", metavar="CSV")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bpd", help="bits per dimension of images under a Glow density model (and PNG/JPEG size)",
        description="Score images in bits per dimension under a Glow: by default the uniform-dequantisation "
                    "bound (E_u[-log p(x+u)] + D ln 256) / (D ln 2), a code length (never negative in "
                    f"expectation), from {DEFAULT_DRAWS} seeded draws (the same seed, the same bits); optionally the "
                    "compressed size 8*bytes/D of the images as given. INPUT: image files, a folder, an .npz, a "
                    "condensed-set file or a data set spec (fashion-mnist:test, mnist-5k). Smaller images are "
                    f"zero-padded to the model's 32x32 (shipped models: {', '.join(SHIPPED)}): 'bpd' is per model "
                    "dimension (the paper's convention), 'native bpd' the same bits per dimension of the images "
                    "as given. The code may store the model's input raw behind a 10-bit flag, so no 'bpd' exceeds "
                    "about 8 (images where the model puts almost no mass are counted in a note; the native "
                    "figure of a padded image can, as the raw input includes the padding; --flow-only scores "
                    "the flow alone).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    add_options(p, BpdOptions)
    add_deprecated(p, "--model", "--density", dest="density")
    add_deprecated(p, "--limit", "--max-images", dest="max_images", type=int)
    add_force(p, "--per-image CSV")
    add_device(p)
    add_data_root(p)
    add_import_options(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if args.max_images is not None and args.max_images < 1:
        raise BadInputError(f"--max-images must be >= 1, got {args.max_images}")
    if args.draws < 1:
        raise BadInputError(f"--draws must be >= 1, got {args.draws}")
    if args.density == "none" and not args.codec:
        raise BadInputError("--density none leaves nothing to compute; add --codec png or --codec jpeg")
    # codec options without their codec would be ignored in silence: the figure asked for would be missing
    if args.quality is not None and args.codec != "jpeg":
        raise BadInputError(f"--quality sets the JPEG quality of --codec jpeg; add --codec jpeg (got "
                            f"{'--codec ' + args.codec if args.codec else 'no --codec'}) or leave --quality out")
    if args.subtract_overhead and not args.codec:
        raise BadInputError("--subtract-overhead applies to a --codec figure; add --codec png or --codec jpeg, or "
                            "leave it out")
    if args.quality is None:
        args.quality = JPEG_QUALITY
    if args.per_image:
        check_out(args.per_image, kind="csv", csv_header="input,index,label", force=args.force, option="--per-image")
    models: dict[str, object] = {}
    results, rows, per_image, notes = [], [], [], []
    for arg in args.inputs:
        ds = load_input(arg, args, split=args.split, size=args.resize)
        if args.resize is not None and tuple(ds.shape[1:]) != (args.resize, args.resize):
            # an array file or a data set is read as stored (image files say themselves when they are resized)
            notes.append(f"note: {arg}: --resize applies to image files and folders; these "
                         f"{ds.shape[1]}x{ds.shape[2]} images were scored as stored")
        clamped = None
        if ds.out_of_range_fraction() > 0.0:  # an unbounded set: bits are defined for pixels in [0, 1] only
            ds = ds.clamped()
            clamped = ds.meta["clamped_fraction"]
            notes.append(f"note: {arg} holds values outside [0, 1] (an unbounded set); its clamped view was scored "
                         f"({100 * clamped:.2f}% of values clamped)")
        x = ds.images[: args.max_images] if args.max_images else ds.images
        res: dict[str, object] = {"input": arg, "n": int(x.shape[0]), "shape": list(x.shape[1:])}
        if clamped is not None:
            res["clamped_fraction"] = clamped
        vals = {}
        if args.density != "none":
            channels = 3 if args.gray_to_rgb else x.shape[1]
            name = args.density if args.density != "auto" else default_flow(channels)
            if name not in models:
                models[name] = load_flow(name, device=device)
                missing = card_note(models[name])
                if missing:
                    notes.append(missing)
            bits = measure_bits(models[name], x, gray_to_rgb=args.gray_to_rgb, dequantize=args.dequantize,
                                draws=args.draws, seed=args.seed, progress=None,
                                escape=0.0 if args.flow_only else ESCAPE)
            vals["flow"], vals["native"] = bits.bpd, bits.bpd_native
            res["model"] = name
            res.update(bits.summary())
            for note in (bits.transform_note(), bits.escape_note()):
                if note:
                    notes.append(f"note: {arg}: {note}")
        if args.codec:
            kw = {"quality": args.quality} if args.codec == "jpeg" else {}
            vals["codec"] = codec_bpd(x, args.codec, subtract_overhead=args.subtract_overhead, **kw).float().cpu()
            res["codec"] = args.codec
            res["codec_bpd"] = bits_summary(vals["codec"])
            res["codec_unit"] = "bits per dimension of the images as given"
        results.append(res)
        for kind, key in (("flow", "bpd"), ("codec", "codec_bpd")):
            if kind in vals:
                s = res[key]
                if kind == "flow":
                    label = f"{res['model']} ({'bound' if args.dequantize == 'bound' else 'midpoint estimate'})"
                    native = f"{res['bpd_native']['mean']:.3f}"
                else:
                    label = f"{args.codec}" + (f" q{args.quality}" if args.codec == "jpeg" else "")
                    native = f"{s['mean']:.3f}"
                rows.append([arg, label, s["count"], f"{s['mean']:.3f}", f"{s['median']:.3f}", f"{s['std']:.3f}", native])
        for i in range(x.shape[0]):
            per_image.append([arg, i, int(ds.labels[i])]
                             + [f"{float(vals[k][i]):.5f}" for k in ("flow", "native", "codec") if k in vals])
    if args.per_image:
        buf = _io.StringIO()
        w = csv.writer(buf)
        w.writerow(["input", "index", "label"] + (["bpd", "bpd_native"] if args.density != "none" else [])
                   + (["codec_bpd"] if args.codec else []))
        w.writerows(per_image)
        atomic_write_text(args.per_image, buf.getvalue())
    unit = ("bpd: bits per model dimension; native bpd: bits per dimension of the images as given"
            + ("; codec bpd is computed on the images as given" if args.codec else ""))
    emit(args, results, "\n".join([table(["input", "model", "count", "mean bpd", "median", "std", "native bpd"], rows),
                                   unit, *notes]))
    return 0
