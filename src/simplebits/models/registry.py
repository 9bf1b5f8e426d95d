"""Model registry: ``create_model("convnet", channels=1, num_classes=10, image_size=28)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import BadInputError, UnknownNameError

__all__ = ["ModelInfo", "register_model", "list_models", "create_model"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    factory: Callable[..., nn.Module]
    kind: str = "classifier"  # "classifier" | "simplifier"


_MODELS: dict[str, ModelInfo] = {}


def register_model(name: str, *, description: str, kind: str = "classifier") -> Callable:
    """Decorator: register ``factory(*, channels, num_classes, image_size, **options) -> nn.Module``.

    Simplifiers take ``channels`` and ``image_size`` and ignore ``num_classes``.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = ModelInfo(name, description, fn, kind)
        return fn

    return deco


def _ensure_loaded() -> None:
    from . import convnet, nf_wrn, resnet_ap, unet  # noqa: F401  (register on import)


def list_models(kind: str | None = None) -> list[ModelInfo]:
    _ensure_loaded()
    return [m for k, m in sorted(_MODELS.items()) if kind is None or m.kind == kind]


def create_model(
    name: str,
    *,
    channels: int,
    num_classes: int = 10,
    image_size: int | tuple[int, int] = 32,
    seed: int | None = None,
    **options: Any,
) -> nn.Module:
    """Build a registered model. ``seed`` makes the initial weights reproducible without
    touching the caller's global RNG state (the draw happens inside ``torch.random.fork_rng``)."""
    _ensure_loaded()
    if name not in _MODELS:
        raise UnknownNameError("model", name, list(_MODELS))
    if channels not in (1, 3):
        raise BadInputError(f"channels must be 1 or 3, got {channels}")
    info = _MODELS[name]
    try:
        if seed is None:
            return info.factory(channels=channels, num_classes=num_classes, image_size=image_size, **options)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return info.factory(channels=channels, num_classes=num_classes, image_size=image_size, **options)
    except TypeError as e:
        raise BadInputError(f"model {name!r}: bad option ({e})") from None
