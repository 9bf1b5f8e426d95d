"""Scale-out figures: torchrun (gloo) condensation and evaluation against one process, and a 2x2
sweep on a local Ray cluster (127.0.0.1, 2 worker CPUs) against the same sweep run in order.

Prints one JSON document (and writes it with --out):

``condense``  wall seconds and steady seconds/iteration of `simplebits condense` for 1 process
              with 1 thread (the reference the ranks must equal), 1 process with all threads (what
              a user runs today) and torchrun with 1..N processes of 1 thread; whether every
              torchrun file holds the reference's images bit for bit.
``evaluate``  the same for `simplebits evaluate` with S seeds.
``sweep``     wall seconds of a 2x2 sweep (seed x condense.lambda_sim) run in order in one process
              and as Ray tasks on a `ray start` cluster at 127.0.0.1 with 2 CPUs; whether the two
              give the same numbers.
``capacity``  two independent 1-thread condensations at once against one alone: the most any
              2-process run can gain on this machine.

    python benchmarks/scaleout.py --out benchmarks/results/scaleout.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from simplebits.data.condensed import load_condensed


def _env(threads: int | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    else:
        env.pop("OMP_NUM_THREADS", None)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], threads: int | None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads))
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return wall, r


def _cli(procs: int) -> list[str]:
    if procs == 0:
        return [sys.executable, "-m", "simplebits.cli.main"]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs), "--master-addr",
            "127.0.0.1", "--master-port", str(_port()), "-m", "simplebits.cli.main"]


def bench_condense(tmp: Path, args: argparse.Namespace) -> dict:
    common = ["condense", args.dataset, "--method", args.method, "--ipc", str(args.ipc), "--iterations",
              str(args.iterations), "--batch-real", str(args.batch_real), "--no-compile", "--json"]
    rows = {}

    def one(name: str, procs: int, threads: int | None) -> None:
        out = tmp / f"{name}.safetensors"
        wall, r = _run(_cli(procs) + common + ["--out", str(out)], threads)
        log = json.loads(Path(f"{out}.log.json").read_text())["iterations"]
        steady = [e["seconds"] for e in log[1:]] or [e["seconds"] for e in log]
        rows[name] = {"processes": max(procs, 1), "threads_per_process": threads or torch.get_num_threads(),
                      "wall_s": round(wall, 2), "seconds_per_iteration": round(sum(steady) / len(steady), 3),
                      "final_match_loss": json.loads(r.stdout)["final_match_loss"], "file": str(out)}
        print(f"condense {name}: {wall:.1f}s wall, {rows[name]['seconds_per_iteration']:.2f} s/it", file=sys.stderr)

    one("1proc-1thread", 0, 1)
    one("1proc-allthreads", 0, None)
    for n in range(2, args.max_procs + 1):
        one(f"torchrun-{n}", n, 1)
    ref = load_condensed(rows["1proc-1thread"]["file"]).images
    for name, row in rows.items():
        row["identical_to_1proc_1thread"] = bool(torch.equal(load_condensed(row["file"]).images, ref))
        row["speedup_vs_1proc_1thread"] = round(rows["1proc-1thread"]["seconds_per_iteration"]
                                                / row["seconds_per_iteration"], 2)
        row.pop("file")
    return {"settings": {k: getattr(args, k) for k in ("dataset", "method", "ipc", "iterations", "batch_real")},
            "classes_per_rank": {n: -(-10 // n) for n in range(1, args.max_procs + 1)}, "runs": rows}


def bench_evaluate(tmp: Path, args: argparse.Namespace) -> dict:
    sset = tmp / "1proc-1thread.safetensors"
    common = ["evaluate", str(sset), "--seeds", str(args.eval_seeds), "--no-baseline", "--json"]
    rows = {}
    for name, procs, threads in (("1proc-1thread", 0, 1), ("1proc-allthreads", 0, None), ("torchrun-2", 2, 1)):
        wall, r = _run(_cli(procs) + common, threads)
        rows[name] = {"wall_s": round(wall, 2), "accuracies": json.loads(r.stdout)["accuracies"]}
        print(f"evaluate {name}: {wall:.1f}s", file=sys.stderr)
    ref = rows["1proc-1thread"]["accuracies"]
    for row in rows.values():
        row["identical_to_1proc_1thread"] = row["accuracies"] == ref
    return {"seeds": args.eval_seeds, "runs": rows}


def bench_capacity(tmp: Path, args: argparse.Namespace) -> dict:
    """What this machine gives two processes at once: two independent 1-thread condensations at the
    same time against one alone (the ceiling for any 2-process speed-up here)."""
    common = ["condense", args.dataset, "--method", args.method, "--ipc", str(args.ipc), "--iterations",
              str(args.capacity_iterations), "--batch-real", str(args.batch_real), "--no-compile", "--json"]

    def spi(out: Path) -> float:
        log = json.loads(Path(f"{out}.log.json").read_text())["iterations"][1:]
        return sum(e["seconds"] for e in log) / len(log)

    alone = tmp / "alone.safetensors"
    _run(_cli(0) + common + ["--out", str(alone)], 1)
    outs = [tmp / f"pair{i}.safetensors" for i in range(2)]
    procs = [subprocess.Popen(_cli(0) + common + ["--out", str(o)], env=_env(1), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for o in outs]
    for pr in procs:
        pr.wait()
    a, b = spi(alone), [spi(o) for o in outs]
    print(f"capacity: alone {a:.2f} s/it, two at once {b[0]:.2f} / {b[1]:.2f} s/it", file=sys.stderr)
    return {"alone_seconds_per_iteration": round(a, 3), "two_at_once_seconds_per_iteration": [round(x, 3) for x in b],
            "throughput_ratio": round(2 * a / max(b), 2)}


SWEEP = """
[data]
dataset = "{dataset}"
bpd_images = 0
test_size = 1000
[evaluate]
seeds = 2
max_steps = 100
[condense]
method = "dc"
ipc = [1]
iterations = {iterations}
batch_real = 64
[prune]
enabled = false
[simplify]
enabled = false
[explain]
enabled = false
[sweep]
cpus_per_task = 1
[sweep.grid]
seed = [0, 1]
"condense.lambda_sim" = [0.0, 100.0]
"""


def _numbers(out: Path) -> list:
    res = json.loads((out / "results.json").read_text())
    return [(t["label"], t["setting"], t["accuracies"], t["bpd"]) for t in res["table"]]


def bench_sweep(tmp: Path, args: argparse.Namespace) -> dict:
    cfg = tmp / "sweep.toml"
    cfg.write_text(SWEEP.format(dataset=args.dataset, iterations=args.iterations))
    rows = {}
    wall, _ = _run(_cli(0) + ["sweep", str(cfg), "--out", str(tmp / "seq"), "--json"], None)
    rows["sequential"] = {"wall_s": round(wall, 2), "cells_at_once": 1}
    print(f"sweep sequential: {wall:.1f}s", file=sys.stderr)
    ray_bin = Path(sys.executable).with_name("ray")
    port = _port()
    env = _env(None)
    subprocess.run([str(ray_bin), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                    "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"], check=True,
                   capture_output=True, env=env)
    try:
        wall, _ = _run(_cli(0) + ["sweep", str(cfg), "--out", str(tmp / "ray"), "--ray", f"127.0.0.1:{port}",
                                  "--json"], None)
    finally:
        subprocess.run([str(ray_bin), "stop"], capture_output=True, env=env)
    rows["ray-127.0.0.1-2cpus"] = {"wall_s": round(wall, 2), "cells_at_once": 2}
    print(f"sweep ray: {wall:.1f}s", file=sys.stderr)
    same = _numbers(tmp / "seq") == _numbers(tmp / "ray")
    return {"grid": {"seed": [0, 1], "condense.lambda_sim": [0.0, 100.0]}, "cpus_per_task": 1, "runs": rows,
            "same_numbers": same, "speedup": round(rows["sequential"]["wall_s"] / wall, 2),
            "table": json.loads((tmp / "ray" / "results.json").read_text())["table"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--method", default="dc")
    ap.add_argument("--ipc", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--batch-real", type=int, default=256)
    ap.add_argument("--max-procs", type=int, default=2)
    ap.add_argument("--eval-seeds", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: condense,evaluate,sweep,capacity")
    ap.add_argument("--capacity-iterations", type=int, default=4)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    tmp = Path(tempfile.mkdtemp(prefix="sb-scaleout-"))
    doc: dict = {"cpus": os.cpu_count(), "torch": torch.__version__}
    doc["settings"] = vars(args)

    def save() -> None:  # after every part, so a failure later keeps what was measured
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")

    parts = [("condense", bench_condense), ("evaluate", bench_evaluate), ("sweep", bench_sweep),
             ("capacity", bench_capacity)]
    try:
        for name, fn in parts:
            if name in skip or (name == "evaluate" and "condense" in skip):
                continue
            try:
                doc[name] = fn(tmp, args)
            except RuntimeError as e:
                doc[name] = {"error": str(e)[-2000:]}
                print(f"{name}: {str(e)[-500:]}", file=sys.stderr)
            save()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
