"""`simplebits sweep CONFIG.toml [--ray ADDRESS|local]`: a grid of pipeline runs, one folder per cell."""

from __future__ import annotations

import argparse
import sys

from .common import add_json, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid of pipeline configs (λ, seeds, IPC, rules, networks), in order or on Ray",
        description="CONFIG is a pipeline config (see `simplebits run`) with a [sweep] table: [sweep.grid] maps "
                    "pipeline keys to lists of values (seed = [0, 1], \"condense.lambda_sim\" = [0.0, 100.0], "
                    "\"prune.rules\" = [\"yoco\", \"random\"], \"evaluate.network\" = [...]); every combination is "
                    "one cell, a normal pipeline run in OUT/cells/NAME. Finished cells are skipped and interrupted "
                    "ones continue, so rerunning the same command resumes a sweep. Without --ray the cells run one "
                    "after another in this process; with --ray local they run as Ray tasks on this machine, with "
                    "--ray HOST:PORT on a running Ray cluster (pip install 'simplebits[ray]'); each cell gets "
                    "sweep.cpus_per_task torch threads either way, so the numbers are the same. Writes "
                    "OUT/results.json (pooled over seeds), OUT/prune-table.json and OUT/report.html. "
                    "Docs: docs/scale-out.md.",
    )
    p.add_argument("config", metavar="CONFIG", help="TOML file with a [sweep] table")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run cells as Ray tasks: local (start Ray here), HOST:PORT of a cluster head, or auto "
                        "(the cluster `ray start` made on this machine); default: one after another, no Ray")
    p.add_argument("--out", default=None, metavar="DIR", help="sweep folder (overrides sweep.out)")
    p.add_argument("--force", action="store_true",
                   help="use a folder holding another sweep's cells: changed cells are rerun, unchanged ones kept")
    p.add_argument("--no-report", action="store_true", help="do not write OUT/report.html")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.sweeps import sweep

    result = sweep(args.config, out=args.out, ray=args.ray, force=args.force, report=not args.no_report,
                   log=lambda s: print(s, file=sys.stderr, flush=True))
    emit(args, result.to_dict(), result.summary())
    return 0
