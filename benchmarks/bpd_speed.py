"""Scoring speed of the shipped density model on this machine, against a plain forward pass
of an equally sized ConvNet measured in the same run, and the speed of the gradient of bpd
w.r.t. the input (what every simplification loss needs).

    python benchmarks/bpd_speed.py [--model gray32] [--batch 256]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from simplebits.density import bpd, load_flow
from simplebits.models import create_model


def _rate(fn, n_images: int, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_images / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gray32")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    flow = load_flow(a.model)
    c, s = flow.config.channels, flow.config.image_size
    n_flow = sum(p.numel() for p in flow.parameters())
    # ConvNet width chosen so that its parameter count is closest to the flow's
    best = min(range(16, 513, 8), key=lambda w: abs(
        sum(p.numel() for p in create_model("convnet", channels=c, image_size=s, width=w).parameters()) - n_flow))
    net = create_model("convnet", channels=c, image_size=s, width=best).eval()
    n_net = sum(p.numel() for p in net.parameters())
    x = torch.rand(a.batch, c, s, s)

    def score():
        with torch.inference_mode():
            bpd(flow, x)

    def forward():
        with torch.inference_mode():
            net(x)

    def grad():
        xi = x.clone().requires_grad_(True)
        bpd(flow, xi, straight_through=True).sum().backward()

    out = {
        "benchmark": "bpd_speed", "model": a.model, "batch": a.batch, "threads": torch.get_num_threads(),
        "flow_params": n_flow, "convnet_width": best, "convnet_params": n_net,
        "score_images_per_s": round(_rate(score, a.batch, a.repeats), 1),
        "convnet_forward_images_per_s": round(_rate(forward, a.batch, a.repeats), 1),
        "bpd_input_gradient_images_per_s": round(_rate(grad, a.batch, a.repeats), 1),
    }
    out["score_vs_convnet_ratio"] = round(out["score_images_per_s"] / out["convnet_forward_images_per_s"], 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
