"""`simplebits demo`: `simplebits run` on the built-in demo config (the main job, ~15 min on 2 cores)."""

from __future__ import annotations

import argparse

from .run import add_run_options, execute


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the main job: run the built-in demo pipeline on installable data and write its report",
        description="`simplebits run demo`: on Fashion-MNIST (mnist-5k when Debian's dataset-fashion-mnist is not "
                    "installed), accuracies on 2000 test images: the data's bpd histogram; random real subsets at "
                    "IPC 1 (3 seeds, quick protocol); dc condensation to IPC 1 without and with the simplification "
                    "term (lambda 100, 10 iterations), each evaluated; a random IPC 10 set pruned to IPC 1 with yoco "
                    "and with random (3 training-dynamics runs); a SimpleBits simplifier (lambda 8, 2 epochs on 2000 "
                    "images); a classifier's misclassified test images explained; then simplebits-demo/report.html. "
                    "Networks train in bf16 where the hardware has it (precision = \"auto\"; --set "
                    "evaluate.precision='\"fp32\"' and likewise for condense, prune and explain for float32). About 2.7-6.5 "
                    "minutes on a 2-core CPU with AMX/AVX512-BF16 (7.5-9 in float32), each stage printing its pieces as they finish with an "
                    "estimate of the time left; stages finished earlier are skipped. `simplebits run --print-config demo` shows "
                    "the config; --set changes any key.",
    )
    p.add_argument("--dataset", default=None, help="data set instead of the config's (e.g. mnist-5k, digits)")
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.dataset:
        args.set = [f"data.dataset={args.dataset!r}".replace("'", '"'), *args.set]
    execute("demo", args)
    return 0
