"""Time of one SimpleBits joint step against one plain classifier step on the same batch and
classifier, and against a reference-style joint step measured in the same run.

    python benchmarks/simplify_step.py [--presets quick,paper] [--repeats 5] [--out FILE]

* plain: forward, cross-entropy, backward and an AdamW step of the classifier alone.
* joint (simplebits): :meth:`simplebits.simplify.JointTrainer.step` - simplifier forward, the
  unrolled AdamW step, the gated bpd term, the simplifier update and the classifier's own step;
  with the preset's relative classification terms (quick) also the reference step on X, timed
  against the paper's absolute terms on the same trainer and batch.
* reference-style: the same loss written as the reference loop does it: separate forward passes
  for f'(X) and f'(X_sim), bpd for every example (multiplied by the gate afterwards) and a
  second forward/backward for the classifier's own step on X_sim.

The bpd gate is held open for every example (worst case: the full Glow pass each step). Plain
and joint steps alternate call by call, so a drift of the machine lands on both sides; the ratio
is the ratio of the medians, with every pair's ratio beside it.

``flops`` counts the floating-point operations of each part (``torch.utils.flop_counter``:
convolutions and matrix products, forward and backward, the bulk of the work; element-wise
operations are not counted). It does not depend on the machine, so it says what no engineering of
the same computation can change: how many plain steps' worth of arithmetic one joint step is.
Prints one JSON document; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import resource
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from simplebits.simplify import JointTrainer, make_simplify_config
from simplebits.train.seeding import generator


def reference_style_step(tr: JointTrainer, x, y, g, seed):
    """The same loss and updates, computed the way the reference loop does (for the ratio)."""
    cfg, lam, clf = tr.cfg, float(tr.cfg.lambda_sim), tr.classifier
    x_sim = tr.simplifier(x)
    params, buffers = dict(clf.named_parameters()), dict(clf.named_buffers())
    l_sim = F.cross_entropy(tr._forward(params, buffers, x_sim, seed), y)
    grads = torch.autograd.grad(l_sim, tuple(params.values()), create_graph=True)
    new = tr._inner_update(params, grads)
    l_orig = F.cross_entropy(tr._forward(new, buffers, x, seed), y, reduction="none")
    l_after = F.cross_entropy(tr._forward(new, buffers, x_sim, seed), y)
    gate = (cfg.bpd_gate - l_orig.detach()).clamp(0, 1) / cfg.bpd_gate
    b = (gate * tr.density(x_sim, generator=g)).mean()
    loss = (cfg.orig_weight * l_orig.mean() + l_sim + l_after + lam * b) / (cfg.orig_weight + 2 + lam)
    tr.opt_sim.zero_grad()
    loss.backward()
    tr.opt_sim.step()
    tr.opt_clf.zero_grad()
    F.cross_entropy(clf(x_sim.detach()), y).backward()
    tr.opt_clf.step()


def timed(fn, repeats: int) -> float:
    """Median seconds per call after two warm-up calls (a median: one stall on a shared 2-core
    machine must not move the figure)."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired(fa, fb, repeats: int) -> tuple[float, float, list[float]]:
    """Median seconds of ``fa`` and ``fb`` called alternately (two warm-up calls each), and the
    ratio b / a of every pair."""
    for _ in range(2):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fa()
        t1 = time.perf_counter()
        fb()
        ta.append(t1 - t0)
        tb.append(time.perf_counter() - t1)
    return statistics.median(ta), statistics.median(tb), [b / a for a, b in zip(ta, tb)]


def gflop(fn) -> float:
    """Floating-point operations of one call (convolutions and matrix products), in 1e9."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="quick,paper")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    doc = {"threads": torch.get_num_threads(), "torch": torch.__version__, "image": [1, 28, 28], "results": {}}
    for preset in args.presets.split(","):
        cfg = make_simplify_config(preset=preset, lambda_sim=1.0, bpd_gate=1e9)
        x = torch.rand(cfg.batch_size, 1, 28, 28)
        y = torch.randint(0, 10, (cfg.batch_size,))
        tr = JointTrainer(cfg, channels=1, image_hw=(28, 28), num_classes=10)
        with torch.no_grad():
            tr.simplifier.w.fill_(0.1)  # past the identity start, so every UNet weight gets a gradient
        g = generator(0, "bench")
        reps = args.repeats if preset == "quick" else max(2, args.repeats // 2)
        clf, opt = tr.classifier, tr.opt_clf

        def plain():
            opt.zero_grad()
            F.cross_entropy(clf(x), y).backward()
            opt.step()

        def joint():
            tr.step(x, y, g_aug=g, g_noise=g, dropout_seed=1)

        t_plain, t_joint, pairs = paired(plain, joint, reps)
        t_abs = None
        if cfg.relative:  # the paper's absolute classification terms, same trainer and batch
            tr.cfg = replace(cfg, relative=False)
            t_abs = timed(lambda: tr.step(x, y, g_aug=g, g_noise=g, dropout_seed=1), reps)
            tr.cfg = cfg
        t_ref = timed(lambda: reference_style_step(tr, x, y, g, 1), reps)
        t_sim = timed(lambda: tr.simplifier(x).sum().backward(), reps)
        t_bpd = timed(lambda: tr.density(x.requires_grad_()).sum().backward(), reps)
        x.requires_grad_(False)
        flops = {"plain_step": gflop(plain), "joint_step": gflop(joint),
                 "simplifier_fwd_bwd": gflop(lambda: tr.simplifier(x).sum().backward()),
                 "bpd_fwd_bwd": gflop(lambda: tr.density(x.clone().requires_grad_()).sum().backward())}
        flops["classifier_terms"] = flops["joint_step"] - flops["simplifier_fwd_bwd"] - flops["bpd_fwd_bwd"]
        r = {"batch": cfg.batch_size, "classifier": cfg.classifier, "classifier_options": cfg.classifier_options,
             "simplifier_options": cfg.simplifier_options, "inner": cfg.inner,
             "plain_step_s": round(t_plain, 4), "joint_step_s": round(t_joint, 4),
             "reference_style_joint_step_s": round(t_ref, 4),
             "joint_over_plain": round(t_joint / t_plain, 2),
             "joint_over_plain_per_pair": sorted(round(r, 2) for r in pairs),
             "gflop": {k: round(v, 3) for k, v in flops.items()},
             "joint_over_plain_flops": round(flops["joint_step"] / flops["plain_step"], 2),
             "gflop_per_s": {"plain_step": round(flops["plain_step"] / t_plain, 1),
                             "joint_step": round(flops["joint_step"] / t_joint, 1)},
             "reference_style_over_joint": round(t_ref / t_joint, 2),
             "parts_s": {"simplifier_fwd_bwd": round(t_sim, 4), "bpd_fwd_bwd": round(t_bpd, 4)},
             "joint_images_per_s": round(cfg.batch_size / t_joint, 1),
             "relative_terms": cfg.relative, "warmup_epochs": cfg.warmup_epochs}
        if t_abs is not None:
            r["joint_step_absolute_terms_s"] = round(t_abs, 4)
            r["relative_over_absolute"] = round(t_joint / t_abs, 2)
        doc["results"][preset] = r
        print(preset, json.dumps(r), flush=True)
    doc["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
