"""`simplebits evaluate FILE_OR_DATASET --test DATASET`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data import is_dataset_spec, load_dataset
from ..errors import BadInputError
from ..train import EvalReport, evaluate, evaluate_real_subset, get_protocol, list_protocols
from ..train.published import published_random
from .common import add_data_root, add_import_options, add_json, emit, load_input, looks_like_file, table


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available; default auto)")


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BadInputError(f"--device {name}: no CUDA device is available here; use --device cpu")
    return name


def register(sub: argparse._SubParsersAction) -> None:
    protos = "; ".join(f"{p.name}: {p.description}" for p in list_protocols())
    p = sub.add_parser(
        "evaluate", help="train fresh networks on a training set and report test accuracy (mean ± std)",
        description="Train one fresh network per seed on FILE_OR_DATASET and test it. FILE_OR_DATASET is a "
                    "condensed-set file (ours or another tool's) or a data set spec; with --ipc, random real "
                    "subsets of that size are drawn (a new one per seed). A reduced set is always reported next "
                    f"to the random-real baseline at the same IPC under the same protocol. Protocols: {protos}.",
    )
    p.add_argument("train", metavar="FILE_OR_DATASET")
    p.add_argument("--test", default=None, metavar="DATASET",
                   help="test set spec (default: the training source's test split, e.g. fashion-mnist:test)")
    p.add_argument("--protocol", default="quick", choices=[q.name for q in list_protocols()],
                   help="evaluation protocol (default quick)")
    p.add_argument("--seeds", type=int, default=3, help="number of fresh networks (seeds 0..N-1; default 3)")
    p.add_argument("--ipc", type=int, default=None, help="evaluate random real subsets of this many images per class")
    p.add_argument("--real", default=None, metavar="DATASET",
                   help="real training set for the baseline of a condensed file (default: its recorded source; "
                        "its test split is the default --test)")
    p.add_argument("--no-baseline", action="store_true", help="skip the random-real baseline")
    add_compile_option(p)
    add_device(p)
    add_data_root(p)
    add_import_options(p)
    add_json(p)
    p.set_defaults(func=run)


def add_compile_option(p: argparse.ArgumentParser) -> None:
    """--compile for the training step of an evaluation (off by default: it does not pay on a CPU)."""
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step, once for all networks (off by default: on a 2-core "
                        "CPU a first compile costs tens of seconds; it can pay for long evaluations, IPC >= 10 "
                        "with several seeds; see docs/evaluate.md)")


def compile_note(args: argparse.Namespace) -> None:
    if args.compile:
        print("note: compiling the training step once for all networks (tens of seconds when this machine's "
              "compile cache is empty)", file=sys.stderr)


def recorded_source(ds) -> str | None:
    """The real data set a loaded file was made from, when its metadata names one (a file path
    recorded by an older version, or no record at all, gives None)."""
    spec = ds.meta.get("source_dataset") or (ds.meta.get("condensed") or {}).get("source")
    return str(spec) if spec and is_dataset_spec(str(spec)) else None


def missing_source_message(arg: str, ds) -> str:
    """One line for a file whose real data set is unknown: what is recorded, and the two fixes."""
    spec = ds.meta.get("source_dataset") or (ds.meta.get("condensed") or {}).get("source")
    if spec:
        what = "a file" if ("/" in str(spec) or "\\" in str(spec) or Path(str(spec)).suffix) else "an unknown name"
        return (f"the recorded source of {arg} is {what} ({spec}), not a data set: pass --real DATASET "
                "(e.g. fashion-mnist) for the random-real baseline, or --no-baseline")
    why = (ds.meta.get("inferred") or {}).get("how")
    return (f"{arg} does not record the data set it was made from" + (f" (not inferred: {why})" if why else "")
            + ": pass --real DATASET (e.g. fashion-mnist) for the random-real baseline, or --no-baseline")


def _default_test(spec: str | None) -> str | None:
    if not spec:
        return None
    name = spec.split(":", 1)[0]
    if name in ("npz", "image-folder"):
        return None
    return f"{name}:test"


def format_reports(reports: list[EvalReport], source: str) -> str:
    rows = []
    for r in reports:
        rows.append([r.train, r.ipc if r.ipc is not None else "-", r.n_train, r.protocol, r.summary(),
                     published_random(source, r.ipc) if r.train.startswith("random-real") or r.ipc is None else "",
                     f"{r.seconds:.0f}s"])
        if r.baseline is not None:
            b = r.baseline
            rows.append([f"  baseline {b.train}", b.ipc, b.n_train, b.protocol, b.summary(),
                         published_random(source, b.ipc), f"{b.seconds:.0f}s"])
    return table(["training set", "ipc", "n", "protocol", "test acc % (mean ± std)", "published (DC)", "time"], rows)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    proto = get_protocol(args.protocol)
    is_file = looks_like_file(args.train)
    if is_file and args.ipc is not None:
        raise BadInputError("--ipc draws random real subsets of a data set; it does not apply to a file")
    train = load_input(args.train, args, split="train")
    source_spec = recorded_source(train) if is_file else args.train
    real_spec = args.real or (source_spec if is_file else None)
    if is_file and args.ipc is None and not args.no_baseline and real_spec is None:
        raise BadInputError(missing_source_message(args.train, train))
    test_spec = args.test or _default_test(source_spec or args.real)
    if test_spec is None:
        raise BadInputError(f"cannot tell the test set for {args.train!r}; pass --test DATASET")
    test = load_dataset(test_spec, split="test", root=args.data_root)
    source_name = (source_spec or args.real or "").split(":", 1)[0]
    compile_note(args)
    if args.ipc is not None:
        report = evaluate_real_subset(train, test, ipc=args.ipc, protocol=proto, seeds=args.seeds, device=device,
                                      compile=args.compile)
    else:
        baseline_from = None
        if is_file and not args.no_baseline:
            baseline_from = load_dataset(real_spec, split="train", root=args.data_root)
        report = evaluate(train, test, protocol=proto, seeds=args.seeds, baseline_from=baseline_from, device=device,
                          compile=args.compile)
    doc, text = report.to_dict(), format_reports([report], source_name)
    if is_file and train.meta.get("format_in"):  # another tool's file, read directly: say what was inferred
        from .convert import describe_import

        lo, hi = train.value_range()
        note = describe_import({**train.meta, "value_range": [lo, hi]}, fix="--real DATASET")
        doc["import"] = {k: train.meta.get(k) for k in ("format_in", "normalization", "inferred", "range",
                                                         "out_of_range_fraction", "clamped_fraction")}
        text = f"{args.train}: {note}\n{text}" if note else text
    emit(args, doc, text)
    return 0
