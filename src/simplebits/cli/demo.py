"""`simplebits demo`: the main job on data installable here."""

from __future__ import annotations

import argparse
import time

from ..data import load_dataset
from ..errors import NotFoundError
from ..train import evaluate_real_subset, get_protocol, list_protocols
from .common import add_data_root, add_json, emit
from .evaluate import add_device, format_reports, resolve_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the main job on bundled/installable data (a few minutes on a laptop CPU)",
        description="Evaluate random real subsets of Fashion-MNIST (mnist-5k when Fashion-MNIST is not "
                    "installed) at IPC 1 and 10 under the quick protocol and print a table next to the "
                    "published figures, with the data's mean bits per dimension under the shipped density model; "
                    "then condense the data to IPC 1 with dc, without and with the simplification term "
                    "(a small budget: --condense-iterations), and evaluate both the same way; then prune the "
                    "IPC 10 set to IPC 1 with yoco (LBPE, easy, balanced) and with random, and evaluate both; "
                    "then train a SimpleBits simplifier briefly and show one simplified batch next to its "
                    "originals with their bpd. Writes the condensed and pruned sets and their image grids to --out-dir.",
    )
    p.add_argument("--ipc", default="1,10", help="comma-separated images per class (default 1,10)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per IPC (default 3)")
    p.add_argument("--protocol", default="quick", choices=[q.name for q in list_protocols()])
    p.add_argument("--dataset", default=None, help="data set (default fashion-mnist, else mnist-5k)")
    p.add_argument("--bpd-images", type=int, default=500, help="test images scored for the complexity line (0: skip)")
    p.add_argument("--condense-iterations", type=int, default=30,
                   help="dc iterations for the IPC 1 condensed sets (default 30; 0: skip condensation)")
    p.add_argument("--lambda-sim", type=float, default=100.0,
                   help="simplification weight of the second set (default 100; see docs/condense.md for the measured sweep)")
    p.add_argument("--prune-runs", type=int, default=3,
                   help="dynamics runs for pruning the largest IPC set to IPC 1 (default 3; 0: skip pruning)")
    p.add_argument("--simplify-epochs", type=int, default=3,
                   help="SimpleBits joint-training epochs on 2000 training images for the simplified batch "
                        "(default 3; 0: skip)")
    p.add_argument("--simplify-lambda", type=float, default=8.0,
                   help="bpd weight of the demo simplifier (default 8; see docs/simplify.md for the sweep)")
    p.add_argument("--out-dir", default="simplebits-demo", help="where the condensed sets go (default ./simplebits-demo)")
    add_device(p)
    add_data_root(p)
    add_json(p)
    p.set_defaults(func=run)


def pick_dataset(name: str | None, root: str | None):
    if name:
        return name, load_dataset(name, split="train", root=root), load_dataset(name, split="test", root=root)
    try:
        return ("fashion-mnist", load_dataset("fashion-mnist", split="train", root=root),
                load_dataset("fashion-mnist", split="test", root=root))
    except NotFoundError as e:
        import sys

        print(f"note: {e}; using mnist-5k instead", file=sys.stderr)
        return "mnist-5k", load_dataset("mnist-5k", split="train"), load_dataset("mnist-5k", split="test")


def dataset_bpd(test, *, n: int) -> dict | None:
    """Mean bpd of the first ``n`` test images under the shipped model for their channels."""
    from ..density import default_flow, fit_images, load_flow, score_bpd
    from ..density.compress import png_bpd

    if n <= 0:
        return None
    name = default_flow(test.channels)
    try:
        model = load_flow(name)
    except NotFoundError:
        return None
    x = fit_images(test.images[:n], model)
    return {"model": name, "n": int(x.shape[0]), "bpd": float(score_bpd(model, x).mean()),
            "png_bpd": float(png_bpd(x).mean())}


def run(args: argparse.Namespace) -> int:
    from ..errors import BadInputError

    try:
        ipcs = [int(v) for v in args.ipc.split(",") if v.strip()]
    except ValueError:
        raise BadInputError(f"--ipc must be comma-separated integers, got {args.ipc!r}") from None
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    name, train, test = pick_dataset(args.dataset, args.data_root)
    proto = get_protocol(args.protocol)
    complexity = dataset_bpd(test, n=args.bpd_images)
    reports = [evaluate_real_subset(train, test, ipc=k, protocol=proto, seeds=args.seeds, device=device,
                                    progress=None) for k in ipcs]
    condensed = condense_demo(train, test, args, proto=proto, device=device) if args.condense_iterations > 0 else []
    reports += [c["report"] for c in condensed]
    pruned = prune_demo(train, test, args, ipc_from=max(ipcs), proto=proto, device=device) \
        if args.prune_runs > 0 and max(ipcs) > 1 else []
    reports += [c["report"] for c in pruned]
    simplified = simplify_demo(train, args, device=device) if args.simplify_epochs > 0 else None
    wall = time.perf_counter() - t0
    bpd_line = (f"complexity: mean {complexity['bpd']:.3f} bpd under {complexity['model']} "
                f"({complexity['n']} test images, padded to 32x32), PNG {complexity['png_bpd']:.3f} bpd"
                if complexity else "complexity: no shipped density model in this installation")
    cond_lines = "".join(
        f"\n{c['label']}: bpd {c['bpd']:.3f}, {c['seconds']:.0f}s condensing, accuracy {c['report'].summary()}"
        f" -> {c['file']}" for c in condensed)
    cond_lines += "".join(
        f"\n{c['label']}: accuracy {c['report'].summary()} ({c['seconds']:.0f}s pruning) -> {c['file']}" for c in pruned)
    if simplified is not None:
        pairs = "  ".join(f"{a:.2f}->{b:.2f}" for a, b in zip(simplified["bpd_original"], simplified["bpd_simplified"]))
        cond_lines += (f"\nsimplified batch (SimpleBits, lambda {simplified['lambda_sim']:g}, {simplified['epochs']} epochs "
                       f"on {simplified['n_train']} images, {simplified['seconds']:.0f}s): bpd per image {pairs}; "
                       f"mean {simplified['mean_original']:.3f} -> {simplified['mean_simplified']:.3f} "
                       f"-> {simplified['file']}")
    text = (f"simplebits demo: {name} ({len(train)} train / {len(test)} test images, {train.num_classes} classes), "
            f"protocol {proto.name}, {args.seeds} seeds\n{bpd_line}\n\n" + format_reports(reports, name) +
            cond_lines + f"\n\nwall time {wall:.0f}s")
    emit(args, {"dataset": name, "protocol": proto.name, "complexity": complexity,
                "reports": [r.to_dict() for r in reports],
                "condensed": [{k: v for k, v in c.items() if k != "report"} for c in condensed],
                "pruned": [{k: v for k, v in c.items() if k != "report"} for c in pruned],
                "simplified": simplified, "wall_seconds": wall}, text)
    return 0


