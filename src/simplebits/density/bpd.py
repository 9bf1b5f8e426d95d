"""Bits per dimension under a density model (paper §2, REFERENCE.md §1).

``bpd(x) = -(log p(y) - D ln 256) / (D ln 2)`` with ``D = C H W`` and ``y`` the dequantised
image in Glow's range: ``y = x * 255/256 - 0.5 + u``. The ``- D ln 256`` turns the density of
``y`` into the probability mass of the 1/256-wide bin of the 8-bit image.

Dequantisation ``u`` in :func:`bpd` (one evaluation of the flow):
    ``"uniform"``: ``u ~ U(0, 1/256)`` (training and losses; one draw of the bound);
    ``"midpoint"``: ``u = 1/512``, the bin's centre: a point *estimate* of the density, not a
    code length (it falls below zero for images the model finds very likely, e.g. all black);
    ``"none"``: ``u = 0``.

Reported figures use :func:`score_bpd` / :func:`measure_bits`, whose default ``"bound"`` is a
code length: ``(E_u[-log p(x+u)] + D ln 256) / (D ln 2)``, the uniform-dequantisation bound,
which by Jensen is at least the model's discrete code length ``-log2 P(x) / D >= 0``
(REFERENCE.md §1). The expectation is estimated from ``draws`` seeded draws of ``u``; the same
draws (common random numbers, one (C, H, W) noise tensor per draw from ``seed``) serve every
image, so an image's figure depends on neither the batch size nor the images beside it, and
the same seed gives the same bits; the draws are stratified per dimension (see :func:`_noise`).
:data:`DEFAULT_DRAWS` is set from a measurement
(``benchmarks/bpd_bound.py``): the smallest number of stratified draws for which the per-image
std of the estimate across seeds on Fashion-MNIST under ``gray32`` is below 0.01 bpd for 95% of
the images (3 draws: mean 0.006, 95th percentile 0.008; 2 draws: mean 0.009, but 0.013 at the 95th).
Reported figures include a **raw 8-bit escape** (:data:`ESCAPE`): the density is the mixture
``(1 - 2^-10) p_flow + 2^-10 U`` (U uniform over 8-bit images), so no image costs more than
``8 + 10/D`` bpd, what storing it raw behind a 10-bit flag costs (see :func:`score_bpd`).
``straight_through=True`` first rounds the image to the 8-bit grid with a straight-through
gradient, ``q = (round(255x) - 255x).detach() + 255x``, as the reference does when bpd is a loss
on a generated image (simplifier output, synthetic condensed image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import BadInputError
from ..progress import progress_bar

__all__ = ["preprocess", "bpd", "score_bpd", "measure_bits", "Bits", "logp_to_bpd", "bits_summary",
           "escape_cap", "units", "transform_words", "blind_spots", "blind_spot_note", "DEFAULT_DRAWS",
           "REPORT_MODES", "ESCAPE", "BLIND_SPOT_SHARE"]

_DEQUANT = ("midpoint", "uniform", "none")
#: What :func:`score_bpd` may report: the bound (a code length, the default) or the midpoint estimate.
REPORT_MODES = ("bound", "midpoint")
#: Draws of the dequantisation noise for the bound; measured in benchmarks/bpd_bound.py (docs/density.md).
DEFAULT_DRAWS = 3
#: Weight of the raw 8-bit escape in reported figures: the code is the mixture
#: ``(1 - ESCAPE) * flow + ESCAPE * uniform 8-bit``, i.e. a 10-bit flag, so no image costs more than
#: ``8 + 10 / D`` bpd and an image the flow models costs at most ``-log2(1 - 2**-10) / D`` more
#: (1.4e-6 bpd at D = 1024). See :func:`score_bpd`.
ESCAPE = 2.0**-10


def preprocess(
    images: torch.Tensor,
    *,
    dequantize: str = "midpoint",
    straight_through: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Images in [0, 1] -> Glow's range, dequantised. Differentiable in ``images``."""
    if dequantize not in _DEQUANT:
        raise BadInputError(f"unknown dequantize mode {dequantize!r}; valid: {', '.join(_DEQUANT)}")
    x = images
    if straight_through:
        x255 = x * 255.0
        x = ((torch.round(x255) - x255).detach() + x255) / 255.0
    y = x * (255.0 / 256.0) - 0.5
    if dequantize == "midpoint":
        y = y + 1.0 / 512.0
    elif dequantize == "uniform":
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) / 256.0
        y = y + u
    return y


