"""Train the density models shipped inside the package (``gray32``, ``rgb32``).

Anyone can re-run this; it uses only data installable here (DATA.md):

    gray32  1x32x32  Fashion-MNIST train (60k) + mnist-5k train split (4k) + printed digits (5k) +
                     gray natural-photo patches (20k); 28x28 images zero-padded to 32x32
    rgb32   3x32x32  natural-photo patches, fresh every epoch (PatchStream): the 13 bundled train
                     photographs and 25 real photographs from Debian's wallpaper packages
                     (sudo apt-get install mate-backgrounds lomiri-wallpapers-20.04
                     lomiri-wallpapers-16.04), 8 scales each, flips; held out: the 3 bundled test
                     photos and 2 wallpaper photos

    python scripts/train_default_flows.py gray32 --epochs 4
    python scripts/train_default_flows.py rgb32 --epochs 6 --resume
    python scripts/train_default_flows.py gray32 --epochs 12 --continue-shipped   # more epochs

Writes src/simplebits/density/weights/NAME.safetensors, its model card NAME.card.json (shipped;
data, sizes, epochs, time, the held-out bound per test set, this command) and .ckpt / .log.json
beside them (not shipped); prints the training time and the test bpd as JSON. The held-out
figure for early stopping (``--patience``) is the dequantisation bound on the mixed test sets. The paper's model
was trained on 80M Tiny Images, which is not obtainable here; rgb32 stands in for it (see
docs/density.md for training a faithful one with `simplebits train-flow` on CIFAR/Tiny Images).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from simplebits.data import combine, load_dataset
from simplebits.data.photos import PatchStream, photo_patches, photo_stream
from simplebits.density import FlowTrainConfig, GlowConfig, load_flow, measure_bits, train_flow
from simplebits.density.store import card_path
from simplebits.io import atomic_write_json

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "simplebits" / "density" / "weights"

PRESETS = {
    "gray32": dict(channels=1, levels=3, steps=8, width=96),
    "rgb32": dict(channels=3, levels=3, steps=6, width=64),
}


def data_for(name: str):
    if name == "gray32":
        train = combine([load_dataset("fashion-mnist:train"), load_dataset("mnist-5k:train"),
                         load_dataset("printed-digits:train"), photo_patches(split="train", channels=1, n=20000)],
                        channels=1, size=32)
        test = combine([load_dataset("fashion-mnist:test"), load_dataset("mnist-5k:test"),
                        load_dataset("printed-digits:test"), photo_patches(split="test", channels=1, n=2000)],
                       channels=1, size=32, limit=1000)
    else:
        train = photo_stream("train", per_epoch=30000)
        test = combine([photo_patches(split="test", channels=3, n=1000), photo_stream("test", per_epoch=1000).epoch(0)],
                       channels=3, size=32)
    g = torch.Generator().manual_seed(0)
    return train, test.subset(torch.randperm(len(test), generator=g))


def test_sets(name: str) -> dict:
    """Each test set alone, as the user has it (not padded): the card's per-set figures."""
    if name == "gray32":
        return {"fashion-mnist:test": load_dataset("fashion-mnist:test").images,
                "mnist-5k:test": load_dataset("mnist-5k:test").images,
                "printed-digits:test": load_dataset("printed-digits:test").images,
                "photo-patches-gray:test": photo_patches(split="test", channels=1, n=2000).images}
    g = torch.Generator().manual_seed(0)
    return {"photo-patches:test (held-out photos)": photo_patches(split="test", channels=3, n=2000).images,
            "wallpaper photos held out (LadyBird, Storm)": photo_stream("test", per_epoch=2000).epoch(0).images,
            "photo-patches:train (2000 training patches)": photo_patches(split="train", channels=3, n=2000).images,
            "training stream (2000 patches, epoch 0)": photo_stream("train", per_epoch=2000).epoch(0).images,
            "uniform noise (500)": torch.randint(0, 256, (500, 3, 32, 32), generator=g).float() / 255}


