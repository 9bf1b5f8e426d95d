"""ConvNet-3 training throughput on this machine, and the fraction of fp32 matmul peak.

Prints one JSON document:
  matmul_gflops        fp32 torch.mm throughput measured in this run (the machine's practical peak)
  runs[]               per (input shape, width): train images/s (forward + backward + SGD step),
                       forward-only images/s, model GFLOP per image (conv + linear, forward),
                       achieved training GFLOP/s (3 x forward FLOPs per image) and its fraction of
                       the matmul peak.

Usage: python benchmarks/convnet_throughput.py [--batch 256] [--steps 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn

from simplebits.models import create_model


def matmul_gflops(device: str, n: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def forward_flops(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds x 2 of conv and linear layers for one forward pass of one image."""
    total = 0.0

    def conv_hook(m: nn.Conv2d, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += 2.0 * out.numel() / out.shape[0] * k

    def lin_hook(m: nn.Linear, inp, out):
        nonlocal total
        total += 2.0 * m.in_features * m.out_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(lin_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(x[:1])
    for h in hooks:
        h.remove()
    return total


def bench(shape: tuple[int, int, int], width: int, batch: int, steps: int, device: str) -> dict:
    c, h, w = shape
    net = create_model("convnet", channels=c, num_classes=10, image_size=(h, w), width=width, seed=0).to(device)
    x = torch.rand(batch, c, h, w, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    flops = forward_flops(net, x)

    def train_step():
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        train_step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        train_step()
    _sync(device)
    train_s = (time.perf_counter() - t) / steps
    with torch.inference_mode():
        net.eval()
        net(x)
        t = time.perf_counter()
        for _ in range(steps):
            net(x)
        _sync(device)
        fwd_s = (time.perf_counter() - t) / steps
    train_ips = batch / train_s
    return {
        "input": f"{c}x{h}x{w}",
        "width": width,
        "batch": batch,
        "train_images_per_s": round(train_ips, 1),
        "forward_images_per_s": round(batch / fwd_s, 1),
        "forward_gflop_per_image": round(flops / 1e9, 5),
        "train_gflops": round(3 * flops * train_ips / 1e9, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--widths", default="32,64,128")
    a = ap.parse_args()
    peak = matmul_gflops(a.device)
    runs = []
    for shape in [(1, 28, 28), (3, 32, 32)]:
        for width in [int(v) for v in a.widths.split(",")]:
            r = bench(shape, width, a.batch, a.steps, a.device)
            r["fraction_of_matmul_peak"] = round(r["train_gflops"] / peak, 3)
            runs.append(r)
    out = {
        "benchmark": "convnet_throughput",
        "device": a.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "matmul_gflops": round(peak, 1),
        "runs": runs,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
