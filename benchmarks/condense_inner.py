"""The network's own steps inside a dc iteration at IPC >= 2, before and after they took the
real side's path (compiled forward and backward, the run's ``precision``), in the same run.

At IPC 10 a dc outer iteration is 10 image updates with 50 network SGD steps on the 100
synthetic images after each but the last: 450 steps against 10 matchings. The steps used to run
eagerly in float32 whatever the run's ``precision``; they now go through
:meth:`simplebits.condense.GradientEngine.train_logits`.

    python benchmarks/condense_inner.py [--dataset fashion-mnist] [--ipc 10] [--pairs 15] [--updates 3]

For each precision (fp32, bf16 where the hardware has it) the two kinds of step alternate call by
call on the same network and batch after a warm-up (medians of ``--pairs`` pairs), and one image
update (real and synthetic gradients of every class, distance, backward) is timed ``--updates``
times. The projected seconds per outer iteration are ``updates x match + (updates - 1) x inner x
step``: before, with the eager float32 step; after, with the run's step. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from simplebits.condense.config import compiles, make_config
from simplebits.condense.methods import make_method
from simplebits.condense.synth import SyntheticSet
from simplebits.data import load_dataset
from simplebits.runtime import bf16_native
from simplebits.train.seeding import generator


def eager_fp32_step(m, x: torch.Tensor, y: torch.Tensor) -> None:
    """The step as it was: the module itself, eager, float32, in the engine's layout."""
    loss = F.cross_entropy(m.net(x.contiguous(memory_format=m.engine.layout)), y)
    m.net_opt.zero_grad(set_to_none=True)
    loss.backward()
    m.net_opt.step()


def median_ms(times: list[float]) -> float:
    return round(1000 * statistics.median(times), 1)


def measure(real, ipc: int, precision: str, pairs: int, updates: int) -> dict:
    cfg = make_config("dc", ipc=ipc, preset="quick", seed=0, precision=precision)
    m = make_method(cfg, real, device=torch.device("cpu"))
    m.begin(0)
    synth = SyntheticSet(real, ipc=cfg.ipc, factor=cfg.factor, param=cfg.param, init=cfg.init,
                         generator=generator(cfg.seed, "init"))
    xs, ys = (t.detach() for t in synth.decoded())
    n = min(cfg.batch_train, len(xs))
    xb, yb = xs[:n], ys[:n]
    for _ in range(2):  # warm-up: compiles the step's graphs once
        eager_fp32_step(m, xb, yb)
        m._net_step(xb, yb)
    before, after = [], []
    for _ in range(pairs):
        t = time.perf_counter()
        eager_fp32_step(m, xb, yb)
        before.append(time.perf_counter() - t)
        t = time.perf_counter()
        m._net_step(xb, yb)
        after.append(time.perf_counter() - t)
    match = []
    opt = torch.optim.SGD([synth.data], lr=cfg.lr_img, momentum=cfg.mom_img)
    for k in range(updates + 1):  # the first one compiles the real side's graphs: not timed
        t = time.perf_counter()
        loss = m.match_loss(synth, 0, k)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if k:
            match.append(time.perf_counter() - t)
    outer, inner = cfg.loops
    steps = (outer - 1) * inner
    s_before, s_after, s_match = statistics.median(before), statistics.median(after), statistics.median(match)
    return {
        "precision": precision,
        "compiled": m.engine.compiled,
        "step_batch": n,
        "step_ms_before_eager_fp32": median_ms(before),
        "step_ms_after": median_ms(after),
        "step_speedup": round(s_before / s_after, 2),
        "step_speedup_every_pair": [round(a / b, 2) for a, b in zip(before, after)],
        "image_update_s": round(s_match, 2),
        "loops": [outer, inner],
        "steps_per_iteration": steps,
        "iteration_s_before": round(outer * s_match + steps * s_before, 1),
        "iteration_s_after": round(outer * s_match + steps * s_after, 1),
        "iteration_speedup": round((outer * s_match + steps * s_before) / (outer * s_match + steps * s_after), 2),
        "quick_run_hours_after": round(cfg.iterations * (outer * s_match + steps * s_after) / 3600, 2),
        "quick_run_hours_before": round(cfg.iterations * (outer * s_match + steps * s_before) / 3600, 2),
        "compile_setting": str(cfg.compile), "compiles": compiles(cfg),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument("--updates", type=int, default=3)
    args = ap.parse_args()
    if args.ipc < 2:
        ap.error("--ipc must be >= 2: at IPC 1 dc takes no network steps")
    real = load_dataset(args.dataset, split="train")
    precisions = ["fp32"] + (["bf16"] if bf16_native(torch.device("cpu")) else [])
    runs = [measure(real, args.ipc, p, args.pairs, args.updates) for p in precisions]
    print(json.dumps({"benchmark": "condense_inner", "dataset": args.dataset, "ipc": args.ipc,
                      "threads": torch.get_num_threads(), "torch": torch.__version__, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
