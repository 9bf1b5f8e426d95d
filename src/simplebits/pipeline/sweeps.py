"""Sweeps: one pipeline config, a grid of settings, one pipeline run per cell.

A sweep file is a pipeline config (docs/pipeline.md) with a ``[sweep]`` table::

    [sweep]
    out = "my-sweep"            # the sweep's folder; cell i runs in OUT/cells/<name>/
    cpus_per_task = 1           # torch threads per cell (and Ray num_cpus)
    gpus_per_task = 0           # Ray num_gpus per cell (cells then use device "cuda")

    [sweep.grid]                # any pipeline key; every combination is one cell
    seed = [0, 1]
    "condense.lambda_sim" = [0.0, 100.0]   # a list-valued key takes one value per cell
    "evaluate.network" = ["convnet", "resnet10-ap"]

Each cell is a normal :func:`simplebits.pipeline.run` call with its own output directory, so
it is resumable on its own; a finished cell with the same settings is skipped, an interrupted
one continues. The engine only decides where cells run: sequentially in this process (the
default, and the fallback the docs describe when Ray is not installed), or as Ray tasks
(``ray="local"`` starts Ray on this machine; ``ray="HOST:PORT"`` joins a running cluster).
Either way a cell runs with ``cpus_per_task`` torch threads, so both give the same numbers.

Files (each written atomically): ``OUT/sweep.json`` (grid, cells, their state and seconds),
``OUT/sweep.toml`` (the sweep as run), ``OUT/results.json`` (every cell's figures and the
grouped table), ``OUT/prune-table.json`` (the cells' pruning rows as a
:class:`simplebits.prune.PruneTable`, when the cells prune), ``OUT/report.html``.
An ``OUT`` holding another sweep's cells is refused unless ``force``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import BadInputError, MismatchError, NotFoundError, SimplebitsError
from ..io import atomic_write_json, atomic_write_text
from .config import SECTIONS, PipelineConfig, _toml_value, config_hash, parse_config, read_toml

__all__ = ["SweepConfig", "SweepResult", "Cell", "load_sweep", "expand", "sweep", "load_sweep_result",
           "sweep_prune_table", "SweepError"]

FORMAT = 1
NOT_IN_GRID = ("out", "title")


class SweepError(SimplebitsError):
    """Some cells of a sweep failed (the others finished and are kept)."""

    exit_code = 1


@dataclass(frozen=True)
class SweepConfig:
    """A base pipeline config, the grid over its keys and how cells are run."""

    base: PipelineConfig
    grid: dict[str, list[Any]]
    out: str = "simplebits-sweep"
    cpus_per_task: int = 1
    gpus_per_task: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "grid": self.grid, "out": self.out,
                "cpus_per_task": self.cpus_per_task, "gpus_per_task": self.gpus_per_task}

    def to_toml(self) -> str:
        text = self.base.to_toml()
        lines = ["", "[sweep]", f"out = {_toml_value(self.out)}", f"cpus_per_task = {self.cpus_per_task}",
                 f"gpus_per_task = {_toml_value(self.gpus_per_task)}", "", "[sweep.grid]"]
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in self.grid.items()]
        return text + "\n".join(lines) + "\n"

    def hash(self) -> str:
        """What the cells' results depend on (not where they are written)."""
        return config_hash({"base": {k: v for k, v in self.base.to_dict().items() if k not in NOT_IN_GRID},
                            "grid": self.grid, "cpus_per_task": self.cpus_per_task})


@dataclass(frozen=True)
class Cell:
    name: str
    overrides: dict[str, Any]
    config: PipelineConfig

    @property
    def hash(self) -> str:
        # the same hash simplebits.pipeline.run writes into the cell's pipeline.json
        return config_hash({k: v for k, v in self.config.to_dict().items() if k not in NOT_IN_GRID})


_SWEEP_KEYS = {"out", "cpus_per_task", "gpus_per_task", "grid"}


