"""`simplebits sweep CONFIG.toml [--ray ADDRESS|local]`: a grid of pipeline runs, one folder per cell."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace

from ..settings import setting
from .common import add_device, add_json, add_options, add_out, config_names_device, emit


@dataclass(frozen=True)
class SweepOptions:
    ray: str | None = setting(None, "run cells as Ray tasks: local (start Ray here), HOST:PORT of a cluster head, or "
                                    "auto (the cluster `ray start` made on this machine)", metavar="ADDRESS",
                              default_text="one after another, no Ray")
    force: bool = setting(False, "use a folder holding another sweep's cells: changed cells are rerun, unchanged "
                                 "ones kept")
    report: bool = setting(True, "write OUT/report.html")


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
    add_options(p, SweepOptions, only=["ray"])
    add_out(p, "DIR", "sweep folder (overrides sweep.out)", required=False)
    add_options(p, SweepOptions, skip=["ray"])
    add_device(p, "; written into the base config's `device` key (a grid over `device` wins); with --ray, auto is "
                  "resolved where each cell runs", default=None,
               default_text="the sweep file's `device` when it sets one, else auto")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.sweeps import load_sweep, sweep
    from ..runtime import resolve_device

    cfg = load_sweep(args.config)
    # --device into the base config; resolved here when the cells run here (auto on a machine without CUDA is
    # cpu, the config's own default, so the cells' hashes stay those of the config)
    # without --device: the sweep file's own `device` when it names one, else auto
    given = args.device if args.device is not None else None if config_names_device(args.config) else "auto"
    if given is not None:
        cfg = replace(cfg, base=replace(cfg.base, device=given if args.ray else resolve_device(given)))
    result = sweep(cfg, out=args.out, ray=args.ray, force=args.force, report=args.report,
                   log=lambda s: print(s, file=sys.stderr, flush=True))
    emit(args, result.to_dict(), result.summary())
    return 0
