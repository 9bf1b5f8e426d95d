"""Keep the best joint epoch, not the last (``select_within``; off in both presets, the paper keeps the last).

A short SimpleBits run does not settle: on stripes with ``--grad-floor`` the simplified set's bpd and
how well a classifier retrained on it reads the originals both swing from one joint epoch to the
next (docs/simplify.md, "Keeping the best epoch"). With ``select_within=F`` the runner checks the
simplifier after every joint epoch and, at the end, keeps the one whose simplified images have the
lowest bpd among those whose transfer is within ``F`` (a fraction: 0.05 = 5 points) of the
originals'. The check never changes the training: a run with it reaches the same last epoch, bit for
bit, as one without (tested); it only chooses which epoch's simplifier (and joint classifier) the
cell keeps.

The check, on a held-out part of the *training* set (the test set is never looked at):

* ``HOLDOUT`` of each class's training images (at least one) are held out, chosen by the cell's
  seed (:func:`simplebits.data.stratified_split`). The simplifier keeps training on every image.
* transfer: a fresh classifier, trained the way evaluation (b) trains one (``retrain_epochs``,
  the cell's seed), on the simplified *other* training images, tested on the held-out *originals*;
  the reference is the same classifier trained on the original other images.
* bpd: the mean bpd of the held-out images after simplification.
* ``select_seeds=K`` (default 1): K such classifiers per check (the first with the cell's seed, the
  others with seeds derived from it), and the transfer is their mean, the reference's likewise. On
  stripes one classifier's draw decides the figure: kept sets that passed their one-classifier
  checks at 96.0 and 99.8 % retrain to 81 ± 8 and 90 ± 6 % across five fresh classifiers, so a
  single draw admits sets whose transfer is fragile. K classifiers cost K retrainings per check.

The reference doubles as the first candidate: the simplifier before its first joint step (the
identity at initialisation, so its images are the originals and its check is the reference; when
they differ it is checked like any epoch). So when no epoch qualifies the cell keeps the
unsimplified state, and says so, rather than a set that fails its own criterion.

Cost: one retraining on 90 % of the training set per joint epoch (about a third of a joint epoch
under the quick preset).

``backtrack=FACTOR`` (needs ``select_within``; off in both presets) lets the check steer the training
as well: after an epoch whose check fails, the simplifier and classifier go back to the best
qualifying state and the simplifier's learning rate is multiplied by ``FACTOR`` (its moments cleared),
so a run that jumps past the sets that transfer (stripes: straight to a brightness code in one epoch)
retries from the last good one with smaller steps rather than drifting on. A deviation from the paper,
which trains on whatever the images become; with it the training is no longer the plain run's.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from ..data import ImageSet, stratified_split
from ..density import BpdTerm
from ..errors import BadInputError
from .config import SimplifyConfig
from .evaluate import retrain, retrain_seeds

__all__ = ["EpochSelector", "HOLDOUT", "holdout_split"]

HOLDOUT = 0.1  # fraction of each class's training images held out for the check


def _check_classes(labels: torch.Tensor, num_classes: int) -> None:
    """Every class must give at least one image to the held-out part and keep one to train on."""
    counts = torch.bincount(labels, minlength=num_classes)
    for c, n in enumerate(counts.tolist()):
        if n < 2:
            raise BadInputError(f"select-within holds out {HOLDOUT:.0%} of each class's training images, but class "
                                f"{c} has {n}; give every class at least 2 images or leave select-within off")


def holdout_split(train: ImageSet, seed: int) -> tuple[ImageSet, ImageSet]:
    """The check's (fit part, held-out part) of ``train``: the library's seeded per-class split,
    ``HOLDOUT`` of each class (at least one) held out. It depends on the labels and ``seed`` only, so
    the same seed splits a simplified set and its originals alike (``benchmarks/stripes_cells.py``)."""
    return stratified_split(train, test_fraction=HOLDOUT, seed=seed)


def _copy_state(module: torch.nn.Module | None) -> dict[str, torch.Tensor] | None:
    if module is None:
        return None
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class EpochSelector:
    """The checks of one cell and the best state so far (see the module docstring)."""

    def __init__(self, train: ImageSet, cfg: SimplifyConfig, density: BpdTerm, *,
                 device: str | torch.device = "cpu") -> None:
        if cfg.select_within is None:
            raise ValueError("EpochSelector needs cfg.select_within")
        self.cfg, self.density, self.device = cfg, density, device
        _check_classes(train.labels, train.num_classes)
        fit_part, held_part = holdout_split(train, cfg.seed)
        self.fit_part = fit_part.with_meta(name=f"{train.name}:select-fit")
        self.held_part = held_part.with_meta(name=f"{train.name}:select-held-out")
        self.reference: float | None = None
        self.reference_runs: list[float] = []
        self.checks: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None  # {"epoch", "bpd", "accuracy", "simplifier", "classifier"}

    # ------------------------------------------------------------------ the check
    def _transfer(self, fit_images: torch.Tensor) -> list[float]:
        """Held-out accuracy of each of the ``select_seeds`` fresh classifiers (the first: the cell's seed)."""
        part = ImageSet(fit_images, self.fit_part.labels, self.fit_part.classes, dict(self.fit_part.meta))
        return [float(retrain(part, self.held_part, cfg=self.cfg, seed=s, device=self.device)["accuracy"])
                for s in retrain_seeds(self.cfg.seed, self.cfg.select_seeds, "select")]

    def check(self, trainer: Any, epoch: int) -> dict[str, Any]:
        """Check ``trainer``'s simplifier as it is after ``epoch`` (the first check: the state before
        the first joint step, labelled by the last warm-up epoch, -1 without one); keep its state when
        it is the best qualifying one so far. Returns the check's record."""
        fit_sim = trainer.simplify_images(self.fit_part.images)
        held_sim = trainer.simplify_images(self.held_part.images)
        bpd = float(self.density.score(held_sim).mean())
        if self.reference is None:
            runs = self._transfer(self.fit_part.images)
            self.reference = statistics.fmean(runs)
            self.reference_runs = runs
        identity = torch.equal(fit_sim, self.fit_part.images) and torch.equal(held_sim, self.held_part.images)
        runs = self.reference_runs if identity else self._transfer(fit_sim)
        acc = statistics.fmean(runs)
        ok = math.isfinite(bpd) and acc >= self.reference - float(self.cfg.select_within) - 1e-9
        rec = {"epoch": epoch, "bpd": bpd, "accuracy": acc, "qualifies": bool(ok)}
        if len(runs) > 1:  # select_seeds > 1: each classifier's figure beside their mean
            rec["accuracy_runs"] = runs
        self.checks.append(rec)
        if ok and (self.best is None or bpd < self.best["bpd"]):
            self.best = {"epoch": epoch, "bpd": bpd, "accuracy": acc,
                         "simplifier": _copy_state(trainer.simplifier),
                         "classifier": _copy_state(trainer.classifier)}
        return rec

    def apply(self, trainer: Any) -> None:
        """Load the best state into ``trainer`` (nothing when no check was made)."""
        if self.best is None:
            return
        trainer.simplifier.load_state_dict(self.best["simplifier"])
        if trainer.classifier is not None and self.best["classifier"] is not None:
            trainer.classifier.load_state_dict(self.best["classifier"])

    def backtrack(self, trainer: Any, factor: float) -> dict[str, Any] | None:
        """After a failed check (``backtrack``): load the best qualifying state into ``trainer``, clear
        both optimisers' moments and multiply every simplifier learning rate by ``factor``. The next
        epoch starts from the last set that transferred, with smaller steps (its data order and draws
        are still the epoch's own, so the retry differs). Returns what the log records, or None when
        nothing has qualified yet (the reference check always has, unless it was not finite)."""
        if self.best is None:
            return None
        self.apply(trainer)
        trainer.opt_sim.state.clear()
        if trainer.opt_clf is not None:
            trainer.opt_clf.state.clear()
        for group in trainer.opt_sim.param_groups:
            group["lr"] *= factor
        return {"backtrack_to": self.best["epoch"], "lr_sim": float(trainer.opt_sim.param_groups[0]["lr"])}

    def summary(self) -> dict[str, Any]:
        """What the cell's ``result.json`` records under ``select``."""
        chosen = self.best["epoch"] if self.best is not None else None
        note = None
        if chosen is not None and len(self.checks) > 1 and chosen == self.checks[0]["epoch"]:
            note = "no joint epoch kept the held-out transfer within select-within: the unsimplified state is kept"
        more = {"classifiers": self.cfg.select_seeds, "reference_runs": list(self.reference_runs)} \
            if self.cfg.select_seeds > 1 else {}
        return {"within": self.cfg.select_within, "holdout": len(self.held_part), "reference": self.reference, **more,
                "epoch": chosen, "bpd": self.best["bpd"] if self.best else None,
                "accuracy": self.best["accuracy"] if self.best else None, "checks": list(self.checks),
                **({"note": note} if note else {})}

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        s: dict[str, Any] = {"reference": self.reference, "checks": list(self.checks)}
        if len(self.reference_runs) > 1:
            s["reference_runs"] = list(self.reference_runs)
        if self.best is not None:
            s["best"] = {k: v for k, v in self.best.items() if v is not None}
        return s

    def load(self, s: dict[str, Any]) -> None:
        self.reference = s.get("reference")
        self.reference_runs = list(s.get("reference_runs", [] if self.reference is None else [self.reference]))
        self.checks = list(s.get("checks", []))
        best = s.get("best")
        self.best = None if best is None else {"classifier": None, **best}
