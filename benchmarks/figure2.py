"""Reproduce the ordering of paper Figure 2: bits per dimension of 100 images each of
all-black, MNIST (mnist-5k test split), Fashion-MNIST test, natural-photo patches and uniform
noise, under the shipped gray32 and rgb32 models (gray images repeated to RGB for rgb32).

Each figure is the package's default bpd, the uniform-dequantisation bound (a code length), per
model dimension, with the same bits per dimension of the images as given (28x28 for MNIST and
Fashion-MNIST; one channel for gray sets under rgb32) and the midpoint estimate beside it (not a
code length; marked as such), and the PNG bpd of the images as given (never padded). Prints a
JSON table and writes a PNG strip of images sorted by bpd with the value under each.

    python benchmarks/figure2.py --out figure2.png
"""

from __future__ import annotations

import argparse
import json

import torch
from PIL import Image, ImageDraw

from simplebits.data import load_dataset
from simplebits.data.photos import photo_patches
from simplebits.density import fit_images, load_flow, measure_bits, score_bpd
from simplebits.density.compress import png_bpd

ORDER = ["black", "mnist", "fashion-mnist", "photo-patches", "noise"]


def image_sets(n: int, channels: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The images as a user has them: MNIST and Fashion-MNIST 1x28x28 (fitted to the model when scored)."""
    g = torch.Generator().manual_seed(seed)

    def first(ds):
        return ds.images[torch.randperm(len(ds), generator=g)[:n]]

    return {
        "black": torch.zeros(n, channels, 32, 32),
        "mnist": first(load_dataset("mnist-5k:test")),
        "fashion-mnist": first(load_dataset("fashion-mnist:test")),
        "photo-patches": photo_patches(split="test", channels=channels, n=n, seed=seed).images,
        "noise": torch.randint(0, 256, (n, channels, 32, 32), generator=g).float() / 255,
    }


def strip(rows: list[tuple[str, float, torch.Tensor]], path: str, scale: int = 3) -> None:
    """Images left to right by increasing bpd, value and set name underneath."""
    s = 32 * scale
    pad, text_h = 6, 28
    canvas = Image.new("RGB", (len(rows) * (s + pad) + pad, s + text_h + 2 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (name, value, img) in enumerate(rows):
        arr = (img.clamp(0, 1) * 255).round().byte()
        arr = arr.repeat(3, 1, 1) if arr.shape[0] == 1 else arr
        im = Image.fromarray(arr.permute(1, 2, 0).numpy(), "RGB").resize((s, s), Image.NEAREST)
        x = pad + i * (s + pad)
        canvas.paste(im, (x, pad))
        draw.text((x + 2, pad + s + 2), f"{value:.2f} bpd", fill="black")
        draw.text((x + 2, pad + s + 14), name[:16], fill="gray")
    canvas.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", default="figure2.png")
    a = ap.parse_args()
    table, strip_rows = {}, []
    for model_name, channels in (("gray32", 1), ("rgb32", 3)):
        model = load_flow(model_name)
        sets = image_sets(a.n, channels)
        col = {}
        for name in ORDER:
            b = measure_bits(model, sets[name], gray_to_rgb=True)  # the default: the bound, seeded
            v = b.bpd
            x = fit_images(sets[name], model, gray_to_rgb=True)
            mid = score_bpd(model, x, dequantize="midpoint")  # a density estimate, not a code length
            col[name] = {"mean": round(float(v.mean()), 3), "std": round(float(v.std()), 3),
                         "native_mean": round(float(b.bpd_native.mean()), 3),
                         "native_dims": b.native_dims, "model_dims": b.model_dims,
                         "midpoint_mean_estimate": round(float(mid.mean()), 3),
                         "flow_alone_mean": round(float(b.bpd_flow.double().mean()), 3), "escaped": b.escaped,
                         "png_bpd": round(float(png_bpd(sets[name]).mean()), 3)}
            if model_name == "gray32":
                k = int(torch.argsort(v)[len(v) // 2])  # the median image of the set
                strip_rows.append((name, float(v[k]), x[k]))
        means = [col[k]["mean"] for k in ORDER]
        col["ordering_holds"] = all(a_ < b_ for a_, b_ in zip(means, means[1:]))
        table[model_name] = col
    strip(sorted(strip_rows, key=lambda r: r[1]), a.out)
    print(json.dumps({"benchmark": "figure2", "n_per_set": a.n, "order": ORDER, "results": table,
                      "unit": "bits per model dimension (uniform-dequantisation bound); native_mean: per dimension "
                              "of the images as given; png_bpd: of the images as given",
                      "strip": a.out}, indent=2))


if __name__ == "__main__":
    main()
