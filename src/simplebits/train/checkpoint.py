"""Trained classifiers as files: safetensors weights + the JSON needed to rebuild the network.

``save_classifier(path, model, ...)`` writes one safetensors file whose metadata names the
registry model, its options, the input format and the class names. ``load_classifier(path)``
rebuilds it. A TorchScript file (``torch.jit.save``) is accepted as well: TorchScript is a
restricted, typed program format, read by :func:`simplebits.io.load_torchscript` (no Python pickle
of arbitrary objects); its input format is unknown until it is run, so callers check it on a
probe batch.
Any other file is refused with a message saying which formats are read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import CorruptFileError, MismatchError, NotFoundError
from ..io import is_zip_file, load_tensors, load_torchscript, read_metadata, save_tensors
from ..models import create_model

__all__ = ["ClassifierInfo", "save_classifier", "load_classifier", "check_classifier_input", "FORMAT"]

FORMAT = "simplebits.classifier/1"


@dataclass
class ClassifierInfo:
    """What is known about a loaded classifier (``None`` where a TorchScript file does not say)."""

    kind: str  # "simplebits" | "torchscript"
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    channels: int | None = None
    image_size: int | None = None
    classes: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def save_classifier(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    name: str,
    channels: int,
    image_size: int,
    classes: Sequence[str],
    options: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model``'s weights and how to rebuild it (atomic)."""
    meta = {"format": FORMAT, "model": name, "options": dict(options or {}), "channels": int(channels),
            "image_size": int(image_size), "classes": list(classes), **(extra or {})}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_tensors(path, state, meta)


def load_classifier(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> tuple[nn.Module, ClassifierInfo]:
    """Read a classifier saved by :func:`save_classifier` or a TorchScript file; eval mode."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"classifier file not found: {p} (make one with `simplebits train-classifier DATASET --out FILE`)")
    if is_zip_file(p):
        return load_torchscript(p, device=device), ClassifierInfo("torchscript")
    try:
        meta = read_metadata(p)
    except CorruptFileError:
        raise CorruptFileError(f"{p} is neither a simplebits classifier (safetensors) nor a TorchScript file") from None
    if meta.get("format") != FORMAT:
        raise CorruptFileError(f"{p} is a simplebits file but not a classifier (format={meta.get('format')!r}); "
                               "make one with `simplebits train-classifier`")
    tensors, _ = load_tensors(p)
    model = create_model(meta["model"], channels=int(meta["channels"]), num_classes=len(meta["classes"]),
                         image_size=int(meta["image_size"]), **meta.get("options", {}))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CorruptFileError(f"{p}: weights do not fit model {meta['model']!r} ({str(e).splitlines()[0]})") from None
    model.to(device).eval()
    info = ClassifierInfo("simplebits", meta["model"], dict(meta.get("options", {})), int(meta["channels"]),
                          int(meta["image_size"]), tuple(meta["classes"]), meta)
    return model, info


def check_classifier_input(model: nn.Module, info: ClassifierInfo, images: torch.Tensor, num_classes: int) -> None:
    """Clear error when the data's format or class count does not fit the classifier."""
    c, h, w = images.shape[1:]
    if info.channels is not None and (info.channels != c or info.image_size not in (h, w) or h != w):
        raise MismatchError(f"the classifier takes {info.channels}x{info.image_size}x{info.image_size} images but the "
                            f"data is {c}x{h}x{w}; explain it on data in its format")
    device = next(iter(model.parameters()), torch.zeros(0)).device
    try:
        with torch.no_grad():
            out = model(images[:2].to(device))
    except RuntimeError as e:
        raise MismatchError(f"the classifier cannot take {c}x{h}x{w} images ({str(e).splitlines()[0]})") from None
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise MismatchError(f"the classifier outputs {tuple(out.shape[1:])} scores but the data has {num_classes} classes")