def _get(cfg: PipelineConfig, key: str) -> Any:
    table, dot, name = key.partition(".")
    return getattr(getattr(cfg, table), name) if dot else getattr(cfg, key)


def _check_key(key: str) -> None:
    table, dot, name = key.partition(".")
    if dot:
        if table not in SECTIONS:
            raise BadInputError(f"[sweep.grid] key {key!r}: unknown table {table!r}; "
                                f"valid tables: {', '.join(SECTIONS)}")
        valid = [f.name for f in fields(SECTIONS[table])]
        if name not in valid:
            raise BadInputError(f"[sweep.grid] key {key!r}: unknown key {name!r} in [{table}]; valid keys: "
                                f"{', '.join(valid)}")
    else:
        if key in NOT_IN_GRID:
            raise BadInputError(f"[sweep.grid] key {key!r} cannot vary: every cell has its own folder under sweep.out")
        if key in SECTIONS:
            raise BadInputError(f"[sweep.grid] key {key!r} is a table; name a key in it, e.g. \"{key}.<key>\"")
        valid = [f.name for f in fields(PipelineConfig) if f.name not in SECTIONS and f.name not in NOT_IN_GRID]
        if key not in valid:
            raise BadInputError(f"[sweep.grid] key {key!r} is not a pipeline key; top-level keys: {', '.join(valid)}; "
                                "others are written table.key, e.g. \"condense.lambda_sim\"")


def parse_sweep(raw: dict[str, Any]) -> SweepConfig:
    """A validated :class:`SweepConfig` from a parsed TOML document."""
    if not isinstance(raw, dict):
        raise BadInputError(f"a sweep config is a TOML table, got {type(raw).__name__}")
    raw = dict(raw)
    sw = raw.pop("sweep", None)
    if sw is None:
        raise BadInputError("this config has no [sweep] table: add one with [sweep.grid] (docs/scale-out.md), or run "
                            "a single pipeline with `simplebits run`")
    if not isinstance(sw, dict):
        raise BadInputError(f"sweep must be a table ([sweep] with keys below it), got {sw!r}")
    unknown = sorted(set(sw) - _SWEEP_KEYS)
    if unknown:
        raise BadInputError(f"unknown key {unknown[0]!r} in [sweep]; valid keys: {', '.join(sorted(_SWEEP_KEYS))}")
    base = parse_config(raw)
    grid_raw = sw.get("grid", {})
    if not isinstance(grid_raw, dict) or not grid_raw:
        raise BadInputError("[sweep.grid] is missing or empty: give at least one key with a list of values, "
                            "e.g. seed = [0, 1]")
    grid: dict[str, list[Any]] = {}
    for key, values in grid_raw.items():
        if isinstance(values, dict):
            raise BadInputError(f"[sweep.grid] {key!r} is a table; write dotted keys in quotes, e.g. "
                                f"\"{key}.<key>\" = [...]")
        _check_key(key)
        if not isinstance(values, list) or not values:
            raise BadInputError(f"[sweep.grid] {key} must be a non-empty list of values, e.g. {key} = "
                                f"[{_toml_value(_get(base, key))}], got {values!r}")
        listy = isinstance(_get(base, key), list)
        vals = [v if (not listy or isinstance(v, list)) else [v] for v in values]
        if len({json.dumps(v, sort_keys=True) for v in vals}) != len(vals):
            raise BadInputError(f"[sweep.grid] {key} lists a value twice: {values!r}")
        grid[key] = vals
    out = sw.get("out", "simplebits-sweep")
    if not isinstance(out, str) or not out.strip():
        raise BadInputError(f"sweep.out must name a folder, e.g. out = \"my-sweep\", got {out!r}")
    cpus, gpus = sw.get("cpus_per_task", 1), sw.get("gpus_per_task", 0)
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        raise BadInputError(f"sweep.cpus_per_task must be an integer >= 1, got {cpus!r}")
    if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or gpus < 0:
        raise BadInputError(f"sweep.gpus_per_task must be a number >= 0, got {gpus!r}")
    cfg = SweepConfig(base=base, grid=grid, out=out, cpus_per_task=cpus, gpus_per_task=float(gpus))
    count_cells(cfg)  # counted before it is expanded: a 3000 x 2999 grid is one line, not minutes of work
    expand(cfg)  # every cell's config is checked before anything runs
    return cfg