def logp_to_bpd(logp: torch.Tensor, dims: int) -> torch.Tensor:
    """Bits per dimension of the 8-bit image from the continuous log-density (nats)."""
    return -(logp - dims * math.log(256.0)) / (dims * math.log(2.0))


def bpd(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    dequantize: str = "midpoint",
    straight_through: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image bits per dimension, shape (N,); differentiable w.r.t. ``images``.

    Parameters
    ----------
    model : a density model with ``log_prob(y)`` (e.g. :class:`~simplebits.density.glow.Glow`).
    images : (N, C, H, W) in [0, 1] on the model's device.
    dequantize : ``"midpoint"`` | ``"uniform"`` | ``"none"`` (see module docstring).
    straight_through : round to 8 bits with a straight-through gradient first (for losses).
    """
    if images.ndim != 4:
        raise BadInputError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    y = preprocess(images, dequantize=dequantize, straight_through=straight_through, generator=generator)
    dims = images.shape[1] * images.shape[2] * images.shape[3]
    return logp_to_bpd(model.log_prob(y), dims)


def escape_cap(b: torch.Tensor, dims: int, escape: float = ESCAPE) -> torch.Tensor:
    """A bpd loss with the raw 8-bit escape of the reported figures, where the flow alone says more
    than 8 bpd; ``b`` unchanged (the same values and gradient, bit for bit) everywhere else.

    ``b`` holds per-image bpd under the flow alone over ``dims`` model dimensions. Where ``b > 8``
    (storing the image raw would be cheaper: a blind spot of the flow, where ``b`` can reach 1e9)
    the value is the code length under the mixture ``(1 - escape) p_flow + escape U`` that
    :func:`score_bpd` reports, which is 8 at ``b = 8`` (so the loss stays continuous) and at most
    ``8 + log2(1/escape) / dims``; its gradient there falls to zero as ``b`` grows, so one blind
    spot no longer floods an optimiser's moments with a gradient ~1e9 times the usual.
    """
    if escape == 0:
        return b
    # the mixture of :func:`_mix`, written in bits: routing it through ``_mix`` and ``logp_to_bpd``
    # rounds differently above 8 bpd, and the runs in benchmarks/results were made with this form
    ln2 = math.log(2.0)
    total = b * (dims * ln2)  # nats of the flow's code
    mixed = torch.logaddexp(math.log1p(-escape) - total,
                            torch.full_like(total, math.log(escape) - 8.0 * dims * ln2))
    return torch.where(b > 8.0, -mixed / (dims * ln2), b)


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4:
        raise BadInputError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0 or images.shape[3] == 0:
        raise BadInputError(f"no images to score: shape {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise BadInputError("images contain NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < 0 or hi > 1:
        raise BadInputError(f"images must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]")


def _noise(shape: tuple[int, ...], draws: int, seed: int) -> torch.Tensor:
    """(draws, C, H, W) uniform dequantisation offsets in [0, 1/256), fixed by ``seed``.

    Stratified per dimension (Latin hypercube): for each pixel value the ``draws`` offsets fall
    one in each of ``draws`` equal slices of the bin, in a random order. Each draw is still
    uniform over the bin, so the mean stays an unbiased estimate of the bound; its variance is
    about half that of independent draws (benchmarks/bpd_bound.py).
    """
    g = torch.Generator().manual_seed(int(seed))
    v = torch.rand((draws, *shape), generator=g)
    if draws == 1:
        return v / 256.0
    strata = torch.argsort(torch.rand((draws, *shape), generator=g), dim=0)
    return (strata + v) / (draws * 256.0)


def score_bpd(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 128,
    dequantize: str = "bound",
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    progress: bool | None = None,
    escape: float = ESCAPE,
) -> torch.Tensor:
    """Per-image bits per *model* dimension of 8-bit images, without gradients; a CPU tensor (N,).

    The one function that computes every reported bpd in the package.

    Parameters
    ----------
    images : (N, C, H, W) in [0, 1], already of the model's input shape (see :func:`measure_bits`
        for images of another size); finite and in range, or a clear error. Scored as the 8-bit
        image a file would hold (rounded to the 255-step grid; a no-op for 8-bit data).
    dequantize : ``"bound"`` (default): the uniform-dequantisation bound, a code length, the mean
        over ``draws`` seeded noise draws (see the module docstring); ``"midpoint"``: the bin-centre
        point estimate (one pass, deterministic, not a code length).
    draws, seed : draws of the noise for the bound and their seed (ignored for midpoint).
    escape : weight of the raw 8-bit escape (default :data:`ESCAPE`, 2^-10; 0 scores the flow
        alone). The figure is the code length under the mixture ``(1 - escape) p_flow + escape
        U``, with ``U`` uniform over 8-bit images: a code that may store an image raw behind a
        10-bit flag. It is a code length as well (the bound holds for any density), never more
        than ``8 + log2(1/escape) / D`` bpd, so an image where the flow puts (almost) no mass (a
        blind spot: uniform noise under a model of photographs, a one-pixel checkerboard) gets
        about 8 bpd, raw storage, instead of hundreds or an overflow; an image the flow models
        costs at most ``-log2(1 - escape) / D`` more. Losses (``bpd``) use the flow alone, so a
        noise-initialised image is still pulled towards the data by the flow's gradient; the
        simplifier's loss may take the escape where the flow says more than 8 bpd
        (:func:`escape_cap`, ``simplebits simplify --escape-loss``).
    """
    return _score(model, images, batch_size=batch_size, dequantize=dequantize, draws=draws, seed=seed,
                  progress=progress, escape=escape)[0]


def _mix(logp: torch.Tensor, escape: float) -> torch.Tensor:
    """log density of the mixture ``(1 - escape) p + escape * 1`` (the uniform density on Glow's
    unit cube is 1), from the flow's log density ``logp`` (nats)."""
    if escape == 0:
        return logp
    return torch.logaddexp(logp + math.log1p(-escape), torch.full_like(logp, math.log(escape)))


