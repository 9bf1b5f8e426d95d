"""Trained classifiers as files: safetensors weights + the JSON needed to rebuild the network.

``save_classifier(path, model, ...)`` writes one safetensors file whose metadata names the
registry model, its options, the input format and the class names. ``load_classifier(path)``
checks that metadata field by field (:func:`check_classifier_meta`: format, a registered model,
its known options with types and ranges, channels 1 or 3, image size 4..1024, 2..100000 class
names), compares the file's tensors with the network the metadata describes (names, shapes and
dtypes, on the ``meta`` device: nothing allocated) and refuses NaN or infinite weights, naming
the tensor; only then is the network built.

A TorchScript file (``torch.jit.save``) is a program: its code runs when it is loaded and
called, and can read and write files. It is refused unless the caller trusts it
(``trust_code=True``, ``--trust-code``); then it is loaded and probed in a separate process with a
time limit (:func:`simplebits.io.load_torchscript`), and its first forward on the data
(:func:`check_classifier_input`) is probed the same way. Any other file is refused with a
message saying which formats are read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import CorruptFileError, MismatchError, NotFoundError, SimplebitsError, reading
from ..io import (
    check_state_dict,
    is_zip_file,
    load_tensors,
    load_torchscript,
    probe_torchscript,
    read_metadata,
    save_tensors,
)
from ..models import create_model, list_models

__all__ = ["ClassifierInfo", "save_classifier", "load_classifier", "check_classifier_input", "check_classifier_meta",
           "FORMAT", "OPTION_SCHEMAS"]

FORMAT = "simplebits.classifier/1"
IMAGE_SIZE_RANGE = (4, 1024)
CLASSES_RANGE = (2, 100_000)
MAX_CLASS_NAME = 1000

# per registered model: option -> ("int", lo, hi) | ("float", lo, hi, lo_open, hi_open) | ("choice", values) | ("bool",)
OPTION_SCHEMAS: dict[str, dict[str, tuple]] = {
    "convnet": {"width": ("int", 1, 4096), "depth": ("int", 1, 32),
                "norm": ("choice", ("instance", "batch", "group", "layer", "none")),
                "act": ("choice", ("relu", "elu", "leakyrelu")), "pool": ("choice", ("avg", "max", "none"))},
    "nf-wrn-16-2": {"depth": ("int", 10, 160), "widen": ("int", 1, 32), "dropout": ("float", 0.0, 1.0, False, True),
                    "alpha": ("float", 0.0, 100.0, True, False)},
    "resnet10-ap": {"norm": ("choice", ("instance", "batch", "none")), "width": ("int", 1, 2048)},
    "unet-simplifier": {"ngf": ("int", 1, 1024), "downsamples": ("int", 0, 10), "max_mult": ("int", 1, 64),
                        "ws": ("bool",), "grad_floor": ("float", 0.0, 0.25, False, False)},
}
# a model registered by a user (no schema above): scalar options only, ints within this range
_OTHER_INT_RANGE = (-4096, 4096)


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


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_option(p: Path, model: str, key: str, value: Any, spec: tuple) -> None:
    kind = spec[0]
    bad = f"{p}: option {key!r} of model {model!r} is {str(value)[:60]!r}"
    if kind == "int":
        if not _is_int(value) or not spec[1] <= value <= spec[2]:
            raise CorruptFileError(f"{bad}, not an integer in {spec[1]}..{spec[2]}; re-create the file")
    elif kind == "float":
        lo, hi, lo_open, hi_open = spec[1:]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
        if not ok:
            rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            raise CorruptFileError(f"{bad}, not a number in {rng}; re-create the file")
    elif kind == "choice":
        if not isinstance(value, str) or value.lower() not in spec[1]:
            raise CorruptFileError(f"{bad}, not one of {', '.join(spec[1])}; re-create the file")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise CorruptFileError(f"{bad}, not true or false; re-create the file")


def check_classifier_meta(p: Path, meta: dict[str, Any]) -> None:
    """Check a classifier file's metadata field by field (types, ranges, known model and options)."""
    if meta.get("format") != FORMAT:
        raise CorruptFileError(f"{p} is a simplebits file but not a classifier (format={str(meta.get('format'))[:60]!r}); "
                               "make one with `simplebits train-classifier`")
    names = {m.name for m in list_models()}
    model = meta.get("model")
    if not isinstance(model, str) or model not in names:
        raise CorruptFileError(f"{p}: 'model' is {str(model)[:60]!r}, not a registered model ({', '.join(sorted(names))}); "
                               "re-create the file")
    channels = meta.get("channels")
    if not _is_int(channels) or channels not in (1, 3):
        raise CorruptFileError(f"{p}: 'channels' is {str(channels)[:30]!r}, not 1 or 3; re-create the file")
    size = meta.get("image_size")
    lo, hi = IMAGE_SIZE_RANGE
    if not _is_int(size) or not lo <= size <= hi:
        raise CorruptFileError(f"{p}: 'image_size' is {str(size)[:30]!r}, not an integer in {lo}..{hi}; re-create the file")
    classes = meta.get("classes")
    lo, hi = CLASSES_RANGE
    if not isinstance(classes, list) or not lo <= len(classes) <= hi:
        n = len(classes) if isinstance(classes, list) else type(classes).__name__
        raise CorruptFileError(f"{p}: 'classes' must be a list of {lo}..{hi} class names, got {n}; re-create the file")
    if not all(isinstance(c, str) and len(c) <= MAX_CLASS_NAME for c in classes):
        raise CorruptFileError(f"{p}: 'classes' holds something other than class names (strings); re-create the file")
    options = meta.get("options", {})
    if not isinstance(options, dict):
        raise CorruptFileError(f"{p}: 'options' is a {type(options).__name__}, not an object; re-create the file")
    schema = OPTION_SCHEMAS.get(model)
    for key, value in options.items():
        if schema is not None:
            if key not in schema:
                raise CorruptFileError(f"{p}: unknown option {key[:40]!r} for model {model!r} (known: "
                                       f"{', '.join(schema) or 'none'}); re-create the file")
            _check_option(p, model, key, value, schema[key])
        elif not (isinstance(value, (bool, str)) and len(str(value)) <= 100
                  or _is_int(value) and _OTHER_INT_RANGE[0] <= value <= _OTHER_INT_RANGE[1]
                  or isinstance(value, float) and math.isfinite(value)):
            raise CorruptFileError(f"{p}: option {key[:40]!r} of model {model!r} is {str(value)[:60]!r}, not a plain "
                                   "number, string or bool; re-create the file")