def _per_set(model, name: str) -> dict:
    out = {}
    for k, x in test_sets(name).items():
        b = measure_bits(model, x).summary()
        out[k] = {"bpd": b["bpd"]["mean"], "bpd_native": b["bpd_native"]["mean"], "n": int(x.shape[0])}
    return out


def write_card_only(name: str, out_dir: Path) -> None:
    model = load_flow(name)
    meta = model.meta
    st = meta.get("settings", {})
    card = {"file": f"{name}.safetensors", "model": model.config.to_dict(),
            "n_params": sum(p.numel() for p in model.parameters()), "trained_on": meta.get("data"),
            "training_images": st.get("n_train"), "epochs_run": meta.get("epochs"), "kept_epoch": meta.get("epochs"),
            "stopped_early": False, "patience": 0, "train_seconds": meta.get("train_seconds"),
            "test_bpd": None, "test_bpd_recorded_midpoint": meta.get("test_bpd"),
            "unit": "bits per model dimension", "dequantize": "uniform-dequantisation bound",
            "settings": st.get("train"), "log": meta.get("log"),
            "command": f"python scripts/train_default_flows.py {name} --epochs {meta.get('epochs')}",
            "note": "trained before model cards existed: its per-epoch test figures (log) are midpoint estimates; "
                    "test_bpd_per_set is the bound, measured when this card was written"}
    card["test_bpd_per_set"] = _per_set(model, name)
    atomic_write_json(card_path(out_dir / f"{name}.safetensors"), card)
    print(json.dumps(card["test_bpd_per_set"], indent=1))


def _data_names(train) -> list[str]:
    if isinstance(train, PatchStream):
        return [f"{train.name}: {len(train)} fresh patches per epoch from {len(train.paths)} photos "
                f"({', '.join(sorted(train.paths))})"]
    return train.meta.get("combined")


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
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--continue-shipped", action="store_true",
                    help="start from the shipped weights of NAME (more epochs on a model already shipped)")
    ap.add_argument("--card-only", action="store_true",
                    help="train nothing: write the card of the shipped NAME from its recorded metadata and "
                         "its test figures measured now (for models shipped before cards existed)")
    a = ap.parse_args()
    if a.card_only:
        write_card_only(a.name, Path(a.out_dir))
        return
    preset = dict(PRESETS[a.name])
    if a.width:
        preset["width"] = a.width
    if a.steps:
        preset["steps"] = a.steps
    train, test = data_for(a.name)
    out = Path(a.out_dir) / f"{a.name}.safetensors"
    init, before = None, None
    if a.continue_shipped:
        old = load_flow(a.name)
        init = {k: v.contiguous() for k, v in old.state_dict().items()}
        before = {"epochs": old.meta.get("epochs"), "train_seconds": old.meta.get("train_seconds"),
                  "data": old.meta.get("data")}
    command = "python scripts/train_default_flows.py " + " ".join(sys.argv[1:])
    t0 = time.perf_counter()
    model, log = train_flow(
        train, test, model_config=GlowConfig(image_size=32, **preset),
        config=FlowTrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, test_images=2000,
                               patience=a.patience),
        out=out, resume=a.resume, progress=True,
        meta={"shipped_name": a.name, "data": _data_names(train)},
        on_epoch=lambda e, m: print(json.dumps(e), flush=True),
        card={"trained_on": _data_names(train), "test_sets": "mixed test splits (2000 images)",
              "command": command, "continued_from": before},
        init_state=init,
    )
    card = json.loads(card_path(out).read_text())
    card["test_bpd_per_set"] = _per_set(model, a.name)
    card["wall_seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(card_path(out), card)
    print(json.dumps({"name": a.name, "out": str(out), "n_train": len(train), "model": preset,
                      "wall_seconds": card["wall_seconds"], "card": card}, indent=2))


if __name__ == "__main__":
    main()