def _score(model, images, *, batch_size, dequantize, draws, seed, progress, escape):
    """(mixture bpd, flow-alone bpd), both (N,) CPU float32. See :func:`score_bpd`."""
    if isinstance(escape, bool) or not isinstance(escape, (int, float)) or not 0 <= escape < 1:
        raise BadInputError(f"escape must be a number in [0, 1), got {escape!r}")
    if dequantize not in REPORT_MODES:
        raise BadInputError(f"unknown dequantisation {dequantize!r} for a reported bpd; valid: "
                            f"{', '.join(REPORT_MODES)}")
    if dequantize == "bound" and (not isinstance(draws, int) or draws < 1):
        raise BadInputError(f"draws must be an integer >= 1, got {draws!r}")
    if batch_size < 1:
        raise BadInputError(f"batch_size must be >= 1, got {batch_size}")
    _check_images(images)
    if hasattr(model, "check_input"):
        model.check_input(images)
    images = torch.round(images * 255.0) / 255.0  # the 8-bit image (a no-op for 8-bit data)
    device = next(model.parameters()).device
    dims = images.shape[1] * images.shape[2] * images.shape[3]
    noise = _noise(tuple(images.shape[1:]), draws, seed) if dequantize == "bound" else None
    was_training = model.training
    model.eval()
    out, flow = [], []
    bar = progress_bar(images.shape[0], desc="bpd", enabled=progress, unit="img")
    try:
        with torch.inference_mode():
            for i in range(0, images.shape[0], batch_size):
                chunk = images[i : i + batch_size].to(device)
                y0 = preprocess(chunk, dequantize="midpoint" if noise is None else "none")
                offsets = [None] if noise is None else noise
                total = torch.zeros(chunk.shape[0], dtype=torch.float64)
                total_flow = torch.zeros(chunk.shape[0], dtype=torch.float64)
                for u in offsets:
                    y = y0 if u is None else y0 + u.to(device=device, dtype=y0.dtype)
                    logp = model.log_prob(y).double().cpu()
                    total += logp_to_bpd(_mix(logp, float(escape)), dims)
                    total_flow += logp_to_bpd(logp, dims)
                out.append(total / len(offsets))
                flow.append(total_flow / len(offsets))
                bar.update(chunk.shape[0])
    finally:
        bar.close()
        model.train(was_training)
    return torch.cat(out).float(), torch.cat(flow).float()


def transform_words(native_shape: tuple[int, int, int], model_shape: tuple[int, int, int]) -> str:
    """How images of ``native_shape`` (C, H, W) were brought to the model's ``model_shape``:
    ``"zero-padded 8x8 -> 32x32"``, ``"gray repeated to 3 channels"`` (both, comma-joined; "" when equal)."""
    (c, h, w), (mc, mh, mw) = native_shape, model_shape
    what = []
    if (h, w) != (mh, mw):
        what.append(f"zero-padded {h}x{w} -> {mh}x{mw}")
    if c != mc:
        what.append(f"gray repeated to {mc} channels")
    return ", ".join(what)


