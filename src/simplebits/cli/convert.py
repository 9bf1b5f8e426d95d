"""`simplebits convert FILE --out FILE.safetensors`."""

from __future__ import annotations

import argparse

from ..data.condensed import import_condensed, save_condensed
from ..errors import BadInputError
from .common import add_import_options, add_json, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert a condensed set from DC/DSA/DM, MTT or IDC into simplebits' format",
        description="Read a condensed set written by another tool (DC/DSA/DM res_*.pt, MTT images_best.pt, "
                    "IDC/YOCO data.pt; loaded with weights_only=True, nothing unpickled), denormalise it to "
                    "[0,1] and write a simplebits condensed-set file (safetensors + JSON metadata).",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--out", required=True, metavar="FILE.safetensors", help="output file (written atomically)")
    p.add_argument("--source", default=None, metavar="DATASET",
                   help="data set the set was condensed from (e.g. fashion-mnist:train), kept in the metadata")
    p.add_argument("--method", default=None, help="method name to record (default: the input format)")
    add_import_options(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.out.endswith(".safetensors"):
        raise BadInputError(f"--out must end in .safetensors, got {args.out!r}")
    ds = import_condensed(args.file, format=args.format, normalization=args.normalization, factor=args.factor,
                          labels_path=args.labels, experiment=args.experiment, source=args.source)
    meta = save_condensed(
        args.out, ds, method=args.method or ds.meta.get("format_in", "unknown"), source=args.source,
        factor=args.factor, normalization=ds.meta.get("normalization"),
        extra={"imported_from": ds.meta.get("imported_from"), "clamped_fraction": ds.meta.get("clamped_fraction")},
    )
    text = (f"wrote {args.out}: {len(ds)} images {tuple(ds.shape)}, {ds.num_classes} classes, "
            f"ipc {meta['ipc']}, factor {meta['factor']}, from {meta['imported_from']} "
            f"(normalization {meta['normalization']}, {100 * (meta['clamped_fraction'] or 0):.2f}% values clamped)")
    emit(args, {"out": args.out, **meta}, text)
    return 0