def load_sweep(path: str | os.PathLike | dict[str, Any] | SweepConfig) -> SweepConfig:
    """A sweep from a TOML file, a dict or a :class:`SweepConfig`."""
    if isinstance(path, SweepConfig):
        return path
    if isinstance(path, dict):
        return parse_sweep(path)
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"sweep config not found: {p}; write one (docs/scale-out.md has an example)")
    return parse_sweep(read_toml(p, "a sweep config", "docs/scale-out.md"))


def _slug(v: Any) -> str:
    text = ",".join(map(str, v)) if isinstance(v, list) else (f"{v:g}" if isinstance(v, float) else str(v))
    return re.sub(r"[^A-Za-z0-9.,+-]", "_", text) or "_"


#: cells one sweep may hold; a grid asking for more is refused before it is expanded
MAX_CELLS = 10_000


def count_cells(cfg: SweepConfig) -> int:
    """The number of cells of the grid (the product of the list lengths), refused above MAX_CELLS."""
    n = 1
    for k, v in cfg.grid.items():
        n *= len(v)
        if n > MAX_CELLS:
            sizes = " x ".join(str(len(x)) for x in cfg.grid.values())
            raise BadInputError(f"[sweep.grid] asks for {sizes} cells, more than {MAX_CELLS:,}; split the sweep "
                                "into several configs or list fewer values")
    return n


def expand(cfg: SweepConfig) -> list[Cell]:
    """The cells of the grid, in the order of its keys (the last key varies fastest)."""
    keys = list(cfg.grid)
    cells = []
    for combo in itertools.product(*(cfg.grid[k] for k in keys)):
        over = dict(zip(keys, combo))
        raw = cfg.base.to_dict()
        for k, v in over.items():
            table, dot, name = k.partition(".")
            if dot:
                raw[table][name] = v
            else:
                raw[k] = v
        name = "__".join(f"{k}-{_slug(v)}" for k, v in over.items())
        try:
            conf = parse_config(raw)
        except SimplebitsError as e:
            raise BadInputError(f"sweep cell {name}: {e}") from None
        cells.append(Cell(name=name, overrides=over, config=replace(conf, out=str(Path(cfg.out) / "cells" / name))))
    return cells


# ---------------------------------------------------------------------------------------------- running cells