def _padding_words(fraction: float) -> str:
    """" (94% of the model's input is padding)" when padding is most of the input, else ""."""
    return f" ({100 * fraction:.0f}% of the model's input is padding)" if fraction >= 0.5 else ""


def blind_spots(values: torch.Tensor, native_per_model: float = 1.0) -> int:
    """How many images the flow codes in 8 bits or more per dimension of the image as given: no
    better than storing its 8-bit pixels raw. ``values`` are reported per-image figures
    (:func:`score_bpd`, per model dimension), ``native_per_model`` the factor to the image's own
    dimensions (:func:`units`; padding the flow codes nearly for free must not hide a blind spot).
    On such images the flow is in a blind spot: its figure is about the raw escape and its gradient
    says little."""
    return int((values.detach().double() * float(native_per_model) >= 8.0).sum())


#: Share of blind spots from which the note says the model does not fit the data and names the fix;
#: below it the few images are outliers (a model trained on the data has some: 3 of 1,400 digits).
BLIND_SPOT_SHARE = 0.05


def blind_spot_note(count: int, total: int, model: str, data: str) -> str | None:
    """One line when ``count`` of ``total`` images of ``data`` cost ``model`` no fewer bits than
    their raw values (:func:`blind_spots`): from :data:`BLIND_SPOT_SHARE` of them on, that the model
    does not fit the data and the fix, a density model trained on it; below, that they are outliers."""
    if count <= 0:
        return None
    if count < BLIND_SPOT_SHARE * total:
        return (f"{count} of {total} images of {data} ({100 * count / total:.1f}%) cost {model} 8 bits or more per "
                "value of the image as given, no fewer than storing them raw: outliers the model does not fit, on "
                "which its figures and gradients say little")
    return (f"{count} of {total} images of {data} cost {model} 8 bits or more per value of the image as given, no "
            "fewer than storing them raw: the model does not fit this data, and its figures and gradients on it "
            f"reflect that; train a density model on your data (`simplebits train-flow {data} --out "
            "flow.safetensors`) and pass --density flow.safetensors")


def units(native_shape: tuple[int, int, int], model_shape: tuple[int, int, int]) -> dict[str, Any]:
    """The two units of a bpd figure for images of ``native_shape`` scored by a model of
    ``model_shape``, JSON-ready: ``model_dims``, ``native_dims``, ``native_per_model`` (multiply a
    per-model-dimension bpd by it to get bits per dimension of the images as given: the same total
    bits over the image's own C*H*W), ``padding_fraction``, ``transform`` (:func:`transform_words`,
    None when nothing was transformed) and ``note`` (one line saying so, None likewise)."""
    native_shape, model_shape = tuple(int(v) for v in native_shape), tuple(int(v) for v in model_shape)
    nd, md = math.prod(native_shape), math.prod(model_shape)
    pad = 1.0 - nd / md if md > nd else 0.0
    words = transform_words(native_shape, model_shape) or None
    note = None
    if words:
        note = (f"{words}: bpd is per model dimension ({md}); native bpd: the same bits per dimension of the "
                f"images as given ({nd}), {md / nd:.4g}x the model's figure" + _padding_words(pad))
    return {"model_dims": md, "native_dims": nd, "native_per_model": md / nd, "padding_fraction": round(pad, 4),
            "model_shape": list(model_shape), "native_shape": list(native_shape), "transform": words, "note": note}


