"""The pruning rules (YOCO and the baselines), declared once each, and the one-call API
:func:`prune_set`.

Every rule is one :func:`~.registry.register_rule` declaration below, in the column order of the
appendix's Table 2 (the baselines, then YOCO); adding a rule is one more declaration here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..data import ImageSet
from ..data.condensed import decode, save_condensed
from ..errors import BadInputError
from ..train import derive_seed
from .dynamics import (Dynamics, DynamicsConfig, check_compatible, check_reusable, load_dynamics,
                       record_dynamics, sufficient)
from .registry import RULES, Rule, get_rule, list_rules, register_rule, rule_names
from .scores import epochs_needed_for, score
from .select import budget, ccs, prune, ssp
from ..runtime import resolve_device

__all__ = ["Rule", "RULES", "Selection", "get_rule", "list_rules", "rule_names", "register_rule", "epochs_needed",
           "select", "prune_set", "PruneResult", "by_score"]


@dataclass(frozen=True)
class Selection:
    """One selection request: what a rule may read to choose the kept indices.

    ``run`` picks one dynamics run (the appendix's tables: one selection per run); ``None``
    averages over all runs.
    """

    dyn: Dynamics | None
    labels: torch.Tensor
    ipc: int
    factor: int = 1
    run: int | None = None
    num_classes: int | None = None
    ipc_from: int | None = None
    logits: bool = False
    beta: float | None = None
    seed: int = 0
    stop_epoch: int = 100
    top_k: int = 10

    @property
    def size(self) -> dict[str, Any]:
        """The target size, as :func:`.select.prune`, :func:`.select.ccs` and :func:`.select.ssp` take it."""
        return dict(ipc=self.ipc, factor=self.factor, num_classes=self.num_classes, ipc_from=self.ipc_from)

    @property
    def run_seed(self) -> int:
        """The seed of this run's random choices (one stream per run, so runs choose independently)."""
        return derive_seed(self.seed, f"select-run-{self.run}")

    def difficulty(self, name: str) -> torch.Tensor:
        """(N,) score ``name`` of every sample, averaged over the runs (or of the chosen run)."""
        sub = self.dyn if self.run is None else dyn_run(self.dyn, self.run)
        return score(name, sub, logits=self.logits, stop_epoch=self.stop_epoch, top_k=self.top_k).mean(0)

    def embeddings(self) -> torch.Tensor:
        """(N, R*D) the final models' features, the runs side by side (or the chosen run's)."""
        runs = slice(None) if self.run is None else slice(self.run, self.run + 1)
        emb = self.dyn.embeddings[runs].float()  # (R, N, D)
        return emb.permute(1, 0, 2).flatten(1)


def by_score(rule: Rule, sel: Selection) -> torch.Tensor:
    """The score-based rules: rank by the rule's score, keep its end (per class when balanced)."""
    return prune(sel.difficulty(rule.score), sel.labels, balanced=rule.balanced, keep=rule.keep, **sel.size)


# --- the rules, in the appendix's column order ----------------------------------------------


@register_rule("random", score="random", keep="easy", balanced=True, needs_dynamics=False,
               help="random samples, class-balanced")
def random_rule(rule: Rule, sel: Selection) -> torch.Tensor:
    """Uniform draws from the run's seed; always the 'easy' end (keep modifiers change nothing)."""
    diff = torch.rand(sel.labels.numel(), generator=torch.Generator().manual_seed(sel.run_seed))
    return prune(diff, sel.labels, balanced=rule.balanced, keep="easy", **sel.size)


@register_rule("ssp", score="ssp", keep="easy",
               help="SSP (Sorscher et al.): samples nearest to k-means centres of embeddings")
def ssp_rule(rule: Rule, sel: Selection) -> torch.Tensor:
    """Not a score: k-means on the final models' features, the sample nearest each centre."""
    return ssp(sel.embeddings(), sel.labels, balanced=rule.balanced, seed=sel.run_seed, **sel.size)


register_rule("entropy", score="entropy", keep="hard",
              help="entropy (Coleman et al.): most uncertain final predictions")(by_score)
register_rule("aum", score="aum", keep="hard", help="AUM (Pleiss et al.): lowest area under the margin")(by_score)
register_rule("forgetting", score="forgetting", keep="hard",
              help="forgetting (Toneva et al.): most forgetting events")(by_score)
register_rule("el2n", score="el2n", keep="hard", help="EL2N (Paul et al.): highest error norm over epochs 0-9")(by_score)


@register_rule("ccs", score="el2n", keep="hard",
               help="CCS (Zheng et al.): hard cutoff, then stratified over EL2N strata")
def ccs_rule(rule: Rule, sel: Selection) -> torch.Tensor:
    """EL2N ranks, but coverage chooses: the hardest beta cut, then equal shares of the strata."""
    return ccs(sel.difficulty(rule.score), sel.labels, beta=sel.beta, balanced=rule.balanced, seed=sel.run_seed,
               **sel.size)


register_rule("yoco", score="lbpe", keep="easy", balanced=True,
              help="YOCO: lowest LBPE score (easy samples), class-balanced")(by_score)


# --- using the rules ------------------------------------------------------------------------


def epochs_needed(rules: list[str | Rule], config: DynamicsConfig) -> int:
    """Epochs of dynamics the rules need together (0: no training needed, e.g. random only)."""
    return max(epochs_needed_for(r.score, stop_epoch=config.stop_epoch, schedule_epochs=config.schedule_epochs)
               if r.needs_dynamics else 0 for r in map(get_rule, rules))


def select(
    rule: str | Rule,
    dyn: Dynamics | None,
    labels: torch.Tensor,
    *,
    ipc: int,
    factor: int = 1,
    run: int | None = None,
    num_classes: int | None = None,
    ipc_from: int | None = None,
    logits: bool = False,
    beta: float | None = None,
    seed: int = 0,
    stop_epoch: int = 100,
    top_k: int = 10,
) -> torch.Tensor:
    """Kept indices (into the decoded set) under ``rule``.

    ``run`` picks one dynamics run (the appendix's tables: one selection per run); ``None``
    averages the difficulty over all runs (SSP: k-means on the runs' embeddings side by side).
    """
    r = get_rule(rule)
    if r.needs_dynamics and dyn is None:
        raise BadInputError(f"rule {r.name} needs training dynamics")
    sel = Selection(dyn, labels, ipc, factor, run, num_classes, ipc_from, logits, beta, seed, stop_epoch, top_k)
    return (r.select or by_score)(r, sel)  # a Rule made by hand, not registered: ranked by its score


def dyn_run(dyn: Dynamics, run: int) -> Dynamics:
    if not 0 <= run < dyn.runs:
        raise BadInputError(f"run {run} out of range: the dynamics hold {dyn.runs} run(s)")
    return replace(dyn, logits=dyn.logits[run:run + 1], correct=dyn.correct[run:run + 1],
                   final_probs=dyn.final_probs[run:run + 1], embeddings=dyn.embeddings[run:run + 1])


@dataclass
class PruneResult:
    """A pruned set (decoded images, factor 1) and how it was chosen."""

    images: ImageSet
    indices: torch.Tensor
    rule: str
    ipc_from: int | None
    ipc_to: int
    factor: int
    settings: dict[str, Any]
    dynamics: Dynamics | None = None
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "ipc_from": self.ipc_from, "ipc_to": self.ipc_to, "factor": self.factor,
                "kept": len(self.indices), "counts": self.images.counts(), "indices": self.indices.tolist(),
                "settings": self.settings, "seconds": self.seconds, "files": self.files}


