"""`simplebits evaluate FILE_OR_DATASET --test DATASET`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from ..data import is_dataset_spec
from ..data.inputs import default_test_spec, is_condensed_path, load_images
from ..density import storage_bits
from ..errors import BadInputError
from ..runtime import PRECISIONS, bf16_native, resolve_device  # noqa: F401 - the commands import it from here
from ..train import SOFT_LOSSES, EvalReport, evaluate, evaluate_real_subset, get_protocol, list_protocols
from ..settings import setting
from ..train.published import published_random
from .common import (add_data_root, add_device, add_import_options, add_json, add_options, add_seeds, emit, load_input,
                     looks_like_file, seed_list, table)


@dataclass(frozen=True)
class EvaluateOptions:
    """What `simplebits evaluate` trains on and compares with."""

    test: str | None = setting(None, "test set: a data set spec, a file or a folder (default: the training "
                                     "source's test split, e.g. fashion-mnist:test)", metavar="DATASET")
    protocol: str = setting("quick", "evaluation protocol", choices=lambda: [q.name for q in list_protocols()])
    ipc: int | None = setting(None, "evaluate random real subsets of this many images per class (of a data set, or of "
                                     "your own .npz or image folder)", metavar="N")
    real: str | None = setting(None, "real training set for the baseline of a condensed file: a data set, or your own "
                                     ".npz or image folder (default: its recorded source; its test split is the "
                                     "default --test)", metavar="DATASET")
    baseline: bool = setting(True, "report the random-real baseline at the same IPC beside a reduced set")
    compile: bool = setting(False, "torch.compile the training step, once for all networks",
                            default_text="off: on a 2-core CPU a first compile costs tens of seconds; it can pay for "
                                         "long evaluations, IPC >= 10 with several seeds; see docs/evaluate.md")
    precision: str = setting("fp32", "arithmetic of training and testing: fp32; bf16 (autocast: float32 weights, "
                                     "gradients and loss; 1.6-1.9x faster per network where the CPU has AMX/AVX512-BF16, "
                                     "accuracies agree statistically, not bit for bit; docs/evaluate.md); auto (bf16 "
                                     "where the hardware has it, else fp32)", choices=PRECISIONS)


@dataclass(frozen=True)
class ScoreOptions:
    """Soft labels and DD-Ranking's scores (docs/evaluate.md)."""

    soft_labels: str | None = setting(None, "train on a teacher's outputs for every (augmented) batch instead of the "
                                            "hard labels, with loss kl, sce or mse; the random-real baseline gets the "
                                            "same teacher", choices=SOFT_LOSSES, metavar="LOSS")
    temperature: float = setting(1.0, "softmax temperature of kl/sce")
    teacher: str | None = setting(None, "teacher classifier file (simplebits train-classifier); default: a network "
                                        "trained on the whole real training set under the protocol, cached "
                                        "($SIMPLEBITS_CACHE)", metavar="FILE")
    trust_code: bool = setting(False, "allow a TorchScript --teacher: TorchScript files are programs that run when "
                                      "loaded and called, so they are refused unless you trust the file (loaded first "
                                      "in a separate process, stopped after $SIMPLEBITS_TORCHSCRIPT_TIMEOUT s, "
                                      "60 unless set)")
    scores: bool = setting(False, "DD-Ranking's scores of the set: HLR (full data minus set, hard labels), IOR (set "
                                  "minus random real, same evaluation), LRS and ARS; trains the set and random real "
                                  "subsets with and without augmentation, and (once, cached) networks on the whole "
                                  "training set")
    lrs_weight: float = setting(0.5, "LRS weight of IOR", metavar="W")
    ars_weight: float = setting(0.5, "ARS weight of the augmented side", metavar="G")
    cache: str | None = setting(None, "folder for cached full-data networks (default $SIMPLEBITS_CACHE or "
                                      "~/.cache/simplebits)", metavar="DIR")


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
    add_options(p, EvaluateOptions)
    add_seeds(p, count=3, what="number of fresh networks")
    add_options(p.add_argument_group("soft labels and DD-Ranking scores (docs/evaluate.md)"), ScoreOptions)
    add_device(p)
    add_data_root(p)
    add_import_options(p)
    add_json(p)
    p.set_defaults(func=run)


def compile_note(args: argparse.Namespace) -> None:
    if args.compile:
        print("note: compiling the training step once for all networks (tens of seconds when this machine's "
              "compile cache is empty)", file=sys.stderr)


