"""Scoring one condensed set for YOCO: early-stopped dynamics against the reference's full
1000-epoch dynamics, in the same run, on the same set, with the same seeds.

    python benchmarks/prune_speed.py --set FILE [--runs 3] [--stop-epoch 100] [--epochs 1000]
        [--save-full DYNAMICS.safetensors]

Baseline (the reference pipeline): train R fresh ConvNet-3 for the whole 1000-epoch ``idc``
schedule (DSA + CutMix), record every epoch, then read LBPE from the first ``stop_epoch``.
Ours: train only the first ``stop_epoch`` epochs of the same schedule (the learning rate is the
full schedule's, so the runs are the same runs, cut short). Prints seconds for each, the ratio,
and whether the LBPE scores and rankings are identical. ``--save-full`` keeps the full dynamics
(the comparison table reuses them for the full-training baselines).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from simplebits.data.condensed import import_condensed
from simplebits.prune import DynamicsConfig, record_dynamics, score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True, help="condensed-set file")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--stop-epoch", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=1000, help="schedule length (reference: 1000)")
    ap.add_argument("--save-full", default=None, metavar="FILE", help="save the full dynamics here")
    ap.add_argument("--factor", type=int, default=1, help="multi-formation factor of a foreign file")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    ds = import_condensed(args.set, factor=args.factor)
    base = DynamicsConfig(runs=args.runs, epochs=args.epochs, stop_epoch=args.stop_epoch)

    t0 = time.perf_counter()
    early = record_dynamics(ds, DynamicsConfig(**{**base.__dict__, "epochs_run": args.stop_epoch}), progress=False)
    t_early = time.perf_counter() - t0

    t0 = time.perf_counter()
    full = record_dynamics(ds, base, path=args.save_full, progress=False)
    t_full = time.perf_counter() - t0

    s_early = score("lbpe", early, stop_epoch=args.stop_epoch)
    s_full = score("lbpe", full, stop_epoch=args.stop_epoch)
    rank_early = torch.sort(s_early, dim=1, stable=True).indices
    rank_full = torch.sort(s_full, dim=1, stable=True).indices
    out = {
        "benchmark": "benchmarks/prune_speed.py",
        "set": args.set,
        "samples": early.num_samples,
        "runs": args.runs,
        "schedule_epochs": args.epochs,
        "stop_epoch": args.stop_epoch,
        "threads": torch.get_num_threads(),
        "seconds_full_reference": round(t_full, 2),
        "seconds_early_stop": round(t_early, 2),
        "speedup": round(t_full / t_early, 2),
        "lbpe_scores_identical": bool(torch.equal(s_early, s_full)),
        "lbpe_rankings_identical": bool(torch.equal(rank_early, rank_full)),
        "max_abs_score_difference": float((s_early - s_full).abs().max()),
        "dynamics_mb_full": round(full.logits.numel() * 2 / 2**20, 2),
        "dynamics_mb_early": round(early.logits.numel() * 2 / 2**20, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
