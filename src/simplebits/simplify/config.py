"""SimpleBits-during-training settings: one frozen dataclass and two presets.

:func:`make_simplify_config` is the one way in:
``make_simplify_config(preset="quick", lambda_sim=0.8, epochs=4)``.

Presets
-------
``paper``  REFERENCE.md §2 / paper S3-S4: NF-WRN-16-2 classifier, UNet simplifier (ngf 64, 5
           downsamplings), batch 32, AdamW lr 5e-4 wd 1e-5 for both networks (simplifier betas
           (0.5, 0.99) as the reference), the unrolled step with AdamW. Meant for a GPU.
``quick``  sized for a 2-core CPU (about 2-3 minutes per run on 4000 images): ConvNet-3 width 32
           classifier (lr 1e-3), UNet ngf 16 with 3 downsamplings and weight-standardised convs,
           batch 32, AdamW unrolled step; the simplifier's residual scale ``w`` learns 20x faster
           (``gate_lr_mult``) because the run has ~100x fewer steps than the paper's. Both changes
           are measured in docs/simplify.md: without them short runs either do not move or blow up.
           The first epoch trains the classifier alone (``warmup_epochs`` 1, capped at epochs - 1)
           and the classification terms count only where the simplified batch does worse than the
           original one (``relative``): without these lambda = 0 is not the identity (docs/simplify.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import BadInputError, UnknownNameError
from ..settings import setting

__all__ = ["SimplifyConfig", "make_simplify_config", "config_from_dict", "PRESETS", "MODES", "INNER"]

PRESETS = ("quick", "paper")
MODES = ("simplebits", "mse")  # mse: the S8 baseline, MSE-to-input + lambda * bpd, no classifier
INNER = ("sgd", "adamw")


@dataclass(frozen=True)
class SimplifyConfig:
    """Everything that decides one joint-training run (hashed into checkpoints for ``--resume``).

    Loss (paper Eq. 4/5 with S3/S4)
        ``lambda_sim`` weight of bpd; the simplifier minimises
        ``(orig_weight * l(f'(X)) + l(f(X_sim)) + l(f'(X_sim)) + lam * mean(gate * bpd)) / (orig_weight + 2 + lam)``
        with ``gate = clamp(bpd_gate - l(f'(x)), 0, 1) / bpd_gate`` per example (detached).
        ``relative`` (quick preset; off in ``paper``) makes each classification term relative to
        what the original batch would give: ``max(0, l_i(f'(X)) - l_i(f'_X(X)))``,
        ``max(0, l_i(f(X_sim)) - l_i(f(X)))`` and ``max(0, l_i(f'(X_sim)) - l_i(f'_X(X)))`` per
        example, where ``f'_X`` is the classifier after the same unrolled step taken on ``X``. The
        paper's terms reward simplified images that teach or classify *better* than the originals,
        so with nothing else pulling (lambda 0) the simplifier drifts towards dataset-distillation-like
        textures (+14% bpd on Fashion-MNIST, +27% on mnist-5k, -6.1 / -1.9 points retrained); as
        constraints ("no worse than the originals") they keep lambda 0 the identity and leave the
        bpd term to decide what goes. One extra forward/backward per step (docs/simplify.md).
        ``mode="mse"`` replaces the classifier terms by the mean squared error to the input
        (S8 baseline): ``mse + lam * mean bpd``.
    Ablation switches (both on in every preset; docs/simplify.md, "Ablation")
        ``gated`` False: every example's bpd counts with weight 1 (no gate). ``unrolled`` False:
        no unrolled step; the loss is ``(l(f(X_sim)) + lam * mean(gate * bpd)) / (1 + lam)`` on the
        classifier as it is (relative: ``max(0, l_i(f(X_sim)) - l_i(f(X)))``), the gate from
        ``l(f(x))``: a simplifier trained on a plain classification loss.
    Unrolled step
        ``inner`` sgd | adamw: the differentiable classifier update ``f -> f'``; ``inner_lr``
        its learning rate (None: ``lr_clf``). With adamw the update uses the classifier
        optimiser's current moments, as `higher` does in the reference.
    Networks
        ``classifier``/``classifier_options`` (registry), ``simplifier_options`` (UNet ngf,
        downsamples, max_mult), ``density`` (None: the shipped model for the channel count).
    Optimisers
        AdamW for both: ``lr_clf``, ``wd_clf``; ``lr_sim``, ``wd_sim``, ``betas_sim``.
        ``gate_lr_mult`` multiplies the learning rate of the simplifier's residual scale ``w``
        (1 = the paper). Adam moves every parameter by about its learning rate per step whatever
        the gradient's size, so while ``w`` is tiny the UNet's weights drift at full speed and its
        output scale grows unchecked; the quick preset (about 100x fewer steps than the paper)
        lets ``w`` grow faster instead of raising the UNet's rate.
    Warm-up
        ``warmup_epochs`` of the ``epochs`` train the classifier alone, on the simplifier's
        (identity) output, before the simplifier starts to learn (0 = the paper). A deviation for
        short runs, measured in docs/simplify.md: the classification terms' gradient w.r.t. the
        simplified images comes from the classifier, and an untrained classifier's gradient is
        noise. In the paper's 100 epochs the first steps are 1% of the run and are washed out;
        in the quick preset's 4 epochs they are a quarter of it and leave a lasting texture (at
        lambda 0 on Fashion-MNIST, seeds 0 and 1: +14.1% bpd and -6.1 points retrained accuracy
        without it, +7.6% and -1.1 with it; the rest of the drift is what ``relative`` removes).
    Data
        ``epochs`` passes over the training set in batches of ``batch_size``; ``augment`` a DSA
        strategy (None: none) applied with the same parameters to X and X_sim.
    Robustness
        ``clip_sim`` clips the simplifier's gradient norm (None: off, as the paper and both
        presets). A run with a much higher simplifier learning rate than the presets' may want it:
        unclipped, one large step can saturate the output sigmoid for every pixel (a constant
        image, from which no gradient leads back). ``max_skips`` consecutive non-finite steps before the run stops with an error (the paper
        skips such steps; a simplifier that keeps producing NaN will not recover).
    Evaluation
        ``retrain_epochs`` for the fresh classifier (b), ``finetune_epochs`` for (c); both use
        the same optimiser as the joint classifier (AdamW, ``lr_clf``, batch ``batch_size``).
        ``retrain_seeds`` fresh classifiers for (b) (their mean is the cell's accuracy; all are
        kept, so a single joint run still gets a ± over retraining seeds).
    """

    mode: str = "simplebits"
    lambda_sim: float = 1.0
    epochs: int = setting(4, "joint-training epochs")
    batch_size: int = setting(32, "images per step")
    classifier: str = setting("convnet", "the classifier trained jointly (registry name, e.g. convnet, nf-wrn-16-2)",
                              flag="--net", metavar="NAME")
    classifier_options: dict[str, Any] = field(default_factory=lambda: {"width": 32})
    simplifier_options: dict[str, Any] = field(default_factory=lambda: {"ngf": 16, "downsamples": 3, "ws": True})
    density: str | None = setting(None, "density model for bpd: gray32, rgb32 or a flow file", metavar="MODEL",
                                  default_text="by channel count")
    lr_clf: float = setting(1e-3, "classifier AdamW learning rate")
    wd_clf: float = 1e-5
    lr_sim: float = setting(2e-3, "simplifier AdamW learning rate")
    wd_sim: float = 1e-5
    betas_sim: tuple[float, float] = setting((0.5, 0.99), "Adam betas of the simplifier (the reference's 0.5, 0.99)",
                                             metavar="B1,B2")
    inner: str = setting("adamw", "the unrolled classifier update", choices=INNER, default_text="adamw")
    inner_lr: float | None = setting(None, "learning rate of the unrolled update", default_text="--lr-clf")
    orig_weight: float = 10.0
    relative: bool = setting(False, "classification terms count only where a simplified image does worse than its "
                                    "original (quick: on, keeps lambda 0 the identity; paper: off, the paper's terms)")
    bpd_gate: float = 0.1
    gated: bool = setting(True, "bpd counts only for examples the stepped classifier already gets right (the paper's "
                                "gate, threshold bpd_gate); off: every example's bpd counts fully (an ablation)",
                            default_text="on")
    unrolled: bool = setting(True, "classification terms through one unrolled classifier step (the paper); "
                                   "off: on the classifier as it is, no step (an ablation)",
                              default_text="on")
    reinit_every: int = setting(0, "every N-th joint epoch after the first starts from a new classifier that first "
                                   "learns one pass from the simplified images alone, so the simplifier must teach "
                                   "classifiers that never saw the originals (0: never, the paper)",
                                metavar="N", default_text="0")
    select_within: float | None = setting(None, "keep the joint epoch whose simplified images have the lowest bpd "
                                                "among those whose transfer (a classifier retrained on them, tested on "
                                                "held-out originals) is within F of the originals' (0.05 = 5 points); "
                                                "checked after every joint epoch on 10% of the training images "
                                                "(off: the last epoch, the paper)", metavar="F", default_text="off")
    select_seeds: int = setting(1, "with select-within: fresh classifiers per check; the check's transfer is their "
                                   "mean (one classifier's draw can pass a set whose transfer is fragile)",
                                metavar="K", default_text="1")
    backtrack: float | None = setting(None, "with select-within: after a joint epoch that fails its check, return the "
                                            "simplifier (and classifier) to the best epoch that passed and multiply "
                                            "the simplifier's learning rate by FACTOR, so the run retries with "
                                            "smaller steps instead of drifting further (off: train on, the paper)",
                                      metavar="FACTOR", default_text="off")
    escape_loss: bool = setting(False, "the bpd loss takes the reported figures' raw 8-bit escape where the flow "
                                       "alone says more than 8 bpd: a simplified image in a blind spot of the flow "
                                       "counts about 8 bpd with no bpd gradient, instead of a loss that can reach "
                                       "1e9 and stall the simplifier (below 8 bpd: the flow's bpd, bit for bit; "
                                       "off: the flow alone, the paper)", default_text="off")
    augment: str | None = setting(None, "DSA strategy applied identically to X and X_sim (e.g. crop_flip)",
                                  metavar="DSA", default_text="none")
    max_skips: int = setting(20, "non-finite steps in a row before the run stops", default_text="20")
    clip_sim: float | None = setting(None, "clip the simplifier's gradient norm at this value (unset: off, the paper)",
                                     metavar="NORM")
    gate_lr_mult: float = setting(1.0, "learning-rate multiplier of the simplifier's residual scale w (1: the "
                                       "paper; quick: 20, for its ~100x fewer steps)", metavar="M")
    warmup_epochs: int = setting(0, "first epochs that train the classifier alone before the simplifier learns "
                                    "(quick: 1, paper: 0)")
    retrain_epochs: int = setting(4, "epochs of the fresh classifier (evaluation b)")
    finetune_epochs: int = setting(1, "epochs of finetuning (evaluation c)")
    retrain_seeds: int = setting(1, "fresh classifiers per run for evaluation (b)", default_text="1")
    seed: int = 0
    preset: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas_sim"] = list(self.betas_sim)
        for key in ("gated", "unrolled"):  # ablation switches (0.3): left out at the paper's value, so the
            if d[key] is True:             # metadata, digests and pipeline stage keys of earlier runs hold
                del d[key]
        if d["reinit_every"] == 0:  # likewise (0.3)
            del d["reinit_every"]
        if d["select_within"] is None:  # likewise (0.4)
            del d["select_within"]
        if d["backtrack"] is None:  # likewise
            del d["backtrack"]
        if d["select_seeds"] == 1:  # likewise
            del d["select_seeds"]
        if d["escape_loss"] is False:  # likewise
            del d["escape_loss"]
        return d

    def digest(self, *, ignore: tuple[str, ...] = ("epochs", "retrain_epochs", "finetune_epochs",
                                                   "retrain_seeds")) -> str:
        """Hash of the settings that change the joint training (``epochs`` left out so that a
        finished run can be resumed with more epochs)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ignore}
        # settings added in 0.2: runs that leave them at the paper's value (or have no classifier) keep
        # their earlier digest
        if d.get("warmup_epochs") == 0 or d.get("mode") == "mse":
            del d["warmup_epochs"]
        if d.get("relative") is False or d.get("mode") == "mse":
            del d["relative"]
        if d.get("mode") == "mse":  # no classifier: the ablation switches do not apply
            d.pop("gated", None)
            d.pop("unrolled", None)
            d.pop("reinit_every", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def inner_rate(self) -> float:
        return self.lr_clf if self.inner_lr is None else self.inner_lr

    def validate(self) -> "SimplifyConfig":
        if self.mode not in MODES:
            raise UnknownNameError("mode", str(self.mode), MODES)
        if self.inner not in INNER:
            raise UnknownNameError("inner", str(self.inner), INNER)
        lam = self.lambda_sim
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam != lam or lam < 0 or lam == float("inf"):
            raise BadInputError(f"lambda-sim must be a finite number >= 0; got {lam!r}")
        for name in ("epochs", "batch_size", "max_skips", "retrain_seeds", "select_seeds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise BadInputError(f"{name.replace('_', '-')} must be an integer >= 1; got {v!r}")
        for name in ("retrain_epochs", "finetune_epochs", "warmup_epochs", "reinit_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BadInputError(f"{name.replace('_', '-')} must be an integer >= 0; got {v!r}")
        for name in ("lr_clf", "lr_sim", "orig_weight", "bpd_gate"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < float("inf")):
                raise BadInputError(f"{name.replace('_', '-')} must be a positive number; got {v!r}")
        if self.clip_sim is not None and not (0 < self.clip_sim < float("inf")):
            raise BadInputError(f"clip-sim must be a positive number; got {self.clip_sim!r}")
        b = self.betas_sim
        if (not isinstance(b, (tuple, list)) or len(b) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1 for v in b)):
            raise BadInputError(f"betas-sim must be two numbers in [0, 1) (e.g. 0.5,0.99); got {b!r}")
        if isinstance(self.gate_lr_mult, bool) or not (0 < self.gate_lr_mult < float("inf")):
            raise BadInputError(f"gate-lr-mult must be a positive number; got {self.gate_lr_mult!r}")
        sw = self.select_within
        if sw is not None and (isinstance(sw, bool) or not isinstance(sw, (int, float)) or not (0 <= sw < 1)):
            raise BadInputError(f"select-within must be a fraction in [0, 1) (0.05 = 5 points of accuracy); got {sw!r}")
        if sw is not None and self.retrain_epochs < 1:
            raise BadInputError("select-within checks each epoch with a retrained classifier: "
                                f"retrain-epochs must be >= 1; got {self.retrain_epochs}")
        if self.select_seeds > 1 and sw is None:
            raise BadInputError("select-seeds sets the classifiers of each select-within check: "
                                "set select-within as well (--select-within F)")
        bt = self.backtrack
        if bt is not None and (isinstance(bt, bool) or not isinstance(bt, (int, float)) or not (0 < bt < 1)):
            raise BadInputError(f"backtrack must be a factor in (0, 1) (0.5 halves the simplifier's learning rate at "
                                f"each failed check); got {bt!r}")
        if bt is not None and sw is None:
            raise BadInputError("backtrack returns to the best epoch that passed the select-within check: "
                                "set select-within as well (--select-within F)")
        if self.inner_lr is not None and not (0 < self.inner_lr < float("inf")):
            raise BadInputError(f"inner-lr must be a positive number; got {self.inner_lr!r}")
        for name in ("relative", "gated", "unrolled", "escape_loss"):
            if not isinstance(getattr(self, name), bool):
                raise BadInputError(f"{name} must be true or false; got {getattr(self, name)!r}")
        if self.warmup_epochs >= self.epochs and self.mode == "simplebits":
            raise BadInputError(f"warmup-epochs ({self.warmup_epochs}) must be fewer than epochs ({self.epochs}): "
                                "the simplifier learns only after the warm-up")
        return self


_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(epochs=100, batch_size=32, classifier="nf-wrn-16-2", classifier_options={},
                  simplifier_options={"ngf": 64, "downsamples": 5}, lr_clf=5e-4, wd_clf=1e-5, lr_sim=5e-4,
                  wd_sim=1e-5, inner="adamw", retrain_epochs=100, finetune_epochs=10, augment=None),
    "quick": dict(epochs=4, batch_size=32, classifier="convnet", classifier_options={"width": 32},
                  simplifier_options={"ngf": 16, "downsamples": 3, "ws": True}, lr_clf=1e-3, lr_sim=5e-4,
                  gate_lr_mult=20.0, warmup_epochs=1, relative=True, inner="adamw", retrain_epochs=4, finetune_epochs=1),
}


def make_simplify_config(*, preset: str = "quick", **overrides: Any) -> SimplifyConfig:
    """Preset + overrides -> a validated :class:`SimplifyConfig` (``None`` overrides are ignored)."""
    if preset not in PRESETS:
        raise UnknownNameError("preset", str(preset), PRESETS)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    valid = {f.name for f in fields(SimplifyConfig)}
    bad = sorted(set(overrides) - valid)
    if bad:
        raise BadInputError(f"unknown simplify setting(s) {bad}; valid: {sorted(valid)}")
    base = dict(_PRESETS[preset])
    base.update(overrides)
    epochs = base.get("epochs", 4)
    if ("warmup_epochs" not in overrides and isinstance(epochs, int) and not isinstance(epochs, bool)
            and base.get("warmup_epochs", 0) >= epochs):
        # the preset's warm-up leaves the simplifier at least one epoch of a short run
        base["warmup_epochs"] = max(0, epochs - 1)
    if "betas_sim" in base:
        base["betas_sim"] = tuple(base["betas_sim"])
    return SimplifyConfig(preset=preset, **base).validate()


def config_from_dict(d: dict[str, Any]) -> SimplifyConfig:
    """Inverse of :meth:`SimplifyConfig.to_dict`."""
    d = {k: v for k, v in d.items() if k in {f.name for f in fields(SimplifyConfig)}}
    if "betas_sim" in d:
        d["betas_sim"] = tuple(d["betas_sim"])
    return replace(SimplifyConfig(), **d).validate()
