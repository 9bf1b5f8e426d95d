"""Test hypotheses read off the simplified images by editing the originals (paper §5's workflow).

Run after benchmarks/explain.py. For the explained misclassified Fashion-MNIST images (latent
space), it tests the two readings the simplified images suggest:

- *silhouette*: the simplified image is a smooth, uniformly filled outline, which suggests
  that the outline alone drives the prediction. Edit: fill the garment (pixels > 0.1) with its
  mean intensity, which removes all texture. Does the prediction stay?
- *faint*: the simplified image is much darker than the original, which suggests that the
  garment is read as the predicted class *because* it is faint. Edit: stretch the original's
  contrast to [0, 1]. Does the prediction move to the true class?

    python benchmarks/explain_edit.py [--dir benchmarks/results/explain/fashion-mnist-latent-misclassified]

Prints one JSON document (per image and totals) and writes benchmarks/results/explain_edit.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from simplebits.io import atomic_write_json, load_tensors
from simplebits.train.checkpoint import load_classifier

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=str(RESULTS / "explain" / "fashion-mnist-latent-misclassified"))
    ap.add_argument("--classifier", default=str(RESULTS / "classifiers" / "fashion-mnist-convnet32-e3-s0.safetensors"))
    args = ap.parse_args()
    t, meta = load_tensors(Path(args.dir) / "explained.safetensors")
    model, _ = load_classifier(args.classifier)
    classes = meta["classes"]
    x, xs, y = t["originals"], t["simplified"], t["labels"]
    po, ps = t["pred_orig"], t["pred_sim"]
    garment = x > 0.1
    fill = (x * garment).flatten(1).sum(1) / garment.flatten(1).sum(1).clamp_min(1)
    flat = torch.where(garment, fill.view(-1, 1, 1, 1), torch.zeros_like(x))
    bright = (x / x.flatten(1).max(1).values.clamp_min(1e-6).view(-1, 1, 1, 1)).clamp(0, 1)
    with torch.no_grad():
        p_flat = model(flat).argmax(1)
        p_bright = model(bright).argmax(1)
    dark = xs.flatten(1).mean(1) < 0.5 * x.flatten(1).mean(1)  # simplified much darker than the original
    rows = []
    for i in range(len(y)):
        rows.append({
            "index": int(t["indices"][i]), "true": classes[int(y[i])], "pred": classes[int(po[i])],
            "pred_simplified": classes[int(ps[i])], "bpd": [round(float(t["bpd_orig"][i]), 2), round(float(t["bpd_sim"][i]), 2)],
            "simplified_much_darker": bool(dark[i]),
            "pred_silhouette_fill": classes[int(p_flat[i])], "pred_contrast_stretched": classes[int(p_bright[i])],
        })
    kept = ps == po
    doc = {
        "images": len(rows),
        "silhouette_fill_keeps_prediction": float((p_flat == po).float().mean()),
        "silhouette_fill_keeps_prediction_where_simplified_kept_it": float((p_flat == po)[kept].float().mean()) if kept.any() else None,
        "faint_cases": int(dark.sum()),
        "faint_cases_fixed_by_contrast": int(((p_bright == y) & dark).sum()),
        "other_cases_fixed_by_contrast": int(((p_bright == y) & ~dark).sum()),
        "per_image": rows,
    }
    atomic_write_json(RESULTS / "explain_edit.json", doc)
    print(json.dumps({k: v for k, v in doc.items() if k != "per_image"}))


if __name__ == "__main__":
    main()
