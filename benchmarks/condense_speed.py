"""Seconds per outer iteration of gradient-matching condensation, ours against a
one-class-at-a-time reference-style loop of the same loss, in the same run.

Paper settings (DC, IPC 1): ConvNet-3 width 128, instance norm, Fashion-MNIST 28x28, batch_real 256
per class, layerwise distance, one image update per outer iteration (real + synthetic
gradients of all 10 classes, backward to the images, SGD step).

    python benchmarks/condense_speed.py [--ipc 1] [--batch-real 256] [--repeats 7] [--no-compile]

The two sides alternate iteration by iteration after one warm-up each; the figure is the ratio of
their median seconds per iteration (every pair's ratio and the ratio of the minima beside it).

Baseline: for each class, one eager forward/backward of the whole contiguous real batch
(``autograd.grad``), the synthetic gradient with ``create_graph``, the distance; then one
backward -- what the reference scripts do. Ours: :class:`simplebits.condense.GradientEngine`
(pieces of ``chunk`` images in channels-last layout, ``torch.compile``; eager with ``--no-compile``,
where the classes' real side runs on one-thread workers side by side; ``--class-threads N`` fixes
the workers either way, 1 = one class at a time on all threads). The same network
weights, real batches and synthetic images go into both; the script prints both loss values
and their relative difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from simplebits.condense import GradientEngine, distance, matched_parameters
from simplebits.data import load_dataset
from simplebits.models import create_model


def real_batches(ds, batch_real: int, seed: int = 0) -> list[torch.Tensor]:
    """One random batch of ``batch_real`` real images per class, fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in range(ds.num_classes):
        idx = torch.nonzero(ds.labels == c).flatten()
        out.append(ds.images[idx[torch.randperm(len(idx), generator=g)[:batch_real]]])
    return out


def baseline_loss(net, params, reals, syn, num_classes):
    total = syn.new_zeros(())
    for c in range(num_classes):
        xr = reals[c]
        yr = torch.full((len(xr),), c, dtype=torch.long)
        gr = [g.detach() for g in torch.autograd.grad(F.cross_entropy(net(xr), yr), params)]
        xs = syn[c : c + 1]
        gs = torch.autograd.grad(F.cross_entropy(net(xs), torch.tensor([c])), params, create_graph=True)
        total = total + distance(gr, gs, "layerwise")
    return total


def ours_loss(engine, reals, syn, num_classes, ipc):
    total = syn.new_zeros(())
    grs = engine.real_many([(xr, torch.full((len(xr),), c, dtype=torch.long)) for c, xr in enumerate(reals)])
    for c in range(num_classes):
        gr = grs[c]
        xs = syn[c * ipc : (c + 1) * ipc]
        gs = engine.synthetic(xs, torch.full((len(xs),), c, dtype=torch.long))
        total = total + distance(gr, gs, "layerwise")
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-real", type=int, default=256)
    ap.add_argument("--ipc", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7, help="timed iterations of each side, interleaved (default 7)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--precision", default="auto", choices=["fp32", "bf16", "auto"],
                    help="arithmetic of our real side (default auto: the paper preset's, bf16 where the CPU has it)")
    ap.add_argument("--class-threads", type=int, default=None,
                    help="worker threads for the classes' real side (default: the engine's rule: one class at a "
                         "time when compiled, side by side in eager mode; 1 = one class at a time)")
    a = ap.parse_args()
    torch.manual_seed(0)
    ds = load_dataset("fashion-mnist")
    C = ds.num_classes
    reals = real_batches(ds, a.batch_real)
    syn0 = torch.stack([r[: a.ipc] for r in reals]).reshape(C * a.ipc, *ds.shape).clone()

    def make_net():
        return create_model("convnet", channels=1, num_classes=C, image_size=28, seed=1)

    # ---- baseline
    net_b = make_net()
    params_b = matched_parameters(net_b)
    syn_b = syn0.clone().requires_grad_(True)
    opt_b = torch.optim.SGD([syn_b], lr=0.1, momentum=0.5)

    def step_b():
        loss = baseline_loss(net_b, params_b, reals, syn_b, C) if a.ipc == 1 else None
        opt_b.zero_grad()
        loss.backward()
        return float(loss)

    # ---- ours
    net_o = make_net()
    engine = GradientEngine(net_o, matched_parameters(net_o), chunk=a.chunk, compile=not a.no_compile,
                            class_threads=a.class_threads, precision=a.precision)
    syn_o = syn0.clone().requires_grad_(True)
    opt_o = torch.optim.SGD([syn_o], lr=0.1, momentum=0.5)

    def step_o():
        loss = ours_loss(engine, reals, syn_o, C, a.ipc)
        opt_o.zero_grad()
        loss.backward()
        return float(loss)

    t = time.perf_counter()
    loss_o = step_o()  # warm-up (compilation)
    warm = time.perf_counter() - t
    loss_b = step_b()
    grad_diff = float((syn_o.grad - syn_b.grad).norm() / syn_b.grad.norm())

    # both sides alternate in one loop (b, o, b, o, ...) so a drift in the machine's speed hits both
    # alike; the figure is the ratio of the medians, with every pair's ratio beside it
    tb, to = [], []
    for _ in range(a.repeats):
        for fn, times in ((step_b, tb), (step_o, to)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    b_med, o_med = statistics.median(tb), statistics.median(to)
    pairs = [b / o for b, o in zip(tb, to)]
    print(json.dumps({
        "benchmark": "condense_speed",
        "settings": {"method": "dc", "ipc": a.ipc, "batch_real": a.batch_real, "classes": C, "net": "convnet w128",
                     "chunk": a.chunk, "compile": engine.compiled, "threads": torch.get_num_threads(),
                     "class_threads": engine.workers(reals),
                     "precision": a.precision, "real_dtype": str(engine.real_dtype or torch.float32), "repeats": a.repeats, "timing": "interleaved"},
        "baseline_s_per_iteration": round(b_med, 3),
        "baseline_s_per_iteration_min": round(min(tb), 3),
        "ours_s_per_iteration": round(o_med, 3),
        "ours_s_per_iteration_min": round(min(to), 3),
        "speedup": round(b_med / o_med, 2),
        "speedup_of_minima": round(min(tb) / min(to), 2),
        "speedup_per_pair": [round(r, 2) for r in pairs],
        "warmup_s": round(warm, 1),
        "loss_baseline": loss_b,
        "loss_ours": loss_o,
        "loss_rel_diff": abs(loss_b - loss_o) / abs(loss_b),
        "image_grad_rel_diff": grad_diff,
    }, indent=2))


if __name__ == "__main__":
    main()