def condense_demo(train, test, args, *, proto, device) -> list[dict]:
    """IPC 1 dc condensation without and with the simplification term, each evaluated."""
    from pathlib import Path

    from ..condense import condense, make_config
    from ..train import evaluate

    out = []
    for lam in (None, args.lambda_sim):
        cfg = make_config("dc", ipc=1, preset="quick", iterations=args.condense_iterations, batch_real=128,
                          lambda_sim=lam)
        label = "dc ipc1" + (f" lambda {lam:g}" if lam is not None else "")
        path = Path(args.out_dir) / f"{train.meta.get('name', 'data')}-dc-ipc1{'' if lam is None else f'-lam{lam:g}'}.safetensors"
        r = condense(train, cfg, out=path, device=device, progress=None if not args.json else False)
        rep = evaluate(r.images.with_meta(name=label), test, protocol=proto, seeds=args.seeds, device=device)
        out.append({"label": label, "bpd": r.bpd, "seconds": r.seconds, "file": str(path), "report": rep,
                    "accuracy": rep.to_dict()})
    return out


def prune_demo(train, test, args, *, ipc_from: int, proto, device) -> list[dict]:
    """A random real IPC ``ipc_from`` set pruned to IPC 1 with yoco and with random, each evaluated."""
    from pathlib import Path

    from ..data import real_subset
    from ..data.condensed import save_condensed
    from ..prune import prune_set
    from ..train import evaluate

    out_dir = Path(args.out_dir)
    name = train.meta.get("name", "data")
    parent = real_subset(train, ipc_from, seed=0).with_meta(name=f"random-real ipc{ipc_from}")
    parent_path = out_dir / f"{name}-random-ipc{ipc_from}.safetensors"
    save_condensed(parent_path, parent, method="random-real", source=name)
    out = []
    for rule in ("yoco", "random"):
        path = out_dir / f"{name}-random-ipc{ipc_from}-{rule}-ipc1.safetensors"
        res = prune_set(parent, ipc=1, rule=rule, runs=args.prune_runs, out=path,
                        dynamics=out_dir / f"{name}-random-ipc{ipc_from}.dynamics.safetensors", device=device,
                        progress=None if not args.json else False)
        label = f"ipc{ipc_from} -> ipc1 by {rule}"
        rep = evaluate(res.images.with_meta(name=label), test, protocol=proto, seeds=args.seeds, device=device)
        out.append({"label": label, "rule": rule, "seconds": res.seconds, "file": str(path), "report": rep,
                    "accuracy": rep.to_dict()})
    return out


def simplify_demo(train, args, *, device) -> dict:
    """A short SimpleBits run on 2000 training images; one batch (a pair per class) shown with its bpd."""
    from pathlib import Path

    from ..data import real_subset
    from ..simplify import make_simplify_config, simplify
    from ..simplify.figures import comparison_grid, pick_per_class, save_png

    per = max(1, min(2000 // train.num_classes, min(train.counts())))
    sub = real_subset(train, per, seed=0).with_meta(name=f"{train.name}[{per * train.num_classes}]")
    cfg = make_simplify_config(preset="quick", epochs=args.simplify_epochs, lambda_sim=args.simplify_lambda)
    t0 = time.perf_counter()
    res = simplify(sub, None, lambdas=[args.simplify_lambda], config=cfg, device=device,
                   progress=None if not args.json else False)
    sim = res.simplified[res.cells[0]["name"]]
    idx = pick_per_class(sub.labels, sub.num_classes)
    from ..simplify.joint import DensityTerm

    density = DensityTerm(None, shape=sub.shape, device=device)
    b0, b1 = density.score(sub.images[idx]), density.score(sim.images[idx])
    path = Path(args.out_dir) / f"{train.meta.get('name', 'data')}-simplified-batch.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(path, comparison_grid(sub.images, [sim.images], indices=idx, scale=3))
    return {"lambda_sim": args.simplify_lambda, "epochs": args.simplify_epochs, "n_train": len(sub),
            "seconds": time.perf_counter() - t0, "file": str(path),
            "bpd_original": [round(float(v), 3) for v in b0], "bpd_simplified": [round(float(v), 3) for v in b1],
            "mean_original": float(b0.mean()), "mean_simplified": float(b1.mean()),
            "training_set_bpd": {"original": res.cells[0]["bpd_original"], "simplified": res.cells[0]["bpd"]}}
