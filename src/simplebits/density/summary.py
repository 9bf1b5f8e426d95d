"""What a set of images costs in bits, in one dict: the flow's code length in both units and the
PNG size of the images as given. Used by the pipeline report and every capability that reports a
set's bpd, so that a page never mixes definitions (padded vs native PNG, midpoint vs bound)."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import MismatchError
from .bpd import DEFAULT_DRAWS, ESCAPE, measure_bits
from .compress import png_bpd
from .store import default_flow, load_flow

__all__ = ["BITS_DEFINITION", "set_bits"]

#: What "bpd" means in this version; part of every cache key that stores a bpd figure.
BITS_DEFINITION = {"bpd": "uniform-dequantisation bound", "draws": DEFAULT_DRAWS, "noise": "stratified",
                   "escape": ESCAPE, "png": "images as given", "version": 2}


def set_bits(images: torch.Tensor, *, model: str | None = None, device: str | torch.device = "cpu",
             values: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Mean bits of ``images`` (N, C, H, W) in [0, 1].

    ``bpd``: the dequantisation bound under ``model`` (default: the shipped model for the channel
    count), per model dimension; ``bpd_native``: the same bits per dimension of the images as
    given; ``png_bpd``: PNG size of the images as given (never padded). When the images do not
    fit the model, the flow figures are None and ``bpd_error`` says why. ``values=True`` adds the
    per-image lists.
    """
    x = images.detach().float().clamp(0, 1).cpu()
    png = png_bpd(x).double()
    out: dict[str, Any] = {"n": int(x.shape[0]), "png_bpd": float(png.mean()),
                           "png_std": float(png.std()) if png.numel() > 1 else 0.0,
                           "model": model or default_flow(x.shape[1]), "bpd": None, "bpd_native": None}
    try:
        flow = load_flow(out["model"], device=device)
        b = measure_bits(flow, x, progress=progress)
    except MismatchError as e:
        out["bpd_error"] = str(e)
        return out
    s = b.summary()
    out.update(bpd=s["bpd"]["mean"], bpd_std=s["bpd"]["std"], bpd_native=s["bpd_native"]["mean"],
               model_dims=b.model_dims, native_dims=b.native_dims, unit=s["unit"], dequantize=b.dequantize,
               draws=b.draws, escaped=b.escaped)
    note = "; ".join(n for n in (b.transform_note(), b.escape_note()) if n)
    if note:
        out["note"] = note
    if values:
        out["values"] = [round(float(v), 4) for v in b.bpd]
        out["native_values"] = [round(float(v), 4) for v in b.bpd_native]
        out["png_values"] = [round(float(v), 4) for v in png]
    return out
