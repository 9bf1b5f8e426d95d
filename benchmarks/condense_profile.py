"""Where one outer iteration of gradient-matching condensation spends its time (paper settings).

    python benchmarks/condense_profile.py [--batch-real 256] [--chunk 32] [--no-compile]
        [--out benchmarks/results/condense_profile.json]

DC, IPC 1, Fashion-MNIST, ConvNet-3 width 128, 10 classes, batch_real 256, the
:class:`~simplebits.condense.GradientEngine` as the runner uses it. Prints JSON:

- ``wall``: seconds of the real side (10 class gradients, side by side as the runner computes
  them), the synthetic side (10 gradients with ``create_graph`` and the distances) and the
  backward to the images, for one iteration after a warm-up (median of ``--repeats``);
- ``real_side_ops``: the real side's self CPU time under ``torch.profiler``, one class at a time
  on all threads (``real_side_sequential_s`` its wall time), by kind: convolutions
  (forward and backward, oneDNN), the compiled graphs' fused kernels (instance norm, ReLU,
  pooling, their backward), memory copies, and the rest; with the share of each;
- ``conv_floor_s``: the real side's convolution FLOPs (2 x multiply-adds: forward, input and
  weight gradients) over the measured rate of one 128->128 3x3 convolution on this machine, i.e.
  the time the real side would take if it were all convolution at that rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from condense_speed import real_batches

from simplebits.condense import GradientEngine, distance, matched_parameters
from simplebits.data import load_dataset
from simplebits.io import atomic_write_json
from simplebits.models import create_model

KINDS = {"conv": ("convolution",), "fused": ("CompiledFxGraph",), "copy": ("copy_", "clone")}


def _kind(name: str) -> str:
    for kind, keys in KINDS.items():
        if any(k in name for k in keys):
            return kind
    return "other"


def _conv_macs(h: int, w: int, net: torch.nn.Module) -> tuple[float, float]:
    """(forward multiply-adds of the convolutions, those whose input gradient is needed) per image."""
    macs, macs_in = 0.0, 0.0
    x = torch.zeros(1, 1, h, w)
    for i, m in enumerate(net.features):
        y = m(x)
        if isinstance(m, torch.nn.Conv2d):
            k = m.weight.numel() * y.shape[-1] * y.shape[-2]
            macs += k
            macs_in += k if i > 0 else 0.0
        x = y
    return macs, macs_in


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-real", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/condense_profile.json")
    a = ap.parse_args()
    ds = load_dataset("fashion-mnist")
    C = ds.num_classes
    reals = real_batches(ds, a.batch_real)  # the speed benchmark's batches
    syn = torch.stack([r[0] for r in reals]).clone().requires_grad_(True)
    net = create_model("convnet", channels=1, num_classes=C, image_size=28, seed=1)
    engine = GradientEngine(net, matched_parameters(net), chunk=a.chunk, compile=not a.no_compile)
    labels = [torch.full((len(r),), c, dtype=torch.long) for c, r in enumerate(reals)]

    def real_side():  # one class at a time, on all threads (for the op breakdown)
        return [engine.real(reals[c], labels[c]) for c in range(C)]

    def iteration():  # as the runner does it: the classes' real side on one-thread workers side by side
        t0 = time.perf_counter()
        grs = engine.real_many(list(zip(reals, labels)))
        t1 = time.perf_counter()
        total = syn.new_zeros(())
        for c in range(C):
            gs = engine.synthetic(syn[c : c + 1], labels[c][:1])
            total = total + distance(grs[c], gs, "layerwise")
        t2 = time.perf_counter()
        syn.grad = None
        total.backward()
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    iteration()  # warm-up (compilation)
    runs = [iteration() for _ in range(a.repeats)]
    wall = {k: statistics.median(r[i] for r in runs) for i, k in enumerate(("real_side", "synthetic_side", "backward_to_images"))}
    wall["iteration"] = sum(wall.values())

    t = time.perf_counter()
    real_side()
    sequential = time.perf_counter() - t
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        real_side()
    by_kind: dict[str, float] = {}
    for ev in prof.key_averages():
        by_kind[_kind(ev.key)] = by_kind.get(_kind(ev.key), 0.0) + ev.self_cpu_time_total / 1e6
    total = sum(by_kind.values())

    # the convolution rate of this machine: one 128->128 3x3 layer on 16x16 maps, forward
    x = torch.randn(a.chunk, 128, 16, 16)
    w = torch.randn(128, 128, 3, 3)
    F.conv2d(x, w, padding=1)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        F.conv2d(x, w, padding=1)
        ts.append(time.perf_counter() - t)
    rate = 2 * a.chunk * 128 * 128 * 9 * 256 / min(ts)
    macs, macs_in = _conv_macs(28, 28, net)
    flops = 2 * (2 * macs + macs_in) * a.batch_real * C  # forward + weight gradients + input gradients
    out = {
        "benchmark": "condense_profile",
        "settings": {"method": "dc", "ipc": 1, "batch_real": a.batch_real, "classes": C, "chunk": a.chunk,
                     "compile": engine.compiled, "threads": torch.get_num_threads()},
        "wall": {k: round(v, 3) for k, v in wall.items()},
        "real_side_share_of_iteration": round(wall["real_side"] / wall["iteration"], 3),
        "real_side_sequential_s": round(sequential, 3),
        "real_side_ops": {k: {"s": round(v, 3), "share": round(v / total, 3)} for k, v in sorted(by_kind.items())},
        "real_side_gflop": round(flops / 1e9, 1),
        "conv_rate_gflops": round(rate / 1e9, 1),
        "conv_floor_s": round(flops / rate, 3),
    }
    atomic_write_json(a.out, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
