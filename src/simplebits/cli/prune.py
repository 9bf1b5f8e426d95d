"""`simplebits prune FILE --ipc N --out FILE` and `simplebits prune-table FILE --ipc 1,2,5`:
prune one condensed set to a smaller size (YOCO and the baseline rules), and compare the rules.

The flags are generated from the settings' declarations (:class:`PruneOptions`,
:class:`TableOptions`, :class:`~simplebits.prune.DynamicsConfig`) and the rules' help from the
rule registry, so a new rule or setting needs no edit here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..data.inputs import default_test_spec, load_images
from ..errors import BadInputError
from ..prune import DynamicsConfig, get_rule, list_rules, prune_set, rule_names
from ..prune.table import parse_rule, prune_table
from ..settings import overrides, setting
from ..train import list_protocols
from .common import (add_data_root, add_deprecated, add_device, add_force, add_import_options, add_json, add_net,
                     add_options, add_out, check_out, emit, load_input)
from .evaluate import format_reports, load_real, recorded_source, resolve_device

_DYNAMICS_FILE = ("dynamics file: reused when it exists (after checking it matches the set and settings), else "
                  "recorded and saved there")


@dataclass(frozen=True)
class _SharedOptions:
    """The settings both commands take."""

    test: str | None = setting(None, "test set: a data set spec, a file or a folder", metavar="DATASET",
                               default_text="the source data set's test split")
    beta: float | None = setting(None, "ccs hard cutoff fraction", default_text="by pruning rate")
    seed: int = setting(0, "base seed of the dynamics runs and of the selections", metavar="S")


@dataclass(frozen=True)
class PruneOptions(_SharedOptions):
    """What `simplebits prune` asks beyond the dynamics' settings."""

    rule: str = setting("yoco", "pruning rule, one of those listed above", metavar="RULE")
    logits: bool = setting(False, "score lbpe/el2n/aum on logits instead of softmax outputs (as YOCO's name "
                                  "reads; off follows its code)")
    run: int | None = setting(None, "use one dynamics run's scores", metavar="R", default_text="average over runs")
    resume: bool = setting(False, "continue recording dynamics from the --dynamics file")
    seeds: int = setting(3, "networks trained by --evaluate, seeds S..S+N-1 with --seed S", flag="--seeds",
                              metavar="N")
    real: str | None = setting(None, "real training set for --evaluate's random-real baseline at IPC_T: a "
                                           "data set, or your own .npz or image folder",
                               metavar="DATASET",
                               default_text="the source data set's train split, when the file records it")
    dynamics: str | None = setting(None, _DYNAMICS_FILE, metavar="FILE", default_text="OUT.dynamics.safetensors")


@dataclass(frozen=True)
class TableOptions(_SharedOptions):
    """What `simplebits prune-table` asks beyond the dynamics' settings."""

    from_sweep: str | None = setting(None, "instead of computing: the table of a `simplebits sweep` folder whose "
                                           "cells pruned (every cell's accuracies at a rule and IPC_T pooled)",
                                     metavar="DIR")
    ipc: list[int] = setting([1, 2, 5], "target IPCs, comma-separated", default_text="1,2,5")
    seeds: int = setting(3, "networks per pruned set N (run r's networks use seeds r*N..r*N+N-1, as the "
                                 "whole set's use 0..R*N-1, whatever --seed is)", flag="--seeds", metavar="N")
    eval_protocol: str = setting("quick", "evaluation protocol", flag="--protocol",
                                 choices=lambda: [p.name for p in list_protocols()])
    resume: bool = setting(False, "skip the cells already in --out")
    markdown: bool = setting(False, "print the tables as Markdown")
    dynamics: str | None = setting(None, _DYNAMICS_FILE, metavar="FILE")


def _add_dynamics_options(p: argparse.ArgumentParser, options: type) -> None:
    g = p.add_argument_group("training dynamics (recorded once, reused for every rule)")
    add_options(g, DynamicsConfig)
    add_options(g, options, only=["dynamics"])


def _add_common(p: argparse.ArgumentParser, options: type) -> None:
    """The flags both commands end with: the dynamics, reading other tools' files, device, data, output."""
    _add_dynamics_options(p, options)
    add_import_options(p)
    add_device(p)
    add_data_root(p)
    add_json(p)


def _config(args: argparse.Namespace) -> DynamicsConfig:
    """The dynamics' settings as given (``--seed`` is theirs too)."""
    return DynamicsConfig(**overrides(args, DynamicsConfig))


