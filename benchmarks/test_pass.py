"""The test pass of every evaluation: one trained-size network scores 10,000 test images.

    python benchmarks/test_pass.py [--models convnet resnet10-ap] [--batch-sizes 1000 256 64 32 16] \
        [--repeats 3] [--out benchmarks/results/test_pass.json]

For each model, Fashion-MNIST's 10k test images (1x28x28) go through ``predict_logits`` at each
batch size, the batch sizes interleaved over ``--repeats`` rounds so that a slow moment of the
machine hits all of them alike; the best round is reported (seconds, images/s) with the speed-up
over batch 1000 (the previous default) and whether the logits are bitwise identical to it. A
randomly initialised network is used: the cost does not depend on the weights. Prints one JSON
document (also written to ``--out``). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from simplebits.data import load_dataset
from simplebits.io import atomic_write_json
from simplebits.models import create_model
from simplebits.train.loop import default_eval_batch, predict_logits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["convnet", "resnet10-ap"])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1000, 256, 64, 32, 16])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=10000, help="test images scored (default all 10k)")
    ap.add_argument("--out", default=None, metavar="JSON")
    a = ap.parse_args()

    test = load_dataset("fashion-mnist:test")
    x = test.images[: a.limit]
    doc = {"benchmark": "test_pass", "data": "fashion-mnist:test", "n": int(x.shape[0]), "threads": torch.get_num_threads(),
           "default_batch_cpu": default_eval_batch(torch.device("cpu")), "models": {}}
    for name in a.models:
        net = create_model(name, channels=1, num_classes=10, image_size=(28, 28), seed=0).eval()
        ref = predict_logits(net, x[:64], batch_size=1000)  # warm-up
        best: dict[int, float] = {}
        logits: dict[int, torch.Tensor] = {}
        for _ in range(a.repeats):
            for bs in a.batch_sizes:
                t0 = time.perf_counter()
                out = predict_logits(net, x, batch_size=bs)
                dt = time.perf_counter() - t0
                best[bs] = min(best.get(bs, float("inf")), dt)
                logits[bs] = out
        base = 1000 if 1000 in best else a.batch_sizes[0]
        ref = logits[base]
        doc["models"][name] = {
            str(bs): {"seconds": round(best[bs], 2), "images_per_s": round(x.shape[0] / best[bs], 1),
                      "speedup_vs_1000": round(best[base] / best[bs], 2),
                      "identical_logits": bool(torch.equal(logits[bs], ref)),
                      "same_predictions": bool(torch.equal(logits[bs].argmax(1), ref.argmax(1)))}
            for bs in a.batch_sizes
        }
    print(json.dumps(doc, indent=2))
    if a.out:
        atomic_write_json(a.out, doc)


if __name__ == "__main__":
    main()
