"""Post-hoc simplification of a trained classifier's inputs (paper §5, Alg. 1 and Alg. 2).

``space="latent"`` (Alg. 2, the default): the simplified image is ``x_sim = G^{-1}(z_sim)`` with
``G`` the Glow density model. ``z_sim`` (one tensor per scale) starts at zero, the flow's most
likely point. Every step draws ``alpha ~ U(0, 1)`` per image and
``z_mix = alpha z_sim + (1 - alpha) z``, with ``z`` the original's latent. The classifier
losses are applied to ``x_mix = G^{-1}(z_mix)`` (the whole path between the original and the
simplified image, S5), the bpd term to ``x_sim``.

``space="input"`` (Alg. 1): the image itself is optimised, as logits (``x_sim = sigmoid(theta)``),
starting from the same point as Alg. 2, the density model's most likely image ``G^{-1}(0)``
(a uniform gray start keeps a gray background that costs bits; starting at the original was
tried too: on mnist-5k the pixel-space steps add detail faster than the bpd term removes it,
bpd rose by 30-35%), and all losses are applied to ``x_sim``.

Loss: ``L_grad + L_pred + lambda_sim * bpd(x_sim)`` (see :mod:`.losses`); ``lambda_sim`` defaults
to 0.1 in latent space and 3 in input space (:data:`DEFAULT_LAMBDA`). bpd is taken with
uniform dequantisation and a straight-through 8-bit rounding (as for the other generated
images in this project), on the image brought to the density model's size
(:func:`simplebits.density.fit_images`: 28x28 is zero-padded to 32x32). In latent space, the
decoded image is cropped back to the data's size before the classifier sees it.

Deviation from the paper: 5000 Adam steps at lr 1e-2 per 32 images is hours on a CPU; the
default here is ``steps=300`` at ``lr=0.05`` (``preset="paper"`` restores 5000 / 1e-2).

A step whose loss or gradient is not finite is skipped (the images stay where they were; the
random draws move on), as in SimpleBits' joint training; :data:`MAX_SKIPS` such steps in a row
stop the run with :class:`~simplebits.errors.DivergedError`, naming the fix. Latent space
decodes through the flow on the whole path to the original, so images the flow does not fit
(its blind spots: sklearn's 8x8 digits under gray32) can give NaN there whatever ``lambda_sim``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import torch
from torch import nn

from ..data.imageset import pad_to
from ..density import BpdTerm, fit_images
from ..density.bpd import blind_spot_note, blind_spots, preprocess
from ..errors import BadInputError, DivergedError, UnknownNameError
from ..progress import progress_bar
from ..settings import setting
from ..train import generator
from .losses import ForgettingLoss

__all__ = ["ExplainConfig", "make_explain_config", "PosthocResult", "simplify_posthoc", "SPACES", "DEFAULT_LAMBDA",
           "MAX_SKIPS"]

SPACES = ("latent", "input")
#: lambda_sim when none is given, per space, tried on misclassified Fashion-MNIST test images
#: (quick preset). Latent, 16 images: 0.03 -> 69% of predictions kept, 28% lower bpd; 0.1 -> 94%,
#: 41%; 0.3 -> 81%, 54% (8 other images: 0.3 -> 100%, 1 -> 88%): noisy at 300 steps, 0.1 the
#: best trade. Input, 8 images: 0.3 -> 100%, 18%; 1 -> 100%, 29%; 3 -> 100%, 34%; 10 -> 75%.
DEFAULT_LAMBDA = {"latent": 0.1, "input": 3.0}
#: Steps in a row whose loss or gradient is not finite before a batch stops (each is skipped)
MAX_SKIPS = 20


@dataclass(frozen=True)
class ExplainConfig:
    space: str = setting("latent", "latent (Alg. 2: Glow's latent) or input (Alg. 1: the pixels)", choices=SPACES)
    steps: int = setting(300, "Adam steps per batch", metavar="N", default_text="quick: 300, paper: 5000")
    lr: float = setting(0.05, "Adam learning rate", default_text="quick: 0.05, paper: 0.01")
    lambda_sim: float | None = setting(None, "weight of the bpd term", metavar="L",  # None: DEFAULT_LAMBDA[space]
                                       default_text="0.1 in latent space, 3 in input space")
    scale_low: float = 0.8
    scale_high: float = 0.95
    batch_size: int = setting(32, "images optimised together")
    density: str | None = setting(None, "density model", metavar="MODEL",  # None: gray32 / rgb32 by channel count
                                  default_text="gray32/rgb32 by channels")
    seed: int = setting(0, "seed of the images chosen, the forgetting scales and every noise draw", metavar="S")

    def validate(self) -> "ExplainConfig":
        """Checked copy, with ``lambda_sim`` filled in from :data:`DEFAULT_LAMBDA` when unset."""
        if self.space not in SPACES:
            raise UnknownNameError("space", self.space, SPACES)
        if self.lambda_sim is None:
            return replace(self, lambda_sim=DEFAULT_LAMBDA[self.space]).validate()
        if self.steps < 1 or self.batch_size < 1:
            raise BadInputError(f"steps and batch_size must be >= 1; got {self.steps}, {self.batch_size}")
        if not self.lr > 0 or self.lambda_sim < 0:
            raise BadInputError(f"lr must be > 0 and lambda_sim >= 0; got {self.lr}, {self.lambda_sim}")
        if not 0 < self.scale_low <= self.scale_high <= 1:
            raise BadInputError(f"need 0 < scale_low <= scale_high <= 1; got {self.scale_low}, {self.scale_high}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_explain_config(preset: str = "quick", **overrides: Any) -> ExplainConfig:
    """``quick`` (this CPU: 300 steps, lr 0.05) or ``paper`` (5000 steps, lr 1e-2); ``None``
    overrides are ignored."""
    base = {"quick": {}, "paper": {"steps": 5000, "lr": 1e-2}}
    if preset not in base:
        raise UnknownNameError("preset", preset, tuple(base))
    return replace(ExplainConfig(**base[preset]), **{k: v for k, v in overrides.items() if v is not None}).validate()


@dataclass
class PosthocResult:
    images: torch.Tensor  # simplified (N, C, H, W) on the 8-bit grid
    pred_orig: torch.Tensor  # (N,)
    pred_sim: torch.Tensor
    bpd_orig: torch.Tensor
    bpd_sim: torch.Tensor
    config: ExplainConfig
    seconds: float
    log: list[dict[str, float]] = field(default_factory=list)
    # the units of the bpd figures (simplebits.density.bpd.units): per model dimension, and the factor
    # to bits per dimension of the images as given
    units: dict[str, Any] | None = None
    density: str | None = None  # the density model's name or file (the loss and the figures)

    @property
    def blind_spots(self) -> int | None:
        """Originals the density model codes in 8 bits or more per value of the image as given
        (:func:`~simplebits.density.bpd.blind_spots`, the count simplify and condense give): there
        the loss's gradient says little. None without units (results written before they were kept)."""
        if not self.units:
            return None
        return blind_spots(self.bpd_orig, self.units["native_per_model"])

    def blind_spot_note(self, data: str) -> str | None:
        """The one line simplify and condense print when the model does not fit ``data`` (None if it does)."""
        k = self.blind_spots
        return blind_spot_note(k, int(self.bpd_orig.numel()), self.density or "the density model", data) if k else None

    @property
    def agreement(self) -> float:
        return float((self.pred_orig == self.pred_sim).float().mean())

    @property
    def bpd_reduction(self) -> float:
        return 1.0 - float(self.bpd_sim.mean()) / float(self.bpd_orig.mean())

    def summary(self) -> dict[str, Any]:
        n = int(self.images.shape[0])
        return {"n": n, "space": self.config.space, "steps": self.config.steps, "lambda_sim": self.config.lambda_sim,
                "agreement": self.agreement, "bpd_orig": float(self.bpd_orig.mean()),
                "bpd_sim": float(self.bpd_sim.mean()), "bpd_reduction": self.bpd_reduction,
                **({"bpd_orig_native": float(self.bpd_orig.mean()) * self.units["native_per_model"],
                    "bpd_sim_native": float(self.bpd_sim.mean()) * self.units["native_per_model"],
                    "units": self.units, "blind_spots": self.blind_spots} if self.units else {}),
                **({"density": self.density} if self.density else {}),
                "seconds": round(self.seconds, 2), "seconds_per_image": round(self.seconds / max(n, 1), 3)}


