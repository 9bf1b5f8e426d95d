"""The YOCO comparison on Fashion-MNIST: every rule at IPC_T 1/2/5 from one IPC_F set, R dynamics x
N evaluation networks per cell (the appendix's Table 2 shape), plus the whole set's accuracy.

    python benchmarks/prune_table.py --set FILE [--tag NAME] [--rules ...] [--ipc 1,2,5] [--runs 3]
        [--eval-seeds 2] [--nets convnet] [--dynamics FILE] [--protocol quick]
    python benchmarks/prune_table.py --random-real fashion-mnist --ipc-from 10 ...   # a random real subset

Writes benchmarks/results/prune_table_<tag>.json after every cell (re-running resumes), prints the
table and one JSON summary line with the wall time. The random-real parent is saved as
benchmarks/results/condensed/<data>-random-ipc<F>-s<seed>.safetensors so that it can be reused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from simplebits.data import load_dataset, real_subset
from simplebits.data.condensed import import_condensed, save_condensed
from simplebits.prune import DynamicsConfig
from simplebits.prune.table import DEFAULT_RULES, prune_table

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--set", help="condensed-set file (IPC_F set)")
    src.add_argument("--random-real", metavar="DATASET", help="prune a random real subset of DATASET instead")
    ap.add_argument("--ipc-from", type=int, default=10, help="IPC of the random real subset (default 10)")
    ap.add_argument("--subset-seed", type=int, default=0)
    ap.add_argument("--test", default="fashion-mnist:test")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--rules", default=",".join(DEFAULT_RULES))
    ap.add_argument("--ipc", default="1,2,5")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--eval-seeds", type=int, default=2)
    ap.add_argument("--nets", default="convnet")
    ap.add_argument("--protocol", default="quick")
    ap.add_argument("--skip-whole", action="store_true", help="do not evaluate the unpruned set")
    ap.add_argument("--dynamics", default=None, help="dynamics file (reused if it matches, else recorded there)")
    args = ap.parse_args()

    if args.set:
        parent = import_condensed(args.set)
        tag = args.tag or Path(args.set).name.split(".")[0]
    else:
        real = load_dataset(args.random_real, split="train")
        name = f"{args.random_real}-random-ipc{args.ipc_from}-s{args.subset_seed}"
        path = RESULTS / "condensed" / f"{name}.safetensors"
        if not path.exists():
            sub = real_subset(real, args.ipc_from, seed=args.subset_seed)
            save_condensed(path, sub, method="random-real", source=args.random_real, seed=args.subset_seed)
        parent = import_condensed(path)
        tag = args.tag or name
    dyn = args.dynamics or str(RESULTS / "dynamics" / f"{tag}.dynamics.safetensors")
    Path(dyn).parent.mkdir(parents=True, exist_ok=True)
    test = load_dataset(args.test)
    out = RESULTS / f"prune_table_{tag}.json"
    t0 = time.perf_counter()
    tab = prune_table(parent, test, ipcs=[int(v) for v in args.ipc.split(",")], rules=args.rules.split(","),
                      nets=args.nets.split(","), runs=args.runs, eval_seeds=args.eval_seeds, protocol=args.protocol,
                      config=DynamicsConfig(runs=args.runs), dynamics=dyn, out=out, resume=True, progress=False,
                      whole_set=not args.skip_whole,
                      on_cell=lambda net, rule, ipc, accs: print(
                          json.dumps({"net": net, "rule": rule, "ipc": ipc, "summary": tab_summary(accs)}), flush=True))
    wall = time.perf_counter() - t0
    print(tab.format())
    print(json.dumps({"benchmark": "benchmarks/prune_table.py", "results": str(out), "wall_seconds_this_call": round(wall, 1),
                      "seconds": tab.seconds, "threads": torch.get_num_threads()}))


def tab_summary(accs):
    from simplebits.prune.table import PruneTable

    return PruneTable.summary(accs)


if __name__ == "__main__":
    main()
