"""Markdown table of condensation runs over several seeds, from ``condense_accuracy.py`` outputs.

    python benchmarks/condense_seeds.py benchmarks/results/condense_mnist5k_dc_ipc1.json \
        benchmarks/results/condense_fmnist_dc_ipc1_seeds.json

Per file and protocol: the mean ± std over condensation seeds × evaluation networks (all the
accuracies pooled, population std), the spread of the per-seed means, the random-real baseline
(same protocol, same IPC, same evaluation seeds) and the gap, plus bpd (re-scored from each file with today's measure, ``score_bpd`` under the default flow, so
that sets made before a change of the measure compare) and seconds per iteration.
"""

from __future__ import annotations

import json
import statistics
import sys

import torch

from simplebits.data.condensed import load_condensed
from simplebits.density import default_flow, fit_images, load_flow, score_bpd


def rescored_bpd(path: str) -> float:
    x = load_condensed(path).images.clamp(0, 1)
    model = load_flow(default_flow(x.shape[1]), device=torch.device("cpu"))
    return float(score_bpd(model, fit_images(x, model)).mean())


def read(path: str) -> tuple[list[dict], dict]:
    """(run lines, summary object) of one condense_accuracy.py output."""
    lines = open(path).read().splitlines()
    runs, k = [], 0
    while k < len(lines) and lines[k].startswith("{") and lines[k].endswith("}"):
        runs.append(json.loads(lines[k]))
        k += 1
    return runs, json.loads("\n".join(lines[k:]))


def pct(values: list[float]) -> str:
    return f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.pstdev(values):.2f}"


def main(paths: list[str]) -> None:
    print("| data | method | IPC | protocol | condensation seeds | accuracy % (seeds × networks) | per-seed means % "
          "| random real % | gap (points) | bpd | s / iteration |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in paths:
        runs, summ = read(path)
        for proto, base in summ["random_real_baseline"].items():
            pooled = [a for r in runs for a in r["eval"][proto]["accuracies"]]
            means = [r["eval"][proto]["mean"] for r in runs]
            gap = 100 * (statistics.fmean(pooled) - base["mean"])
            bpd = statistics.fmean(rescored_bpd(r["file"]) for r in runs)
            spi = ", ".join(f"{r['seconds_per_iteration']:.2f}" for r in runs)
            print(f"| {summ['data']} | {summ['method']} | {summ['ipc']} | {proto} | {len(runs)} | **{pct(pooled)}** "
                  f"| {' / '.join(f'{100 * m:.2f}' for m in means)} | {pct(base['accuracies'])} | {gap:+.1f} "
                  f"| {bpd:.2f} | {spi} |")


if __name__ == "__main__":
    main(sys.argv[1:])
