"""ConvNet-3's 2x2 average pooling from strided slices (``AvgPool2x2``) against ATen's
``avg_pool2d`` (``nn.AvgPool2d(2)``, what every ConvNet used before), in one run.

    python benchmarks/pool_step.py [--dataset fashion-mnist] [--ipcs 1,10] [--seeds 2]
                                   [--out benchmarks/results/pool_step.json]

1. ``steps``: one training step (forward, backward, SGD) of a ConvNet-3 (width 128) on 28x28
   images at the batch sizes evaluation uses (10: an IPC 1 set; 20: one cache-sized piece of a
   larger step, as ``train_classifier`` cuts an IPC 10 set) and one test pass batch (32 images,
   forward only), in float32 and in bf16 autocast. The two poolings are
   timed alternately on two copies of the same network (medians; each pair's ratio beside), and
   their outputs and gradients are compared bit for bit.
2. ``networks``: whole evaluations as ``simplebits evaluate`` runs them: a random real subset
   (the baseline's seed rule), one fresh ConvNet-3 trained under the quick protocol and tested on
   the whole test set, once with each pooling (per seed, one after the other, so the machine's
   drift hits both), in fp32 and in bf16. Every prediction must be the same.

Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from simplebits import get_protocol, load_dataset
from simplebits.data import real_subset
from simplebits.io import atomic_write_json
from simplebits.models import create_model
from simplebits.models.convnet import AvgPool2x2
from simplebits.runtime import cpu_name, peak_rss_mb
from simplebits.train import derive_seed

from eval_precision import one_network  # benchmarks/: one network trained and tested, timed
from simplify_step import paired  # benchmarks/: two callables timed alternately


@contextlib.contextmanager
def aten_pooling():
    """Every AvgPool2x2 computes with F.avg_pool2d (the code before) while inside."""
    fast = AvgPool2x2.forward
    AvgPool2x2.forward = lambda self, x: F.avg_pool2d(x, 2)
    try:
        yield
    finally:
        AvgPool2x2.forward = fast


def with_aten(model: nn.Module) -> nn.Module:
    ref = copy.deepcopy(model)
    for i, layer in enumerate(ref.features):
        if isinstance(layer, AvgPool2x2):
            ref.features[i] = nn.AvgPool2d(2)
    return ref


def step_case(batch: int, precision: str, train: bool, repeats: int) -> dict:
    g = torch.Generator().manual_seed(batch)
    x, y = torch.rand(batch, 1, 28, 28, generator=g), torch.randint(0, 10, (batch,), generator=g)
    fast = create_model("convnet", channels=1, num_classes=10, image_size=(28, 28), seed=0)
    slow = with_aten(fast)
    bf16 = precision == "bf16"
    outs = {}

    def make(model, key):
        opt = torch.optim.SGD(model.parameters(), lr=1e-6)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                if not train:
                    with torch.no_grad():
                        outs[key] = model(x)
                    return
                out = model(x)
            loss = F.cross_entropy(out.float(), y)
            opt.zero_grad()
            loss.backward()
            outs[key] = torch.cat([p.grad.flatten() for p in model.parameters()])
            # no optimiser step: both copies keep the same weights, so the last results compare
        return step

    t_slow, t_fast, ratios = paired(make(slow, "aten"), make(fast, "slices"), repeats)
    pairs = sorted(round(1 / r, 2) for r in ratios)  # paired() gives slices/aten per pair
    return {"batch": batch, "precision": precision, "what": "train step" if train else "test batch",
            "aten_ms": round(1000 * t_slow, 2), "slices_ms": round(1000 * t_fast, 2),
            "speedup": round(t_slow / t_fast, 2), "speedup_per_pair": pairs,
            "bitwise_equal": bool(torch.equal(outs["aten"], outs["slices"]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--ipcs", default="1,10")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--repeats", type=int, default=15, help="timed pairs per step case")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args()
    precisions = [p for p in a.precisions.split(",") if p]
    t_all = time.perf_counter()
    steps = []
    for precision in precisions:
        for batch, train in [(10, True), (20, True), (32, False)]:
            row = step_case(batch, precision, train, a.repeats)
            steps.append(row)
            print(json.dumps(row), flush=True)
    train_all = load_dataset(a.dataset, split="train")
    test = load_dataset(a.dataset, split="test")
    networks = []
    for precision in precisions:
        proto = get_protocol("quick").with_overrides(precision=precision)
        for ipc in [int(v) for v in a.ipcs.split(",") if v]:
            res = {"aten": [], "slices": []}
            for s in range(a.seeds):
                subset = real_subset(train_all, ipc, seed=derive_seed(s, "subset"))
                with aten_pooling():
                    res["aten"].append(one_network(subset, test, proto, s))
                res["slices"].append(one_network(subset, test, proto, s))
            row: dict = {"ipc": ipc, "precision": precision, "seeds": a.seeds, "test_images": len(test)}
            for k, rs in res.items():
                row[k] = {"train_s": round(statistics.fmean(r["train_s"] for r in rs), 2),
                          "test_s": round(statistics.fmean(r["test_s"] for r in rs), 2),
                          "accuracies": [round(100 * r["accuracy"], 2) for r in rs]}
            tot = {k: row[k]["train_s"] + row[k]["test_s"] for k in res}
            row["speedup_train"] = round(row["aten"]["train_s"] / row["slices"]["train_s"], 2)
            row["speedup_test"] = round(row["aten"]["test_s"] / row["slices"]["test_s"], 2)
            row["speedup_network"] = round(tot["aten"] / tot["slices"], 2)
            row["same_predictions"] = all(bool(torch.equal(p["pred"], q["pred"]))
                                          for p, q in zip(res["aten"], res["slices"]))
            networks.append(row)
            print(json.dumps(row), flush=True)
    out = {"benchmark": "pool_step", "dataset": a.dataset, "cpu": cpu_name(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "steps": steps, "networks": networks,
           "wall_seconds": round(time.perf_counter() - t_all, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}
    print(json.dumps(out, indent=2))
    if a.out:
        atomic_write_json(a.out, out)


if __name__ == "__main__":
    main()
