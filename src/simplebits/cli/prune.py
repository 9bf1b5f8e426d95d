"""`simplebits prune FILE --ipc N --out FILE` and `simplebits prune-table FILE --ipc 1,2,5`:
prune one condensed set to a smaller size (YOCO and the baseline rules), and compare the rules."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data import load_dataset
from ..errors import BadInputError
from ..prune import DynamicsConfig, get_rule, list_rules, prune_set
from ..prune.table import DEFAULT_RULES, parse_rule, prune_table
from ..train import list_protocols
from .common import add_data_root, add_force, add_import_options, add_json, check_out, emit, int_list, load_input
from .evaluate import _default_test, add_device, format_reports, recorded_source, resolve_device

_RULES_HELP = "; ".join(f"{r.name}: {r.description}" for r in list_rules())


def _add_dynamics_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training dynamics (recorded once, reused for every rule)")
    g.add_argument("--runs", type=int, default=3, help="independent dynamics runs R (default 3)")
    g.add_argument("--dynamics", default=None, metavar="FILE",
                   help="dynamics file: reused when it exists (after checking it matches the set and settings), "
                        "else recorded and saved there")
    g.add_argument("--stop-epoch", type=int, default=100,
                   help="LBPE window: the first epochs whose top-k by training accuracy are summed (default 100)")
    g.add_argument("--top-k", type=int, default=10, help="LBPE epochs summed (default 10)")
    g.add_argument("--epochs", type=int, default=None,
                   help="schedule length of the dynamics network (default: the protocol's, 1000 for idc)")
    g.add_argument("--dynamics-protocol", default="idc", choices=[p.name for p in list_protocols()],
                   help="optimiser, schedule and augmentation of the dynamics runs (default idc: DSA + CutMix)")
    g.add_argument("--record", default="train", choices=["train", "clean"],
                   help="outputs recorded: on the augmented training batch (train, as the reference) or on "
                        "clean images after each epoch (clean)")


def _config(args: argparse.Namespace) -> DynamicsConfig:
    return DynamicsConfig(runs=args.runs, protocol=args.dynamics_protocol, epochs=args.epochs,
                          stop_epoch=args.stop_epoch, top_k=args.top_k, record=args.record, seed=args.seed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune", help="prune a condensed set to fewer images per class (YOCO or a baseline rule)",
        description="Make a smaller set from one condensed set without condensing again (YOCO: keep the "
                    "samples with the lowest LBPE score, the same number from every class). Training dynamics "
                    "(R fresh networks trained on the set with DSA + CutMix) are recorded for only as many "
                    "epochs as the rule needs and saved beside the output for reuse. Multi-formation sets are "
                    "pruned as decoded images. The output is a condensed-set file whose metadata names the "
                    "parent, the rule, IPC_F -> IPC_T and the kept indices. Rules: " + _RULES_HELP,
    )
    p.add_argument("file", metavar="FILE", help="condensed set (simplebits .safetensors, IDC/DREAM data.pt, "
                                                  "DC/DSA res_*.pt, MTT images_best.pt, KIP .npz with --format kip)")
    p.add_argument("--ipc", type=int, required=True, help="target images per class IPC_T (< the set's IPC_F)")
    p.add_argument("--out", required=True, metavar="FILE.safetensors")
    add_force(p)
    p.add_argument("--rule", default="yoco", help="yoco (default), random, el2n, aum, forgetting, entropy, ssp, ccs")
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
    p.add_argument("--logits", action="store_true",
                   help="lbpe/el2n/aum on logits instead of softmax outputs (the default follows the reference code)")
    p.add_argument("--beta", type=float, default=None, help="ccs hard cutoff fraction (default by pruning rate)")
    p.add_argument("--run", type=int, default=None,
                   help="use one dynamics run's scores (default: average over runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue recording dynamics from the --dynamics file")
    p.add_argument("--evaluate", nargs="?", const="quick", default=None, metavar="PROTOCOL",
                   help="train fresh networks on the pruned set and test them (default protocol quick)")
    p.add_argument("--eval-seeds", type=int, default=3, help="networks for --evaluate (default 3)")
    p.add_argument("--test", default=None, metavar="DATASET", help="test set (default: the source data set's test split)")
    p.add_argument("--real", default=None, metavar="DATASET",
                   help="real training set for --evaluate's random-real baseline at IPC_T (default: the source "
                        "data set's train split, when the file records it)")
    _add_dynamics_options(p)
    add_import_options(p)
    add_device(p)
    add_data_root(p)
    add_json(p)
    p.set_defaults(func=run)

    t = sub.add_parser(
        "prune-table", help="compare pruning rules on one condensed set (appendix Table 2 shape)",
        description="For every rule and target IPC: prune with each of R dynamics runs, train N fresh networks on "
                    "each pruned set (per evaluation architecture) and test them; prints mean ± std over the R x N "
                    "accuracies and saves every cell as it finishes (--resume continues). Rules may carry "
                    "ablation modifiers: yoco:imbalanced, yoco:hard, el2n:balanced, random:imbalanced, yoco:logits.",
    )
    t.add_argument("file", metavar="FILE", nargs="?", help="condensed set (as for `simplebits prune`)")
    t.add_argument("--from-sweep", default=None, metavar="DIR",
                   help="instead of computing: the table of a `simplebits sweep` folder whose cells pruned "
                        "(every cell's accuracies at a rule and IPC_T pooled)")
    t.add_argument("--ipc", default="1,2,5", help="target IPCs, comma-separated (default 1,2,5)")
    t.add_argument("--rules", default=",".join(DEFAULT_RULES), help=f"comma-separated (default {','.join(DEFAULT_RULES)})")
    t.add_argument("--test", default=None, metavar="DATASET", help="test set (default: the source's test split)")
    t.add_argument("--nets", default="convnet", help="evaluation networks, comma-separated (e.g. convnet,resnet10-ap)")
    t.add_argument("--eval-seeds", type=int, default=3, help="networks per pruned set N (default 3)")
    t.add_argument("--protocol", default="quick", choices=[p.name for p in list_protocols()],
                   help="evaluation protocol (default quick)")
    t.add_argument("--beta", type=float, default=None, help="ccs hard cutoff fraction (default by pruning rate)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, metavar="RESULTS.json", help="results file (every finished cell)")
    t.add_argument("--resume", action="store_true", help="skip the cells already in --out")
    add_force(t)
    t.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    _add_dynamics_options(t)
    add_import_options(t)
    add_device(t)
    add_data_root(t)
    add_json(t)
    t.set_defaults(func=run_table)


def _test_set(args: argparse.Namespace, ds) -> object:
    spec = args.test or _default_test(recorded_source(ds))
    if spec is None:
        raise BadInputError(f"cannot tell the test set for {args.file}: it records no real data set it was made "
                            "from; pass --test DATASET (e.g. fashion-mnist:test)")
    return load_dataset(spec, split="test", root=args.data_root)


def _real_train(args: argparse.Namespace, ds) -> object | None:
    """The real training set behind ``ds`` (for the random-real baseline), or None when unknown."""
    spec = args.real or recorded_source(ds)
    if spec is None:
        return None
    return load_dataset(spec, split="train", root=args.data_root)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    get_rule(args.rule)  # unknown rule: fail before loading anything
    check_out(args.out, kind="condensed", force=args.force, resume=args.resume)
    ds = load_input(args.file, args)
    dyn_path = args.dynamics or f"{args.out}.dynamics.safetensors"
    test = _test_set(args, ds) if args.evaluate else None
    real = _real_train(args, ds) if args.evaluate else None
    res = prune_set(ds, ipc=args.ipc, rule=args.rule, balanced=args.balanced, keep=args.keep, runs=args.runs,
                    config=_config(args), dynamics=dyn_path, run=args.run, logits=args.logits, beta=args.beta,
                    seed=args.seed, out=args.out, resume=args.resume, device=device,
                    progress=None if not args.json else False)
    out = res.to_dict()
    if args.out:
        from ..density import record_storage

        out["storage"] = record_storage(args.out, device=device)  # PNG + labels (+ flow), also in the file
    if res.dynamics is not None and Path(dyn_path).exists():
        out["files"]["dynamics"] = dyn_path
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
    if args.evaluate:
        from ..train import evaluate

        pruned = res.images.with_meta(name=f"{Path(args.out).name} ({res.rule}, ipc {res.ipc_from}->{res.ipc_to})")
        rep = evaluate(pruned, test, protocol=args.evaluate, seeds=args.eval_seeds, baseline_from=real,
                       device=device, progress=None if not args.json else False)
        out["evaluation"] = rep.to_dict()
        if real is None:
            text.append("no random-real baseline: the set records no real data set it came from "
                        "(pass --real DATASET, e.g. fashion-mnist:train)")
        text.append(format_reports([rep], str(ds.meta.get("source_dataset") or "")))
    emit(args, out, "\n".join(text))
    return 0


def run_table(args: argparse.Namespace) -> int:
    if args.from_sweep:
        from ..pipeline.sweeps import sweep_prune_table

        if args.file:
            raise BadInputError("give either FILE (compute a table) or --from-sweep DIR (read a sweep's), not both")
        tab = sweep_prune_table(args.from_sweep)
        if tab is None:
            raise BadInputError(f"the cells of {args.from_sweep} did not prune (no pruning rows); enable [prune] in "
                                "the sweep config")
        emit(args, tab.to_dict(), tab.markdown() if args.markdown else tab.format())
        return 0
    if not args.file:
        raise BadInputError("give the condensed set FILE to prune, or --from-sweep DIR")
    device = resolve_device(args.device)
    if args.out:
        check_out(args.out, kind="json:cells,rules,ipcs", force=args.force, resume=args.resume)
    rules = [r for r in args.rules.split(",") if r.strip()]
    for r in rules:
        parse_rule(r)  # unknown rule: fail before loading anything
    nets = [n for n in args.nets.split(",") if n.strip()]
    ds = load_input(args.file, args)
    test = _test_set(args, ds)
    tab = prune_table(ds, test, ipcs=int_list(args.ipc, "--ipc", minimum=1), rules=rules, nets=nets, runs=args.runs,
                      eval_seeds=args.eval_seeds, protocol=args.protocol, config=_config(args),
                      dynamics=args.dynamics, beta=args.beta, seed=args.seed, out=args.out, resume=args.resume,
                      device=device, progress=None if not args.json else False)
    text = tab.markdown() if args.markdown else tab.format()
    if args.out:
        text += f"\nwrote {args.out}"
    emit(args, tab.to_dict(), text)
    return 0
