"""Settings of the continual-learning runs (paper S12), as a frozen dataclass with presets.

``paper``  the S12 pipeline: ConvNet-3 (width 128), SGD lr 0.1 (momentum 0.9, weight decay
           5e-4), cosine annealing; 3 cycles x 50 epochs (restarted at lr 0.1) on the first
           task, one 50-epoch cycle on every later task; batch 256.
``quick``  sized for a 2-core CPU: width 32, 2 cycles x 6 epochs on the first task, one
           6-epoch cycle per later task, batch 128 (a whole three-task run is ~1 minute).

Both presets share the replay and distillation settings: every step draws a batch of
``replay_batch`` images from the condensed sets of the earlier tasks (DSA-augmented, as
condensed sets are meant to be trained with), adds their cross-entropy to the new task's, and
with ``kd`` also ``kd_weight * T^2 * KL(p_prev^T || p_now^T)`` on the same replay images
(Hinton et al. 2015; T = ``kd_temperature``), with ``p_prev`` the model at the end of the
previous stage.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import BadInputError, UnknownNameError
from ..settings import setting

__all__ = ["ContinualConfig", "make_config", "PRESETS", "HEADS", "DEFAULT_TASKS", "DSA_STRATEGY"]

PRESETS = ("quick", "paper")
HEADS = ("auto", "shared", "per-task")
#: the default sequence on data installable here: printed (SVHN-like) -> handwritten -> low-res
DEFAULT_TASKS = ("printed-digits", "mnist-5k", "digits")
DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"  # flip dropped for digit data


@dataclass(frozen=True)
class ContinualConfig:
    """How each stage trains. Epoch counts are passes over the new task's training set."""

    preset: str = "quick"
    model: str = "convnet"
    model_options: dict[str, Any] = field(default_factory=lambda: {"width": 32})
    first_cycles: int = setting(2, "cosine cycles (restarts) on the first task", default_text="preset's")
    epochs: int = setting(6, "epochs per cosine cycle", default_text="preset's")
    lr: float = setting(0.1, "learning rate at each restart")
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = setting(128, "new-task images per step", default_text="preset's")
    replay_batch: int = setting(128, "replay images per step (all of them when fewer)", default_text="preset's")
    replay_dsa: str | None = DSA_STRATEGY  # augmentation of the replay images (None: none)
    kd_weight: float = setting(1.0, "weight of the distillation term")
    kd_temperature: float = setting(2.0, "distillation temperature T", metavar="T")
    head: str = setting("auto", "auto: one shared head when every task has the same class names, else one per task",
                        choices=HEADS)
    image_size: int | None = setting(None, "common image side", metavar="N", default_text="the largest task's")
    channels: int | None = setting(None, "common channel count", choices=(1, 3),
                                   default_text="3 when any task is colour, else 1")
    max_train: int | None = setting(None, "cap on each task's training images (class-balanced, seeded)",
                                    metavar="N")

    def validate(self) -> "ContinualConfig":
        if self.preset not in PRESETS:
            raise UnknownNameError("preset", self.preset, PRESETS)
        if self.head not in HEADS:
            raise UnknownNameError("head", self.head, HEADS)
        for name in ("first_cycles", "epochs", "batch_size", "replay_batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise BadInputError(f"continual setting {name} must be a positive integer; got {v!r}")
        for name in ("lr", "kd_temperature"):
            if not float(getattr(self, name)) > 0:
                raise BadInputError(f"continual setting {name} must be > 0; got {getattr(self, name)!r}")
        if self.kd_weight < 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise BadInputError("kd_weight and weight_decay must be >= 0 and momentum in [0, 1)")
        if self.channels not in (None, 1, 3):
            raise BadInputError(f"channels must be 1 or 3; got {self.channels!r}")
        if self.image_size is not None and self.image_size < 8:
            raise BadInputError(f"image_size must be >= 8; got {self.image_size}")
        if self.max_train is not None and self.max_train < 10:
            raise BadInputError(f"max_train must be >= 10; got {self.max_train}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def with_overrides(self, **kw: Any) -> "ContinualConfig":
        return replace(self, **kw).validate()


_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    "paper": dict(model_options={"width": 128}, first_cycles=3, epochs=50, batch_size=256, replay_batch=256),
}


def make_config(preset: str = "quick", **overrides: Any) -> ContinualConfig:
    """``make_config("quick", epochs=10)``: a preset plus overrides (``None`` values ignored)."""
    if preset not in PRESETS:
        raise UnknownNameError("preset", str(preset), PRESETS)
    valid = {f.name for f in fields(ContinualConfig)}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    bad = sorted(set(overrides) - valid)
    if bad:
        raise BadInputError(f"unknown continual setting(s) {bad}; valid: {sorted(valid)}")
    return ContinualConfig(preset=preset, **{**_PRESETS[preset], **overrides}).validate()
