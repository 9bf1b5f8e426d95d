"""Accuracy of the evaluation protocol on real data: random real subsets at several IPC and
the whole training set, mean ± std over seeds, next to the published DC-paper figures.

Prints one JSON document (accuracies in percent). Example (the figures in docs/evaluate.md):

    python benchmarks/real_subset_accuracy.py --dataset fashion-mnist --ipcs 1,10,50 --full --seeds 3
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from simplebits import evaluate, get_protocol, load_dataset
from simplebits.train import evaluate_real_subset
from simplebits.train.published import published_random


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--ipcs", default="1,10,50")
    ap.add_argument("--full", action="store_true", help="also train on the whole training set")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--protocol", default="quick")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    train = load_dataset(a.dataset, split="train")
    test = load_dataset(a.dataset, split="test")
    proto = get_protocol(a.protocol)
    rows = []
    t0 = time.perf_counter()
    for ipc in [int(v) for v in a.ipcs.split(",") if v]:
        r = evaluate_real_subset(train, test, ipc=ipc, protocol=proto, seeds=a.seeds, device=a.device)
        rows.append({"train": f"random ipc {ipc}", "ipc": ipc, "n_train": r.n_train,
                     "steps": proto.total_steps(r.n_train), "mean": round(100 * r.mean, 2),
                     "std": round(100 * r.std, 2), "accuracies": [round(100 * v, 2) for v in r.accuracies],
                     "published": published_random(a.dataset, ipc), "seconds": round(r.seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    if a.full:
        r = evaluate(train, test, protocol=proto, seeds=a.seeds, device=a.device)
        rows.append({"train": "whole training set", "ipc": None, "n_train": r.n_train,
                     "steps": proto.total_steps(r.n_train), "mean": round(100 * r.mean, 2),
                     "std": round(100 * r.std, 2), "accuracies": [round(100 * v, 2) for v in r.accuracies],
                     "published": published_random(a.dataset, None), "seconds": round(r.seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    out = {"benchmark": "real_subset_accuracy", "dataset": a.dataset, "protocol": proto.to_dict(),
           "seeds": a.seeds, "rows": rows, "wall_seconds": round(time.perf_counter() - t0, 1),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
