"""`simplebits evaluate FILE_OR_DATASET --test DATASET`."""

from __future__ import annotations

import argparse

from ..data import load_dataset
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
                   help="real training set for the baseline of a condensed file (default: its recorded source)")
    p.add_argument("--no-baseline", action="store_true", help="skip the random-real baseline")
    add_device(p)
    add_data_root(p)
    add_import_options(p)
    add_json(p)
    p.set_defaults(func=run)


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
    source_spec = train.meta.get("source_dataset") if is_file else args.train
    test_spec = args.test or _default_test(source_spec)
    if test_spec is None:
        raise BadInputError(f"cannot tell the test set for {args.train!r}; pass --test DATASET")
    test = load_dataset(test_spec, split="test", root=args.data_root)
    source_name = (source_spec or "").split(":", 1)[0]
    if args.ipc is not None:
        report = evaluate_real_subset(train, test, ipc=args.ipc, protocol=proto, seeds=args.seeds, device=device)
    else:
        baseline_from = None
        real_spec = args.real or (source_spec if is_file else None)
        if is_file and not args.no_baseline:
            if real_spec is None:
                raise BadInputError(
                    f"{args.train} does not record the data set it was made from; pass --real DATASET for the "
                    "random-real baseline, or --no-baseline"
                )
            baseline_from = load_dataset(real_spec, split="train", root=args.data_root)
        report = evaluate(train, test, protocol=proto, seeds=args.seeds, baseline_from=baseline_from, device=device)
    emit(args, report.to_dict(), format_reports([report], source_name))
    return 0
