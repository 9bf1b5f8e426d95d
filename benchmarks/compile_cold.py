"""What torch.compile costs on a fresh machine, and when it pays back (condense).

    python benchmarks/compile_cold.py [--methods dc dm] [--iterations 3] [--out benchmarks/results/compile_cold.json]

For each method, ``simplebits condense fashion-mnist --ipc 1 --iterations N`` runs as a fresh
process four times, in this order, in one run:

``cold``     ``--compile`` with an empty inductor cache (``TORCHINDUCTOR_CACHE_DIR`` a new folder: a
             first run on a new machine);
``warm``     ``--compile`` again on the filled cache;
``eager``    ``--no-compile``;
``default``  no flag: the preset's ``compile = "auto"``, which stays eager below
             ``COMPILE_MIN_ITERATIONS`` iterations (so a short first run has no compile stall).

Reported: seconds of each iteration (from ``OUT.log.json``), the first iteration's excess over the
warm compiled one, the steady seconds per iteration compiled and eager, and the number of
iterations after which a cold compile has paid for itself. Prints one JSON document (also
written to ``--out``). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simplebits.condense.config import COMPILE_MIN_ITERATIONS
from simplebits.io import atomic_write_json


def run(method: str, iterations: int, flag: list[str], cache: str, work: Path, name: str) -> dict:
    out = work / f"{method}-{name}.safetensors"
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "simplebits.cli.main", "condense", "fashion-mnist", "--method", method,
                        "--ipc", "1", "--iterations", str(iterations), "--out", str(out), "--json", *flag],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{method} {name} failed: {r.stderr.strip().splitlines()[-1:]}")
    log = json.loads(Path(f"{out}.log.json").read_text())
    its = [round(e["seconds"], 2) for e in log["iterations"]]
    return {"wall_s": round(wall, 1), "iteration_s": its, "compile_note": "compiling" in r.stderr}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["dc", "dm"])
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--out", default=None, metavar="JSON")
    a = ap.parse_args()
    doc: dict = {"benchmark": "compile_cold", "data": "fashion-mnist", "ipc": 1, "iterations": a.iterations,
                 "compile_min_iterations": COMPILE_MIN_ITERATIONS, "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for m in a.methods:
            cache = str(work / f"inductor-{m}")  # empty: a fresh machine for this method
            rows = {"cold": run(m, a.iterations, ["--compile"], cache, work, "cold"),
                    "warm": run(m, a.iterations, ["--compile"], cache, work, "warm"),
                    "eager": run(m, a.iterations, ["--no-compile"], cache, work, "eager"),
                    "default": run(m, a.iterations, [], str(work / f"inductor-{m}-default"), work, "default")}
            steady_c = min(rows["warm"]["iteration_s"][1:] or rows["warm"]["iteration_s"])
            steady_e = min(rows["eager"]["iteration_s"][1:] or rows["eager"]["iteration_s"])
            cold_extra = rows["cold"]["iteration_s"][0] - rows["warm"]["iteration_s"][0]
            saving = steady_e - steady_c
            rows["summary"] = {
                "first_iteration_cold_minus_warm_s": round(cold_extra, 1),
                "first_iteration_default_minus_warm_s": round(rows["default"]["iteration_s"][0]
                                                              - rows["warm"]["iteration_s"][0], 1),
                "steady_s_per_iteration_compiled": steady_c, "steady_s_per_iteration_eager": steady_e,
                "compiled_speedup": round(steady_e / steady_c, 2) if steady_c else None,
                "cold_compile_pays_after_iterations": (round((rows["cold"]["iteration_s"][0] - steady_c) / saving, 1)
                                                       if saving > 0 else None),
            }
            doc["methods"][m] = rows
            print(json.dumps({m: rows["summary"]}), file=sys.stderr)
    print(json.dumps(doc, indent=1))
    if a.out:
        atomic_write_json(a.out, doc)


if __name__ == "__main__":
    main()
