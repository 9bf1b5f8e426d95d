"""Train the density models shipped inside the package (``gray32``, ``rgb32``).

Anyone can re-run this; it uses only data installable here (DATA.md):

    gray32  1x32x32  Fashion-MNIST train (60k) + mnist-5k train split (4k) + gray natural-photo
                     patches (20k); 28x28 digits/clothes zero-padded to 32x32
    rgb32   3x32x32  natural-photo patches (crops of the bundled photographs at several scales)

    python scripts/train_default_flows.py gray32 --epochs 4
    python scripts/train_default_flows.py rgb32 --epochs 6 --resume

Writes src/simplebits/density/weights/NAME.safetensors (+ .ckpt and .log.json beside it, which
are not shipped) and prints the training time and the final test bpd as JSON. The paper's model
was trained on 80M Tiny Images, which is not obtainable here; rgb32 stands in for it (see
docs/density.md for training a faithful one with `simplebits train-flow` on CIFAR/Tiny Images).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from simplebits.data import combine, load_dataset
from simplebits.data.photos import photo_patches
from simplebits.density import FlowTrainConfig, GlowConfig, train_flow

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "simplebits" / "density" / "weights"

PRESETS = {
    "gray32": dict(channels=1, levels=3, steps=8, width=96),
    "rgb32": dict(channels=3, levels=3, steps=6, width=64),
}


def data_for(name: str):
    if name == "gray32":
        train = combine([load_dataset("fashion-mnist:train"), load_dataset("mnist-5k:train"),
                         photo_patches(split="train", channels=1, n=20000)], channels=1, size=32)
        test = combine([load_dataset("fashion-mnist:test"), load_dataset("mnist-5k:test"),
                        photo_patches(split="test", channels=1, n=2000)], channels=1, size=32, limit=1000)
    else:
        train = combine([photo_patches(split="train", channels=3, n=30000)], channels=3, size=32)
        test = combine([photo_patches(split="test", channels=3, n=2000)], channels=3, size=32)
    g = torch.Generator().manual_seed(0)
    return train, test.subset(torch.randperm(len(test), generator=g))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=sorted(PRESETS))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out-dir", default=str(WEIGHTS))
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()
    preset = dict(PRESETS[a.name])
    if a.width:
        preset["width"] = a.width
    if a.steps:
        preset["steps"] = a.steps
    train, test = data_for(a.name)
    out = Path(a.out_dir) / f"{a.name}.safetensors"
    t0 = time.perf_counter()
    _, log = train_flow(
        train, test, model_config=GlowConfig(image_size=32, **preset),
        config=FlowTrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, test_images=2000),
        out=out, resume=a.resume, progress=True,
        meta={"shipped_name": a.name, "data": train.meta.get("combined")},
        on_epoch=lambda e, m: print(json.dumps(e), flush=True),
    )
    print(json.dumps({"name": a.name, "out": str(out), "n_train": len(train), "model": preset,
                      "wall_seconds": round(time.perf_counter() - t0, 1), "log": log}, indent=2))


if __name__ == "__main__":
    main()
