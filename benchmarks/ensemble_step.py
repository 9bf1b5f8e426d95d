"""Does training K networks as one batched ensemble pay on this CPU? One training step, three ways.

    python benchmarks/ensemble_step.py [--k 5] [--precision fp32|bf16] [--out benchmarks/results/ensemble_step.json]

K ConvNet-3 (width 128, instance norm) networks, each with its own batch (the seeds of one
evaluation), one SGD step each:

``sequential``  one network after another (what ``evaluate`` does);
``vmap``        ``torch.func.stack_module_state`` + ``vmap(functional_call)``: one batched step;
``grouped``     one network with K groups (grouped convolutions, GroupNorm over K x width channels,
                a batched linear layer): the same arithmetic as K networks in one set of kernels;
``*_compiled``  the sequential and grouped steps through ``torch.compile`` (warm; the compile
                itself is timed by compile_cold.py and eval_compile.py).

Milliseconds per step for all K networks, at IPC 1 and IPC 10 batch sizes of Fashion-MNIST
(28x28) and at IPC 1 of digits (8x8). ``--precision bf16`` runs every forward pass under bf16
autocast (float32 weights and loss, as ``precision="bf16"`` trains): on a CPU with AMX the
convolutions get much faster, so small steps might become overhead-bound and batching might pay.
Prints one JSON document (also written to ``--out``).
Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from simplebits.io import atomic_write_json
from simplebits.models import create_model


class Grouped(nn.Module):
    """K ConvNet-3s side by side as one network of grouped convolutions."""

    def __init__(self, k: int, hw: int, width: int = 128, classes: int = 10) -> None:
        super().__init__()
        self.k, self.width = k, width
        pad = 3 if hw == 28 else 1
        self.convs = nn.ModuleList([nn.Conv2d(k, k * width, 3, padding=pad, groups=k, bias=False)]
                                   + [nn.Conv2d(k * width, k * width, 3, padding=1, groups=k, bias=False)
                                      for _ in range(2)])
        self.norms = nn.ModuleList([nn.GroupNorm(k * width, k * width) for _ in range(3)])
        side = (hw + 2 * pad - 2) // 8
        self.fc = nn.Parameter(torch.randn(k, width * side * side, classes) * 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, K, H, W) -> (K, B, classes)
        for conv, norm in zip(self.convs, self.norms):
            x = F.avg_pool2d(F.relu(norm(conv(x))), 2)
        b = x.shape[0]
        return torch.bmm(x.reshape(b, self.k, -1).transpose(0, 1), self.fc)


def timed(fn, steps: int) -> float:
    for _ in range(3):
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return round(1000 * (time.perf_counter() - t0) / steps, 1)


def case(k: int, hw: int, batch: int, steps: int, precision: str = "fp32") -> dict:
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.rand(k, batch, 1, hw, hw, generator=g), torch.randint(0, 10, (k, batch), generator=g)
    nets = [create_model("convnet", channels=1, num_classes=10, image_size=(hw, hw), seed=s) for s in range(k)]
    opts = [torch.optim.SGD(n.parameters(), lr=0.01, momentum=0.9) for n in nets]
    fast = [torch.compile(n, dynamic=False) for n in nets]

    def cast():
        if precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sequential(models=nets) -> None:
        for m, o, x, y in zip(models, opts, xs, ys):
            with cast():
                out = m(x)
            loss = F.cross_entropy(out.float(), y)
            o.zero_grad()
            loss.backward()
            o.step()

    params, bufs = stack_module_state(nets)
    params = {n: p.detach().requires_grad_() for n, p in params.items()}
    base = copy.deepcopy(nets[0]).to("meta")
    vopt = torch.optim.SGD(list(params.values()), lr=0.01, momentum=0.9)

    def batched() -> None:
        with cast():
            out = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))(params, bufs, xs)
        loss = F.cross_entropy(out.float().reshape(k * batch, -1), ys.reshape(-1), reduction="sum") / batch
        vopt.zero_grad()
        loss.backward()
        vopt.step()

    grouped = Grouped(k, hw)
    gfast = torch.compile(grouped, dynamic=False)
    gopt = torch.optim.SGD(grouped.parameters(), lr=0.01, momentum=0.9)
    gx = xs.squeeze(2).transpose(0, 1).contiguous()  # (B, K, H, W)

    def grouped_step(model=grouped) -> None:
        with cast():
            out = model(gx)
        loss = F.cross_entropy(out.float().reshape(k * batch, -1), ys.reshape(-1), reduction="sum") / batch
        gopt.zero_grad()
        loss.backward()
        gopt.step()

    row = {"sequential": timed(sequential, steps), "vmap": timed(batched, steps), "grouped": timed(grouped_step, steps),
           "sequential_compiled": timed(lambda: sequential(fast), steps),
           "grouped_compiled": timed(lambda: grouped_step(gfast), steps)}
    row["best_batched_vs_sequential"] = round(row["sequential"] / min(row["vmap"], row["grouped"]), 2)
    row["best_batched_compiled_vs_sequential_compiled"] = round(row["sequential_compiled"] / row["grouped_compiled"], 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--out", default=None, metavar="JSON")
    a = ap.parse_args()
    doc: dict = {"benchmark": "ensemble_step", "k": a.k, "threads": torch.get_num_threads(), "precision": a.precision,
                 "unit": "ms per step of all K networks", "cases": {}}
    for name, hw, batch in [("digits ipc1 (8x8 x10)", 8, 10), ("fashion ipc1 (28x28 x10)", 28, 10),
                            ("fashion ipc10 (28x28 x100)", 28, 100)]:
        doc["cases"][name] = case(a.k, hw, batch, a.steps, a.precision)
        print(json.dumps({name: doc["cases"][name]}), file=sys.stderr)
    print(json.dumps(doc, indent=1))
    if a.out:
        atomic_write_json(a.out, doc)


if __name__ == "__main__":
    main()
