"""Per-sample scores computed from recorded training dynamics (registry by name).

Every score returns a *difficulty* tensor of shape (R, N), one row per dynamics run, where a
higher value means a harder sample. "Keep easy" keeps the lowest difficulties, "keep hard"
the highest. Ties keep the lower index first (stable sort), as the reference prunes equal
forgetting counts in index order.

===========  ===========================================================  ===============
name         definition (per run)                                         epochs needed
===========  ===========================================================  ===============
lbpe         sum over the ``top_k`` epochs with the highest training        ``stop_epoch``
             accuracy among the first ``stop_epoch`` of
             ``||softmax(f(x)) - onehot(y)||_2`` (YOCO's code;
             ``logits=True``: ``||f(x) - onehot(y)||_2``, the name's
             reading)
el2n         mean over epochs 0-9 of the same error norm                   10
aum          -(mean over epochs of p_y - max_{k!=y} p_k) (softmax as the     all
             reference; ``logits=True`` as the AUM paper)
forgetting   number of correct -> incorrect transitions between            all
             consecutive epochs (never learned: 0, as the reference)
entropy      entropy of the final model's softmax on the clean image       all
random       uniform random numbers from the seed                          0
===========  ===========================================================  ===============

SSP is not a score but a selection (k-means on embeddings); see :mod:`.select`.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import BadInputError, UnknownNameError
from ..train import derive_seed, generator
from .dynamics import Dynamics

__all__ = ["SCORES", "score", "epochs_needed_for", "list_scores"]

ScoreFn = Callable[..., torch.Tensor]


def _onehot(labels: torch.Tensor, c: int) -> torch.Tensor:
    return F.one_hot(labels.long(), c).float()


def _error_norm(dyn: Dynamics, epochs: int, logits: bool) -> torch.Tensor:
    """(R, E, N) ``||out - onehot||_2`` over the first ``epochs`` epochs."""
    out = dyn.logits[:, :epochs].float()
    if not logits:
        out = out.softmax(-1)
    return (out - _onehot(dyn.labels, out.shape[-1])).norm(dim=-1)


def lbpe(dyn: Dynamics, *, stop_epoch: int = 100, top_k: int = 10, logits: bool = False, **_: object) -> torch.Tensor:
    if dyn.epochs < stop_epoch:
        raise BadInputError(f"lbpe needs {stop_epoch} epochs of dynamics, {dyn.epochs} recorded")
    acc = dyn.train_accuracy()[:, :stop_epoch]  # (R, S)
    k = min(top_k, stop_epoch)
    # highest accuracy first; among equal accuracies the earlier epoch (stable sort on -acc)
    top = torch.sort(-acc, dim=1, stable=True).indices[:, :k]  # (R, k)
    err = _error_norm(dyn, stop_epoch, logits)  # (R, S, N)
    picked = torch.gather(err, 1, top.unsqueeze(-1).expand(-1, -1, err.shape[-1]))
    return picked.sum(1)


def el2n(dyn: Dynamics, *, el2n_epochs: int = 10, logits: bool = False, **_: object) -> torch.Tensor:
    # a schedule shorter than 10 epochs: all of it
    el2n_epochs = min(el2n_epochs, int(dyn.meta.get("config", {}).get("schedule_epochs", el2n_epochs)))
    if dyn.epochs < el2n_epochs:
        raise BadInputError(f"el2n needs {el2n_epochs} epochs of dynamics, {dyn.epochs} recorded")
    return _error_norm(dyn, el2n_epochs, logits).mean(1)


def aum(dyn: Dynamics, *, logits: bool = False, **_: object) -> torch.Tensor:
    out = dyn.logits.float()
    if not logits:
        out = out.softmax(-1)
    y = dyn.labels.long().view(1, 1, -1, 1).expand(out.shape[0], out.shape[1], -1, 1)
    assigned = out.gather(-1, y).squeeze(-1)
    others = out.scatter(-1, y, float("-inf")).amax(-1)
    return -(assigned - others).mean(1)


def forgetting(dyn: Dynamics, **_: object) -> torch.Tensor:
    c = dyn.correct.to(torch.int8)
    return ((c[:, :-1] == 1) & (c[:, 1:] == 0)).sum(1).float()


def entropy(dyn: Dynamics, **_: object) -> torch.Tensor:
    p = dyn.final_probs.float().clamp_min(1e-12)
    return -(p * p.log()).sum(-1)


def random_score(dyn: Dynamics, *, seed: int = 0, **_: object) -> torch.Tensor:
    return torch.stack([torch.rand(dyn.num_samples, generator=generator(derive_seed(seed, f"random-{r}"), "prune"))
                        for r in range(dyn.runs)])


SCORES: dict[str, ScoreFn] = {
    "lbpe": lbpe,
    "el2n": el2n,
    "aum": aum,
    "forgetting": forgetting,
    "entropy": entropy,
    "random": random_score,
}

_FULL = {"aum", "forgetting", "entropy", "ssp"}


def list_scores() -> list[str]:
    return list(SCORES)


def epochs_needed_for(name: str, *, stop_epoch: int, schedule_epochs: int, el2n_epochs: int = 10) -> int:
    """Epochs of dynamics a score needs (0 when it needs no training, e.g. random)."""
    if name == "lbpe":
        return stop_epoch
    if name == "el2n":
        return min(el2n_epochs, schedule_epochs)
    if name in _FULL:
        return schedule_epochs
    if name == "random":
        return 0
    raise UnknownNameError("score", name, list(SCORES) + ["ssp"])


def score(name: str, dyn: Dynamics, **options: object) -> torch.Tensor:
    """Difficulty (R, N) of every sample under score ``name`` (higher = harder)."""
    if name not in SCORES:
        raise UnknownNameError("score", name, list(SCORES))
    if name in _FULL and not dyn.complete:
        raise BadInputError(
            f"{name} needs the whole {dyn.meta['config']['schedule_epochs']}-epoch schedule; the dynamics hold "
            f"{dyn.epochs} epochs (record them for this rule)"
        )
    return SCORES[name](dyn, **options)
