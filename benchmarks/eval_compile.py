"""Evaluation speed: eager (the default) against ``--compile``, 5 seeds, from an empty compile cache.

    python benchmarks/eval_compile.py [--ipcs 1 10] [--seeds 5] [--out benchmarks/results/eval_compile.json]

For each IPC, ``simplebits evaluate fashion-mnist --ipc K --seeds 5 --protocol quick --json`` runs as
a fresh process (full 60k training set for the random subsets, all 10k test images):

``eager``     no flag (the default): one network after another in eager mode;
``compiled``  ``--compile`` with an EMPTY inductor cache (``TORCHINDUCTOR_CACHE_DIR`` a new folder),
              i.e. including the cold compile of a fresh machine; one compile serves all 5 networks.

Reported per run: wall seconds of the process, the evaluation's own seconds, the accuracies (mean and
population std over seeds), whether the mean lies within the eager run's std, and the speed-up over
eager. Prints one JSON document (also written to ``--out``). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from simplebits.io import atomic_write_json


def run(ipc: int, seeds: int, flag: list[str], cache: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "simplebits.cli.main", "evaluate", "fashion-mnist", "--ipc", str(ipc),
                        "--seeds", str(seeds), "--protocol", "quick", "--json", *flag],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"ipc {ipc} {flag} failed: {r.stderr.strip().splitlines()[-1:]}")
    rep = json.loads(r.stdout)
    accs = [100 * a for a in rep["accuracies"]]
    return {"wall_s": round(wall, 1), "evaluation_s": round(rep["seconds"], 1),
            "accuracies": [round(a, 2) for a in accs], "mean": round(statistics.fmean(accs), 2),
            "std": round(statistics.pstdev(accs), 2), "compile_note": "compiling" in r.stderr}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipcs", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=None, metavar="JSON")
    a = ap.parse_args()
    doc: dict = {"benchmark": "eval_compile", "data": "fashion-mnist", "protocol": "quick", "seeds": a.seeds,
                 "test_images": 10000, "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for ipc in a.ipcs:
            rows = {"eager": run(ipc, a.seeds, [], os.path.join(tmp, f"c{ipc}-eager")),
                    "compiled": run(ipc, a.seeds, ["--compile"], os.path.join(tmp, f"c{ipc}-compiled"))}
            base = rows["eager"]
            for name, row in rows.items():
                row["speedup_vs_eager"] = round(base["wall_s"] / row["wall_s"], 2)
                row["mean_within_eager_std"] = abs(row["mean"] - base["mean"]) <= base["std"]
            doc["rows"][f"ipc{ipc}"] = rows
            print(json.dumps({f"ipc{ipc}": rows}), file=sys.stderr)
    doc["peak_rss_mb_largest_run"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(json.dumps(doc, indent=1))
    if a.out:
        atomic_write_json(a.out, doc)


if __name__ == "__main__":
    main()
