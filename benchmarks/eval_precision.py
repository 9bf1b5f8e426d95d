"""Evaluation in bf16 against float32: seconds and accuracy of the same networks, in one run.

    python benchmarks/eval_precision.py [--dataset fashion-mnist] [--ipcs 1,10] [--seeds 5]
                                        [--out benchmarks/results/eval_precision.json]

For each IPC and seed, one random real subset (the baseline's, ``evaluate_real_subset``'s seed
rule) trains one fresh ConvNet-3 under the quick protocol twice: ``precision="fp32"`` (the default)
and ``precision="bf16"`` (autocast: float32 weights, gradients and loss, bf16 convolutions), in
that order per seed so the machine's drift hits both alike; each is tested on the whole test set.
Reported per IPC: seconds per network (training and test pass apart), the speed-up as a ratio,
the accuracies with mean ± std (population std, %), the difference of the means against the
fp32 std, and how many test predictions of the seed-0 networks differ. bf16 pays where the
hardware has it (AVX512-BF16 / AMX: ``simplebits.runtime.bf16_native``); elsewhere it is
emulated and slower, and ``precision="auto"`` stays float32. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from simplebits import get_protocol, load_dataset
from simplebits.data import real_subset
from simplebits.io import atomic_write_json
from simplebits.models import create_model
from simplebits.runtime import bf16_native, cpu_name, peak_rss_mb
from simplebits.train import derive_seed, predict_logits, train_classifier


def one_network(train, test, proto, seed: int) -> dict:
    net = create_model(proto.model, channels=train.channels, num_classes=train.num_classes,
                       image_size=tuple(train.shape[1:]), seed=derive_seed(seed, "init"))
    t0 = time.perf_counter()
    train_classifier(net, train, protocol=proto, seed=seed, progress=False)
    t1 = time.perf_counter()
    dtype = torch.bfloat16 if proto.precision == "bf16" else None
    pred = predict_logits(net, test.images, autocast=dtype).argmax(1)
    t2 = time.perf_counter()
    return {"train_s": t1 - t0, "test_s": t2 - t1, "accuracy": float((pred == test.labels).float().mean()),
            "pred": pred}


def pstats(v: list[float]) -> tuple[float, float]:
    return statistics.fmean(v), statistics.pstdev(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--ipcs", default="1,10")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--protocol", default="quick")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args()
    train_all = load_dataset(a.dataset, split="train")
    test = load_dataset(a.dataset, split="test")
    base = get_protocol(a.protocol)
    sides = {"fp32": base.with_overrides(precision="fp32"), "bf16": base.with_overrides(precision="bf16")}
    rows = []
    t_all = time.perf_counter()
    for ipc in [int(v) for v in a.ipcs.split(",") if v]:
        res: dict[str, list[dict]] = {k: [] for k in sides}
        for s in range(a.seeds):
            train = real_subset(train_all, ipc, seed=derive_seed(s, "subset"))
            for name, proto in sides.items():
                res[name].append(one_network(train, test, proto, s))
        row: dict = {"ipc": ipc, "n_train": ipc * train_all.num_classes, "seeds": a.seeds, "test_images": len(test)}
        for name in sides:
            acc = [100 * r["accuracy"] for r in res[name]]
            m, sd = pstats(acc)
            row[name] = {"accuracies": [round(v, 2) for v in acc], "mean": round(m, 2), "std": round(sd, 2),
                         "train_s_per_network": round(statistics.fmean(r["train_s"] for r in res[name]), 2),
                         "test_s_per_network": round(statistics.fmean(r["test_s"] for r in res[name]), 2)}
        f, b = row["fp32"], row["bf16"]
        tot = {k: row[k]["train_s_per_network"] + row[k]["test_s_per_network"] for k in sides}
        row["speedup_train"] = round(f["train_s_per_network"] / b["train_s_per_network"], 2)
        row["speedup_test"] = round(f["test_s_per_network"] / b["test_s_per_network"], 2)
        row["speedup_network"] = round(tot["fp32"] / tot["bf16"], 2)
        row["mean_difference"] = round(b["mean"] - f["mean"], 2)
        row["within_fp32_std"] = abs(b["mean"] - f["mean"]) <= f["std"]
        row["seed0_predictions_differing"] = int((res["fp32"][0]["pred"] != res["bf16"][0]["pred"]).sum())
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"benchmark": "eval_precision", "dataset": a.dataset, "protocol": base.name, "cpu": cpu_name(),
           "threads": torch.get_num_threads(), "bf16_native": bf16_native("cpu"), "torch": torch.__version__,
           "rows": rows, "wall_seconds": round(time.perf_counter() - t_all, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}
    print(json.dumps(out, indent=2))
    if a.out:
        atomic_write_json(a.out, out)


if __name__ == "__main__":
    main()