def _to_image(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Glow range -> [0, 1] (the inverse of midpoint preprocessing), cropped to ``size``."""
    x = ((y + 0.5 - 1.0 / 512.0) * (256.0 / 255.0)).clamp(0.0, 1.0)
    return pad_to(x, size)


def simplify_posthoc(
    model: nn.Module,
    images: torch.Tensor,
    *,
    config: ExplainConfig | None = None,
    flow: nn.Module | None = None,
    progress: bool | None = None,
) -> PosthocResult:
    """Simplified versions of ``images`` (N, C, H, W in [0, 1]) that keep what ``model`` needs
    for its prediction; see the module docstring. Batches of ``config.batch_size``."""
    cfg = (config or ExplainConfig()).validate()
    device = next(model.parameters()).device
    # loads (or takes) the density model, freezes it, and fails clearly when the data does not fit it
    term = BpdTerm(cfg.density, shape=tuple(images.shape[1:]), device=device, model=flow)
    trainable = [p.requires_grad for p in model.parameters()]
    try:
        res = _run(model, images, cfg, term, device, progress)
        res.units, res.density = term.units(tuple(images.shape[1:])), term.spec
        return res
    finally:  # the classifier is frozen while it is explained; give it back as it came
        for p, t in zip(model.parameters(), trainable):
            p.requires_grad_(t)


def _run(model: nn.Module, images: torch.Tensor, cfg: ExplainConfig, term: BpdTerm, device: torch.device,
         progress: bool | None) -> PosthocResult:
    loss_fn = ForgettingLoss(model)
    gens = tuple(generator(cfg.seed, p) for p in ("explain/scale", "explain/alpha", "explain/dequant"))
    t0 = time.perf_counter()
    outs, log = [], []
    n = images.shape[0]
    bar = progress_bar(-(-n // cfg.batch_size) * cfg.steps, desc=f"explain ({cfg.space})", enabled=progress)
    for start in range(0, n, cfg.batch_size):
        x = images[start : start + cfg.batch_size].to(device)
        outs.append(_simplify_batch(model, x, cfg, term, loss_fn, gens, bar=bar, log=log,
                                    batch=start // cfg.batch_size))
    bar.close()
    sim = torch.cat(outs)
    with torch.no_grad():
        pred_orig = torch.cat([model(images[i : i + 500].to(device)).argmax(1).cpu() for i in range(0, n, 500)])
        pred_sim = torch.cat([model(sim[i : i + 500].to(device)).argmax(1).cpu() for i in range(0, n, 500)])
        bpd_orig = torch.cat([term.score(images[i : i + 500].to(device)) for i in range(0, n, 500)])
        bpd_sim = torch.cat([term.score(sim[i : i + 500].to(device)) for i in range(0, n, 500)])
    return PosthocResult(sim, pred_orig, pred_sim, bpd_orig, bpd_sim, cfg, time.perf_counter() - t0, log)


def _simplify_batch(model: nn.Module, x: torch.Tensor, cfg: ExplainConfig, term: BpdTerm, loss_fn: ForgettingLoss,
                    gens: tuple[torch.Generator, ...], *, bar: Any, log: list[dict[str, float]],
                    batch: int) -> torch.Tensor:
    """``cfg.steps`` Adam steps on one batch's simplified images (Alg. 1 or 2, see the module
    docstring), logged every 25 steps into ``log``; returns them on the 8-bit grid, CPU."""
    g_scale, g_alpha, g_deq = gens
    flow, hw = term.model, tuple(x.shape[2:])
    with torch.no_grad():
        hx = model(x)
    params, simplified, z = _starting_point(flow, x, cfg.space, hw)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    skips = 0
    for step in range(cfg.steps):
        s = float(torch.empty(1).uniform_(cfg.scale_low, cfg.scale_high, generator=g_scale))
        x_sim = simplified()
        if cfg.space == "latent":  # the classifier losses see the whole path from the original to x_sim
            alpha = torch.rand(x.shape[0], generator=g_alpha).to(x.device)
            z_mix = [a.view(-1, 1, 1, 1) * zs + (1 - a.view(-1, 1, 1, 1)) * zo
                     for a, zs, zo in zip([alpha] * len(z), params, z)]
            x_new = _to_image(flow.decode(z_mix), hw)
        else:
            x_new = x_sim
        parts = loss_fn(x, hx, x_new, s)
        b = term(x_sim, generator=g_deq).mean()
        loss = parts["grad"] + parts["pred"] + cfg.lambda_sim * b
        opt.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            loss.backward()
            finite = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params)
        bar.update(1)
        if not finite:  # skip the step: the images stay where they were, the draws move on
            skips += 1
            if skips >= MAX_SKIPS:
                raise DivergedError(_diverged(cfg, term, x, step, batch))
            continue
        skips = 0
        opt.step()
        if step % 25 == 0 or step == cfg.steps - 1:
            log.append({"batch": batch, "step": step, "grad": float(parts["grad"].detach()),
                        "pred": float(parts["pred"].detach()), "bpd": float(b.detach())})
    with torch.no_grad():
        out = simplified()
    if not bool(torch.isfinite(out).all()):  # the last steps went non-finite and the run ended before MAX_SKIPS
        raise DivergedError(_diverged(cfg, term, x, cfg.steps - 1, batch, skipped=skips))
    return (out * 255).round().div(255).cpu()


def _diverged(cfg: ExplainConfig, term: BpdTerm, x: torch.Tensor, step: int, batch: int,
              skipped: int = MAX_SKIPS) -> str:
    """The one line when :data:`MAX_SKIPS` steps in a row were not finite (or the last ``skipped`` were
    and the simplified images are): where, why it may be, the fix."""
    line = (f"the explanation diverged: {skipped} steps in a row gave NaN or infinite values (batch {batch}, "
            f"step {step}, {cfg.space} space)")
    with torch.no_grad():
        count = blind_spots(term.score(x), term.units(tuple(x.shape[1:]))["native_per_model"])
    if count:
        line += (f"; {count} of {x.shape[0]} of these images cost {term.spec} 8 bits or more per value (the model "
                 "does not fit them)")
    fix = "pass --space input" if cfg.space == "latent" else "lower --lr"
    return line + f": {fix}, or train a density model on your data (simplebits train-flow) and pass --density"


def _starting_point(flow: nn.Module, x: torch.Tensor, space: str, hw: tuple[int, int]
                    ) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor], list[torch.Tensor] | None]:
    """(the parameters to optimise, the simplified images as a function of them, the originals'
    latents in latent space): both spaces start at the density model's most likely image, z = 0."""
    with torch.no_grad():
        z = [e.detach() for e in flow.encode(preprocess(fit_images(x, flow)))[0]]
    if space == "latent":
        params = [torch.zeros_like(e, requires_grad=True) for e in z]
        return params, lambda: _to_image(flow.decode(params), hw), z
    with torch.no_grad():
        x0 = _to_image(flow.decode([torch.zeros_like(e) for e in z]), hw)
        theta = torch.logit(x0.clamp(1.0 / 256.0, 1.0 - 1.0 / 256.0))
    params = [theta.clone().requires_grad_(True)]
    return params, lambda: torch.sigmoid(params[0]), None