def get_dynamics(
    ds: ImageSet,
    config: DynamicsConfig,
    *,
    dynamics: Dynamics | str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> Dynamics:
    """Reuse ``dynamics`` (a value, or a file that exists) after checking it matches ``ds`` and
    ``config``; otherwise record them (and save to the path, when one is given).

    A file recorded on the same set with the same settings but too short (fewer epochs or runs
    than now needed) is recorded again, longer, and replaced: the new file holds the old one's
    runs unchanged as its first epochs (the schedule does not depend on where a run stops).
    """
    if isinstance(dynamics, Dynamics):
        check_reusable(dynamics, decode(ds), config)
        return dynamics.subset_runs(config.runs).truncated(config.trained_epochs)
    if dynamics is not None and Path(dynamics).exists() and not resume:
        dyn = load_dynamics(dynamics)
        check_compatible(dyn, decode(ds), config, where=str(dynamics))
        if sufficient(dyn, config):
            return dyn.subset_runs(config.runs).truncated(config.trained_epochs)
        longer = replace(config, runs=max(config.runs, dyn.runs),
                         epochs_run=max(config.trained_epochs, dyn.epochs) if config.epochs_run else None)
        dyn = record_dynamics(ds, longer, path=dynamics, device=device, progress=progress)
        return dyn.subset_runs(config.runs).truncated(config.trained_epochs)
    return record_dynamics(ds, config, path=dynamics, resume=resume, device=device, progress=progress)


def prune_set(
    ds: ImageSet,
    *,
    ipc: int,
    rule: str = "yoco",
    balanced: bool | None = None,
    keep: str | None = None,
    runs: int | None = None,
    config: DynamicsConfig | None = None,
    dynamics: Dynamics | str | os.PathLike | None = None,
    run: int | None = None,
    logits: bool = False,
    beta: float | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device = "auto",
    progress: bool | None = None,
) -> PruneResult:
    """Prune the condensed set ``ds`` to ``ipc`` images per class under ``rule``.

    ``rule``: a registered rule (:func:`list_rules`; yoco: LBPE, easy, balanced);
    ``balanced`` / ``keep`` override the rule's defaults (the appendix's ablations).
    The training dynamics are recorded once (``runs`` networks, default ``config.runs`` or 3,
    only as many epochs as the rule needs) or reused from ``dynamics``; the difficulty is averaged over runs unless
    ``run`` picks one. Multi-formation sets are pruned as decoded images: the result holds
    ``ipc * f^2`` decoded images per class (balanced) and is stored with factor 1.
    With ``out``, writes the pruned set (its metadata names the parent, rule, IPC_F -> IPC_T and
    the kept indices).
    """
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    r = get_rule(rule).with_options(balanced=balanced, keep=keep)
    factor = int(ds.meta.get("factor", 1))
    decoded = decode(ds)
    ipc_from = ds.ipc()  # stored images per class (None when classes differ in size)
    # validate the request before any training
    budget(decoded.labels, ipc=ipc, factor=factor, num_classes=decoded.num_classes, ipc_from=ipc_from)
    cfg = config or DynamicsConfig(runs=3 if runs is None else runs, seed=seed)
    if runs is not None and runs != cfg.runs:
        cfg = replace(cfg, runs=runs)
    need = epochs_needed([r], cfg)
    t0 = time.perf_counter()
    dyn = None
    if need > 0:
        cfg = replace(cfg, epochs_run=need)
        dyn = get_dynamics(ds, cfg, dynamics=dynamics, resume=resume, device=device, progress=progress)
    idx = select(r, dyn, decoded.labels, ipc=ipc, factor=factor, run=run, num_classes=decoded.num_classes,
                 ipc_from=ipc_from, logits=logits, beta=beta, seed=seed, stop_epoch=cfg.stop_epoch, top_k=cfg.top_k)
    pruned = decoded.subset(idx)
    settings = {"rule": r.name, "score": r.score, "keep": r.keep, "balanced": r.balanced, "logits": logits,
                "beta": beta, "run": run, "seed": seed, "dynamics": cfg.to_dict() if dyn is not None else None}
    res = PruneResult(pruned, idx, r.name, ipc_from, ipc, factor, settings, dyn, time.perf_counter() - t0)
    if out is not None:
        res.files["set"] = str(save_pruned(out, res, parent=ds))
    return res


def save_pruned(path: str | os.PathLike, res: PruneResult, *, parent: ImageSet) -> Path:
    """Write a pruned set as a condensed-set file (factor 1: the kept decoded images)."""
    meta_in = parent.meta.get("condensed") or {}
    empty = any(c == 0 for c in res.images.counts())
    save_condensed(
        path, res.images, method=f"prune:{res.rule}",
        source=meta_in.get("source") or parent.meta.get("source_dataset"), factor=1,
        settings=res.settings, seed=res.settings.get("seed"), bpd=None,
        extra={"parent": parent.name, "parent_method": meta_in.get("method"), "rule": res.rule,
               "ipc_from": res.ipc_from, "ipc_to": res.ipc_to, "parent_factor": res.factor,
               "kept_indices": res.indices.tolist(), "allow_empty_class": empty},
    )
    return Path(path)