def register(sub: argparse._SubParsersAction) -> None:
    _register_prune(sub)
    _register_table(sub)


def _register_prune(sub: argparse._SubParsersAction) -> None:
    rules = "; ".join(f"{r.name}: {r.description}" for r in list_rules())  # read now: registered rules included
    p = sub.add_parser(
        "prune", help="prune a condensed set to fewer images per class (YOCO or a baseline rule)",
        description="Make a smaller set from one condensed set without condensing again (YOCO: keep the "
                    "samples with the lowest LBPE score, the same number from every class). Training dynamics "
                    "(R fresh networks trained on the set with DSA + CutMix) are recorded for only as many "
                    "epochs as the rule needs and saved beside the output for reuse. Multi-formation sets are "
                    "pruned as decoded images. The output is a condensed-set file whose metadata names the "
                    "parent, the rule, IPC_F -> IPC_T and the kept indices. Rules: " + rules,
    )
    p.add_argument("file", metavar="FILE", help="condensed set (simplebits .safetensors, IDC/DREAM data.pt, "
                                                  "DC/DSA res_*.pt, MTT images_best.pt, KIP .npz with --format kip)")
    p.add_argument("--ipc", type=int, required=True, help="target images per class IPC_T (< the set's IPC_F)")
    add_out(p, "FILE.safetensors")
    add_force(p)
    add_options(p, PruneOptions, only=["rule"])
    bal = p.add_mutually_exclusive_group()
    bal.add_argument("--balanced", dest="balanced", action="store_true", default=None,
                     help="keep IPC_T*f^2 decoded images of every class (yoco's and random's default)")
    bal.add_argument("--imbalanced", dest="balanced", action="store_false",
                     help="choose over the whole set (the baselines' default)")
    end = p.add_mutually_exclusive_group()
    end.add_argument("--easy", dest="keep", action="store_const", const="easy", default=None,
                     help="keep the easiest samples (yoco's default)")
    end.add_argument("--hard", dest="keep", action="store_const", const="hard",
                     help="keep the hardest samples (el2n, aum, forgetting, entropy default)")
    add_options(p, PruneOptions, skip=["rule", "dynamics"])
    add_deprecated(p, "--eval-seeds", "--seeds", dest="seeds", type=int)
    p.add_argument("--evaluate", nargs="?", const="quick", default=None, metavar="PROTOCOL",
                   help="train fresh networks on the pruned set and test them (default protocol quick)")
    _add_common(p, PruneOptions)
    p.set_defaults(func=run)


def _register_table(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "prune-table", help="compare pruning rules on one condensed set (appendix Table 2 shape)",
        description="For every rule and target IPC: prune with each of R dynamics runs, train N fresh networks on "
                    "each pruned set (per evaluation architecture) and test them; prints mean ± std over the R x N "
                    "accuracies and saves every cell as it finishes (--resume continues). Rules may carry "
                    "ablation modifiers: yoco:imbalanced, yoco:hard, el2n:balanced, random:imbalanced, yoco:logits.",
    )
    t.add_argument("file", metavar="FILE", nargs="?", help="condensed set (as for `simplebits prune`)")
    t.add_argument("--rules", default=None, metavar="RULE[,...]",
                   help=f"rules to compare, comma-separated (default: every rule, {','.join(rule_names())})")
    add_net(t, default="convnet", help="evaluation networks, comma-separated (e.g. convnet,resnet10-ap)")
    add_deprecated(t, "--nets", "--net", dest="net")
    add_options(t, TableOptions, skip=["dynamics"])
    add_deprecated(t, "--eval-seeds", "--seeds", dest="seeds", type=int)
    add_out(t, "RESULTS.json", "results file (every finished cell)", required=False)
    add_force(t)
    _add_common(t, TableOptions)
    t.set_defaults(func=run_table)


def _test_set(args: argparse.Namespace, ds) -> object:
    spec = args.test or default_test_spec(recorded_source(ds))
    if spec is None:
        raise BadInputError(f"cannot tell the test set for {args.file}: it records no real data set it was made "
                            "from; pass --test DATASET (e.g. fashion-mnist:test)")
    return load_images(spec, split="test", root=args.data_root)  # a data set spec, a file or a folder


def _real_train(args: argparse.Namespace, ds) -> object | None:
    """The real training set behind ``ds`` (for the random-real baseline), or None when unknown."""
    spec = args.real or recorded_source(ds)
    if spec is None:
        return None
    return load_real(spec, args.data_root)


