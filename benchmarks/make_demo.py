"""`make demo` on a fresh clone, set-up included: what the README's first command costs a new user.

    python benchmarks/make_demo.py [--repo .] [--out benchmarks/results/make_demo.json]

Clones ``--repo`` (its committed HEAD) into a temporary directory, runs ``make setup`` (a new
``.venv``: the pinned CPU torch wheel, simplebits and its test extras; Debian's Fashion-MNIST and
Chromium are found or installed) and then ``make demo`` (``simplebits demo``; set-up is then a
no-op), timing each, then ``simplebits demo`` again in the same folder (every stage finished:
the skip path). pip's cache is the machine's (a "warm pip", as the target says). Prints one
JSON document (also written to ``--out``). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simplebits.io import atomic_write_json


def timed(cmd: list[str], cwd: Path) -> tuple[float, str, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return wall, r.stdout, r.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=".", help="the repository to clone (default: this one)")
    ap.add_argument("--out", default=None, metavar="JSON")
    a = ap.parse_args()
    repo = Path(a.repo).resolve()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "simplebits"
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        setup_s, _, _ = timed(["make", "setup"], clone)
        demo_s, _, log = timed(["make", "demo"], clone)
        meta = json.loads((clone / "simplebits-demo" / "pipeline.json").read_text())
        figures = json.loads((clone / "simplebits-demo" / "figures.json").read_text())["figures"]
        rerun_s, out, _ = timed([str(clone / ".venv" / "bin" / "simplebits"), "demo", "--json"], clone)
        again = json.loads(out)
    doc = {"benchmark": "make_demo", "commit": commit, "setup_s": round(setup_s, 1), "demo_s": round(demo_s, 1),
           "total_s": round(setup_s + demo_s, 1), "total_min": round((setup_s + demo_s) / 60, 2),
           "dataset": meta.get("dataset"), "stage_s": meta.get("seconds"), "peak_rss_mb": meta.get("peak_rss_mb"),
           "target_total_min": 10.0, "target_demo_min": 6.0, "rerun_s": round(rerun_s, 1),
           "rerun_skipped": again.get("skipped"), "same_figures_on_rerun": again.get("figures") == figures,
           "condensed": [{"label": c["label"], "accuracy": c["accuracy"]["mean"], "random_real": c["baseline"]["mean"],
                          "start": (c.get("start") or {}).get("mean"), "below_start": c.get("below_start")}
                         for c in figures.get("condense", {}).get("sets", [])],
           "log_tail": log.strip().splitlines()[-12:]}
    print(json.dumps(doc, indent=1))
    if a.out:
        atomic_write_json(a.out, doc)


if __name__ == "__main__":
    main()
