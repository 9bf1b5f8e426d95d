"""How a simplified training set is judged (paper Fig. 5): a classifier trained on it, tested
on the ORIGINAL test images.

:func:`fit` is the one training loop used for (b) retraining a fresh classifier, (c)
finetuning the jointly trained one, the blur/JPEG/MSE baselines and the distractor probes, so
every point of a trade-off plot is trained the same way: AdamW (the joint classifier's
optimiser, lr and weight decay), the config's batch size and augmentation, seeded order.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import DSA
from ..data import ImageSet, flip_allowed
from ..models import create_model
from ..progress import progress_bar
from ..train import accuracy
from ..train.seeding import derive_seed, generator
from .config import SimplifyConfig

__all__ = ["fit", "retrain", "fresh_classifier", "CURVE_IMAGES"]

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
    whole test set (fractions)."""
    dev = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr or cfg.lr_clf, weight_decay=cfg.wd_clf)
    dsa = DSA(cfg.augment, flip=flip_allowed(train)) if cfg.augment else None
    x_all, y_all = train.images, train.labels
    n = len(train)
    bs = min(cfg.batch_size, n)
    curve: list[float] = []
    curve_test = test
    if test is not None and len(test) > CURVE_IMAGES:  # intermediate epochs: a fixed subset; the last: all
        curve_test = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:CURVE_IMAGES])
    bar = progress_bar(epochs * -(-n // bs), desc=desc, enabled=progress)
    with torch.random.fork_rng(devices=[] if dev.type == "cpu" else [dev]):
        torch.manual_seed(derive_seed(seed, "retrain-dropout"))
        for e in range(epochs):
            model.train()
            g_order, g_aug = generator(seed, f"retrain-order/{e}"), generator(seed, f"retrain-augment/{e}")
            order = torch.randperm(n, generator=g_order)
            for b in range(-(-n // bs)):
                idx = order[b * bs:(b + 1) * bs]
                x, y = x_all[idx].to(dev), y_all[idx].to(dev)
                if dsa is not None:
                    x = dsa(x, generator=g_aug)
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
            if test is not None:
                curve.append(accuracy(model, test if e == epochs - 1 else curve_test))
    bar.close()
    model.eval()
    return {"accuracy": curve[-1] if curve else None, "curve": curve}


def retrain(train: ImageSet, test: ImageSet, *, cfg: SimplifyConfig, seed: int, epochs: int | None = None,
            device: str | torch.device = "cpu", progress: bool | None = None) -> dict[str, Any]:
    """Evaluation (b): a fresh classifier trained on ``train``, tested on ``test``."""
    model = fresh_classifier(cfg, train, seed=seed, device=device)
    return fit(model, train, test, cfg=cfg, epochs=cfg.retrain_epochs if epochs is None else epochs, seed=seed,
               progress=progress, desc=f"retrain seed {seed}")
