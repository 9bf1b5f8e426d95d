"""The appendix's comparison (Table 2 shape): every rule at every target IPC, R dynamics x N
evaluation networks, on each evaluation architecture; mean ± std over the R x N accuracies.

The rules compared are the registered ones (:mod:`.registry`), in registration order, unless
named. Rule specs may carry modifiers for the ablations (appendix Tables 4-5):
``yoco:imbalanced``, ``yoco:hard``, ``el2n:balanced``, ``random:imbalanced``, ``yoco:logits``.

Every finished cell is written to the results file at once (atomically), and ``resume=True``
skips the cells already there, so a killed comparison continues where it stopped.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..data import ImageSet
from ..data.condensed import decode
from ..errors import BadInputError, MismatchError, UnknownNameError
from ..io import atomic_write_json
from ..models import list_models
from ..progress import progress_bar
from ..train import check_compatible, evaluate, get_protocol
from .dynamics import Dynamics, DynamicsConfig
from .registry import Rule, rule_names
from .rules import epochs_needed, get_dynamics, get_rule, select
from .select import budget
from ..runtime import resolve_device

__all__ = ["RuleSpec", "parse_rule", "PruneTable", "prune_table", "DEFAULT_RULES"]  # noqa: F822 (module __getattr__)


def __getattr__(name: str) -> Any:
    """``DEFAULT_RULES``: every registered rule's name, read from the registry when asked (so a
    rule registered later is compared too)."""
    if name == "DEFAULT_RULES":
        return tuple(rule_names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_MODIFIERS = {"balanced", "imbalanced", "easy", "hard", "logits"}


@dataclass(frozen=True)
class RuleSpec:
    """A rule plus the ablation modifiers (``None``: the rule's own default)."""

    spec: str
    rule: str
    balanced: bool | None = None
    keep: str | None = None
    logits: bool = False

    def resolve(self) -> Rule:
        """The registered rule with this spec's modifiers applied."""
        return get_rule(self.rule).with_options(balanced=self.balanced, keep=self.keep)


def parse_rule(spec: str) -> RuleSpec:
    """``"yoco"``, ``"yoco:imbalanced"``, ``"el2n:balanced:easy"``, ``"yoco:logits"`` ..."""
    parts = [p.strip() for p in str(spec).split(":") if p.strip()]
    if not parts:
        raise BadInputError("empty rule name")
    get_rule(parts[0])
    bad = [m for m in parts[1:] if m not in _MODIFIERS]
    if bad:
        raise BadInputError(f"unknown rule modifier(s) {', '.join(bad)} in {spec!r}; valid: {', '.join(sorted(_MODIFIERS))}")
    mods = set(parts[1:])
    if {"balanced", "imbalanced"} <= mods or {"easy", "hard"} <= mods:
        raise BadInputError(f"{spec!r} asks for contradicting modifiers")
    balanced = True if "balanced" in mods else False if "imbalanced" in mods else None
    keep = "easy" if "easy" in mods else "hard" if "hard" in mods else None
    return RuleSpec(":".join(parts), parts[0], balanced, keep, "logits" in mods)


@dataclass
class PruneTable:
    """Results: ``cells[net][rule_spec][ipc]`` -> list of accuracies (fractions)."""

    source: str
    test: str
    ipc_from: int | None
    factor: int
    ipcs: list[int]
    rules: list[str]
    nets: list[str]
    runs: int
    eval_seeds: int
    protocol: str
    cells: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    full: dict[str, list[float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def summary(accs: Sequence[float]) -> str:
        if not accs:
            return "-"
        m = 100 * statistics.fmean(accs)
        s = 100 * statistics.pstdev(accs) if len(accs) > 1 else 0.0
        return f"{m:.2f} ± {s:.2f}"

    def mean(self, net: str, rule: str, ipc: int) -> float:
        return statistics.fmean(self.cells[net][rule][str(ipc)])

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["summary"] = {net: {rule: {ipc: self.summary(v) for ipc, v in per.items()} for rule, per in rules.items()}
                        for net, rules in self.cells.items()}
        d["full_summary"] = {net: self.summary(v) for net, v in self.full.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PruneTable":
        keep = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**keep)

    def markdown(self) -> str:
        """The tables as Markdown (rows: IPC_T; columns: rules), one per evaluation network."""
        out = []
        for net in self.nets:
            full = self.summary(self.full.get(net, []))
            out.append(f"{net}, whole set (IPC_F {self.ipc_from}): {full}\n")
            out.append("| IPC_T | " + " | ".join(self.rules) + " |")
            out.append("| --- | " + " | ".join("---" for _ in self.rules) + " |")
            for ipc in self.ipcs:
                cells = [self.summary(self.cells.get(net, {}).get(r, {}).get(str(ipc), [])) for r in self.rules]
                out.append(f"| {ipc} | " + " | ".join(cells) + " |")
            out.append("")
        return "\n".join(out).rstrip()

    def format(self) -> str:
        """Plain-text tables, one per evaluation network, in the shape of appendix Table 2."""
        out = []
        for net in self.nets:
            head = ["IPC_T"] + list(self.rules)
            rows = [[str(ipc)] + [self.summary(self.cells.get(net, {}).get(r, {}).get(str(ipc), []))
                                  for r in self.rules] for ipc in self.ipcs]
            widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
            line = lambda vals: "  ".join(str(v).rjust(w) for v, w in zip(vals, widths))  # noqa: E731
            full = self.summary(self.full.get(net, []))
            out.append(f"{net} on {self.test}: whole set (IPC_F {self.ipc_from}"
                       + (f", factor {self.factor}" if self.factor > 1 else "") + f") {full}; "
                       f"{self.runs} dynamics x {self.eval_seeds} networks per cell, protocol {self.protocol}")
            out += [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows] + [""]
        return "\n".join(out).rstrip()


def prune_table(
    condensed: ImageSet,
    test: ImageSet,
    *,
    ipcs: Sequence[int] = (1, 2, 5),
    rules: Sequence[str] | None = None,
    nets: Sequence[str] = ("convnet",),
    runs: int = 3,
    eval_seeds: int = 3,
    protocol: str = "quick",
    config: DynamicsConfig | None = None,
    dynamics: Dynamics | str | os.PathLike | None = None,
    beta: float | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    on_cell: Callable[[str, str, int, list[float]], None] | None = None,
    whole_set: bool = True,
) -> PruneTable:
    """Run the whole comparison; see the module docstring. ``rules`` default: every registered
    rule. ``out`` is the JSON results file. ``whole_set=False`` skips evaluating the unpruned set
    (when its accuracy is known)."""
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    specs = [parse_rule(r) for r in (rule_names() if rules is None else rules)]
    ipcs = sorted({int(i) for i in ipcs})
    proto, decoded = _check_request(condensed, test, specs, ipcs, nets, runs, eval_seeds, protocol)
    cfg = replace(config or DynamicsConfig(runs=runs, seed=seed), runs=runs)
    need = epochs_needed([s.rule for s in specs], cfg)
    table = PruneTable(source=condensed.name, test=test.name, ipc_from=condensed.ipc(),
                       factor=int(condensed.meta.get("factor", 1)), ipcs=ipcs, rules=[s.spec for s in specs],
                       nets=list(nets), runs=runs, eval_seeds=eval_seeds, protocol=proto.name,
                       settings={"dynamics": replace(cfg, epochs_run=need or None).to_dict(), "beta": beta,
                                 "seed": seed, "protocol": proto.to_dict()})
    if resume and out is not None and Path(out).exists():
        _resume(table, out)
    t0 = time.perf_counter()
    dyn = None
    if need > 0:
        cfg = replace(cfg, epochs_run=need)
        dyn = get_dynamics(condensed, cfg, dynamics=dynamics, device=device, progress=progress)
        if dyn.runs > runs:
            dyn = dyn.subset_runs(runs)
        table.seconds["dynamics"] = float(dyn.meta.get("seconds", time.perf_counter() - t0))
    total = len(nets) * (1 + len(specs) * len(ipcs) * runs)
    bar = progress_bar(total, desc="prune-table", enabled=progress, unit="cell")
    comparison = _Comparison(condensed, decoded, test, table, dyn, cfg, proto, beta, seed, device, out, bar)
    for net in nets:
        comparison.fill(net, specs, whole_set=whole_set, on_cell=on_cell)
    bar.close()
    comparison.save()
    return table


def _check_request(condensed: ImageSet, test: ImageSet, specs: list[RuleSpec], ipcs: list[int], nets: Sequence[str],
                   runs: int, eval_seeds: int, protocol: Any) -> tuple[Any, ImageSet]:
    """Every request checked before any training (a comparison runs for hours); returns the
    evaluation protocol and the decoded set."""
    if len({s.spec for s in specs}) != len(specs):
        raise BadInputError("a rule is listed twice")
    if not ipcs:
        raise BadInputError("no target IPC given")
    if runs < 1 or eval_seeds < 1:
        raise BadInputError(f"runs and eval_seeds must be >= 1, got {runs}, {eval_seeds}")
    proto = get_protocol(protocol)
    known = [m.name for m in list_models()]
    for n in nets:
        if n not in known:
            raise UnknownNameError("network", n, known)
    factor = int(condensed.meta.get("factor", 1))
    decoded = decode(condensed)
    check_compatible(decoded, test)
    ipc_from = condensed.ipc()
    counts = decoded.counts()
    for ipc in ipcs:
        budget(decoded.labels, ipc=ipc, factor=factor, num_classes=decoded.num_classes, ipc_from=ipc_from)
        balanced = [s.spec for s in specs if s.resolve().balanced]
        if balanced and min(counts) < ipc * factor * factor:
            raise BadInputError(f"class {counts.index(min(counts))} holds {min(counts)} decoded images, fewer "
                                f"than the {ipc * factor * factor} that {balanced[0]} at IPC {ipc} needs")
    return proto, decoded


def _resume(table: PruneTable, out: str | os.PathLike) -> None:
    """Take the finished cells of ``out`` into ``table``, after checking it is the same comparison."""
    old = PruneTable.from_dict(json.loads(Path(out).read_text()))
    if (old.source, old.test, old.runs, old.eval_seeds, old.protocol) != (
            table.source, table.test, table.runs, table.eval_seeds, table.protocol):
        raise MismatchError(f"{out} holds a comparison with other settings; use another --out or drop --resume")
    table.cells, table.full, table.seconds = old.cells, old.full, old.seconds


@dataclass
class _Comparison:
    """One comparison under way: what every cell shares, and how a cell is filled and saved
    (each finished dynamics run of a cell is written at once, so a killed run loses little)."""

    condensed: ImageSet
    decoded: ImageSet
    test: ImageSet
    table: PruneTable
    dyn: Dynamics | None
    cfg: DynamicsConfig
    proto: Any
    beta: float | None
    seed: int
    device: str | torch.device
    out: str | os.PathLike | None
    bar: Any

    def save(self) -> None:
        if self.out is not None:
            atomic_write_json(self.out, self.table.to_dict())

    def _accuracies(self, train: ImageSet, protocol: Any, seeds: list[int], since: float) -> list[float]:
        """Test accuracies of fresh networks trained on ``train``; the time from ``since`` is
        counted as evaluation."""
        rep = evaluate(train, self.test, protocol=protocol, seeds=seeds, device=self.device, progress=False)
        seconds = self.table.seconds
        seconds["evaluation"] = seconds.get("evaluation", 0.0) + time.perf_counter() - since
        return rep.accuracies

    def fill(self, net: str, specs: list[RuleSpec], *, whole_set: bool,
             on_cell: Callable[[str, str, int, list[float]], None] | None) -> None:
        """Every cell of one evaluation network (the whole set first), skipping finished ones."""
        table = self.table
        p_net = self.proto.with_overrides(model=net)
        cells = table.cells.setdefault(net, {})
        if net not in table.full and whole_set:
            t1 = time.perf_counter()
            table.full[net] = self._accuracies(self.condensed, p_net, list(range(table.runs * table.eval_seeds)), t1)
            self.save()
        self.bar.update(1)
        for s in specs:
            per_rule = cells.setdefault(s.spec, {})
            rule = s.resolve()
            for ipc in table.ipcs:
                accs = self._cell(p_net, s, rule, ipc, per_rule)
                if on_cell is not None:
                    on_cell(net, s.spec, ipc, accs)

    def _cell(self, p_net: Any, s: RuleSpec, rule: Rule, ipc: int, per_rule: dict[str, list[float]]) -> list[float]:
        """One (rule, IPC_T) cell: one selection per dynamics run, N networks trained on each."""
        table, n = self.table, self.table.eval_seeds
        key = str(ipc)
        done = per_rule.get(key, [])
        have_runs = len(done) // n
        accs = list(done[: have_runs * n])
        self.bar.update(have_runs)
        for r in range(have_runs, table.runs):
            t1 = time.perf_counter()
            idx = select(rule, self.dyn, self.decoded.labels, ipc=ipc, factor=table.factor, run=r,
                         num_classes=self.decoded.num_classes, ipc_from=table.ipc_from, logits=s.logits, beta=self.beta,
                         seed=self.seed, stop_epoch=self.cfg.stop_epoch, top_k=self.cfg.top_k)
            sub = self.decoded.subset(idx, name=f"{s.spec}@ipc{ipc}/run{r}")
            accs += self._accuracies(sub, p_net, [r * n + j for j in range(n)], t1)
            per_rule[key] = list(accs)
            self.save()
            self.bar.update(1)
        return accs
