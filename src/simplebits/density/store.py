"""Density-model files (safetensors + JSON config; nothing unpickled), the shipped defaults,
and fitting images to a model's input shape."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..data.imageset import pad_to
from ..errors import CorruptFileError, MismatchError, NotFoundError
from ..io import check_state_dict, load_tensors, read_metadata, save_tensors
from .glow import Glow, GlowConfig

__all__ = ["FLOW_FORMAT", "SHIPPED", "save_flow", "load_flow", "list_flows", "default_flow", "fit_images", "card_path",
           "read_card", "card_note", "flow_digest", "flow_identity"]

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
        if c.stat().st_size > 10_000_000:  # a card is a few KB; a giant one is not read
            return None
        doc = json.loads(c.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, MemoryError):  # unreadable: no card (card_note says so)
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


# bounds on a flow file's config: a model within them builds in well under a second
FLOW_BOUNDS = {"channels": (1, 3), "image_size": (8, 256), "levels": (1, 6), "steps": (1, 32), "width": (1, 512)}


_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def flow_digest(spec: str | os.PathLike) -> str:
    """SHA-256 (first 16 hex digits) of a density model's weights file, shipped name or path.

    What a cached bpd figure was computed under: the name alone does not say, since a shipped
    model changes between releases and ``train-flow`` can write a file again under the same
    path. Remembered per (path, inode, size, mtime) within a process (files are written by rename,
    so a file written again is a new inode); a 2.5 MB file hashes in ~5 ms."""
    p = _resolve(spec)
    st = p.stat()
    key = (str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()[:16]
    return _DIGESTS[key]


def flow_identity(spec: str | os.PathLike | None, channels: int) -> dict[str, str]:
    """``{"model": name or path, "weights": digest}`` of the model that scores images of ``channels``
    channels (``spec`` None or "": the shipped default for them): the part of a cache key that
    makes figures recompute when the weights behind a name change."""
    name = str(spec) if spec else default_flow(channels)
    return {"model": name, "weights": flow_digest(name)}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_flow_config(p: Path, config: Any) -> GlowConfig:
    """A flow file's ``config``: exactly GlowConfig's fields, integers within :data:`FLOW_BOUNDS`,
    ``image_size`` a power of two divisible by ``2**levels``."""
    fields = list(GlowConfig.__dataclass_fields__)
    if not isinstance(config, dict):
        raise CorruptFileError(f"{p}: 'config' is a {type(config).__name__}, not an object; re-create the file")
    if sorted(config) != sorted(fields):
        raise CorruptFileError(f"{p}: 'config' has fields {', '.join(sorted(map(str, config)))[:120]}, expected exactly "
                               f"{', '.join(fields)}; re-create the file")
    for k in fields:
        v = config[k]
        if k == "channels":
            ok = _is_int(v) and v in FLOW_BOUNDS["channels"]
            rng = "1 or 3"
        else:
            lo, hi = FLOW_BOUNDS[k]
            ok = _is_int(v) and lo <= v <= hi
            rng = f"an integer in {lo}..{hi}"
        if not ok:
            raise CorruptFileError(f"{p}: config {k!r} is {str(v)[:40]!r}, not {rng}; re-create the file")
    s, lv = config["image_size"], config["levels"]
    if s & (s - 1):
        raise CorruptFileError(f"{p}: config 'image_size' is {s}, not a power of two; re-create the file")
    if s % (2**lv):
        raise CorruptFileError(f"{p}: config 'image_size' {s} is not divisible by 2**levels = {2**lv}; re-create the file")
    return GlowConfig(**config)


def _flow_tensor_count(cfg: GlowConfig) -> int:
    """Entries of a Glow state dict: 16 per flow step (actnorm 3, invconv 7, coupling 6),
    2 per split prior, 1 top prior."""
    return 16 * cfg.levels * cfg.steps + 2 * (cfg.levels - 1) + 1


def flow_shapes(cfg: GlowConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the state dict of ``Glow(cfg)``, computed without
    building it (tested against a build on the ``meta`` device)."""
    out: dict[str, tuple[int, ...]] = {}
    c, w = cfg.channels, cfg.width
    for lvl in range(cfg.levels):
        c *= 4
        ca = c // 2
        cb = c - ca
        for k in range(cfg.steps):
            s = f"levels.{lvl}.{k}."
            out.update({s + "actnorm.loc": (1, c, 1, 1), s + "actnorm.logs": (1, c, 1, 1), s + "actnorm.initialized": ()})
            for name in ("p", "l_mask", "eye", "lower", "upper"):
                out[s + "invconv." + name] = (c, c)
            out[s + "invconv.sign_s"] = (c,)
            out[s + "invconv.log_s"] = (c,)
            out.update({s + "coupling.net.0.weight": (w, ca, 3, 3), s + "coupling.net.0.bias": (w,),
                        s + "coupling.net.2.weight": (w, w, 1, 1), s + "coupling.net.2.bias": (w,),
                        s + "coupling.net.4.weight": (2 * cb, w, 3, 3), s + "coupling.net.4.bias": (2 * cb,)})
        if lvl < cfg.levels - 1:
            keep, z = c - c // 2, c // 2
            out[f"split_priors.{lvl}.weight"] = (2 * z, keep, 3, 3)
            out[f"split_priors.{lvl}.bias"] = (2 * z,)
            c = keep
    out["top_prior"] = (1, 2 * c, 1, 1)
    return out


