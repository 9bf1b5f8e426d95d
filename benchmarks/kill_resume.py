"""kill -9 at random moments, then --resume: the same bits as an uninterrupted run, no temp files left.

    python benchmarks/kill_resume.py [--trials 5] [--commands condense,train-flow,simplify,run]
                                     [--out benchmarks/results/kill_resume.json]

For each command (tiny settings on sklearn's digits, seconds per run): one uninterrupted reference
run; then ``--trials`` runs each killed with SIGKILL (the whole process group) at a seeded random
moment within the reference's wall time, continued with ``--resume`` (started fresh when the kill
came before the first checkpoint, which the command reports in one line), and compared with the
reference: every ``.safetensors`` file of the output tree must hold bitwise-identical tensors, and no
temp file of an interrupted atomic write (``.NAME.<pid>.<random>.tmp``) may be left anywhere in it.
Prints one JSON document: per command, trials, identical runs, orphaned temp files and seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "condense": (["condense", "digits", "--ipc", "1", "--iterations", "120", "--width", "8", "--batch-real", "32",
                  "--no-compile", "--device", "cpu", "--out", "{out}/set.safetensors"], "{out}/set.safetensors"),
    "train-flow": (["train-flow", "digits", "--size", "8", "--levels", "2", "--depth", "1", "--width", "8",
                    "--epochs", "16", "--batch-size", "64", "--device", "cpu", "--out", "{out}/flow.safetensors"],
                   "{out}/flow.safetensors"),
    "simplify": (["simplify", "digits", "--lambda-sim", "0.5", "--epochs", "3", "--max-train", "400",
                  "--device", "cpu", "--out", "{out}/simp"], "{out}/simp"),
    "run": (["run", "small", "--no-report", "--out", "{out}/run"], "{out}/run"),
}


def _argv(case: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "simplebits.cli.main"] + [a.replace("{out}", str(out)) for a in CASES[case][0]]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONUNBUFFERED": "1"}


def _tensors(root: Path) -> dict[str, dict]:
    from safetensors.torch import load_file

    found = {}
    for f in sorted(root.rglob("*.safetensors")):
        found[str(f.relative_to(root))] = load_file(str(f))
    return found


def _same(a: dict, b: dict) -> tuple[bool, str]:
    import torch

    if set(a) != set(b):
        return False, f"files differ: {sorted(set(a) ^ set(b))}"
    for name in a:
        ta, tb = a[name], b[name]
        if set(ta) != set(tb):
            return False, f"{name}: tensor names differ"
        for k in ta:
            if ta[k].shape != tb[k].shape or not torch.equal(ta[k], tb[k]):
                return False, f"{name}:{k} differs"
    return True, ""


def _orphans(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


def _run(argv: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=timeout)


def trial(case: str, ref: dict, ref_seconds: float, r: random.Random, work: Path) -> dict:
    out = work / f"{case}-{r.randrange(10**9)}"
    out.mkdir(parents=True)
    argv = _argv(case, out)
    at = r.uniform(0.15, 0.95) * ref_seconds
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            start_new_session=True)
    time.sleep(at)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    resumes = 0
    res = _run(argv + ["--resume"])
    resumes += 1
    if res.returncode == 2 and ("nothing to resume" in res.stderr or "already finished" in res.stderr):
        res = _run(argv) if "nothing to resume" in res.stderr else res
    ok_exit = res.returncode == 0 or "already finished" in res.stderr
    same, why = _same(ref, _tensors(out)) if ok_exit else (False, f"exit {res.returncode}: {res.stderr[-300:]}")
    orphans = _orphans(out)
    shutil.rmtree(out, ignore_errors=True)
    return {"killed_at_s": round(at, 2), "killed": killed, "identical": same, "why": why, "orphans": orphans}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--commands", default=",".join(CASES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    r = random.Random(a.seed)
    work = Path(tempfile.mkdtemp(prefix="killresume."))
    doc = {"benchmark": "kill_resume", "trials_per_command": a.trials, "commands": {}}
    try:
        for case in [c for c in a.commands.split(",") if c]:
            ref_out = work / f"{case}-ref"
            ref_out.mkdir()
            t0 = time.perf_counter()
            res = _run(_argv(case, ref_out))
            secs = time.perf_counter() - t0
            if res.returncode != 0:
                raise SystemExit(f"{case}: the reference run failed: {res.stderr[-500:]}")
            ref = _tensors(ref_out)
            again = work / f"{case}-ref2"  # the same command twice, uninterrupted: same seed, same bits
            again.mkdir()
            repeatable = _run(_argv(case, again)).returncode == 0 and _same(ref, _tensors(again))[0]
            trials = [trial(case, ref, secs, r, work) for _ in range(a.trials)]
            doc["commands"][case] = {
                "command": " ".join(CASES[case][0]), "reference_seconds": round(secs, 1), "files": len(ref),
                "reference_repeatable": repeatable,
                "trials": len(trials), "killed": sum(t["killed"] for t in trials),
                "identical": sum(t["identical"] for t in trials),
                "orphaned_temp_files": sum(len(t["orphans"]) for t in trials), "runs": trials}
            print(f"{case}: {doc['commands'][case]['identical']}/{len(trials)} identical, "
                  f"{doc['commands'][case]['orphaned_temp_files']} orphaned temp files", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    c = doc["commands"]
    doc["met"] = all(v["identical"] == v["trials"] and v["orphaned_temp_files"] == 0 for v in c.values())
    text = json.dumps(doc, indent=2)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(a.out).with_name(Path(a.out).name + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, a.out)
    return 0 if doc["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