def run_cell(config: dict[str, Any], *, threads: int, force: bool,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One cell: a pipeline run with ``threads`` torch threads; returns its figures (JSON-able).
    Runs in this process or in a Ray worker; it writes only under the cell's own folder."""
    import torch

    from .runner import run

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        r = run(config, resume=True, force=force, report=True, progress=False, log=log or (lambda s: None))
        return {"state": "done", "figures": r.figures, "seconds": round(time.perf_counter() - t0, 2),
                "stage_seconds": r.seconds, "skipped": r.skipped, "peak_rss_mb": round(r.peak_rss_mb, 1),
                "dataset": r.dataset, "host": socket.gethostname(), "pid": os.getpid()}
    finally:
        torch.set_num_threads(before)


def _cell_state(cell: Cell) -> str:
    """``done`` (finished with these settings), ``partial`` (started with these settings),
    ``other`` (another config's results), ``new``."""
    meta = _read_json(Path(cell.config.out) / "pipeline.json")
    if meta is None:
        return "other" if Path(cell.config.out).exists() and any(Path(cell.config.out).iterdir()) else "new"
    if meta.get("config_hash") != cell.hash:
        return "other"
    return "done" if meta.get("state") == "done" else "partial"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_sweep_dir(cfg: SweepConfig, cells: list[Cell], *, force: bool) -> dict[str, str]:
    """Each cell's state; refuses (before anything is written) a folder that holds another
    sweep, other files, or cells made with other settings, unless ``force``."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"sweep output {out} is a file; give a folder (sweep.out or --out)")
    states = {c.name: _cell_state(c) for c in cells}
    if force or not out.exists():
        return states
    meta = _read_json(out / "sweep.json")
    if meta is None:
        if any(out.iterdir()):
            raise MismatchError(f"sweep folder {out} is not empty and holds no simplebits sweep; choose another "
                                "--out, or pass --force to write into it")
        return states
    if meta.get("sweep_hash") != cfg.hash():
        raise MismatchError(f"sweep folder {out} holds cells of a different sweep config (compare {out}/sweep.toml); "
                            "choose another --out, or pass --force to rerun the cells whose settings changed "
                            "(cells that did not change are kept)")
    other = [n for n, s in states.items() if s == "other"]
    if other:
        raise MismatchError(f"sweep folder {out}: cell {other[0]} holds results of other settings; pass --force to "
                            "replace them")
    return states


# ---------------------------------------------------------------------------------------------- Ray


def _ray_module(address: str):
    # read by Ray when it is imported, so set first. Ray >= 2.59 starts clusters with token
    # authentication and writes the token to ~/.ray/auth_token; a driver sends it only in token
    # mode (harmless for a cluster without it). Ray's C++ client logs every retry at warning level.
    if address != "local" and "RAY_AUTH_MODE" not in os.environ and (
            os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    try:
        import ray
    except ImportError:
        raise BadInputError("--ray needs Ray, which is not installed: pip install 'simplebits[ray]' (without --ray "
                            "the sweep runs its cells one after another in this process)") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` of a Ray address (``ray://host:port`` too); ``None`` for ``auto``."""
    if address == "auto":
        return None
    a = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = a.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BadInputError(f"--ray {address!r}: give HOST:PORT of a running Ray head (e.g. 127.0.0.1:6379), "
                            "auto (the cluster started on this machine with `ray start`), or local")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail with one clear line when nothing listens at the Ray address (before anything is written)."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as e:
        raise BadInputError(f"cannot reach a Ray cluster at {address} ({e.strerror or e}); start one with "
                            f"`ray start --head --port {hp[1]}` on that machine, check the address, or use --ray "
                            "local (nothing was written)") from None


def _ray_init(ray: Any, address: str, cpus: int | None) -> None:
    import logging

    kw: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    try:
        if address == "local":
            ray.init(num_cpus=cpus, **kw)
        else:
            check_reachable(address)
            kw.pop("include_dashboard")
            ray.init(address=address, **kw)
    except SimplebitsError:
        raise
    except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInputError(f"cannot join the Ray cluster at {address}: {first}; check the address (`ray status` on "
                            "the head); a cluster with token authentication needs RAY_AUTH_MODE=token and its token "
                            "(RAY_AUTH_TOKEN or ~/.ray/auth_token); or use --ray local (nothing was written)") from None


# ---------------------------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    out: str
    config: SweepConfig
    cells: list[dict[str, Any]]
    seconds: float
    engine: str
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    report: str | None = None
    table: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "engine": self.engine, "seconds": round(self.seconds, 2), "skipped": self.skipped,
                "failed": self.failed, "report": self.report, "table": self.table,
                "cells": [{k: v for k, v in c.items() if k != "figures"} for c in self.cells]}

    def summary(self) -> str:
        from .report import sweep_table_text

        done = sum(1 for c in self.cells if c.get("state") == "done")
        head = (f"sweep {self.out}: {done}/{len(self.cells)} cells done ({len(self.skipped)} skipped as finished"
                + (f", {len(self.failed)} failed" if self.failed else "")
                + f") in {self.seconds:.0f}s on {self.engine}")
        return "\n".join([head, sweep_table_text(self.table)] + ([f"report: {self.report}"] if self.report else []))


