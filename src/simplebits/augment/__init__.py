"""Differentiable augmentation for condensation (DSA), CutMix and DC's MNIST augmentation for evaluation training."""

from __future__ import annotations

from simplebits.augment.cutmix import cutmix, cutmix_loss, maybe_cutmix
from simplebits.augment.dcaug import DC_MNIST, DCAugment
from simplebits.augment.dsa import DSA, DSAParams, parse_strategy

#: DSA's default strategy (Zhao & Bilen 2021)
DSA_DEFAULT = "color_crop_cutout_flip_scale_rotate"
#: the strategy IDC / YOCO use when training evaluation networks (with CutMix p 0.5)
DSA_IDC = "color_crop_flip_scale_rotate"

__all__ = [
    "DCAugment",
    "DC_MNIST",
    "DSA",
    "DSAParams",
    "DSA_DEFAULT",
    "DSA_IDC",
    "parse_strategy",
    "cutmix",
    "cutmix_loss",
    "maybe_cutmix",
]
