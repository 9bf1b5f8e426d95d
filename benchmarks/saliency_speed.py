"""The saliency baselines of `explain`: large batches (before) against cache-sized ones (now).

    python benchmarks/saliency_speed.py [--n 6] [--out benchmarks/results/saliency_speed.json]

A ConvNet-3 (width 128) trained for 30 steps on real Fashion-MNIST (the demo's explained
classifier; mnist-5k when Fashion-MNIST is not installed), ``n`` test images, 10 reference
training images per class. ``prediction_difference`` (169 windows x 8 samples = 1352 images per
explained image) in batches of 2048 (before) and in the test pass's batches (now);
``expected_gradients`` (64 samples per image) in pieces of 512 (before) and in the training loop's
cache-sized pieces (now). Interleaved, median of ``--repeats``; the largest difference between the
maps of both sides. Prints one JSON document (also written to ``--out``). Run it alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from simplebits.data import load_dataset, real_subset
from simplebits.errors import SimplebitsError
from simplebits.explain.saliency import expected_gradients, prediction_difference
from simplebits.io import atomic_write_json
from simplebits.models import create_model
from simplebits.train import get_protocol, train_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, metavar="JSON")
    a = ap.parse_args()
    try:
        train, name = load_dataset("fashion-mnist", split="train"), "fashion-mnist"
    except SimplebitsError:
        train, name = load_dataset("mnist-5k", split="train"), "mnist-5k"
    test = load_dataset(name, split="test")
    net = create_model("convnet", channels=1, num_classes=10, image_size=tuple(train.shape[1:]), seed=0)
    train_classifier(net, train, protocol=get_protocol("quick").with_overrides(max_steps=30), seed=0, progress=False)
    net.eval()
    x, y = test.images[: a.n], test.labels[: a.n]
    refs = real_subset(train, 10, seed=0).images
    cases = {"prediction_difference": (prediction_difference, 2048), "expected_gradients": (expected_gradients, 512)}
    doc: dict = {"benchmark": "saliency_speed", "dataset": name, "n": a.n, "threads": torch.get_num_threads(),
                 "unit": "seconds for n images", "cases": {}}
    for case, (fn, old_chunk) in cases.items():
        times: dict[str, list[float]] = {"before": [], "now": []}
        maps = {}
        for _ in range(a.repeats):
            for side, chunk in (("before", old_chunk), ("now", None)):
                t0 = time.perf_counter()
                maps[side] = fn(net, x, y, refs, seed=0, chunk=chunk)
                times[side].append(time.perf_counter() - t0)
        row = {"before_s": round(statistics.median(times["before"]), 2), "now_s": round(statistics.median(times["now"]), 2),
               "before_batch": old_chunk, "max_map_difference": float((maps["before"] - maps["now"]).abs().max())}
        row["speedup"] = round(row["before_s"] / row["now_s"], 2)
        doc["cases"][case] = row
    print(json.dumps(doc, indent=1))
    if a.out:
        atomic_write_json(a.out, doc)


if __name__ == "__main__":
    main()
