"""Reproduce the ordering of paper Figure 2: bits per dimension of 100 images each of
all-black, MNIST (mnist-5k test split), Fashion-MNIST test, natural-photo patches and uniform
noise, under the shipped gray32 and rgb32 models (midpoint dequantisation, the report default,
and seeded uniform dequantisation beside it) (gray images repeated to RGB for rgb32), with
PNG-compressed bpd beside them. Prints a JSON table and writes a PNG strip of images sorted by
bpd with the value under each.

    python benchmarks/figure2.py --out figure2.png
"""

from __future__ import annotations

import argparse
import json

import torch
from PIL import Image, ImageDraw

from simplebits.data import load_dataset, resize, to_channels
from simplebits.data.photos import photo_patches
from simplebits.density import bpd, fit_images, load_flow, score_bpd
from simplebits.density.compress import png_bpd

ORDER = ["black", "mnist", "fashion-mnist", "photo-patches", "noise"]


def image_sets(n: int, channels: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def first(ds):
        ds = to_channels(resize(ds, 32, mode="pad"), channels)
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
            x = fit_images(sets[name], model)
            v = score_bpd(model, x)
            with torch.no_grad():  # uniform dequantisation (seeded): in expectation an upper bound on the true bpd (>= 0)
                u = bpd(model, x, dequantize="uniform", generator=torch.Generator().manual_seed(0))
            col[name] = {"mean": round(float(v.mean()), 3), "std": round(float(v.std()), 3),
                         "uniform_mean": round(float(u.mean()), 3),
                         "png_bpd": round(float(png_bpd(x).mean()), 3)}
            if model_name == "gray32":
                k = int(torch.argsort(v)[len(v) // 2])  # the median image of the set
                strip_rows.append((name, float(v[k]), x[k]))
        means = [col[k]["mean"] for k in ORDER]
        col["ordering_holds"] = all(a_ < b_ for a_, b_ in zip(means, means[1:]))
        table[model_name] = col
    strip(sorted(strip_rows, key=lambda r: r[1]), a.out)
    print(json.dumps({"benchmark": "figure2", "n_per_set": a.n, "order": ORDER, "results": table,
                      "strip": a.out}, indent=2))


if __name__ == "__main__":
    main()