def sweep(
    config: str | os.PathLike | dict[str, Any] | SweepConfig,
    *,
    out: str | os.PathLike | None = None,
    ray: str | None = None,
    force: bool = False,
    report: bool = True,
    log: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run every cell of a sweep (see the module docstring). ``ray``: ``None`` (cells one after
    another in this process), ``"local"`` (Ray on this machine) or a cluster address."""
    cfg = load_sweep(config)
    if out is not None:
        cfg = replace(cfg, out=str(out))
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    cells = expand(cfg)
    ray_mod = _ray_module(ray) if ray else None
    if ray and ray != "local":
        check_reachable(ray)
    states = check_sweep_dir(cfg, cells, force=force)
    if ray_mod is not None and any(states[c.name] != "done" for c in cells):
        _ray_init(ray_mod, ray, None)  # joined (or started) only when some cell is left to run
    else:
        ray_mod = None
    engine = "sequential (this process)" if ray is None else f"ray ({ray})"
    run = _SweepRun(cfg, cells, states, say, _begin_sweep(cfg, cells, states, engine))
    todo = [c for c in cells if states[c.name] != "done"]
    say(f"sweep {cfg.out}: {len(cells)} cells ({len(run.skipped)} finished earlier), {len(todo)} to run on {engine}")
    t0 = time.perf_counter()
    if ray_mod is None:
        run.sequential(todo)
    else:
        run.on_ray(ray_mod, todo)
    return run.finish(time.perf_counter() - t0, engine, report)


def _begin_sweep(cfg: SweepConfig, cells: list[Cell], states: dict[str, str], engine: str) -> dict[str, Any]:
    """Create the sweep folder, write ``sweep.toml`` and ``sweep.json`` (state running); returns the meta."""
    outp = Path(cfg.out)
    outp.mkdir(parents=True, exist_ok=True)
    atomic_write_text(outp / "sweep.toml", cfg.to_toml())
    meta: dict[str, Any] = {"format": FORMAT, "sweep_hash": cfg.hash(), "grid": cfg.grid, "engine": engine,
                            "cpus_per_task": cfg.cpus_per_task, "gpus_per_task": cfg.gpus_per_task,
                            "state": "running", "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "cells": [{"name": c.name, "overrides": c.overrides, "config_hash": c.hash,
                                       "state": "done" if states[c.name] == "done" else "pending"} for c in cells]}
    atomic_write_json(outp / "sweep.json", meta)
    return meta


class _SweepRun:
    """One sweep between the steps of :func:`sweep`: the cells' results and failures, recorded in
    ``sweep.json`` as each cell ends."""

    def __init__(self, cfg: SweepConfig, cells: list[Cell], states: dict[str, str], say: Callable[[str], None],
                 meta: dict[str, Any]) -> None:
        self.cfg, self.cells, self.say, self.meta, self.outp = cfg, cells, say, meta, Path(cfg.out)
        self.force_of = {c.name: states[c.name] == "other" for c in cells}
        self.results: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, str] = {}
        self.skipped = [c.name for c in cells if states[c.name] == "done"]
        by_name = {c.name: c for c in cells}
        for name in self.skipped:
            from .runner import load_result

            m, figs, _ = load_result(by_name[name].config.out)
            self.results[name] = {"state": "done", "figures": figs, "seconds": 0.0, "skipped_cell": True,
                                  "dataset": m.get("dataset")}

    def record(self, cell: Cell, res: dict[str, Any] | None, err: str | None) -> None:
        entry = next(e for e in self.meta["cells"] if e["name"] == cell.name)
        if err is not None:
            self.failed[cell.name] = err
            entry.update(state="failed", error=err)
            self.say(f"  {cell.name}: FAILED: {err}")
        else:
            assert res is not None
            self.results[cell.name] = res
            entry.update(state="done", seconds=res["seconds"], host=res.get("host"))
            self.say(f"  {cell.name}: done in {res['seconds']:.0f}s ({len(self.results)}/{len(self.cells)})")
        atomic_write_json(self.outp / "sweep.json", self.meta)

    def sequential(self, todo: list[Cell]) -> None:
        """The cells one after another in this process."""
        for cell in todo:
            self.say(f"  {cell.name} ...")
            try:
                got = run_cell(cell.config.to_dict(), threads=self.cfg.cpus_per_task, force=self.force_of[cell.name],
                               log=lambda s: self.say(f"    {s}"))
                self.record(cell, got, None)
            except SimplebitsError as e:
                self.record(cell, None, str(e))

    def on_ray(self, ray_mod: Any, todo: list[Cell]) -> None:
        """The cells as Ray tasks, recorded as they finish; Ray is shut down at the end."""
        opts: dict[str, Any] = {"num_cpus": self.cfg.cpus_per_task, "max_retries": 0}
        if self.cfg.gpus_per_task:
            opts["num_gpus"] = self.cfg.gpus_per_task
        task = ray_mod.remote(**opts)(run_cell)
        refs = {task.remote(c.config.to_dict(), threads=self.cfg.cpus_per_task, force=self.force_of[c.name]): c
                for c in todo}
        try:
            while refs:
                ready, _ = ray_mod.wait(list(refs), num_returns=1)
                cell = refs.pop(ready[0])
                try:
                    self.record(cell, ray_mod.get(ready[0]), None)
                except Exception as e:  # noqa: BLE001 - a task's error arrives wrapped by Ray
                    cause = getattr(e, "cause", None) or e
                    msg = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
                    self.record(cell, None, msg)
        finally:
            ray_mod.shutdown()

    def finish(self, seconds: float, engine: str, report: bool) -> "SweepResult":
        """results.json, the prune table, the report and sweep.json (state done or failed); the result,
        or a SweepError naming the first failed cell (the others are kept)."""
        cfg, cells, outp, meta, failed = self.cfg, self.cells, self.outp, self.meta, self.failed
        ordered = [{"name": c.name, "overrides": c.overrides, "folder": str(Path("cells") / c.name),
                    **self.results.get(c.name, {"state": "failed" if c.name in failed else "pending"})} for c in cells]
        table = grouped_table(ordered)
        meta.update(state="done" if not failed else "failed", finished=time.strftime("%Y-%m-%d %H:%M:%S"),
                    seconds=round(seconds, 2), skipped=self.skipped)
        atomic_write_json(outp / "results.json", {"grid": cfg.grid, "table": table, "cells": ordered})
        pt = sweep_prune_table(outp, cells=ordered)
        if pt is not None:
            atomic_write_json(outp / "prune-table.json", pt.to_dict())
        report_path = None
        if report:
            from .report import write_sweep_report

            report_path = str(write_sweep_report(outp))
        atomic_write_json(outp / "sweep.json", meta)
        result = SweepResult(str(outp), cfg, ordered, seconds, engine, self.skipped, failed, report_path, table)
        if failed:
            first = next(iter(failed.items()))
            raise SweepError(f"{len(failed)} of {len(cells)} cells failed (first: {first[0]}: {first[1]}); the others "
                             f"are kept in {outp}: rerun the same command to retry the failed ones (finished cells "
                             "are skipped)")
        return result


# ---------------------------------------------------------------------------------------------- reading results


def _seed_free(over: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((k, json.dumps(v)) for k, v in over.items() if k != "seed")


def _rows_of(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline rows of one pipeline run: (kind, label, accuracies, bpd)."""
    rows = []
    for r in figures.get("baseline", {}).get("rows", []):
        rows.append({"kind": "random real", "label": f"random real ipc{r['ipc']}", "acc": r["accuracy"]["accuracies"],
                     "bpd": None})
    for s in figures.get("condense", {}).get("sets", []):
        rows.append({"kind": "condensed", "label": s["label"], "acc": s["accuracy"]["accuracies"], "bpd": s["bpd"],
                     "ipc": s["ipc"], "lambda_sim": s["lambda_sim"]})
    for r in figures.get("prune", {}).get("rows", []):
        rows.append({"kind": "pruned", "label": f"{r['parent']} -> ipc{r['ipc_to']} by {r['rule']}",
                     "acc": r["accuracy"]["accuracies"], "bpd": None, "rule": r["rule"], "ipc": r["ipc_to"],
                     "model": r["accuracy"].get("model")})
    return rows


def grouped_table(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of every finished cell, cells that differ only in ``seed`` pooled: mean ± std over all
    their networks' accuracies (condensation/pruning seeds x evaluation networks)."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for c in cells:
        if c.get("state") != "done":
            continue
        key_over = _seed_free(c["overrides"])
        for row in _rows_of(c.get("figures", {})):
            k = (key_over, row["kind"], row["label"])
            g = groups.setdefault(k, {"setting": {a: json.loads(b) for a, b in key_over}, "kind": row["kind"],
                                      "label": row["label"], "acc": [], "bpd": [], "cells": [],
                                      "seeds": []})
            g["acc"] += list(row["acc"])
            if row["bpd"] is not None:
                g["bpd"].append(row["bpd"])
            g["cells"].append(c["name"])
            g["seeds"].append(c["overrides"].get("seed"))
    out = []
    for g in groups.values():
        accs = g.pop("acc")
        bpds = g.pop("bpd")
        g["n"] = len(accs)
        g["mean"] = statistics.fmean(accs) if accs else None
        g["std"] = statistics.pstdev(accs) if len(accs) > 1 else 0.0
        g["accuracies"] = accs
        g["bpd"] = statistics.fmean(bpds) if bpds else None
        out.append(g)
    return out


def load_sweep_result(out: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` of a sweep folder, with ``sweep.json`` as ``meta``."""
    d = Path(out)
    meta = _read_json(d / "sweep.json")
    res = _read_json(d / "results.json")
    if meta is None or res is None:
        raise NotFoundError(f"{d} holds no finished sweep (sweep.json and results.json); run `simplebits sweep "
                            "CONFIG.toml` first")
    res["meta"] = meta
    return res


def sweep_prune_table(out: str | os.PathLike, *, cells: list[dict[str, Any]] | None = None):
    """The pruning rows of a sweep's cells as one :class:`simplebits.prune.PruneTable` (one table per
    evaluation network; every cell's accuracies at a (rule, IPC_T) pooled), or ``None`` when the
    cells did not prune."""
    from ..prune.table import PruneTable

    if cells is None:
        cells = load_sweep_result(out)["cells"]
    table: PruneTable | None = None
    per_net: dict[str, int] = {}
    for c in cells:
        if c.get("state") != "done":
            continue
        p = c.get("figures", {}).get("prune")
        if not p or not p.get("rows"):
            continue
        for r in p["rows"]:
            net = r["accuracy"].get("model") or "convnet"
            if table is None:
                table = PruneTable(source=r["parent"], test=c.get("dataset") or "", ipc_from=r["ipc_from"], factor=1,
                                   ipcs=[], rules=[], nets=[], runs=0, eval_seeds=len(r["accuracy"]["accuracies"]),
                                   protocol=r["accuracy"].get("protocol", ""),
                                   settings={"from_sweep": str(out)})
            if net not in table.nets:
                table.nets.append(net)
            if r["rule"] not in table.rules:
                table.rules.append(r["rule"])
            if r["ipc_to"] not in table.ipcs:
                table.ipcs.append(r["ipc_to"])
            table.cells.setdefault(net, {}).setdefault(r["rule"], {}).setdefault(str(r["ipc_to"]), []).extend(
                r["accuracy"]["accuracies"])
        per_net[net] = per_net.get(net, 0) + 1
    if table is not None:
        table.ipcs.sort()
        table.runs = max(per_net.values())  # cells pooled per entry
    return table
