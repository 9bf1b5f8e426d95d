"""Same seed, same bits, across a refactor: run one tiny job per capability through the CLI with a
given source tree and print a hash of everything each job computed.

Run it once with the code before a change and once after, and compare::

    git worktree add /tmp/base <REV>
    OMP_NUM_THREADS=1 python benchmarks/same_bits.py --src /tmp/base/src --out /tmp/before.json
    OMP_NUM_THREADS=1 python benchmarks/same_bits.py --src src --out /tmp/after.json --compare /tmp/before.json

Each job writes its files in a fresh folder; the hash covers every tensor of every safetensors
file written (names and bytes) and the job's ``--json`` output with its timings, paths and
versions left out. The jobs use flags that the earlier releases understand (old spellings print
a deprecation line in newer ones, which is not hashed). Sizes are tiny (sklearn digits, a few
steps), so the whole check takes a few minutes on 2 cores; fix ``OMP_NUM_THREADS`` on both sides.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (name, command after `simplebits`); {d} is the job folder, {w} the shared work folder
JOBS = [
    ("condense-dc", "condense digits --ipc 1 --iterations 2 --method dc --no-compile --out {w}/dc.safetensors"),
    ("condense-dsa", "condense digits --ipc 1 --iterations 2 --method dsa --no-compile --out {d}/dsa.safetensors"),
    ("condense-idc", "condense digits --ipc 1 --iterations 1 --method idc --no-compile --out {d}/idc.safetensors"),
    ("condense-dm", "condense digits --ipc 5 --iterations 2 --method dm --no-compile --out {w}/dm5.safetensors"),
    ("condense-dc-lambda", "condense digits --ipc 1 --iterations 2 --method dc --lambda-sim 10 --no-compile "
                           "--out {d}/dcl.safetensors"),
    ("evaluate", "evaluate {w}/dc.safetensors --test digits --protocol quick --seeds 2"),
    ("prune-yoco", "prune {w}/dm5.safetensors --ipc 1 --rule yoco --runs 1 --epochs 3 --stop-epoch 2 --top-k 2 --out {d}/y.safetensors"),
    ("prune-el2n", "prune {w}/dm5.safetensors --ipc 2 --rule el2n --runs 1 --epochs 3 --stop-epoch 2 --top-k 2 --out {d}/e.safetensors"),
    ("prune-random", "prune {w}/dm5.safetensors --ipc 2 --rule random --out {d}/r.safetensors"),
    ("simplify", "simplify digits --lambda-sim 1 --train-size 200 --epochs 1 --retrain-epochs 1 --out {d}/s"),
    ("continual", "continual --tasks digits,printed-digits --epochs 1 --first-cycles 1 --max-train 100 --no-replay --out {d}/c"),
    ("train-classifier", "train-classifier digits --epochs 1 --width 8 --out {w}/clf.safetensors"),
    ("explain", "explain {w}/clf.safetensors digits --n 4 --steps 5 --no-saliency --out {d}/x"),
    ("bpd", "bpd digits --limit 50"),
    ("train-flow", "train-flow digits --epochs 1 --levels 1 --steps 2 --width 8 --max-train 200 "
                   "--out {d}/flow.safetensors"),
]

_SKIP = re.compile(r"(second|time|wall|elapsed|rss|_s$|per_s|speed|eta|path|file|dir|^out$|version|created|date|"
                   r"command|argv|host|threads|note|warning)", re.I)


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in sorted(obj.items()) if not _SKIP.search(str(k))}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return repr(obj)
    return obj


def _tensor_hash(folder: Path) -> tuple[str, int]:
    from safetensors.torch import load_file

    h = hashlib.sha256()
    n = 0
    for f in sorted(folder.rglob("*.safetensors")):
        for name, t in sorted(load_file(str(f)).items()):
            h.update(f"{f.name}:{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.contiguous().view(-1).numpy().tobytes() if t.numel() else b"")
            n += 1
    return h.hexdigest()[:16], n


def run_jobs(src: Path, work: Path, only: list[str] | None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src.resolve()))
    shared = work / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, cmd in JOBS:
        if only and name not in only:
            continue
        d = work / name
        d.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "simplebits.cli.main"] + cmd.format(d=d, w=shared).split() + ["--json"]
        t0 = time.perf_counter()
        p = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=work)
        sec = time.perf_counter() - t0
        try:
            doc = json.loads(p.stdout.replace(str(work), "WORK")) if p.returncode == 0 else None
        except ValueError:
            doc = None
        jh = hashlib.sha256(json.dumps(_clean(doc), sort_keys=True).encode()).hexdigest()[:16] if doc else None
        folder = d if "{d}" in cmd else None
        th, nt = _tensor_hash(folder) if folder else (None, 0)
        if "{w}" in cmd and "{d}" not in cmd and "--out" in cmd:  # the shared files this job wrote
            target = Path(cmd.split("--out ")[1].split()[0].format(w=shared))
            th, nt = _tensor_hash_file(target)
        out[name] = {"rc": p.returncode, "json": jh, "tensors": th, "n_tensors": nt, "seconds": round(sec, 1),
                     "stderr_tail": p.stderr.strip().splitlines()[-1:] if p.returncode else []}
        print(f"{name:18s} rc {p.returncode}  json {jh}  tensors {th} ({nt})  {sec:.1f} s", file=sys.stderr)
    return out


def _tensor_hash_file(f: Path) -> tuple[str | None, int]:
    if not f.exists():
        return None, 0
    tmp = Path(tempfile.mkdtemp())
    (tmp / f.name).symlink_to(f.resolve())
    return _tensor_hash(tmp)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default="src", help="source tree whose simplebits to run (default: src)")
    ap.add_argument("--out", default=None, help="write the hashes as JSON here")
    ap.add_argument("--compare", default=None, help="a JSON written before: report every job whose hashes differ")
    ap.add_argument("--only", nargs="*", default=None, help="job names to run (default: all)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="same-bits-") as tmp:
        jobs = run_jobs(Path(a.src), Path(tmp), a.only)
    doc = {"benchmark": "same_bits", "src": a.src, "omp_threads": os.environ.get("OMP_NUM_THREADS"), "jobs": jobs}
    if a.compare:
        before = json.loads(Path(a.compare).read_text())["jobs"]
        diff = {k: {"before": before.get(k), "after": v} for k, v in jobs.items()
                if before.get(k) is None or any(before[k].get(f) != v.get(f) for f in ("rc", "tensors"))}
        json_diff = sorted(k for k, v in jobs.items() if before.get(k) and before[k].get("json") != v.get("json"))
        doc["compared_with"] = a.compare
        doc["tensors_identical"] = not diff
        doc["differ"] = diff
        doc["json_outputs_differ"] = json_diff
    text = json.dumps(doc, indent=2)
    if a.out:
        tmp_out = Path(a.out).with_suffix(".tmp")
        tmp_out.write_text(text + "\n")
        tmp_out.replace(a.out)
    print(text)
    return 0 if doc.get("tensors_identical", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
