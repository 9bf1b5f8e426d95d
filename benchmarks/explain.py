"""Post-hoc simplification targets (paper §5): on a classifier trained on Fashion-MNIST and one
on mnist-5k, 32 misclassified and 32 correctly classified test images, Alg. 1 (input space) and
Alg. 2 (Glow latent space): how often the simplified image keeps the classifier's prediction,
and how much lower its bpd is. Then the time per image for batch sizes 1, 8, 32.

    python benchmarks/explain.py [--data fashion-mnist,mnist-5k] [--n 32] [--steps 300]
        [--spaces latent,input] [--timing-steps 20] [--seed 0]

Classifiers are trained once (ConvNet-3 width 32, dc protocol, 3 epochs) and kept in
benchmarks/results/classifiers/. Every cell is written to benchmarks/results/explain.json as it
finishes and re-running skips finished cells; figures go to benchmarks/results/explain/.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import torch

from simplebits.data import load_dataset
from simplebits.explain import explain, load_explained, make_explain_config, simplify_posthoc
from simplebits.explain.figure import explanation_figure
from simplebits.io import atomic_write_json
from simplebits.models import create_model
from simplebits.train import accuracy, get_protocol, train_classifier
from simplebits.train.checkpoint import load_classifier, save_classifier

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def classifier(name: str, seed: int):
    path = RESULTS / "classifiers" / f"{name}-convnet32-e3-s{seed}.safetensors"
    if not path.exists():
        train = load_dataset(f"{name}:train")
        m = create_model("convnet", channels=1, num_classes=train.num_classes, image_size=28, width=32, seed=seed)
        train_classifier(m, train, protocol=get_protocol("dc").with_overrides(epochs=3), seed=seed)
        save_classifier(path, m, name="convnet", channels=1, image_size=28, classes=train.classes,
                        options={"width": 32}, extra={"source": name, "epochs": 3, "seed": seed})
    return load_classifier(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion-mnist,mnist-5k")
    ap.add_argument("--spaces", default="latent,input")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lambda-sim", type=float, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--timing-steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    out_file = RESULTS / f"explain{args.tag}.json"
    doc = json.loads(out_file.read_text()) if out_file.exists() else {"cells": {}}
    doc["threads"] = torch.get_num_threads()
    t0 = time.perf_counter()
    for name in args.data.split(","):
        model, info = classifier(name, args.seed)
        test = load_dataset(f"{name}:test")
        refs = load_dataset(f"{name}:train")
        doc.setdefault("classifiers", {})[name] = {"test_accuracy": accuracy(model, test)}
        for space in args.spaces.split(","):
            cfg = make_explain_config(space=space, steps=args.steps, lambda_sim=args.lambda_sim, lr=args.lr,
                                      seed=args.seed)
            for select in ("misclassified", "correct"):
                key = f"{name}/{space}/{select}"
                if key in doc["cells"] and doc["cells"][key]["config"] == cfg.to_dict():
                    print(key, "done before", flush=True)
                    continue
                res = explain(model, test, info=info, select=select, n=args.n, config=cfg, references=refs,
                              out=RESULTS / "explain" / f"{name}-{space}-{select}{args.tag}", progress=False)
                s = res.summary()
                s["config"] = cfg.to_dict()
                s["files"] = {k: str(Path(v).relative_to(ROOT)) for k, v in s["files"].items()}
                doc["cells"][key] = s
                print(key, {k: s[k] for k in ("agreement", "bpd_orig", "bpd_sim", "bpd_reduction", "seconds_per_image")},
                      flush=True)
                atomic_write_json(out_file, doc)
    # time per image against batch size (latent space, the default)
    if args.timing_steps:
        model, _ = classifier(args.data.split(",")[0], args.seed)
        x_all = load_dataset(f"{args.data.split(',')[0]}:test").images
        timing = {}
        for space in args.spaces.split(","):
            for bs in (1, 8, 32):
                cfg = make_explain_config(space=space, steps=args.timing_steps, batch_size=bs)
                t = time.perf_counter()
                simplify_posthoc(model, x_all[:bs], config=cfg, progress=False)
                dt = time.perf_counter() - t
                timing[f"{space}/batch{bs}"] = {"seconds_per_step": round(dt / args.timing_steps, 4),
                                                "seconds_per_image_step": round(dt / args.timing_steps / bs, 4)}
                print(space, bs, timing[f"{space}/batch{bs}"], flush=True)
        doc["timing"] = timing
    # figures are (re)drawn from the saved results, so a layout change needs no new optimisation
    for c in doc["cells"].values():
        folder = ROOT / Path(c["files"]["results"]).parent
        explanation_figure(load_explained(folder / "explained.safetensors"), folder / "figure.png")
    # summary per data set and space: both selections pooled (64 images)
    summary = {}
    for key, c in doc["cells"].items():
        name, space, _ = key.split("/")
        summary.setdefault(f"{name}/{space}", []).append(c)
    doc["summary"] = {k: {"agreement": statistics.mean(c["agreement"] for c in v),
                          "bpd_orig": statistics.mean(c["bpd_orig"] for c in v),
                          "bpd_sim": statistics.mean(c["bpd_sim"] for c in v),
                          "bpd_reduction": 1 - statistics.mean(c["bpd_sim"] for c in v) / statistics.mean(c["bpd_orig"] for c in v),
                          "seconds_per_image": statistics.mean(c["seconds_per_image"] for c in v)}
                      for k, v in summary.items()}
    doc["wall_s"] = round(time.perf_counter() - t0, 1)
    doc["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    atomic_write_json(out_file, doc)
    print(json.dumps(doc["summary"], indent=1))


if __name__ == "__main__":
    main()
