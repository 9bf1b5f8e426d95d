"""How a simplified training set is judged (paper Fig. 5): a classifier trained on it, tested
on the ORIGINAL test images.

:func:`fit` trains (b) the fresh classifier retrained, (c) the jointly trained one finetuned, the
blur/JPEG/MSE baselines and the distractor probes, so every point of a trade-off plot is trained
the same way: AdamW (the joint classifier's optimiser, lr and weight decay), the config's batch
size and augmentation, seeded order; its steps are the workshop's one training loop
(:func:`simplebits.train.loop.train_loop`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import DSA
from ..data import ImageSet, flip_allowed
from ..models import create_model
from ..train import accuracy
from ..train.loop import Batch, BatchHook, train_loop
from ..train.seeding import derive_seed, generator
from .config import SimplifyConfig

__all__ = ["fit", "retrain", "retrain_seeds", "fresh_classifier", "CURVE_IMAGES"]

CURVE_IMAGES = 2000  # test images scored after each epoch but the last (which uses the whole test set)


def fresh_classifier(cfg: SimplifyConfig, ds: ImageSet, *, seed: int, device: str | torch.device = "cpu") -> nn.Module:
    """A new classifier of the config's kind for ``ds``'s format (init seeded)."""
    return create_model(cfg.classifier, channels=ds.channels, num_classes=ds.num_classes,
                        image_size=tuple(ds.shape[1:]), seed=derive_seed(seed, "retrain-init"),
                        **cfg.classifier_options).to(device)


def fit(model: nn.Module, train: ImageSet, test: ImageSet | None, *, cfg: SimplifyConfig, epochs: int, seed: int,
        lr: float | None = None, progress: bool | None = None, desc: str = "retrain") -> dict[str, Any]:
    """Train ``model`` in place on ``train`` for ``epochs``; returns the test accuracy after each
    epoch (``curve``, the paper's S7 learning curves; before the last epoch on a fixed subset of
    ``CURVE_IMAGES`` test images when the test set is larger) and the final ``accuracy`` on the
    whole test set (fractions). The steps are :func:`simplebits.train.loop.train_loop`'s, with
    torch's threads and whole steps (no thread rule, no pieces), the optimiser's constant lr."""
    dev = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr or cfg.lr_clf, weight_decay=cfg.wd_clf)
    n = len(train)
    bs = min(cfg.batch_size, n)
    curve: list[float] = []
    curve_test = test
    if test is not None and len(test) > CURVE_IMAGES:  # intermediate epochs: a fixed subset; the last: all
        curve_test = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:CURVE_IMAGES])

    def on_epoch(epoch: int, net: nn.Module) -> None:
        if test is not None:
            curve.append(accuracy(net, test if epoch == epochs - 1 else curve_test))

    train_loop(model, n=n, batch_size=bs, steps=epochs * -(-n // bs), optimizer=opt,
               order=lambda epoch: torch.randperm(n, generator=generator(seed, f"retrain-order/{epoch}")),
               batch=_retrain_batches(train, cfg, seed=seed, device=dev),
               loss=lambda out, data, piece: F.cross_entropy(out, data.target),
               dropout_seed=derive_seed(seed, "retrain-dropout"), on_epoch=on_epoch, progress=progress, desc=desc)
    return {"accuracy": curve[-1] if curve else None, "curve": curve}


def _retrain_batches(train: ImageSet, cfg: SimplifyConfig, *, seed: int, device: torch.device) -> BatchHook:
    """:func:`fit`'s batch hook: the batch moved to ``device`` and augmented (the config's DSA),
    each epoch from its own augmentation stream."""
    dsa = DSA(cfg.augment, flip=flip_allowed(train)) if cfg.augment else None
    streams: dict[int, torch.Generator] = {}

    def batch(epoch: int, step: int, idx: torch.Tensor) -> Batch:
        x, y = train.images[idx].to(device), train.labels[idx].to(device)
        if dsa is not None:
            if epoch not in streams:
                streams.clear()
                streams[epoch] = generator(seed, f"retrain-augment/{epoch}")
            x = dsa(x, generator=streams[epoch])
        return Batch(x, y)

    return batch


def retrain_seeds(seed: int, n: int, tag: str = "retrain") -> list[int]:
    """Seeds of ``n`` fresh classifiers: ``seed`` itself first (one classifier is the run's own
    seed), then seeds derived from it under ``tag`` ("retrain" for evaluation (b), "select" for
    the select-within checks)."""
    return [seed if k == 0 else derive_seed(seed, f"{tag}/{k}") for k in range(n)]


def retrain(train: ImageSet, test: ImageSet, *, cfg: SimplifyConfig, seed: int, epochs: int | None = None,
            device: str | torch.device = "cpu", progress: bool | None = None) -> dict[str, Any]:
    """Evaluation (b): a fresh classifier trained on ``train``, tested on ``test``."""
    model = fresh_classifier(cfg, train, seed=seed, device=device)
    return fit(model, train, test, cfg=cfg, epochs=cfg.retrain_epochs if epochs is None else epochs, seed=seed,
               progress=progress, desc=f"retrain seed {seed}")
