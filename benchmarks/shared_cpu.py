"""Threads that fit the work: small evaluations alone and beside another busy process.

    python benchmarks/shared_cpu.py [--repeats 2] [--out benchmarks/results/shared_cpu.json]

Two parts, both measured in this one run (run it alone on the machine):

``rule``  milliseconds per ConvNet-3 training step with 1 and with all threads, for the batch and
          image sizes that decide :data:`simplebits.train.threads.SMALL_WORK`.
``spin``   milliseconds per two-thread ConvNet-3 training step (28x28, batches of 10 and 100),
          each in a fresh process, with libgomp's spin count (``GOMP_SPINCOUNT``) at 300,000
          (libgomp's default: every run before simplebits set it), 1,000 (what importing
          simplebits sets now, :mod:`simplebits._openmp`) and 0 (sleep at once): alone, beside a
          one-core busy loop and beside a two-thread torch job.
``shared`` wall seconds of a small evaluation (``simplebits evaluate digits --ipc 1 --seeds 1``,
          quick protocol; the issue's case) and of a larger one (Fashion-MNIST, IPC 1), each run
          as a fresh process: alone, beside a one-core busy loop (a browser, an editor), and beside
          a two-thread torch job (a second experiment). ``default`` is what a run does now (the
          thread rule, spin count 1,000); ``spin-300k`` the same with libgomp's own spin count
          (before); ``one-thread`` is ``SIMPLEBITS_THREADS=1``. The figure of merit is the ratio
          busy / alone per setting, and busy / alone against ``default`` alone.

Prints one JSON document (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from simplebits.io import atomic_write_json
from simplebits.models import create_model
from simplebits.train.threads import SMALL_WORK

BUSY_PY = "import time\nt=time.time()\nwhile time.time()-t<3600: pass\n"
BUSY_TORCH = ("import time, torch\ntorch.set_num_threads(2)\na=torch.rand(256,256)\nt=time.time()\n"
              "while time.time()-t<3600: a=(a@a).tanh()\n")
CASES = {
    "digits-ipc1": ["evaluate", "digits", "--ipc", "1", "--seeds", "1", "--protocol", "quick", "--json"],
    "fashion-mnist-ipc1": ["evaluate", "fashion-mnist", "--ipc", "1", "--seeds", "1", "--protocol", "quick", "--json"],
}


def step_ms(hw: int, batch: int, threads: int, steps: int = 20) -> float:
    torch.set_num_threads(threads)
    net = create_model("convnet", channels=1, num_classes=10, image_size=(hw, hw), seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(batch, 1, hw, hw, generator=g), torch.randint(0, 10, (batch,), generator=g)

    def step() -> None:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - t0) / steps


SPIN_STEP = ("import json, sys, time, torch, torch.nn.functional as F\n"
             "from simplebits.models import create_model\n"
             "n, steps = int(sys.argv[1]), int(sys.argv[2])\n"
             "net = create_model('convnet', channels=1, num_classes=10, image_size=(28, 28), seed=0)\n"
             "opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)\n"
             "g = torch.Generator().manual_seed(0)\n"
             "x, y = torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)\n"
             "def step():\n    loss = F.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()\n"
             "for _ in range(3): step()\n"
             "t = time.perf_counter()\n"
             "for _ in range(steps): step()\n"
             "print(json.dumps({'ms': 1000 * (time.perf_counter() - t) / steps}))\n")
SPINS = {"300k (libgomp, before)": "300000", "1k (simplebits now)": "1000", "0 (sleep at once)": "0"}


def spin_ms(n: int, steps: int, spin: str) -> float:
    """One fresh process (libgomp reads GOMP_SPINCOUNT when torch loads), two threads."""
    env = {**os.environ, "GOMP_SPINCOUNT": spin, "OMP_NUM_THREADS": "2"}
    r = subprocess.run([sys.executable, "-c", SPIN_STEP, str(n), str(steps)], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"spin step failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["ms"]


def busy_process(script: str | None) -> subprocess.Popen | None:
    if script is None:
        return None
    p = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "2"})
    time.sleep(1.0)
    return p


LOADS = [("alone", None), ("beside-busy-loop", BUSY_PY), ("beside-torch-job", BUSY_TORCH)]


def run_cli(args: list[str], env_extra: dict[str, str]) -> float:
    env = {**os.environ, **env_extra}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "simplebits.cli.main", *args], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{args} failed: {r.stderr.strip().splitlines()[-1:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2, help="runs per cell; the median is reported")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--parts", nargs="+", default=["rule", "spin", "shared"], choices=["rule", "spin", "shared"])
    ap.add_argument("--out", default=None, metavar="JSON")
    a = ap.parse_args()
    cores = torch.get_num_threads()
    doc: dict = {"benchmark": "shared_cpu", "cores": cores, "small_work_pixels": SMALL_WORK, "torch": torch.__version__,
                 "rule": {}, "spin": {}, "shared": {}}

    for hw, batch in ([(8, 10), (8, 50), (16, 10), (28, 10), (28, 100)] if "rule" in a.parts else []):
        one, many = step_ms(hw, batch, 1), step_ms(hw, batch, cores)
        doc["rule"][f"{hw}x{hw} x{batch}"] = {
            "pixels": batch * hw * hw, "ms_1_thread": round(one, 2), f"ms_{cores}_threads": round(many, 2),
            "speedup_of_all_threads": round(one / many, 2), "rule_threads": 1 if batch * hw * hw < SMALL_WORK else cores}
        print(json.dumps({f"{hw}x{hw} x{batch}": doc["rule"][f"{hw}x{hw} x{batch}"]}), file=sys.stderr)
    torch.set_num_threads(cores)

    for n, steps in ([(10, 60), (100, 8)] if "spin" in a.parts else []):
        row = {}
        for load, script in LOADS:
            busy = busy_process(script)
            try:  # settings interleaved within each repeat, so the machine's drift falls on all of them alike
                runs: dict[str, list[float]] = {name: [] for name in SPINS}
                for _ in range(a.repeats):
                    for name, spin in SPINS.items():
                        runs[name].append(spin_ms(n, steps, spin))
                for name in SPINS:
                    row.setdefault(name, {})[load] = round(statistics.median(runs[name]), 2)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
        before_alone = row["300k (libgomp, before)"]["alone"]
        for name in SPINS:
            r = row[name]
            r["alone_vs_before"] = round(r["alone"] / before_alone, 2)
            r["ratio_busy_loop"] = round(r["beside-busy-loop"] / before_alone, 2)
            r["ratio_torch_job"] = round(r["beside-torch-job"] / before_alone, 2)
        doc["spin"][f"28x28 x{n}, 2 threads, ms per step"] = row
        print(json.dumps({f"28x28 x{n}": row}), file=sys.stderr)

    settings = {"default": {}, "spin-300k": {"GOMP_SPINCOUNT": "300000"}, "one-thread": {"SIMPLEBITS_THREADS": "1"}}
    for case in (a.cases if "shared" in a.parts else []):
        row: dict = {}
        for load, script in LOADS:
            busy = busy_process(script)
            try:
                secs: dict[str, list[float]] = {name: [] for name in settings}
                for _ in range(a.repeats):  # interleaved, as above
                    for name, env in settings.items():
                        secs[name].append(run_cli(CASES[case], env))
                for name in settings:
                    row.setdefault(name, {})[load] = round(statistics.median(secs[name]), 2)
                    row[name].setdefault("runs", {})[load] = [round(v, 2) for v in secs[name]]
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
        for name in settings:
            r = row[name]
            r["ratio_busy_loop"] = round(r["beside-busy-loop"] / r["alone"], 2)
            r["ratio_torch_job"] = round(r["beside-torch-job"] / r["alone"], 2)
            # against the default run alone: what a user on a shared machine waits, relative to an idle one
            r["busy_loop_vs_default_alone"] = round(r["beside-busy-loop"] / row["default"]["alone"], 2)
            r["torch_job_vs_default_alone"] = round(r["beside-torch-job"] / row["default"]["alone"], 2)
        doc["shared"][case] = row
        print(json.dumps({case: row}), file=sys.stderr)

    print(json.dumps(doc, indent=1))
    if a.out:
        atomic_write_json(a.out, doc)


if __name__ == "__main__":
    main()
