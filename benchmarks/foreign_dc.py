"""A DC-written condensed set scores through simplebits what its maker's own evaluation scores.

    python benchmarks/foreign_dc.py --out benchmarks/results/foreign_dc.json \
        [--iterations 150] [--seeds 5] [--protocol dc] \
        [--reference res_DC_FashionMNIST_ConvNet_1ipc.pt --authors 70.20 0.39]

DC/DSA/DM never clamp their synthetic images: written mean/std-normalised into ``res_*.pt``,
denormalised they leave [0, 1]. This benchmark checks that importing such a file changes
nothing the networks train on:

1. **The maker**: Fashion-MNIST IPC 1 is condensed the way DC's code does it (``dc``, images
   optimised in normalised coordinates and never clamped: ``clamp=False``), and the maker
   evaluates the images it holds in memory, 5 fresh ConvNet-3 under the ``dc`` protocol
   (300 epochs). That is "its authors' evaluation". The same networks are also trained and
   tested on mean/std-normalised images, as DC's ``evaluate_synset`` does, to measure what
   simplebits' [0, 1]-pixel protocol changes.
2. **The file**: the same images written exactly as DC's ``main.py`` writes them,
   ``{'data': [[images_normalised, labels]], 'accs_all_exps': ...}`` under DC's file name
   ``res_DC_FashionMNIST_ConvNet_1ipc.pt`` with DC's Fashion-MNIST mean/std.
3. **A user**: ``simplebits convert FILE --out X`` with no flags (data set, normalisation and
   source inferred from the name) and ``simplebits evaluate X --protocol dc --seeds 5``
   (random-real baseline found without ``--real``); then the same with ``--clamp``, which is
   what every earlier version did without asking.

With ``--reference`` a file written by the reference code itself is converted and evaluated the
same way, beside the figure its authors' code printed (``--authors MEAN STD``, in %).
Prints one JSON document (also written to ``--out``). Runs one heavy job at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from simplebits.condense import condense, make_config
from simplebits.data import ImageSet, load_dataset
from simplebits.data.condensed import NORMALIZATIONS
from simplebits.io import atomic_write_json
from simplebits.train.evaluate import evaluate


def _cli(*args: str) -> dict:
    """Run ``simplebits ARGS --json`` as a user would; its JSON document."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "simplebits.cli.main", *args, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"simplebits {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    doc = json.loads(r.stdout)
    doc["_wall_s"] = round(time.perf_counter() - t0, 1)
    return doc


def _pct(accs: list[float]) -> dict:
    return {"mean": round(100 * statistics.fmean(accs), 2), "std": round(100 * statistics.pstdev(accs), 2),
            "accuracies": [round(100 * a, 2) for a in accs]}


def _import_and_evaluate(path: Path, work: Path, protocol: str, seeds: int, tag: str) -> dict:
    out_u, out_c = work / f"{tag}-unbounded.safetensors", work / f"{tag}-clamped.safetensors"
    conv_u = _cli("convert", str(path), "--out", str(out_u))
    conv_c = _cli("convert", str(path), "--clamp", "--out", str(out_c))
    ev_u = _cli("evaluate", str(out_u), "--protocol", protocol, "--seeds", str(seeds))
    ev_c = _cli("evaluate", str(out_c), "--protocol", protocol, "--seeds", str(seeds), "--no-baseline")
    return {
        "convert": {k: conv_u.get(k) for k in ("inferred", "normalization", "source", "range", "value_range",
                                              "out_of_range_fraction")},
        "convert_clamp": {k: conv_c.get(k) for k in ("range", "clamped_fraction")},
        "unbounded": {**_pct(ev_u["accuracies"]), "seconds": round(ev_u["seconds"], 1)},
        "clamped": {**_pct(ev_c["accuracies"]), "seconds": round(ev_c["seconds"], 1)},
        "random_real": _pct(ev_u["baseline"]["accuracies"]) if ev_u.get("baseline") else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=150, help="DC outer iterations of the maker (quick preset: 150)")
    ap.add_argument("--seeds", type=int, default=5, help="networks per evaluation (DC reports 5)")
    ap.add_argument("--protocol", default="dc")
    ap.add_argument("--seed", type=int, default=0, help="condensation seed of the maker")
    ap.add_argument("--reference", default=None, metavar="FILE", help="a res_*.pt written by the reference code")
    ap.add_argument("--authors", type=float, nargs=2, default=None, metavar=("MEAN", "STD"),
                    help="the accuracy its authors' code reported for --reference, in %%")
    ap.add_argument("--out", default=None, metavar="JSON")
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep the DC-format file and the converted sets here")
    a = ap.parse_args()

    t_all = time.perf_counter()
    train, test = load_dataset("fashion-mnist:train"), load_dataset("fashion-mnist:test")
    cfg = make_config("dc", ipc=1, preset="quick", iterations=a.iterations, clamp=False, compile=False, seed=a.seed)
    res = condense(train, cfg, progress=False)
    made = res.images
    lo, hi = made.value_range()
    maker = evaluate(made, test, protocol=a.protocol, seeds=a.seeds, progress=False)
    # DC's own evaluate_synset trains and tests on mean/std-normalised images; simplebits' protocols
    # on [0, 1] pixels. The same networks and seeds on normalised inputs measure that difference.
    mean, std = NORMALIZATIONS["fashion-mnist"]
    norm = lambda ds: ImageSet.create((ds.images - mean[0]) / std[0], ds.labels, ds.classes,  # noqa: E731
                                      {"name": f"{ds.name} (normalised)"}, unbounded=True)
    maker_norm = evaluate(norm(made), norm(test), protocol=a.protocol, seeds=a.seeds, progress=False)
    doc: dict = {
        "benchmark": "foreign_dc",
        "data": "fashion-mnist", "ipc": 1, "protocol": a.protocol, "networks": a.seeds,
        "maker": {"method": "dc, clamp=False (as DC's main.py)", "iterations": a.iterations,
                  "seconds_per_iteration": round(res.seconds_per_iteration, 2),
                  "value_range": [round(lo, 3), round(hi, 3)],
                  "out_of_range_fraction": round(made.out_of_range_fraction(), 4),
                  "own_evaluation": _pct(maker.accuracies),
                  "own_evaluation_on_normalised_inputs": _pct(maker_norm.accuracies)},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        dc_file = work / "res_DC_FashionMNIST_ConvNet_1ipc.pt"
        torch.save({"data": [[(made.images - mean[0]) / std[0], made.labels.clone()]],
                    "accs_all_exps": {"ConvNet": [float(x) for x in maker.accuracies]}}, dc_file)
        doc["dc_format_file"] = _import_and_evaluate(dc_file, work, a.protocol, a.seeds, "maker")
        if a.reference:
            ref = _import_and_evaluate(Path(a.reference), work, a.protocol, a.seeds, "reference")
            if a.authors:
                ref["authors"] = {"mean": a.authors[0], "std": a.authors[1]}
            doc["reference_file"] = ref
    f = doc["dc_format_file"]
    own = doc["maker"]["own_evaluation"]
    doc["checks"] = {
        "unbounded_within_1_std_of_maker": abs(f["unbounded"]["mean"] - own["mean"]) <= max(own["std"], 1e-9),
        "unbounded_minus_maker_points": round(f["unbounded"]["mean"] - own["mean"], 2),
        "clamped_minus_maker_points": round(f["clamped"]["mean"] - own["mean"], 2),
        "normalised_inputs_minus_pixels_points": round(doc["maker"]["own_evaluation_on_normalised_inputs"]["mean"]
                                                       - own["mean"], 2),
        "inferred_normalization": f["convert"]["normalization"],
        "baseline_found_without_real": f["random_real"] is not None,
    }
    if a.reference and a.authors:
        r = doc["reference_file"]
        doc["checks"]["reference_within_1_std_of_authors"] = abs(r["unbounded"]["mean"] - a.authors[0]) <= a.authors[1]
    doc["wall_s"] = round(time.perf_counter() - t_all, 1)
    doc["threads"] = torch.get_num_threads()
    doc["host_cpus"] = os.cpu_count()
    text = json.dumps(doc, indent=2)
    print(text)
    if a.out:
        atomic_write_json(a.out, doc)


if __name__ == "__main__":
    main()