def _check_flow_buffers(p: Path, tensors: dict[str, torch.Tensor]) -> None:
    """The fixed buffers of each invertible 1x1 conv and actnorm must be what Glow makes
    (a permutation, signs +-1, the masks), else the flow is not invertible as recorded."""
    for k, t in tensors.items():
        name = k.rsplit(".", 1)[-1]
        if ".invconv." in k:
            if name == "p":
                ok = bool(((t == 0) | (t == 1)).all()) and bool((t.sum(0) == 1).all()) and bool((t.sum(1) == 1).all())
            elif name == "sign_s":
                ok = bool(((t == 1) | (t == -1)).all())
            elif name == "l_mask":
                ok = torch.equal(t, torch.tril(torch.ones_like(t), -1))
            elif name == "eye":
                ok = torch.equal(t, torch.eye(t.shape[0], dtype=t.dtype))
            else:
                continue
        elif ".actnorm." in k and name == "initialized":
            ok = bool(((t == 0) | (t == 1)).all())
        else:
            continue
        if not ok:
            raise CorruptFileError(f"{p}: tensor {k!r} is not what a Glow holds there (a fixed {name} buffer); "
                                   "the file is damaged: re-create it")


def load_flow(spec: str | os.PathLike = "gray32", *, device: str | torch.device = "cpu") -> Glow:
    """Load a shipped model by name (``gray32``, ``rgb32``) or a file written by :func:`save_flow`.

    Checked before anything is built: the format, the config (:func:`check_flow_config`), the
    tensors (names, shapes against the config, on the ``meta`` device; float; every value
    finite; the fixed permutation and mask buffers). A missing or unreadable card is a note."""
    from ..errors import reading

    p = _resolve(spec)
    tensors, meta = load_tensors(p)
    if meta.get("format") != FLOW_FORMAT:
        raise CorruptFileError(f"{p} is a simplebits file but not a density model (format={str(meta.get('format'))[:60]!r})")
    if meta.get("model", "glow") != "glow":
        raise CorruptFileError(f"{p}: 'model' is {str(meta.get('model'))[:40]!r}; simplebits reads Glow flows only")
    cfg = check_flow_config(p, meta.get("config"))
    if len(tensors) != _flow_tensor_count(cfg):
        raise CorruptFileError(f"{p}: holds {len(tensors)} tensors but its config (levels {cfg.levels}, steps "
                               f"{cfg.steps}) needs {_flow_tensor_count(cfg)}; re-create the file")
    for k, t in tensors.items():
        if not t.is_floating_point():
            raise CorruptFileError(f"{p}: tensor {k!r} is {t.dtype}, not floating point; re-create the file")
    with reading(p, "the density model"):
        # shapes only: nothing allocated before the file is known to fit
        expected = {k: torch.empty(shape, device="meta") for k, shape in flow_shapes(cfg).items()}
        check_state_dict(p, tensors, expected, "the recorded config", dtypes=False)  # save_flow writes all float32
        _check_flow_buffers(p, tensors)
        model = Glow(cfg)
        try:
            model.load_state_dict(tensors, strict=True)
        except (KeyError, TypeError, RuntimeError) as e:
            raise CorruptFileError(f"{p}: weights do not match the recorded config ({str(e).splitlines()[0]})") from None
    model.meta = {k: v for k, v in meta.items() if k != "config"}  # type: ignore[attr-defined]
    model.source = str(spec)  # type: ignore[attr-defined]
    model.card = read_card(p)  # type: ignore[attr-defined]  # None: trained before cards, or unreadable (a note)
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
            if not isinstance(meta.get("config"), dict):
                raise CorruptFileError(f"{p}: 'config' is not an object; reinstall simplebits")
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
            if ic == 1 and c == 3:
                hint = " (pass gray_to_rgb / --gray-to-rgb to repeat gray to RGB, or use a gray model: gray32)"
            elif ic in (1, 3):
                hint = (f" (use a model of {ic}-channel images: {default_flow(ic)}, the default for them, or one "
                        "trained with `simplebits train-flow`)")
            else:
                hint = f"; train a model of {ic}-channel images with `simplebits train-flow`"
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
