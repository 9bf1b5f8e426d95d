"""Named evaluation protocols: how a fresh network is trained on a (condensed) set.

Each protocol is a frozen dataclass; :func:`get_protocol` looks one up by name and
:func:`list_protocols` feeds the CLI's choices and ``--help``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import BadInputError, UnknownNameError
from ..runtime import PRECISIONS

__all__ = ["Protocol", "get_protocol", "list_protocols", "register_protocol"]


@dataclass(frozen=True)
class Protocol:
    """Settings for training a fresh classifier and testing it.

    Learning-rate milestones are fractions of the total number of optimiser steps, so a
    protocol means the same for any training-set size.
    """

    name: str
    description: str
    epochs: int  # passes over the training set (before the max_steps cap)
    batch_size: int = 256  # images per step (a set smaller than this is one full batch)
    lr: float = 0.01  # SGD learning rate
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[float, ...] = (0.5,)  # fractions of total steps where lr *= gamma
    gamma: float = 0.1
    dsa: str | None = None  # DSA strategy (None: no augmentation)
    dc_aug: str | None = None  # DC's per-image augmentation (augment/dcaug.py; "crop_scale_rotate": DC on MNIST)
    cutmix_prob: float = 0.0  # probability of CutMix per batch (IDC: 0.5)
    cutmix_beta: float = 1.0  # CutMix lambda ~ Beta(beta, beta)
    max_steps: int | None = None  # cap on optimiser steps (CPU-sized protocols)
    model: str = "convnet"  # evaluation network (registry name)
    model_options: dict[str, Any] = field(default_factory=dict)
    labels: str = "hard"  # "hard" (one-hot) or a soft-label loss kl/sce/mse with a teacher (train/soft.py)
    temperature: float = 1.0  # softmax temperature of the kl/sce soft-label losses
    # arithmetic of the network's passes: fp32; bf16 (autocast: float32 weights, gradients and loss,
    # convolutions in bf16 with float32 accumulation); auto (bf16 where the hardware has it, else fp32)
    precision: str = "fp32"

    def __post_init__(self) -> None:
        from .soft import check_label_mode

        check_label_mode(self.labels, self.temperature)
        if self.precision not in PRECISIONS:
            raise BadInputError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.dc_aug is not None:
            from ..augment import DCAugment

            DCAugment(self.dc_aug)  # an unknown op: one clear error now, not at the first batch

    @property
    def soft(self) -> bool:
        """Whether a teacher labels the training batches (``labels`` is a soft-label loss)."""
        return self.labels != "hard"

    @property
    def augments(self) -> bool:
        """Whether training augments its batches (DSA or CutMix)."""
        return bool(self.dsa) or bool(self.dc_aug) or self.cutmix_prob > 0

    def label(self) -> str:
        """The protocol's name with its label mode and a precision other than fp32, e.g. ``quick``,
        ``quick+kl(T=4)`` or ``quick@auto``."""
        out = self.name
        if self.soft:
            out += f"+{self.labels}" + (f"(T={self.temperature:g})" if self.labels != "mse" else "")
        return out if self.precision == "fp32" else f"{out}@{self.precision}"

    def with_overrides(self, **kw: Any) -> "Protocol":
        bad = [k for k in kw if k not in self.__dataclass_fields__]
        if bad:
            raise BadInputError(f"unknown protocol setting(s) {bad}; valid: {sorted(self.__dataclass_fields__)}")
        return replace(self, **kw)

    def total_steps(self, n_train: int) -> int:
        per_epoch = max(1, -(-n_train // self.batch_size))
        steps = self.epochs * per_epoch
        return min(steps, self.max_steps) if self.max_steps else steps

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        if not self.soft:  # hard labels: the dictionary (and every key derived from it) as before soft labels
            del d["labels"], d["temperature"]
        if self.dc_aug is None:  # likewise for protocols without DC's MNIST augmentation
            del d["dc_aug"]
        if self.precision == "fp32":  # likewise: every earlier version trained in float32
            del d["precision"]
        return d


_PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(p: Protocol) -> Protocol:
    if p.name in _PROTOCOLS:
        raise ValueError(f"protocol {p.name!r} registered twice")
    _PROTOCOLS[p.name] = p
    return p


def get_protocol(name: str | Protocol) -> Protocol:
    if isinstance(name, Protocol):
        return name
    if name not in _PROTOCOLS:
        raise UnknownNameError("protocol", name, list(_PROTOCOLS))
    return _PROTOCOLS[name]


def list_protocols() -> list[Protocol]:
    return [_PROTOCOLS[k] for k in sorted(_PROTOCOLS)]


register_protocol(Protocol(
    name="dc",
    description="DC (Zhao et al. 2021): 300 epochs, batch 256, SGD 0.01 m0.9 wd5e-4, lr x0.1 at half, no augmentation",
    epochs=300,
))
register_protocol(Protocol(
    name="dc-mnist",
    description=("DC on MNIST, as the DC paper evaluates it: dc plus one per-image op of crop (+-4 px), "
                 "scale (x0.8-1.2) or rotate (+-45 deg); the method dc's protocol on mnist / mnist-5k"),
    epochs=300,
    dc_aug="crop_scale_rotate",
))
register_protocol(Protocol(
    name="dsa",
    description="DSA (Zhao & Bilen 2021): as dc but 1000 epochs with DSA color_crop_cutout_flip_scale_rotate",
    epochs=1000,
    dsa="color_crop_cutout_flip_scale_rotate",
))
register_protocol(Protocol(
    name="idc",
    description="IDC/YOCO: 1000 epochs, batch 64, lr x0.2 at 2/3 and 5/6, DSA color_crop_flip_scale_rotate + CutMix p0.5",
    epochs=1000,
    batch_size=64,
    milestones=(2 / 3, 5 / 6),
    gamma=0.2,
    dsa="color_crop_flip_scale_rotate",
    cutmix_prob=0.5,
))
register_protocol(Protocol(
    name="quick",
    description=(
        "CPU-sized dc: same optimiser and schedule, at most 300 steps of batch 256 "
        "(IPC<=25 on 10 classes: identical to dc; full data: ~1.3 epochs)"
    ),
    epochs=300,
    max_steps=300,
))