@dataclass
class Bits:
    """Bits of N images under a density model, in both units.

    ``bpd``: bits per model dimension (after padding / repeating gray to RGB: the paper's
    convention); ``bpd_native``: the same total bits per dimension of the image as given
    (its own C*H*W); ``bits``: total bits per image. Equal units when nothing was transformed.
    """

    bpd: torch.Tensor
    bpd_native: torch.Tensor
    bits: torch.Tensor
    model_dims: int
    native_dims: int
    model_shape: tuple[int, int, int]
    native_shape: tuple[int, int, int]
    dequantize: str
    draws: int
    seed: int
    escape: float = ESCAPE
    bpd_flow: torch.Tensor | None = None  # the flow alone (no escape), per model dimension

    @property
    def escaped(self) -> int:
        """Images whose figure is the raw escape's: 8 bpd or more per model dimension, no fewer bits than
        storing the model's input raw (:func:`blind_spots` of the reported figures, so that for images
        that were not transformed this is the count simplify's blind-spot note gives). 0 when the flow
        alone was scored (no escape)."""
        if self.bpd_flow is None or self.escape == 0:
            return 0
        return blind_spots(self.bpd)

    def escape_note(self) -> str | None:
        """One line when the flow codes some images in no fewer bits than storing them raw (its blind spots)."""
        k = self.escaped
        if not k:
            return None
        worst = float(self.bpd_flow.max())
        line = (f"{k} of {self.bpd.numel()} images cost the flow no fewer bits than storing the model's input raw "
                f"(the flow alone: up to {worst:.4g} bpd per model dimension); their figure is the raw 8-bit escape, "
                "about 8 bpd")
        if self.transformed:  # the escape stores the model's whole input, padding or repeated channels included
            native = (8 * self.model_dims - math.log2(self.escape)) / self.native_dims
            line += (f" per model dimension, {native:.2f} per dimension of the images as given (the escape "
                     "stores the padded or repeated input, not the images as given)")
        return line

    @property
    def transformed(self) -> bool:
        return self.model_shape != self.native_shape

    @property
    def padding_fraction(self) -> float:
        """Share of the model's dimensions that the image does not fill (padding, repeats)."""
        return 1.0 - self.native_dims / self.model_dims if self.model_dims > self.native_dims else 0.0

    def transform_note(self) -> str | None:
        """One line when the image was transformed to fit the model (None otherwise)."""
        if not self.transformed:
            return None
        return (f"{transform_words(self.native_shape, self.model_shape)}: bpd is per model dimension "
                f"({self.model_dims}); per dimension of the images as given ({self.native_dims}) it is "
                f"{float(self.bpd_native.mean()):.3f}" + _padding_words(self.padding_fraction))

    def unit(self) -> str:
        return "bits per model dimension" + (", dequantisation bound" if self.dequantize == "bound"
                                             else ", midpoint estimate (not a code length)")

    def summary(self) -> dict[str, Any]:
        """JSON-ready: both units summarised, the dimensions and how the bits were computed."""
        out = {"bpd": bits_summary(self.bpd), "bpd_native": bits_summary(self.bpd_native),
               "bits_per_image": float(self.bits.double().mean()), "model_dims": self.model_dims,
               "native_dims": self.native_dims, "model_shape": list(self.model_shape),
               "native_shape": list(self.native_shape), "unit": "bits per model dimension",
               "dequantize": self.dequantize, "escape": self.escape, "escaped": self.escaped}
        if self.bpd_flow is not None and self.escaped:
            out["bpd_flow_alone"] = bits_summary(self.bpd_flow)
        if self.dequantize == "bound":
            out.update(draws=self.draws, seed=self.seed)
        return out


def measure_bits(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    gray_to_rgb: bool = False,
    dequantize: str = "bound",
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    batch_size: int = 128,
    progress: bool | None = None,
    escape: float = ESCAPE,
) -> Bits:
    """Bits of images of any size that fits the model, in both units (:class:`Bits`).

    ``images`` (N, C, H, W) in [0, 1] as the user has them: fitted to the model (zero-padded,
    optionally gray repeated to RGB, :func:`~simplebits.density.store.fit_images`), scored by
    :func:`score_bpd`, and the total bits divided by both the model's and the images' own
    dimension counts.
    """
    from .store import fit_images

    _check_images(images)
    xf = fit_images(images, model, gray_to_rgb=gray_to_rgb)
    per_model, flow = _score(model, xf, batch_size=batch_size, dequantize=dequantize, draws=draws, seed=seed,
                             progress=progress, escape=escape)
    model_dims = xf.shape[1] * xf.shape[2] * xf.shape[3]
    native_dims = images.shape[1] * images.shape[2] * images.shape[3]
    bits = per_model.double() * model_dims
    return Bits(bpd=per_model, bpd_native=(bits / native_dims).float(), bits=bits.float(), model_dims=model_dims,
                native_dims=native_dims, model_shape=tuple(xf.shape[1:]), native_shape=tuple(images.shape[1:]),
                dequantize=dequantize, draws=draws if dequantize == "bound" else 1, seed=seed, escape=float(escape),
                bpd_flow=flow)


def bits_summary(values: torch.Tensor) -> dict[str, float]:
    """count, mean, median, population std, min, max of per-image bpd values."""
    v = values.double()
    return {"count": int(v.numel()), "mean": float(v.mean()), "median": float(v.median()),
            "std": float(v.std(unbiased=False)) if v.numel() > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}