def precision_note(precision: str, device: str) -> None:
    """One line when bf16 was asked for on a device that only emulates it (slower than fp32)."""
    if precision == "bf16" and not bf16_native(device):
        print(f"note: {device} has no native bf16 (AVX512-BF16/AMX on a CPU): --precision bf16 is emulated there and "
              "slower than fp32; --precision auto picks fp32 on such hardware", file=sys.stderr)


def load_real(spec: str, root: str | None):
    """The real training set ``--real`` names: a data set spec, or the user's own images (a folder
    with or without train/ and test/, an ``.npz`` of images and labels), read as :func:`load_images` reads them."""
    if is_condensed_path(spec):
        raise BadInputError(f"--real names the real training images behind the set; {spec} is a condensed-set file: "
                            "give a data set (e.g. fashion-mnist), an .npz of images and labels, or a folder of images")
    return load_images(spec, split="train", root=root)


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
    seeds = seed_list(args)
    proto = get_protocol(args.protocol).with_overrides(precision=args.precision)
    if args.soft_labels:
        proto = proto.with_overrides(labels=args.soft_labels, temperature=args.temperature)
    elif args.teacher:
        raise BadInputError("--teacher labels the training batches only with --soft-labels kl|sce|mse")
    is_file = looks_like_file(args.train)
    if is_file and args.ipc is not None:
        if is_condensed_path(args.train, args.format):
            raise BadInputError(f"--ipc draws random real subsets of a data set; {args.train} is a condensed set: "
                                "evaluate it without --ipc (its random-real baseline is added), or give the real "
                                "data (a data set, an .npz or a folder of images) with --ipc")
        is_file = False  # a user's own real images (.npz, a folder): a data set to draw subsets from
    if args.scores and not args.baseline:
        raise BadInputError("--scores compares the set with random real subsets; drop --no-baseline")
    if args.scores and not is_file and args.ipc is None:
        raise BadInputError("--scores rates a reduced set: pass a condensed-set file, or --ipc N for random real "
                            "subsets of the data set")
    train = load_input(args.train, args, split="train")
    source_spec = recorded_source(train) if is_file else args.train
    real_spec = args.real or (source_spec if is_file else None)
    needs_real = args.scores or (args.soft_labels and not args.teacher)
    if is_file and needs_real and real_spec is None:
        what = ("--scores needs it for the whole-data networks and random real subsets" if args.scores else
                "--soft-labels needs it to train the teacher (or pass --teacher FILE)")
        raise BadInputError(f"{args.train} does not record a data set it was made from, and {what}: "
                            "pass --real DATASET (e.g. fashion-mnist)")
    if is_file and args.ipc is None and args.baseline and real_spec is None:
        raise BadInputError(missing_source_message(args.train, train))
    test_spec = args.test or default_test_spec(source_spec or args.real)
    if test_spec is None:
        raise BadInputError(f"cannot tell the test set for {args.train!r}; pass --test DATASET")
    test = load_images(test_spec, split="test", root=args.data_root)  # a data set spec, a file or a folder
    source_name = (source_spec or args.real or "").split(":", 1)[0]
    compile_note(args)
    precision_note(args.precision, device)
    real = train if not is_file else None
    if is_file and (needs_real or args.baseline):
        real = load_real(real_spec, args.data_root)
    if args.scores:
        return _run_scores(args, train if is_file else real_subset_of(train, args.ipc, seeds[0]), real, test, proto,
                           device, is_file, seeds)
    teacher = _teacher(args, proto, real, test, device)
    if args.ipc is not None:
        report = evaluate_real_subset(train, test, ipc=args.ipc, protocol=proto, seeds=seeds, device=device,
                                      compile=args.compile, teacher=teacher)
        stored = real_subset_of(train, args.ipc, seeds[0])
    else:
        baseline_from = real if is_file and args.baseline else None
        report = evaluate(train, test, protocol=proto, seeds=seeds, baseline_from=baseline_from, device=device,
                          compile=args.compile, teacher=teacher)
        stored = train
    doc, text = report.to_dict(), format_reports([report], source_name)
    doc["storage"] = storage_bits(stored, labels="soft" if teacher is not None else "hard", teacher=teacher)
    text += "\n" + storage_line(doc["storage"], "the first seed's subset" if args.ipc is not None else None)
    if is_file and train.meta.get("format_in"):  # another tool's file, read directly: say what was inferred
        from .convert import describe_import

        lo, hi = train.value_range()
        note = describe_import({**train.meta, "value_range": [lo, hi]}, fix="--real DATASET")
        doc["import"] = {k: train.meta.get(k) for k in ("format_in", "normalization", "inferred", "range",
                                                         "soft_labels_dropped", "out_of_range_fraction",
                                                         "clamped_fraction")}
        text = f"{args.train}: {note}\n{text}" if note else text
    emit(args, doc, text)
    return 0


