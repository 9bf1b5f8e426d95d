"""Accuracy vs bits per dimension of a lambda sweep (the JSON printed by condense_accuracy.py),
and the image grids of the two extremes side by side.

    python benchmarks/plot_condense_tradeoff.py RESULT.json [MORE.json ...] --out docs/img/condense_tradeoff.png

Several result files (parts of one sweep) are merged; runs are sorted by lambda.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+")
    ap.add_argument("--out", default="docs/img/condense_tradeoff.png")
    a = ap.parse_args()
    docs = []
    for path in a.results:
        text = Path(path).read_text()
        docs.append(json.loads(text[text.index("{\n"):]))  # the indented summary after the per-run lines
    doc = docs[0]
    runs = sorted((r for d in docs for r in d["runs"]), key=lambda r: r["lambda"])
    protos = list(runs[0]["eval"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.1, 1]})
    ax = axes[0]
    for proto, marker in zip(protos, "os^"):
        xs = [r["bpd"] for r in runs]
        ys = [100 * r["eval"][proto]["mean"] for r in runs]
        es = [100 * r["eval"][proto]["std"] for r in runs]
        ax.errorbar(xs, ys, yerr=es, marker=marker, capsize=3, label=f"protocol {proto}")
        for r, x, y in zip(runs, xs, ys):
            ax.annotate(f"λ={r['lambda']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        base = doc["random_real_baseline"].get(proto)
        if base:
            ax.axhline(100 * base["mean"], ls=":", color=ax.lines[-1].get_color(), lw=1,
                       label=f"random real ({proto})")
    ax.set_xlabel("mean bits per dimension of the condensed images (gray32)")
    ax.set_ylabel("test accuracy % (mean ± std over networks)")
    ax.set_title(f"{doc['data']} {doc['method']} IPC {doc['ipc']}: accuracy vs bpd")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    lo = min(runs, key=lambda r: r["lambda"])
    hi = max(runs, key=lambda r: r["lambda"])
    tiles = [np.asarray(Image.open(f"{r['file']}.png").convert("RGB")) for r in (lo, hi)]
    gap = np.full((8, tiles[0].shape[1], 3), 255, np.uint8)
    axes[1].imshow(np.concatenate([tiles[0], gap, tiles[1]], axis=0))
    axes[1].set_title(f"top: λ={lo['lambda']:g} ({lo['bpd']:.2f} bpd)   bottom: λ={hi['lambda']:g} ({hi['bpd']:.2f} bpd)",
                      fontsize=9)
    axes[1].axis("off")
    fig.tight_layout()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(json.dumps({"wrote": a.out}))


if __name__ == "__main__":
    main()
