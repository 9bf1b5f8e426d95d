"""Why the quick preset has weight-standardised UNet convs and a faster residual scale: a joint
SimpleBits run on mnist-5k printing, every 50 steps, the bpd of 128 simplified test images, the
residual scale w and the mean |unet(x)| (the UNet's output scale).

    python benchmarks/simplify_stability.py '{"simplifier_options": {"ngf": 16, "downsamples": 3}, "lr_sim": 2e-3,
        "gate_lr_mult": 1, "batch_size": 64}' 250          # the paper's UNet at a CPU-sized rate: blows up
    python benchmarks/simplify_stability.py '{"lambda_sim": 10}' 500                    # the quick preset

The first argument overrides the quick preset (JSON); the second is the number of steps.
"""

from __future__ import annotations

import json
import sys
import time

import torch

import simplebits as sb
from simplebits.simplify import JointTrainer, make_simplify_config
from simplebits.train.seeding import generator


def main() -> None:
    over = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 250
    train, test = sb.load_dataset("mnist-5k:train"), sb.load_dataset("mnist-5k:test")
    cfg = make_simplify_config(**over)
    tr = JointTrainer(cfg, channels=1, image_hw=(28, 28), num_classes=10)
    probe = test.images[:128]
    g = generator(cfg.seed, "stability")
    s, t0, bs = 0, time.perf_counter(), cfg.batch_size
    while s < steps:
        order = torch.randperm(len(train), generator=g)
        for b in range(0, len(order) - bs + 1, bs):
            idx = order[b:b + bs]
            rec = tr.step(train.images[idx], train.labels[idx], g_aug=g, g_noise=g, dropout_seed=s)
            s += 1
            if s % 50 == 0 or s == steps:
                with torch.no_grad():
                    tr.simplifier.eval()
                    sim, u = tr.simplifier(probe), tr.simplifier.unet(probe)
                    tr.simplifier.train()
                print(json.dumps({"step": s, "seconds": round(time.perf_counter() - t0, 1),
                                  "bpd": round(float(tr.density.score(sim).mean()), 3),
                                  "w": round(float(tr.simplifier.w.detach()), 4),
                                  "mean_abs_unet": round(float(u.abs().mean()), 2),
                                  "gate_open": rec and round(rec.get("gate_open", 0.0), 2),
                                  "acc_sim": rec and round(rec.get("acc_sim", 0.0), 2)}), flush=True)
            if s >= steps:
                break


if __name__ == "__main__":
    main()