def _build(p: Path, meta: dict[str, Any]) -> nn.Module:
    try:
        return create_model(meta["model"], channels=meta["channels"], num_classes=len(meta["classes"]),
                            image_size=meta["image_size"], **meta.get("options", {}))
    except SimplebitsError as e:
        raise CorruptFileError(f"{p}: its metadata describes a network that cannot be built ({e}); re-create the file") from None


def load_classifier(path: str | os.PathLike, *, device: str | torch.device = "cpu", trust_code: bool = False,
                    timeout: float | None = None) -> tuple[nn.Module, ClassifierInfo]:
    """Read a classifier saved by :func:`save_classifier` (checked, see the module docstring), or
    a TorchScript file when ``trust_code`` (loaded after a probe in a separate process stopped
    after ``timeout`` seconds, default 60); eval mode."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"classifier file not found: {p} (make one with `simplebits train-classifier DATASET --out FILE`)")
    if is_zip_file(p):
        model = load_torchscript(p, trust_code=trust_code, device=device, timeout=timeout)
        with reading(p, "the TorchScript weights"):
            state = {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
        for k, t in state.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise CorruptFileError(f"{p}: tensor {k!r} holds NaN or infinite values; the weights are damaged")
        return model, ClassifierInfo("torchscript", meta={"path": str(p), "trust_code": True, "timeout": timeout})
    try:
        meta = read_metadata(p)
    except CorruptFileError:
        raise CorruptFileError(f"{p} is neither a simplebits classifier (safetensors) nor a TorchScript file") from None
    check_classifier_meta(p, meta)
    with reading(p, "the classifier"):
        with torch.device("meta"):  # shapes only: nothing allocated before the file is known to fit
            skeleton = _build(p, meta)
        expected = skeleton.state_dict()
        del skeleton
        tensors, _ = load_tensors(p)
        check_state_dict(p, tensors, expected, f"model {meta['model']!r}")
        model = _build(p, meta)
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            raise CorruptFileError(f"{p}: weights do not fit model {meta['model']!r} ({str(e).splitlines()[0]})") from None
    model.to(device).eval()
    info = ClassifierInfo("simplebits", meta["model"], dict(meta.get("options", {})), int(meta["channels"]),
                          int(meta["image_size"]), tuple(meta["classes"]), meta)
    return model, info


def check_classifier_input(model: nn.Module, info: ClassifierInfo, images: torch.Tensor, num_classes: int) -> None:
    """Clear error when the data's format or class count does not fit the classifier.

    A trusted TorchScript classifier runs its first forward on these images in a separate
    process first (stopped after the probe timeout: a TorchScript loop cannot be interrupted)."""
    c, h, w = images.shape[1:]
    if info.channels is not None and (info.channels != c or info.image_size not in (h, w) or h != w):
        raise MismatchError(f"the classifier takes {info.channels}x{info.image_size}x{info.image_size} images but the "
                            f"data is {c}x{h}x{w}; explain it on data in its format")
    if info.kind == "torchscript" and info.meta.get("path"):
        try:
            probe_torchscript(info.meta["path"], images[:2].detach().cpu(), timeout=info.meta.get("timeout"))
        except MismatchError as e:
            raise MismatchError(f"the classifier cannot take {c}x{h}x{w} images ({e})") from None
    device = next(iter(model.parameters()), torch.zeros(0)).device
    try:
        with torch.no_grad():
            out = model(images[:2].to(device))
    except RuntimeError as e:
        raise MismatchError(f"the classifier cannot take {c}x{h}x{w} images ({str(e).splitlines()[0]})") from None
    if not isinstance(out, torch.Tensor):
        raise MismatchError(f"the classifier returns a {type(out).__name__}, not a tensor of class scores")
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise MismatchError(f"the classifier outputs {tuple(out.shape[1:])} scores but the data has {num_classes} classes")
    if not bool(torch.isfinite(out).all()):
        raise MismatchError("the classifier outputs NaN or infinite scores on the data; its weights are damaged")
