"""The default bpd as a code length (issue #19): how many draws the bound needs, what it costs,
and the figures the shipped density models give under it.

    python benchmarks/bpd_bound.py --out benchmarks/results/bpd_bound.json [--seeds 10] [--std-images 200]

Three parts, all on real data and in one run:

1. **Draws.** The bound ``(E_u[-log p(x+u)] + D ln 256) / (D ln 2)`` is estimated from K
   seeded draws of the dequantisation noise. For K = 1..4, ``--seeds`` seeds each, the per-image
   std of the estimate across seeds on Fashion-MNIST test images under ``gray32``: stratified
   draws (what :func:`simplebits.density.score_bpd` does) and independent draws (for reference).
   The default ``DEFAULT_DRAWS`` is the smallest K whose per-image std is below 0.01 bpd for 95%
   of the images (``std_p95``).
2. **Speed.** Images/s of the default (bound, channels-last model, batch 128) against the
   previous default measured in the same run (midpoint, the contiguous-format model, batch 500),
   best of ``--repeats`` passes over 2,000 Fashion-MNIST test images.
3. **Figures.** Constant and checkerboard images under both models (each must be >= 0; the flow
   alone, without the raw 8-bit escape, beside it), the
   test sets in bits per model dimension and per native dimension, uniform noise, and the
   ordering black < MNIST < Fashion-MNIST < natural < noise under both models.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch

from simplebits.data import load_dataset
from simplebits.data.photos import PatchStream, wallpaper_files
from simplebits.density import DEFAULT_DRAWS, bpd, fit_images, load_flow, measure_bits, score_bpd
from simplebits.io import atomic_write_json

from bpd_speed import _rate  # images/s, best of `repeats` after one warm-up call (same as bpd_speed.py)


def _std_table(model, x, seeds: int) -> list[dict]:
    rows = []
    with torch.inference_mode():
        for k in (1, 2, 3, 4):
            strat = torch.stack([score_bpd(model, x, draws=k, seed=s) for s in range(seeds)])
            indep = []
            for s in range(seeds):
                g = torch.Generator().manual_seed(1000 + s)
                indep.append(torch.stack([bpd(model, x, dequantize="uniform", generator=g) for _ in range(k)]).mean(0))
            indep = torch.stack(indep)
            for kind, e in (("stratified", strat), ("independent", indep)):
                sd = e.double().std(0)
                rows.append({"draws": k, "noise": kind, "mean_bpd": float(e.double().mean()),
                             "std_mean": float(sd.mean()), "std_rms": float(sd.pow(2).mean().sqrt()),
                             "std_p95": float(sd.quantile(0.95)), "std_max": float(sd.max())})
                print(json.dumps(rows[-1]), flush=True)
    return rows




def _speed(model, x, repeats: int) -> dict:
    old = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    score_bpd(model, x[:128])  # warm both paths
    score_bpd(old, x[:500], dequantize="midpoint", batch_size=500)
    out = {"images": int(x.shape[0]), "repeats": repeats}
    for _ in range(2):  # interleave: the machine's speed drifts
        out.setdefault("before_midpoint_nchw_b500", []).append(
            _rate(lambda: score_bpd(old, x, dequantize="midpoint", batch_size=500), x.shape[0], repeats))
        out.setdefault("midpoint_b128", []).append(
            _rate(lambda: score_bpd(model, x, dequantize="midpoint", batch_size=128), x.shape[0], repeats))
        out.setdefault(f"bound_{DEFAULT_DRAWS}_draws", []).append(
            _rate(lambda: score_bpd(model, x), x.shape[0], repeats))
    for k in list(out):
        if isinstance(out[k], list):
            out[k] = max(out[k])
    out["ratio_default_vs_before"] = out[f"bound_{DEFAULT_DRAWS}_draws"] / out["before_midpoint_nchw_b500"]
    print(json.dumps(out), flush=True)
    return out


def _checker(c: int) -> torch.Tensor:
    i = torch.arange(32)
    return ((i[:, None] + i[None]) % 2).float().expand(1, c, 32, 32).clone()


def _figures(limit: int) -> dict:
    g = torch.Generator().manual_seed(0)
    sets_gray = {
        "mnist-5k:test": load_dataset("mnist-5k:test").images[:limit],
        "printed-digits:test": load_dataset("printed-digits:test").images[:limit],
        "fashion-mnist:test": load_dataset("fashion-mnist:test").images[:limit],
        "photo-patches-gray:test": load_dataset("photo-patches-gray:test").images[:limit],
    }
    out: dict = {}
    for name in ("gray32", "rgb32"):
        m = load_flow(name)
        c = m.config.channels
        res: dict = {"constant": {}, "sets": {}}
        for k, v in {"black": torch.zeros(1, c, 32, 32), "white": torch.ones(1, c, 32, 32),
                     "gray 0.5": torch.full((1, c, 32, 32), 0.5), "checkerboard": _checker(c)}.items():
            res["constant"][k] = {"bound": float(score_bpd(m, v)[0]),
                                  "flow_alone": float(score_bpd(m, v, escape=0)[0]),
                                  "midpoint": float(score_bpd(m, v, dequantize="midpoint")[0])}
        sets = dict(sets_gray)
        if c == 3:
            sets["photo-patches:train"] = load_dataset("photo-patches:train").images[:limit]
            sets["photo-patches:test"] = load_dataset("photo-patches:test").images[:limit]
            held = wallpaper_files("test", require=False)
            if held:  # the Debian wallpaper photos held out of rgb32's training (if installed)
                sets["wallpaper photos held out"] = PatchStream(held, per_epoch=min(limit, 2000), seed=1).epoch(0).images
        sets["uniform noise"] = torch.randint(0, 256, (min(limit, 500), c, 32, 32), generator=g).float() / 255
        for k, v in sets.items():
            t = time.perf_counter()
            b = measure_bits(m, v, gray_to_rgb=(c == 3))
            s = b.summary()
            res["sets"][k] = {"n": int(v.shape[0]), "bpd": s["bpd"]["mean"], "bpd_std": s["bpd"]["std"],
                              "bpd_native": s["bpd_native"]["mean"], "model_dims": b.model_dims,
                              "escaped": b.escaped, "flow_alone": float(b.bpd_flow.double().mean()),
                              "native_dims": b.native_dims, "seconds": round(time.perf_counter() - t, 1),
                              "midpoint": float(score_bpd(m, fit_images(v, m, gray_to_rgb=(c == 3)),
                                                          dequantize="midpoint").mean())}
            print(name, k, json.dumps(res["sets"][k]), flush=True)
        if c == 1:  # the stripes-collapse check: what going black earns a simplifier on the stripes task
            from simplebits.data.composites import _stripe_pattern

            stripes = load_dataset("stripes:test").images[:limit]
            n = min(limit, 200)
            d = torch.arange(n) % 2
            pattern = 0.5 * _stripe_pattern(d, torch.zeros(n, dtype=torch.long), 4, 28, 28)  # the label's cue only
            res["stripes_check"] = {
                "stripes:test": float(measure_bits(m, stripes).bpd.mean()),
                "stripes pattern alone (0.5 * square wave)": float(measure_bits(m, pattern).bpd.mean()),
                "all black 28x28": float(measure_bits(m, torch.zeros(1, 1, 28, 28)).bpd.mean()),
                "all black 28x28, midpoint estimate": float(score_bpd(m, torch.zeros(1, 1, 32, 32),
                                                                       dequantize="midpoint")[0]),
            }
            print(name, "stripes", json.dumps(res["stripes_check"]), flush=True)
        natural = "photo-patches:test" if c == 3 else "photo-patches-gray:test"
        chain = [res["constant"]["black"]["bound"], res["sets"]["mnist-5k:test"]["bpd"],
                 res["sets"]["fashion-mnist:test"]["bpd"], res["sets"][natural]["bpd"], res["sets"]["uniform noise"]["bpd"]]
        res["ordering"] = {"chain": "black < mnist-5k < fashion-mnist < " + natural + " < noise", "values": chain,
                           "holds": all(a < b for a, b in zip(chain, chain[1:]))}
        res["all_constant_nonnegative"] = all(v["bound"] >= 0 for v in res["constant"].values())
        res["all_constant_finite"] = all(math.isfinite(v["bound"]) for v in res["constant"].values())
        out[name] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--std-images", type=int, default=200)
    ap.add_argument("--limit", type=int, default=10000, help="images per test set in part 3")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    t0 = time.perf_counter()
    gray = load_flow("gray32")
    fashion = load_dataset("fashion-mnist:test").images
    x = fit_images(fashion[: a.std_images], gray)
    result = {"benchmark": "bpd_bound", "threads": torch.get_num_threads(), "default_draws": DEFAULT_DRAWS,
              "std_images": a.std_images, "seeds": a.seeds}
    result["draws"] = _std_table(gray, x, a.seeds)
    ok = [r["draws"] for r in result["draws"] if r["noise"] == "stratified" and r["std_p95"] < 0.01]
    result["draws_needed"] = min(ok) if ok else None  # smallest K with 95% of images below 0.01 bpd
    result["default_matches_measurement"] = result["draws_needed"] == DEFAULT_DRAWS
    result["speed"] = _speed(gray, fit_images(fashion[:2000], gray), a.repeats)
    result["figures"] = _figures(a.limit)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=1)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(a.out, result)
    print(text)


if __name__ == "__main__":
    main()