def real_subset_of(ds, ipc: int, seed: int = 0):
    """The random real subset that ``seed`` (the first seed) of an ``--ipc`` evaluation trains on."""
    from ..data import real_subset
    from ..train import derive_seed

    return real_subset(ds, ipc, seed=derive_seed(seed, "subset"))


def _teacher(args: argparse.Namespace, proto, real, test, device: str):
    """The teacher network for --soft-labels: --teacher FILE, or the cached full-data network."""
    if not proto.soft:
        return None
    if args.teacher:
        from ..train.checkpoint import load_classifier

        model, _ = load_classifier(args.teacher, device=device, trust_code=args.trust_code)
        return model
    from ..train import full_data

    _full_data_note(real, proto, args.cache)
    return full_data(real, test, protocol=proto, seeds=1, device=device, cache=args.cache).teacher(device)


def _full_data_note(real, proto, cache) -> None:
    from ..train import cache_root

    print(f"note: networks trained on all {len(real)} images of {real.name} (full-data accuracy and teacher) "
          f"are read from or saved to {cache_root(cache) / 'full-data'}; the first run trains them "
          f"({proto.total_steps(len(real))} steps each)", file=sys.stderr)


def storage_line(st: dict, which: str | None = None) -> str:
    """One line: what the set costs to store, images + labels = total, in bits."""
    lab = st["labels"]
    flow = "" if st["flow_bits"] is None else f" ({st['flow_bits']:,.0f} as flow code length)"
    what = "hard labels" if lab["kind"] == "hard" else f"soft labels: the teacher's {lab['teacher_parameters']:,} weights"
    line = (f"storage{' of ' + which if which else ''}: {st['n_images']} images {st['png_bits']:,.0f} bits as PNG{flow}"
            f" + {what} {lab['bits']:,.0f} bits = {st['total_bits']:,.0f} bits")
    if st.get("flow_note"):
        line += f"\nnote: {st['flow_note']}"
    return line


def _run_scores(args, train, real, test, proto, device: str, is_file: bool, seeds: list[int]) -> int:
    from ..train import full_data, ranking_scores

    teacher = None
    if proto.soft and args.teacher:
        from ..train.checkpoint import load_classifier

        teacher, _ = load_classifier(args.teacher, device=device, trust_code=args.trust_code)
    _full_data_note(real, proto, args.cache)
    rep = ranking_scores(train, real, test, protocol=proto.with_overrides(labels="hard", temperature=1.0),
                         labels=proto.labels, temperature=proto.temperature, seeds=seeds, teacher=teacher,
                         device=device, cache=args.cache, lrs_weight=args.lrs_weight, ars_weight=args.ars_weight)
    if proto.soft and teacher is None:
        teacher = full_data(real, test, protocol=proto, seeds=rep.seeds, device=device, cache=args.cache).teacher()
    doc = {"scores": rep.to_dict(), "storage": storage_bits(train, labels="soft" if proto.soft else "hard",
                                                            teacher=teacher)}
    emit(args, doc, format_scores(rep) + "\n" + storage_line(doc["storage"], None if is_file else
                                                              f"the set scored (seed {seeds[0]}'s subset)"))
    return 0


_RUN_NAMES = {
    "full_hard": "whole training set, hard labels",
    "set_hard": "set, hard labels",
    "set_any": "set, chosen evaluation",
    "random_any": "random real, chosen evaluation",
    "set_aug": "set, with augmentation",
    "random_aug": "random real, with augmentation",
    "set_no_aug": "set, no augmentation",
    "random_no_aug": "random real, no augmentation",
}


def format_scores(rep) -> str:
    d = rep.to_dict()
    rows = [[_RUN_NAMES[k], f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}"] for k, v in d["accuracies"].items()]
    out = [f"{rep.train}: protocol {rep.protocol}, seeds {rep.seeds}",
           table(["evaluation", "test acc %"], rows), ""]
    sc = d["scores"]
    srows = [["HLR", f"{sc['hlr']['mean']:.2f} ± {sc['hlr']['std']:.2f}", "points, lower is better"],
             ["IOR", f"{sc['ior']['mean']:.2f} ± {sc['ior']['std']:.2f}", "points, higher is better"],
             ["LRS", f"{sc['lrs']['mean']:.2f} ± {sc['lrs']['std']:.2f}", f"0-100 (w = {rep.lrs_weight:g})"],
             ["ARS", f"{sc['ars']['mean']:.2f} ± {sc['ars']['std']:.2f}", f"0-100 (gamma = {rep.ars_weight:g})"]]
    out.append(table(["score", "mean ± std", "unit"], srows))
    return "\n".join(out)
