"""Does computing a CPU training step in cache-sized pieces pay? Steps, then whole trainings.

    python benchmarks/train_pieces.py [--out benchmarks/results/train_pieces.json] [--quick]

``train_classifier`` cuts each CPU training step into pieces of at most ``PIECE_PIXELS`` image
pixels (``simplebits.train.threads.step_pieces``): the step's gradient is the sum of the pieces'
gradients, so the step is the same up to float rounding. Two parts, both sides measured in this
run, interleaved (whole, pieces, whole, pieces) so that the machine's drift hits both alike:

``steps``     milliseconds per SGD step of ConvNet-3 (width 128, instance norm) for piece limits
              0 (whole step: the behaviour before), 8192, 16384 (the default), 32768 pixels, at
              the batch shapes the package trains on (random pixels: time only);
``training``  real Fashion-MNIST (Debian's package; mnist-5k otherwise), ``train_classifier`` whole
              (``SIMPLEBITS_PIECE_PIXELS=0``) against the default pieces:
              * the demo's explained classifier: quick protocol, 30 steps of batch 256, full data;
              * a YOCO dynamics run: idc protocol (batch 64, DSA + CutMix) on a random real IPC 10
                set, 100 epochs (200 steps);
              * an IPC 10 evaluation: quick protocol on a random real IPC 10 set (batch 100),
                the first 100 of its 300 steps;
              with the test accuracy of both (2000 class-balanced test images) and the largest
              weight difference between them: pieces change float rounding, not the training;
``condense``  the eager real-gradient side of gradient matching (``GradientEngine.real``, 10 classes
              x 128 real Fashion-MNIST images, the demo's ``batch_real``): 32 channels-last images
              per piece (before) against the contiguous pieces of the same rule (now), seconds per
              10 classes and the relative difference of the gradients.

Prints one JSON document (also written to ``--out``). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from simplebits.data import load_dataset, real_subset
from simplebits.errors import SimplebitsError
from simplebits.io import atomic_write_json
from simplebits.models import create_model
from simplebits.train import accuracy, get_protocol, train_classifier
from simplebits.train.threads import PIECE_ENV_VAR, PIECE_PIXELS

LIMITS = (0, 8192, PIECE_PIXELS, 32768)


def step_ms(ch: int, hw: int, batch: int, limit: int, steps: int) -> float:
    """Milliseconds per SGD step in pieces of at most ``limit`` pixels (0: whole)."""
    net = create_model("convnet", channels=ch, num_classes=10, image_size=hw, seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(batch, ch, hw, hw, generator=g), torch.randint(0, 10, (batch,), generator=g)
    per = max(1, limit // (hw * hw)) if limit else batch
    k = -(-batch // per)
    base, extra = divmod(batch, k)
    sizes = [base + (1 if i < extra else 0) for i in range(k)]

    def step() -> None:
        opt.zero_grad()
        a = 0
        for s in sizes:
            (F.cross_entropy(net(x[a:a + s]), y[a:a + s], reduction="sum") / batch).backward()
            a += s
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - t0) / steps


def train_once(train, test, protocol, pieces: bool) -> dict:
    os.environ[PIECE_ENV_VAR] = "" if pieces else "0"
    net = create_model(protocol.model, channels=train.channels, num_classes=train.num_classes,
                       image_size=tuple(train.shape[1:]), seed=0)
    t0 = time.perf_counter()
    train_classifier(net, train, protocol=protocol, seed=0, progress=False)
    seconds = time.perf_counter() - t0
    os.environ[PIECE_ENV_VAR] = ""
    return {"seconds": seconds, "accuracy": accuracy(net, test), "state": net.state_dict()}


def condense_real(train, reps: int, iters: int) -> dict:
    """Seconds for the real-gradient side of one dc outer iteration (10 classes x 128 images)."""
    from simplebits.condense.match import GradientEngine, matched_parameters

    x = real_subset(train, 128, seed=1)
    by_class = [(x.images[x.labels == c], x.labels[x.labels == c]) for c in range(x.num_classes)]

    def engine(before: bool) -> GradientEngine:
        net = create_model("convnet", channels=x.channels, num_classes=x.num_classes, image_size=tuple(x.shape[1:]),
                           seed=0)
        e = GradientEngine(net, matched_parameters(net), chunk=32 if before else 0)
        if before:  # the engine before this change: channels-last pieces of 32 images, eager
            e.layout = torch.channels_last
            e.model = e.model.to(memory_format=torch.channels_last)
        return e

    def seconds(e: GradientEngine) -> tuple[float, list]:
        e.real(*by_class[0])
        t0 = time.perf_counter()
        for _ in range(iters):
            grads = [e.real(xc, yc) for xc, yc in by_class]
        return (time.perf_counter() - t0) / iters, grads

    times: dict[str, list[float]] = {"before": [], "now": []}
    grads = {}
    for _ in range(reps):
        for name in ("before", "now"):
            t, grads[name] = seconds(engine(name == "before"))
            times[name].append(t)
    flat = {k: torch.cat([g.flatten() for cls in v for g in cls]) for k, v in grads.items()}
    rel = float((flat["before"] - flat["now"]).norm() / flat["before"].norm())
    row = {"before_s": round(statistics.median(times["before"]), 3), "now_s": round(statistics.median(times["now"]), 3),
           "gradient_rel_difference": rel}
    row["speedup"] = round(row["before_s"] / row["now_s"], 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, metavar="JSON")
    ap.add_argument("--quick", action="store_true", help="fewer steps and one repeat (a smoke run)")
    a = ap.parse_args()
    reps, steps = (1, 2) if a.quick else (2, 6)
    doc: dict = {"benchmark": "train_pieces", "threads": torch.get_num_threads(), "piece_pixels": PIECE_PIXELS,
                 "steps": {"unit": "ms per SGD step (median of repeats)", "cases": {}}, "training": {}}
    for name, ch, hw, batch in [("fashion 28x28 x256", 1, 28, 256), ("fashion 28x28 x100 (ipc 10)", 1, 28, 100),
                                ("fashion 28x28 x64 (idc batch)", 1, 28, 64), ("cifar-shape 3x32x32 x256", 3, 32, 256),
                                ("digits 8x8 x256", 1, 8, 256)]:
        times: dict[int, list[float]] = {lim: [] for lim in LIMITS}
        for _ in range(reps):
            for lim in LIMITS:
                times[lim].append(step_ms(ch, hw, batch, lim, steps))
        row = {str(lim): round(statistics.median(v), 1) for lim, v in times.items()}
        row["default_vs_whole"] = round(row["0"] / row[str(PIECE_PIXELS)], 2)
        doc["steps"]["cases"][name] = row
        print(json.dumps({name: row}), file=sys.stderr)

    try:
        train, dataset = load_dataset("fashion-mnist", split="train"), "fashion-mnist"
    except SimplebitsError:
        train, dataset = load_dataset("mnist-5k", split="train"), "mnist-5k"
    test = real_subset(load_dataset(dataset, split="test"), 200, seed=0)
    ipc10 = real_subset(train, 10, seed=0)
    quick = get_protocol("quick")
    cases = [("explained classifier: quick, 30 steps x 256, full data", train, quick.with_overrides(max_steps=30)),
             ("yoco dynamics run: idc, ipc 10, 100 epochs", ipc10, get_protocol("idc").with_overrides(epochs=100)),
             ("ipc 10 evaluation: quick, first 100 steps x 100", ipc10, quick.with_overrides(max_steps=100))]
    if a.quick:
        cases = [(n, d, p.with_overrides(max_steps=4)) for n, d, p in cases]
    doc["training"] = {"dataset": dataset, "test_images": len(test), "cases": {}}
    for name, data, proto in cases:
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for _ in range(reps):
            for pieces in (False, True):
                runs[pieces].append(train_once(data, test, proto, pieces))
        whole, cut = runs[False][0], runs[True][0]
        diff = max(float((whole["state"][k].float() - cut["state"][k].float()).abs().max()) for k in whole["state"])
        row = {"steps": proto.total_steps(len(data)),
               "whole_s": round(statistics.median(r["seconds"] for r in runs[False]), 2),
               "pieces_s": round(statistics.median(r["seconds"] for r in runs[True]), 2),
               "accuracy_whole": round(whole["accuracy"], 4), "accuracy_pieces": round(cut["accuracy"], 4),
               "max_weight_difference": diff}
        row["speedup"] = round(row["whole_s"] / row["pieces_s"], 2)
        doc["training"]["cases"][name] = row
        print(json.dumps({name: row}), file=sys.stderr)
    doc["condense"] = condense_real(train, reps, 2 if a.quick else 5)
    print(json.dumps({"condense": doc["condense"]}), file=sys.stderr)
    print(json.dumps(doc, indent=1))
    if a.out:
        atomic_write_json(a.out, doc)


if __name__ == "__main__":
    main()
