"""`simplebits convert FILE --out FILE.safetensors`."""

from __future__ import annotations

import argparse

from ..data import is_dataset_spec
from ..data.condensed import import_condensed, save_condensed
from ..errors import BadInputError
from .common import add_force, add_import_options, add_json, add_out, check_out, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert a condensed set from DC/DSA/DM, MTT or IDC into simplebits' format",
        description="Read a condensed set written by another tool (DC/DSA/DM res_*.pt, MTT images_best.pt, "
                    "IDC/YOCO data.pt; loaded with weights_only=True, nothing unpickled), undo its mean/std "
                    "normalisation and write a simplebits condensed-set file (safetensors + JSON metadata). "
                    "The data set and its normalisation are inferred from the file's name and contents when "
                    "they are not given (res_DC_FashionMNIST_ConvNet_1ipc.pt -> fashion-mnist), and the "
                    "command says what it inferred. Values are kept as the tool made them, also outside [0, 1] "
                    "(DC/DSA/DM never clamp; the file is marked range: unbounded); --clamp cuts them to [0, 1].",
    )
    p.add_argument("file", metavar="FILE")
    add_out(p, "FILE.safetensors", "output file (written atomically)")
    add_force(p)
    p.add_argument("--source", default=None, metavar="DATASET",
                   help="real data set the set was condensed from (e.g. fashion-mnist:train), the random-real "
                        "baseline's data (default: inferred from the file, when it can be)")
    p.add_argument("--method", default=None, help="method name to record (default: the input format)")
    add_import_options(p)
    add_json(p)
    p.set_defaults(func=run)


def describe_import(meta: dict, *, fix: str = "--source DATASET") -> str:
    """One line saying what was inferred and what became of values outside [0, 1]; ``fix`` is the
    flag that supplies the data set when it could not be inferred."""
    parts = []
    inf = meta.get("inferred") or {}
    if inf:
        if inf.get("dataset"):
            said = [f"data set {inf['dataset']} ({inf['how']})"]
            if inf.get("normalization"):
                said.append(f"normalization {inf['normalization']}")
            if inf.get("source"):
                said.append(f"source {inf['source']}")
            parts.append("inferred " + ", ".join(said))
        else:
            parts.append(f"data set not inferred: {inf['how']}; pass {fix} for the random-real baseline")
    if meta.get("soft_labels_dropped"):
        parts.append("its stored soft labels were replaced by their argmax (hard labels); to evaluate with soft "
                     "labels, use evaluate --soft-labels kl with the teacher they came from (--teacher FILE)")
    if meta.get("clamped_fraction") is not None:
        parts.append(f"{100 * meta['clamped_fraction']:.2f}% of values clamped to [0, 1] (--clamp)")
    elif meta.get("range") == "unbounded" and meta.get("value_range"):
        lo, hi = meta["value_range"]
        parts.append(f"values kept as the tool made them: range [{lo:.3g}, {hi:.3g}], "
                     f"{100 * meta['out_of_range_fraction']:.2f}% outside [0, 1] (stored unbounded; --clamp to cut)")
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    if not args.out.endswith(".safetensors"):
        raise BadInputError(f"--out must end in .safetensors, got {args.out!r}")
    check_out(args.out, kind="condensed", force=args.force)
    if args.source is not None and not is_dataset_spec(args.source):
        raise BadInputError(f"--source takes a data set spec (e.g. fashion-mnist:train; `simplebits data list`), "
                            f"got {args.source!r}")
    ds = import_condensed(args.file, format=args.format, normalization=args.normalization, factor=args.factor,
                          labels_path=args.labels, experiment=args.experiment, source=args.source,
                          clamp=args.clamp)
    extra = {"imported_from": ds.meta.get("imported_from")}
    for key in ("clamped_fraction", "inferred", "soft_labels_dropped"):
        if ds.meta.get(key) is not None:
            extra[key] = ds.meta[key]
    meta = save_condensed(
        args.out, ds, method=args.method or ds.meta.get("format_in", "unknown"),
        source=ds.meta.get("source_dataset"), factor=args.factor, normalization=ds.meta.get("normalization"),
        extra=extra,
    )
    text = (f"wrote {args.out}: {len(ds)} images {tuple(ds.shape)}, {ds.num_classes} classes, "
            f"ipc {meta['ipc']}, factor {meta['factor']}, from {meta['imported_from']} "
            f"(normalization {meta['normalization']}, source {meta['source'] or 'unknown'})")
    note = describe_import(meta)
    emit(args, {"out": args.out, **meta}, text + ("\n" + note if note else ""))
    return 0
