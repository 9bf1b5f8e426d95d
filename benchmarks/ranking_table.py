"""Markdown tables of benchmarks/results/ranking/*.json (written by benchmarks/ranking.py) for docs/evaluate.md.

    python benchmarks/ranking_table.py [FILE.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "results" / "ranking"


def _pm(d: dict, scale: float = 100.0) -> str:
    return f"{scale * d['mean']:.2f} ± {scale * d['std']:.2f}"


def table(doc: dict) -> str:
    soft = doc["soft_labels"]["loss"]
    t = doc["soft_labels"]["temperature"]
    fd = doc["full_data"]
    out = [f"**{doc['dataset']}, IPC {doc['ipc']}** (protocol `{doc['protocol']['name']}`, {doc['seeds']} seeds; "
           f"soft labels: `{soft}`, T = {t:g}, teacher = the whole-data network of seed 0, median top probability "
           f"{fd['teacher_max_prob_median']:.2f} on training images; whole training set, hard labels: "
           f"{100 * fd['mean']:.2f} ± {100 * fd['std']:.2f} %; wall time {doc['wall_seconds'] / 60:.0f} min)", "",
           "| set | bits to store (PNG + hard labels) | hard | hard + DSA | soft | soft + DSA | HLR | IOR hard | IOR soft "
           "| LRS hard | LRS soft | ARS hard | ARS soft |",
           "| --- | ---: | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    first = doc["rows"][0]
    ra = {k: first[lab]["accuracies"][f"random_{side}"] for lab, k, side in
          [("hard", "h", "no_aug"), ("hard", "ha", "aug"), (soft, "s", "no_aug"), (soft, "sa", "aug")]}
    out.append(f"| random real (a new draw per seed) | | {_pm(ra['h'])} | {_pm(ra['ha'])} | {_pm(ra['s'])} | "
               f"{_pm(ra['sa'])} | | 0 | 0 | | | | |")
    for r in doc["rows"]:
        h, s = r["hard"], r[soft]
        ipc = r["n_stored"] * r["factor"] ** 2 // r["storage_hard"]["classes"]
        if ipc != doc["ipc"]:  # a multi-formation set is compared with random real of its decoded size
            rr = {k: h["accuracies"][f"random_{side}"] if k.startswith("h") else s["accuracies"][f"random_{side}"]
                  for k, side in [("h", "no_aug"), ("ha", "aug"), ("s", "no_aug"), ("sa", "aug")]}
            out.append(f"| random real IPC {ipc} (the comparison for {r['set']}: {r['factor'] ** 2} decoded images "
                       f"per stored one) | | {_pm(rr['h'])} | {_pm(rr['ha'])} | {_pm(rr['s'])} | {_pm(rr['sa'])} "
                       "| | 0 | 0 | | | | |")
        a, b = h["accuracies"], s["accuracies"]
        sc, ss = h["scores"], s["scores"]

        def p(d: dict) -> str:
            return f"{d['mean']:.2f} ± {d['std']:.2f}"

        bits = r["storage_hard"]["total_bits"]
        out.append(f"| {r['set']} | {bits / 1000:.1f} kbit | {_pm(a['set_no_aug'])} | {_pm(a['set_aug'])} | "
                   f"{_pm(b['set_no_aug'])} | {_pm(b['set_aug'])} | {p(sc['hlr'])} | {p(sc['ior'])} | {p(ss['ior'])} | "
                   f"{p(sc['lrs'])} | {p(ss['lrs'])} | {p(sc['ars'])} | {p(ss['ars'])} |")
    teacher_bits = doc["rows"][0]["storage_soft"]["labels"]["bits"]
    out.append("")
    out.append(f"Soft labels add the teacher: {teacher_bits / 1e6:.1f} Mbit "
               f"({doc['rows'][0]['storage_soft']['labels']['teacher_parameters']:,} float32 weights) to every set.")
    return "\n".join(out)


def main() -> int:
    files = [Path(f) for f in sys.argv[1:]] or sorted(ROOT.glob("*.json"))
    print("\n\n".join(table(json.loads(f.read_text())) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
