"""Speed of simplebits' hand-written DSA against kornia.augmentation.

For each image shape (batch of 3x32x32 and of 1x28x28 by default), each DSA op and a
"one op per call" mix, measures images/s of the forward pass (no grad) and of forward +
backward (gradient w.r.t. the input), median over repeats after a warm-up, for ours and
for the closest kornia module(s); prints one JSON object with the ratio ours/kornia
(> 1: ours is faster).

Kornia stand-ins (same ranges where kornia allows; semantics differ slightly: kornia's
contrast scales pixel values rather than scaling around the mean, and it clamps to [0, 1]):
  color  -> ColorJiggle(brightness=0.5, contrast=0.5, saturation=1.0) (saturation 0 on 1 channel)
  crop   -> RandomCrop(size, padding=int(0.125*size+0.5))
  cutout -> RandomErasing(scale=(0.25, 0.25), ratio=(1, 1), value=0, p=1)
  flip   -> RandomHorizontalFlip(p=0.5)
  scale  -> RandomAffine(degrees=0, scale=(1/1.2, 1.2, 1/1.2, 1.2), p=1)
  rotate -> RandomAffine(degrees=15, p=1)
The mix runs each op once per repeat in a seeded shuffled order, the same order for both.

Usage: python benchmarks/augment_speed.py [--batch 256] [--repeats 5] [--calls 3] [--indent 1]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

from simplebits.augment import DSA, DSA_DEFAULT

OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")


def kornia_modules(c: int, h: int, w: int) -> dict | None:
    try:
        import kornia.augmentation as K
    except Exception:  # noqa: BLE001 - any import failure means "no kornia"
        return None
    pad = int(0.125 * h + 0.5)
    return {
        "color": K.ColorJiggle(
            brightness=0.5, contrast=0.5, saturation=1.0 if c == 3 else 0.0, p=1.0
        ),
        "crop": K.RandomCrop((h, w), padding=pad, p=1.0),
        "cutout": K.RandomErasing(scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0.0, p=1.0),
        "flip": K.RandomHorizontalFlip(p=0.5),
        "scale": K.RandomAffine(degrees=0.0, scale=(1 / 1.2, 1.2, 1 / 1.2, 1.2), p=1.0),
        "rotate": K.RandomAffine(degrees=15.0, p=1.0),
    }


def _once(fn, x: torch.Tensor, backward: bool) -> None:
    if backward:
        xi = x.detach().clone().requires_grad_(True)
        fn(xi).sum().backward()
        if xi.grad is None:
            raise RuntimeError("no gradient reached the input")
    else:
        with torch.no_grad():
            fn(x)


def measure(
    fns: dict, x: torch.Tensor, *, backward: bool, repeats: int, calls: int
) -> dict[str, float | None]:
    """Median images/s of `calls` consecutive calls over `repeats` timed runs, per impl.

    The implementations are timed in alternation (ours, kornia, ours, ...) after a
    warm-up, so that a load change on the machine hits both alike.
    """
    live = {}
    for impl, fn in fns.items():
        try:
            for _ in range(2):  # warm-up
                _once(fn, x, backward)
            live[impl] = fn
        except Exception:  # noqa: BLE001 - report as not measurable
            pass
    rates: dict[str, list[float]] = {impl: [] for impl in live}
    for _ in range(repeats):
        for impl, fn in live.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                _once(fn, x, backward)
            rates[impl].append(calls * x.shape[0] / (time.perf_counter() - t0))
    return {impl: (statistics.median(rates[impl]) if impl in live else None) for impl in fns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: stable)")
    ap.add_argument("--indent", type=int, default=None, help="pretty-print the JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    try:
        import kornia

        kornia_version = kornia.__version__
    except Exception:  # noqa: BLE001
        kornia_version = None

    full = DSA(DSA_DEFAULT)
    results: dict = {}
    t_start = time.perf_counter()
    for c, h, w in ((3, 32, 32), (1, 28, 28)):
        x = torch.rand(args.batch, c, h, w)
        km = kornia_modules(c, h, w) if kornia_version else None
        g = torch.Generator().manual_seed(0)
        order = list(OPS)
        random.Random(0).shuffle(order)

        ours_fns = {op: (lambda t, d=DSA(op): d(t, generator=g)) for op in OPS}

        def ours_mix(t):
            out = t.sum() * 0
            for op in order:
                p = full.sample(t.shape[0], generator=g, device=t.device, op=op)
                out = out + full.apply(t, p).sum()
            return out

        ours_fns["mix"] = ours_mix
        kornia_fns = None
        if km is not None:
            kornia_fns = {op: km[op] for op in OPS}

            def kornia_mix(t):
                out = t.sum() * 0
                for op in order:
                    out = out + km[op](t).sum()
                return out

            kornia_fns["mix"] = kornia_mix

        shape_res = {}
        for name in (*OPS, "mix"):
            entry: dict = {}
            # the mix makes len(OPS) op calls per call: count images per op call
            scale = len(OPS) if name == "mix" else 1
            fns = {"ours": ours_fns[name]}
            if kornia_fns is not None:
                fns["kornia"] = kornia_fns[name]
            for mode, bw in (("fwd", False), ("fwd_bwd", True)):
                r = measure(fns, x, backward=bw, repeats=args.repeats, calls=args.calls)
                for impl, v in r.items():
                    entry[f"{impl}_{mode}"] = None if v is None else round(v * scale)
            if kornia_fns is not None:
                for mode in ("fwd", "fwd_bwd"):
                    o, k = entry[f"ours_{mode}"], entry[f"kornia_{mode}"]
                    entry[f"ratio_{mode}"] = round(o / k, 2) if o and k else None
            shape_res[name] = entry
        results[f"{c}x{h}x{w}"] = shape_res

    print(
        json.dumps(
            {
                "unit": "images/s, median; ratio = ours/kornia (>1: ours faster); "
                "mix counts one image per op call",
                "batch": args.batch,
                "repeats": args.repeats,
                "calls_per_repeat": args.calls,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": "cpu",
                "kornia": kornia_version,
                "results": results,
                "seconds": round(time.perf_counter() - t_start, 1),
            },
            indent=args.indent,
        )
    )


if __name__ == "__main__":
    main()
