"""Soft-label evaluation: a teacher relabels every training batch of the evaluated set.

Soft labels are knowledge distillation: a student trained on a teacher's outputs learns more
from a handful of images than from their one-hot labels, and it does so for random real images
as much as for distilled ones (DD-Ranking, Li et al. 2025). So an accuracy reached with soft
labels only means something next to random real images evaluated the same way; see
:mod:`simplebits.train.scores` for the scores that pair them.

How the teacher labels (DD-Ranking's mode "M"): each training batch is augmented first (DSA,
CutMix) and the teacher, a frozen network in eval mode, scores the augmented images; the
student's loss compares its logits with the teacher's on exactly those images. No label is
stored, so what the labels cost is the teacher (see :func:`simplebits.density.storage_bits`).

Losses, named as DD-Ranking names them (``T`` the temperature; ``p = softmax(z / T)``):

- ``kl``: ``T^2 * KL(p_teacher || p_student)``, summed over classes, mean over the batch;
- ``sce``: soft cross-entropy ``T^2 * -sum p_teacher log p_student``: KL plus the teacher's entropy,
  which does not depend on the student, so ``kl`` and ``sce`` train identically (same gradients;
  the reported loss differs). Both are offered because papers report under either name;
- ``mse``: mean squared difference of the logits themselves (logit matching), averaged over the
  classes, mean over the batch (no temperature). DD-Ranking's ``mse_gt`` adds a hard-label
  cross-entropy term; that variant is not offered here.

The ``T^2`` factor keeps the gradient's scale independent of ``T`` (Hinton et al. 2015).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import BadInputError

__all__ = ["SOFT_LOSSES", "LABEL_MODES", "soft_label_loss", "check_label_mode"]

SOFT_LOSSES = ("kl", "sce", "mse")
LABEL_MODES = ("hard",) + SOFT_LOSSES


def check_label_mode(labels: str, temperature: float) -> None:
    """Clear error for an unknown label mode or a temperature that is not a positive number."""
    if labels not in LABEL_MODES:
        raise BadInputError(f"labels {labels!r}: use one of {', '.join(LABEL_MODES)}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise BadInputError(f"temperature must be a positive number, got {temperature!r}")


def soft_label_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str, *, temperature: float = 1.0,
                    reduction: str = "mean") -> torch.Tensor:
    """Loss of ``student`` logits (N, K) against ``teacher`` logits (N, K); see the module docstring.

    ``reduction``: ``"mean"`` over the batch, ``"sum"`` over it, or ``"none"`` (one value per image).
    """
    if kind not in SOFT_LOSSES:
        raise BadInputError(f"soft-label loss {kind!r}: use one of {', '.join(SOFT_LOSSES)}")
    if student.shape != teacher.shape:
        raise BadInputError(f"student logits {tuple(student.shape)} and teacher logits {tuple(teacher.shape)} "
                            "differ in shape; the teacher must have the student's classes")
    teacher = teacher.detach().to(student.dtype)
    if kind == "mse":
        per = (student - teacher).pow(2).mean(dim=1)
    else:
        t = float(temperature)
        log_ps = F.log_softmax(student / t, dim=1)
        pt = F.softmax(teacher / t, dim=1)
        per = -(pt * log_ps).sum(dim=1)
        if kind == "kl":
            per = per + (pt * F.log_softmax(teacher / t, dim=1)).sum(dim=1)  # minus the teacher's entropy
        per = per * (t * t)
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    if reduction == "mean":
        return per.mean()
    raise BadInputError(f"reduction {reduction!r}: use mean, sum or none")