def run(args: argparse.Namespace) -> int:
    o = PruneOptions(**overrides(args, PruneOptions))
    device = resolve_device(args.device)
    get_rule(o.rule)  # unknown rule: fail before loading anything
    check_out(args.out, kind="condensed", force=args.force, resume=o.resume)
    ds = load_input(args.file, args)
    dyn_path = o.dynamics or f"{args.out}.dynamics.safetensors"
    test = _test_set(args, ds) if args.evaluate else None
    real = _real_train(args, ds) if args.evaluate else None
    res = prune_set(ds, ipc=args.ipc, rule=o.rule, balanced=args.balanced, keep=args.keep, config=_config(args),
                    dynamics=dyn_path, run=o.run, logits=o.logits, beta=o.beta, seed=o.seed, out=args.out,
                    resume=o.resume, device=device, progress=None if not args.json else False)
    out = res.to_dict()
    if args.out:
        from ..density import record_storage

        out["storage"] = record_storage(args.out, device=device)  # PNG + labels (+ flow), also in the file
    if res.dynamics is not None and Path(dyn_path).exists():
        out["files"]["dynamics"] = dyn_path
    text = _summary(res, ds, out)
    if args.evaluate:
        from ..train import evaluate

        pruned = res.images.with_meta(name=f"{Path(args.out).name} ({res.rule}, ipc {res.ipc_from}->{res.ipc_to})")
        seeds = list(range(o.seed, o.seed + o.seeds))  # the vocabulary's S..S+N-1 (0..N-1 by default, as before)
        rep = evaluate(pruned, test, protocol=args.evaluate, seeds=seeds, baseline_from=real,
                       device=device, progress=None if not args.json else False)
        out["evaluation"] = rep.to_dict()
        if real is None:
            text.append("no random-real baseline: the set records no real data set it came from "
                        "(pass --real DATASET, e.g. fashion-mnist:train)")
        text.append(format_reports([rep], str(ds.meta.get("source_dataset") or "")))
    emit(args, out, "\n".join(text))
    return 0


def _summary(res, ds, out: dict) -> list[str]:
    """The lines `simplebits prune` prints: what was kept, per class, the time and the files."""
    counts = res.images.counts()
    text = [f"pruned {ds.name} with {res.rule} ({'balanced' if res.settings['balanced'] else 'imbalanced'}, "
            f"keep {res.settings['keep']}): IPC {res.ipc_from} -> {res.ipc_to}"
            + (f" (factor {res.factor}: {len(res.indices)} decoded images kept)" if res.factor > 1 else
               f" ({len(res.indices)} images kept)"),
            f"per class: {counts}",
            f"{res.seconds:.1f} s; wrote " + ", ".join(out["files"].values())]
    if "storage" in out:
        from .evaluate import storage_line

        text.append(storage_line(out["storage"]))
    return text


def run_table(args: argparse.Namespace) -> int:
    o = TableOptions(**overrides(args, TableOptions))
    if o.from_sweep:
        from ..pipeline.sweeps import sweep_prune_table

        if args.file:
            raise BadInputError("give either FILE (compute a table) or --from-sweep DIR (read a sweep's), not both")
        tab = sweep_prune_table(o.from_sweep)
        if tab is None:
            raise BadInputError(f"the cells of {o.from_sweep} did not prune (no pruning rows); enable [prune] in "
                                "the sweep config")
        emit(args, tab.to_dict(), tab.markdown() if o.markdown else tab.format())
        return 0
    if not args.file:
        raise BadInputError("give the condensed set FILE to prune, or --from-sweep DIR")
    device = resolve_device(args.device)
    if args.out:
        check_out(args.out, kind="json:cells,rules,ipcs", force=args.force, resume=o.resume)
    rules = rule_names() if args.rules is None else [r for r in args.rules.split(",") if r.strip()]
    for r in rules:
        parse_rule(r)  # unknown rule: fail before loading anything
    nets = [n for n in args.net.split(",") if n.strip()]
    ds = load_input(args.file, args)
    test = _test_set(args, ds)
    cfg = _config(args)
    tab = prune_table(ds, test, ipcs=o.ipc, rules=rules, nets=nets, runs=cfg.runs, eval_seeds=o.seeds,
                      protocol=o.eval_protocol, config=cfg, dynamics=o.dynamics, beta=o.beta, seed=o.seed,
                      out=args.out, resume=o.resume, device=device, progress=None if not args.json else False)
    text = tab.markdown() if o.markdown else tab.format()
    if args.out:
        text += f"\nwrote {args.out}"
    emit(args, tab.to_dict(), text)
    return 0
