"""Density-model files (safetensors + JSON config; nothing unpickled), the shipped defaults,
and fitting images to a model's input shape."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..data.imageset import pad_to
from ..errors import CorruptFileError, MismatchError, NotFoundError
from ..io import load_tensors, read_metadata, save_tensors
from .glow import Glow, GlowConfig

__all__ = ["FLOW_FORMAT", "SHIPPED", "save_flow", "load_flow", "list_flows", "default_flow", "fit_images", "card_path",
           "read_card", "card_note"]

FLOW_FORMAT = "simplebits.flow/1"
WEIGHTS_DIR = Path(__file__).with_name("weights")
SHIPPED = ("gray32", "rgb32")  # trained by benchmarks/train_default_flows.py


def card_path(path: str | os.PathLike) -> Path:
    """The model card beside a flow file: ``FILE.card.json`` (``FILE.safetensors`` -> ``FILE.card.json``)."""
    p = Path(path)
    return p.with_name(p.name.removesuffix(".safetensors") + ".card.json")


def read_card(path: str | os.PathLike) -> dict[str, Any] | None:
    """The model card of a flow file, or None when it has none (or it is unreadable)."""
    c = card_path(path)
    try:
        doc = json.loads(c.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def save_flow(path: str | os.PathLike, model: Glow, *, meta: dict[str, Any] | None = None) -> None:
    """Write a Glow's weights and config atomically."""
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    save_tensors(path, state, {"format": FLOW_FORMAT, "model": "glow", "config": model.config.to_dict(), **(meta or {})})


def _resolve(spec: str | os.PathLike) -> Path:
    s = str(spec)
    if s in SHIPPED:
        p = WEIGHTS_DIR / f"{s}.safetensors"
        if not p.is_file():
            raise NotFoundError(
                f"the shipped density model {s!r} is missing from this installation ({p}); reinstall simplebits "
                "or train one with `simplebits train-flow`"
            )
        return p
    p = Path(s)
    if not p.exists():
        raise NotFoundError(f"density model {s!r} not found: neither a shipped name ({', '.join(SHIPPED)}) nor a file")
    return p


def load_flow(spec: str | os.PathLike = "gray32", *, device: str | torch.device = "cpu") -> Glow:
    """Load a shipped model by name (``gray32``, ``rgb32``) or a file written by :func:`save_flow`."""
    p = _resolve(spec)
    tensors, meta = load_tensors(p)
    if meta.get("format") != FLOW_FORMAT:
        raise CorruptFileError(f"{p} is a simplebits file but not a density model (format={meta.get('format')!r})")
    try:
        model = Glow(GlowConfig(**meta["config"]))
        model.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, RuntimeError) as e:
        raise CorruptFileError(f"{p}: weights do not match the recorded config ({str(e).splitlines()[0]})") from None
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise CorruptFileError(f"{p}: weights contain NaN or infinite values")
    model.meta = {k: v for k, v in meta.items() if k != "config"}  # type: ignore[attr-defined]
    model.source = str(spec)  # type: ignore[attr-defined]
    model.card = read_card(p)  # type: ignore[attr-defined]  # None: trained before cards (still usable)
    # channels-last convolutions: about 2x faster scoring on CPU (same values to float rounding)
    return model.to(device).to(memory_format=torch.channels_last).eval()


def list_flows() -> list[dict[str, Any]]:
    """The shipped models with their recorded facts (training data, test bpd, time)."""
    out = []
    for name in SHIPPED:
        p = WEIGHTS_DIR / f"{name}.safetensors"
        info: dict[str, Any] = {"name": name, "path": str(p), "present": p.is_file()}
        if p.is_file():
            meta = read_metadata(p)
            info.update({k: meta.get(k) for k in ("config", "trained_on", "test_bpd", "train_seconds", "epochs")})
            info["card"] = read_card(p)
        out.append(info)
    return out


def card_note(model: Glow) -> str | None:
    """One line when a loaded model has no card (its training data and test bpd are unknown)."""
    if getattr(model, "card", None) is not None:
        return None
    src = getattr(model, "source", "this model")
    return (f"note: {src} has no model card ({card_path(_resolve(src)).name}): its training data and held-out bpd "
            "are not recorded; models from `simplebits train-flow` write one")


def default_flow(channels: int) -> str:
    """Shipped model for images of ``channels`` channels."""
    return "gray32" if channels == 1 else "rgb32"


def fit_images(images: torch.Tensor, model: Glow, *, gray_to_rgb: bool = False) -> torch.Tensor:
    """Bring (N, C, H, W) images to the model's input shape.

    Smaller square images are zero-padded to the model's size, centred (28x28 -> 32x32 adds a
    2-pixel black border; the same choice for every image compared, documented in
    docs/density.md). Gray images are repeated to RGB only with ``gray_to_rgb=True``. Any
    other mismatch is an error naming both shapes.
    """
    c, s = model.config.channels, model.config.image_size
    n, ic, h, w = images.shape
    if ic != c:
        if ic == 1 and c == 3 and gray_to_rgb:
            images = images.repeat(1, 3, 1, 1)
        else:
            hint = " (pass gray_to_rgb / --gray-to-rgb to repeat gray to RGB)" if ic == 1 and c == 3 else ""
            raise MismatchError(f"images have {ic} channel(s) but the density model takes {c}{hint}")
    if (h, w) != (s, s):
        if h <= s and w <= s:
            images = pad_to(images, (s, s))
        else:
            raise MismatchError(
                f"images are {h}x{w} but the density model takes {s}x{s}; resize them (e.g. `--resize {s}`) "
                "or train a model of that size with `simplebits train-flow`"
            )
    return images
