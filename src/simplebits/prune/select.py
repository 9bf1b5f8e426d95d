"""Selection: from per-sample difficulties (or embeddings) to the indices that are kept.

The unit is the decoded image: for a multi-formation set of factor f, ``ipc`` target images
per class means ``ipc * f * f`` decoded samples per class. Labels need not be contiguous or
class-ordered, and classes need not be equal in size; everything works on index sets.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import BadInputError
from ..train import generator
from ..train.kmeans import kmeans

__all__ = ["prune", "ccs", "ssp", "budget", "default_ccs_beta"]

KEEPS = ("easy", "hard")


def _check_labels(labels: torch.Tensor, num_classes: int | None) -> int:
    if labels.dim() != 1 or labels.numel() == 0:
        raise BadInputError(f"labels must be a non-empty 1-D tensor, got shape {tuple(labels.shape)}")
    if int(labels.min()) < 0:
        raise BadInputError(f"labels must be >= 0, found {int(labels.min())}")
    c = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if int(labels.max()) >= c:
        raise BadInputError(f"label {int(labels.max())} out of range for {c} classes")
    return c


def budget(labels: torch.Tensor, *, ipc: int, factor: int = 1, num_classes: int | None = None,
           ipc_from: int | None = None, class_names: list[str] | None = None) -> int:
    """Decoded samples kept per class (``ipc * f^2``), after checking the request is possible."""
    if not isinstance(ipc, int) or ipc < 1:
        raise BadInputError(f"ipc must be a positive integer, got {ipc!r}")
    if factor < 1:
        raise BadInputError(f"factor must be >= 1, got {factor}")
    c = _check_labels(labels, num_classes)
    counts = torch.bincount(labels.long(), minlength=c)
    per = ipc * factor * factor
    if ipc_from is not None and ipc >= ipc_from:
        raise BadInputError(
            f"nothing to prune: target IPC {ipc} >= the set's IPC {ipc_from}; ask for fewer images per class "
            f"(1..{ipc_from - 1})"
        )
    if ipc_from is None and per >= int(counts.max()):
        raise BadInputError(
            f"nothing to prune: target {per} decoded image(s) per class keeps every class whole "
            f"(largest class holds {int(counts.max())})"
        )
    return per


def _order(d: torch.Tensor, keep: str) -> torch.Tensor:
    """Indices of ``d`` in keeping order: easiest first for keep='easy', hardest first for 'hard'."""
    if keep not in KEEPS:
        raise BadInputError(f"keep must be 'easy' or 'hard', got {keep!r}")
    if not torch.isfinite(d).all():
        raise BadInputError("scores contain NaN or infinite values; the dynamics are broken, record them again")
    return torch.sort(d if keep == "easy" else -d, stable=True).indices


def _choose(labels: torch.Tensor, c: int, per: int, balanced: bool,
            pick: Callable[[torch.Tensor, int], torch.Tensor], *, ipc: int, factor: int) -> torch.Tensor:
    """Apply ``pick(indices, k) -> positions into indices`` per class (``per`` each) or once over
    the whole set (``per * c`` in total); returns the kept indices, sorted."""
    if balanced:
        kept = []
        for k in range(c):
            idx = (labels == k).nonzero().flatten()
            if idx.numel() < per:
                raise BadInputError(
                    f"class {k} holds {idx.numel()} decoded image(s), fewer than the {per} a balanced set at IPC {ipc}"
                    + (f" x factor {factor}^2" if factor > 1 else "") + " needs; lower --ipc or use --imbalanced"
                )
            kept.append(idx[pick(idx, per)])
        out = torch.cat(kept)
    else:
        total = per * c
        if total > labels.numel():
            raise BadInputError(f"asked to keep {total} images but the set holds {labels.numel()}")
        every = torch.arange(labels.numel())
        out = every[pick(every, total)]
    return torch.sort(out).values


def prune(
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    ipc: int,
    balanced: bool = True,
    keep: str = "easy",
    factor: int = 1,
    num_classes: int | None = None,
    ipc_from: int | None = None,
) -> torch.Tensor:
    """Indices (sorted ascending) of the samples kept.

    ``scores``: (N,) difficulties (higher = harder); ``labels``: (N,) class of each decoded
    sample. ``balanced=True`` keeps exactly ``ipc * factor**2`` samples of each class (YOCO's
    rule 2); ``balanced=False`` keeps the same total, ``ipc * factor**2 * classes``, chosen
    over the whole set (the original baselines), so classes may end up uneven or empty.
    ``keep`` picks the easiest (YOCO's rule 1) or the hardest samples.
    """
    scores = torch.as_tensor(scores).float().flatten()
    labels = torch.as_tensor(labels).long().flatten()
    if scores.shape != labels.shape:
        raise BadInputError(f"{scores.numel()} scores for {labels.numel()} labels")
    c = _check_labels(labels, num_classes)
    per = budget(labels, ipc=ipc, factor=factor, num_classes=c, ipc_from=ipc_from)
    _order(scores, keep)  # validate keep and the scores once, before any class
    return _choose(labels, c, per, balanced, lambda idx, k: _order(scores[idx], keep)[:k], ipc=ipc, factor=factor)


def default_ccs_beta(prune_rate: float) -> float:
    """Hard cutoff used when none is given, after the CCS paper's suggestions for CIFAR-10
    (no cutoff up to 50 % pruned, 10 % up to 80 %, 30 % beyond)."""
    if prune_rate <= 0.5:
        return 0.0
    if prune_rate <= 0.8:
        return 0.1
    return 0.3


def _ccs_pick(scores: torch.Tensor, n_keep: int, beta: float, strata: int, g: torch.Generator) -> torch.Tensor:
    n = scores.numel()
    order = torch.sort(-scores, stable=True).indices  # hardest first
    n_cut = int(math.floor(beta * n))
    if n - n_cut < n_keep:  # the cutoff may not leave too few samples
        n_cut = n - n_keep
    pool = torch.sort(order[n_cut:]).values
    s = scores[pool]
    lo, hi = float(s.min()), float(s.max())
    width = (hi - lo) / strata if hi > lo else 1.0
    which = ((s - lo) / width).floor().clamp_(0, strata - 1).long() if hi > lo else torch.zeros_like(pool)
    groups = [pool[which == k] for k in range(strata)]
    groups = [grp for grp in groups if grp.numel() > 0]
    groups.sort(key=lambda grp: grp.numel())  # smallest stratum first (stable: ties by score range)
    chosen = []
    left = n_keep
    for i, grp in enumerate(groups):
        take = min(grp.numel(), left // (len(groups) - i))
        if take:
            chosen.append(grp[torch.randperm(grp.numel(), generator=g)[:take]])
        left -= take
    out = torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.long)
    return out


def ccs(
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    ipc: int,
    beta: float | None = None,
    strata: int = 50,
    balanced: bool = False,
    factor: int = 1,
    seed: int = 0,
    num_classes: int | None = None,
    ipc_from: int | None = None,
) -> torch.Tensor:
    """Coverage-centric selection (Zheng et al., 2023): drop the hardest ``beta`` fraction, split
    the remaining score range into ``strata`` equal-width strata, fill the budget from the
    smallest stratum up (each stratum gives at most an equal share of what is left), random
    within a stratum (seeded). The reference takes the highest-scored samples in each stratum;
    CCS's paper and this implementation sample at random."""
    scores = torch.as_tensor(scores).float().flatten()
    labels = torch.as_tensor(labels).long().flatten()
    if scores.shape != labels.shape:
        raise BadInputError(f"{scores.numel()} scores for {labels.numel()} labels")
    if not torch.isfinite(scores).all():
        raise BadInputError("scores contain NaN or infinite values; the dynamics are broken, record them again")
    if strata < 1:
        raise BadInputError(f"strata must be >= 1, got {strata}")
    c = _check_labels(labels, num_classes)
    per = budget(labels, ipc=ipc, factor=factor, num_classes=c, ipc_from=ipc_from)
    n_total = per * c
    if beta is None:
        beta = default_ccs_beta(1.0 - n_total / labels.numel())
    if not 0.0 <= beta < 1.0:
        raise BadInputError(f"ccs hard cutoff beta must be in [0, 1), got {beta}")
    g = generator(seed, "ccs")
    return _choose(labels, c, per, balanced, lambda idx, k: _ccs_pick(scores[idx], k, beta, strata, g),
                   ipc=ipc, factor=factor)


def ssp(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    ipc: int,
    balanced: bool = False,
    factor: int = 1,
    seed: int = 0,
    iters: int = 50,
    num_classes: int | None = None,
    ipc_from: int | None = None,
) -> torch.Tensor:
    """Self-supervised-prototype selection (Sorscher et al., 2022): k-means on the embeddings with
    as many clusters as samples to keep; keep the sample nearest to each centre (a sample is
    kept once: a centre whose nearest sample is taken gets its next nearest)."""
    emb = torch.as_tensor(embeddings).float().flatten(1)
    labels = torch.as_tensor(labels).long().flatten()
    if emb.shape[0] != labels.numel():
        raise BadInputError(f"{emb.shape[0]} embeddings for {labels.numel()} labels")
    c = _check_labels(labels, num_classes)
    per = budget(labels, ipc=ipc, factor=factor, num_classes=c, ipc_from=ipc_from)
    g = generator(seed, "ssp")

    def pick(idx: torch.Tensor, k: int) -> torch.Tensor:
        x = emb[idx]
        centres, _ = kmeans(x, k, iters=iters, generator=g)
        d = torch.cdist(centres, x)  # (k, n)
        taken = torch.zeros(idx.numel(), dtype=torch.bool)
        out = []
        for j in range(k):
            row = d[j].masked_fill(taken, float("inf"))
            i = int(row.argmin())
            taken[i] = True
            out.append(i)
        return torch.tensor(out, dtype=torch.long)

    return _choose(labels, c, per, balanced, pick, ipc=ipc, factor=factor)
