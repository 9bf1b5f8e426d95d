"""The resumable condensation runner: :func:`condense`.

Files written for ``out=FILE`` (every one atomically):

``FILE``            the condensed set (safetensors + JSON metadata: settings, final bpd, timings)
``FILE.png``        image grid, one column per class
``FILE.diff.png``   class-difference overlay (paper Fig. 7)
``FILE.log.json``   per-iteration matching loss, bpd and seconds (with ``--lambda-sim``: ``bpd`` is
                    the loss term, one draw of the bound on the images before the update;
                    ``bpd_reported`` at the last iteration is the reported figure,
                    :func:`~simplebits.density.score_bpd`, of the final images)
``FILE.ckpt``       checkpoint (every ``checkpoint_every`` iterations; removed when the run ends)

Every random draw of iteration ``i`` comes from generators derived from ``(seed, i)``, so a run
resumed from a checkpoint ends with exactly the images of an uninterrupted run (tested).

Under ``torchrun`` (see :mod:`simplebits.train.distributed`) each rank computes the matching
terms of its block of classes; after each backward pass the image gradients of every block are
broadcast from their owner, so every rank takes the same optimiser step on the whole set and
holds the same images, optimiser state and network. The bpd term (per image, cheap next to
matching) is computed whole on every rank. Rank 0 alone writes the files and shows progress; the
result equals a single-process run with the same seed (tested with gloo).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..data import ImageSet
from ..data.condensed import save_condensed
from ..density import storage_bits
from ..errors import BadInputError, DivergedError, MismatchError, NotFoundError
from ..io import atomic_write_json, load_state, save_state
from ..progress import progress_bar
from ..runtime import peak_rss_mb
from ..settings import settings_difference
from ..train.distributed import local_device, warn_once, world
from ..train.seeding import generator
from .config import CondenseConfig, config_from_dict, fit_network, make_config
from .figures import difference_image, grid_image, save_png
from .methods import make_method
from .registry import eval_protocol_for
from .simplification import BpdTerm, combine
from .synth import SyntheticSet, check_ipc
from ..runtime import resolve_device

__all__ = ["condense", "CondenseResult", "output_paths", "starting_set", "start_warning"]


@dataclass
class CondenseResult:
    """A finished condensation: the stored images and how they were made."""

    images: ImageSet
    config: CondenseConfig
    bpd: float | None
    log: list[dict[str, Any]]
    seconds: float
    seconds_per_iteration: float
    peak_rss_mb: float
    files: dict[str, str] = field(default_factory=dict)
    # the units of bpd (simplebits.density.bpd.units): per model dimension, and the factor to bits per
    # dimension of the stored images as given; None without a density model
    units: dict[str, Any] | None = None
    # with the simplification term: how many of a seeded sample of the real images (blind_spots_scored)
    # the density model codes in 8 bits or more per value (its blind spots), and the line saying so
    blind_spots: int | None = None
    blind_spots_scored: int | None = None
    blind_spot_note: str | None = None

    @property
    def bpd_native(self) -> float | None:
        """:attr:`bpd` as the same bits per dimension of the stored images as given (equal to it
        when the model takes them unpadded)."""
        if self.bpd is None or self.units is None:
            return None
        return self.bpd * self.units["native_per_model"]

    @property
    def bpd_loss(self) -> float | None:
        """The simplification term's last value (the optimiser's bpd: the mean over the last
        iteration's updates of one draw of the bound each, before the update; None without
        ``lambda_sim``). It estimates what :attr:`bpd` reports, on the images one update earlier."""
        if self.config.lambda_sim is None or not self.log or self.log[-1].get("bpd_reported") is None:
            return None
        return self.log[-1]["bpd"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.config.method,
            "ipc": self.config.ipc,
            "factor": self.config.factor,
            "lambda_sim": self.config.lambda_sim,
            "iterations": self.config.iterations,
            "bpd": self.bpd,
            "bpd_native": self.bpd_native,
            "units": self.units,
            "bpd_loss": self.bpd_loss,
            "blind_spots": self.blind_spots,
            "blind_spots_scored": self.blind_spots_scored,
            "blind_spot_note": self.blind_spot_note,
            "final_match_loss": self.log[-1]["match_loss"] if self.log else None,
            "seconds": round(self.seconds, 2),
            "seconds_per_iteration": round(self.seconds_per_iteration, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "eval_protocol": eval_protocol_for(self.config.method, self.images),
            "files": self.files,
            "config": self.config.to_dict(),
        }


def starting_set(real: ImageSet, cfg: CondenseConfig) -> ImageSet | None:
    """The images a run of ``cfg`` on ``real`` starts from (the same seeded draw as :func:`condense`),
    stored as the condensed set is (``factor`` in the metadata), or ``None`` for ``init="noise"``.

    Evaluated under the same protocol as the result, it is the point a condensation must not end
    below: a real-initialised set that scores less than its own starting images made the data worse.
    """
    cfg.validate()
    if cfg.init == "noise":
        return None
    synth = SyntheticSet(real, ipc=cfg.ipc, factor=cfg.factor, param=cfg.param, init=cfg.init,
                         generator=generator(cfg.seed, "init"))
    ds = ImageSet.create(synth.final_images(clamp=True), synth.labels, real.classes, where="starting images")
    return ds.with_meta(name=f"{real.name}:start-{cfg.init}-ipc{cfg.ipc}", factor=cfg.factor,
                        source_dataset=real.meta.get("name", real.name))


def start_warning(label: str, accuracy: float, start: float, init: str) -> str | None:
    """The one-line warning when a set's mean accuracy ends below its starting images' (fractions), else None."""
    if accuracy >= start:
        return None
    return (f"warning: {label} ({100 * accuracy:.2f}%) ends below the {init}-initialised images it started from "
            f"({100 * start:.2f}%, same protocol and seeds): this run made the data worse; see docs/condense.md, "
            "'Never below the start'")


def output_paths(out: str | os.PathLike) -> dict[str, Path]:
    p = Path(out)
    return {"set": p, "grid": Path(f"{p}.png"), "diff": Path(f"{p}.diff.png"), "log": Path(f"{p}.log.json"),
            "checkpoint": Path(f"{p}.ckpt")}


def _check_real(real: ImageSet, cfg: CondenseConfig) -> None:
    check_ipc(real, cfg.ipc, cfg.factor)
    _, h, w = real.shape
    if cfg.factor > 1 and (h % cfg.factor or w % cfg.factor):
        # IDC splits with integer division; the remainder rows/columns are not decoded.
        import warnings

        warnings.warn(
            f"factor {cfg.factor} does not divide the image size {h}x{w}: the last {h % cfg.factor} row(s) and "
            f"{w % cfg.factor} column(s) of each stored image are not part of any decoded image (IDC does the same)",
            stacklevel=3,
        )
    if h // cfg.factor < 2 or w // cfg.factor < 2:
        raise BadInputError(f"factor {cfg.factor} is too large for {h}x{w} images (crops under 2 pixels)")


def condense(
    real: ImageSet,
    config: CondenseConfig | None = None,
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    on_iteration: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> CondenseResult:
    """Condense ``real`` into ``config.ipc`` images per class.

    Parameters
    ----------
    real : the training set (ImageSet in [0, 1]).
    config : a :class:`CondenseConfig` (from :func:`make_config`); or leave it out and pass
        ``method=``, ``ipc=``, ``preset=`` and any setting as keyword arguments.
    out : where to write the set and its companions (see module docstring); ``None`` keeps it in
        memory (no checkpoints).
    resume : continue from ``out``'s checkpoint (same settings required; more ``iterations``
        allowed). Without it, an existing checkpoint is an error, never silently overwritten.
    """
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    cfg = fit_network(_resolve(config, overrides).validate(), tuple(real.shape[1:]))  # small images: a shallower network
    dev = local_device(device)
    w = world(dev)
    _check_real(real, cfg)
    paths = output_paths(out) if out is not None else None
    if resume and paths is None:
        raise BadInputError("resume needs an output path (--out) whose checkpoint to continue")
    run = _Run(real, cfg, dev, w, paths)
    run.restore(resume)
    run.begin(progress)
    for it in range(run.start, cfg.iterations):
        entry = run.iteration(it)
        if on_iteration is not None:
            on_iteration(entry)
        if (it + 1) % cfg.checkpoint_every == 0 and it + 1 < cfg.iterations:
            run.checkpoint(it + 1)
    run.bar.close()
    run.method.engine.close()
    return run.finish()


def _resolve(config: CondenseConfig | None, overrides: dict[str, Any]) -> CondenseConfig:
    """``config``, or the one the keyword settings of :func:`condense` describe (not both)."""
    if config is None:
        method = overrides.pop("method", "dc")
        ipc = overrides.pop("ipc", 1)
        preset = overrides.pop("preset", "quick")
        return make_config(method, ipc=ipc, preset=preset, **overrides)
    if overrides:
        raise BadInputError("pass either a config or keyword settings, not both")
    return config


class _Run:
    """One condensation between the steps of :func:`condense`: the synthetic set, its optimiser,
    the method, the log and the checkpoints (one object, so that each step is a short method)."""

    def __init__(self, real: ImageSet, cfg: CondenseConfig, dev: torch.device, w: Any,
                 paths: dict[str, Path] | None) -> None:
        self.real, self.cfg, self.dev, self.w, self.paths = real, cfg, dev, w, paths
        self.bpd_term: BpdTerm | None = None
        try:
            self.bpd_term = BpdTerm(cfg.density, shape=real.shape, device=dev)
        except (MismatchError, NotFoundError):
            if cfg.simplify:
                raise
            self.bpd_term = None  # no density model for this data: condense without reporting bpd
        # a loss term on data the model does not fit pulls by its blind spots: count them first, say so at the end
        self.blind: tuple[int, int, str | None] | None = (
            self.bpd_term.blind_spots(real, cfg.seed) if cfg.simplify and self.bpd_term is not None else None)
        synth = SyntheticSet(real, ipc=cfg.ipc, factor=cfg.factor, param=cfg.param, init=cfg.init,
                             generator=generator(cfg.seed, "init"))
        synth.data.data = synth.data.data.to(dev)
        synth.mean, synth.std, synth.labels = synth.mean.to(dev), synth.std.to(dev), synth.labels.to(dev)
        self.synth = synth
        if cfg.optimizer == "adam":
            self.opt: torch.optim.Optimizer = torch.optim.Adam([synth.data], lr=cfg.lr_img, betas=cfg.betas)
        else:
            self.opt = torch.optim.SGD([synth.data], lr=cfg.lr_img, momentum=cfg.mom_img)
        self.start, self.log, self.elapsed = 0, [], 0.0

    def restore(self, resume: bool) -> None:
        """Continue from the checkpoint (``resume``), or refuse what must not be overwritten."""
        paths, cfg = self.paths, self.cfg
        if paths is not None and paths["checkpoint"].exists():
            if not resume:
                raise BadInputError(f"{paths['checkpoint']} holds an interrupted run; pass --resume to continue it, "
                                    "or delete it to start over")
            state = load_state(paths["checkpoint"], kind="condense-checkpoint")
            saved = config_from_dict(state["config"])
            if saved.digest() != cfg.digest():
                diff = settings_difference(saved.to_dict(), cfg.to_dict(),
                                           ignore=("iterations", "checkpoint_every", "compile", "chunk", "loops"))
                raise MismatchError(f"{paths['checkpoint']} was made with other settings {diff} (saved, now); "
                                    "use the same settings to resume or delete the checkpoint")
            with torch.no_grad():
                self.synth.data.copy_(state["data"].to(self.dev))
            self.opt.load_state_dict(state["optimizer"])
            self.start, self.log, self.elapsed = int(state["iteration"]), list(state["log"]), float(state["seconds"])
        elif resume and paths is not None and not paths["set"].exists():
            raise NotFoundError(f"nothing to resume: no checkpoint {paths['checkpoint']} and no finished {paths['set']}")
        elif resume and paths is not None:
            raise BadInputError(f"{paths['set']} is already finished (its checkpoint was removed); "
                                "run without --resume to condense again")

    def begin(self, progress: bool | None) -> None:
        """The method (its network and real batches), the rows of each rank's classes, the bar."""
        cfg, w, real = self.cfg, self.w, self.real
        self.method = make_method(cfg, real, device=self.dev)
        if w.distributed:
            warn_once(w, w.idle_note(real.num_classes, "classes") if self.method.partitioned else
                      f"match = {cfg.match!r} couples all classes in one step: each of the {w.size} ranks computes "
                      "it whole (same result, no speed-up)")
        self.row_bounds = [(a * cfg.ipc, b * cfg.ipc) for a, b in w.blocks(real.num_classes)]
        self.last_good = self.start
        self.bar = progress_bar(cfg.iterations, desc=f"condense {cfg.method} ipc{cfg.ipc}",
                                enabled=progress if w.is_main else False, unit="it")
        self.bar.update(self.start)

    def checkpoint(self, iteration: int) -> None:
        self.last_good = iteration
        if self.paths is None or not self.w.is_main:
            return
        save_state(self.paths["checkpoint"], {
            "config": self.cfg.to_dict(), "iteration": iteration, "data": self.synth.data.detach().cpu(),
            "optimizer": self.opt.state_dict(), "log": self.log, "seconds": self.elapsed,
        }, kind="condense-checkpoint")
        atomic_write_json(self.paths["log"], {"config": self.cfg.to_dict(), "iterations": self.log})

    def iteration(self, it: int) -> dict[str, Any]:
        """Outer iteration ``it``: a fresh network, the image updates; returns its log entry."""
        cfg, bpd_term = self.cfg, self.bpd_term
        t0 = time.perf_counter()
        self.method.begin(it)
        g_bpd = generator(cfg.seed, f"dequant/{it}")
        match_vals, bpd_vals = [], []
        for k in range(self.method.updates):
            match, mean_bpd = self.update(it, k, g_bpd)
            match_vals.append(float(match.detach()))
            if mean_bpd is not None:
                bpd_vals.append(float(mean_bpd.detach()))
        dt = time.perf_counter() - t0
        self.elapsed += dt
        entry: dict[str, Any] = {"iteration": it, "match_loss": sum(match_vals) / len(match_vals),
                                 "bpd": (sum(bpd_vals) / len(bpd_vals)) if bpd_vals else None,
                                 "seconds": round(dt, 4)}
        last = it == cfg.iterations - 1
        if bpd_term is not None and (last or (entry["bpd"] is None and (it + 1) % cfg.checkpoint_every == 0)):
            # the reported figure of the images after this iteration (with the loss term: only at
            # the end, where it sits beside the term's last value, its estimate one update earlier)
            reported = bpd_term.score(self.synth.final_images())
            entry["bpd" if entry["bpd"] is None else "bpd_reported"] = reported
        self.log.append(entry)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{entry['match_loss']:.4g}",
                             bpd="-" if entry["bpd"] is None else f"{entry['bpd']:.3f}")
        return entry

    def update(self, it: int, k: int, g_bpd: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Image update ``k`` of iteration ``it``; returns (the matching loss of every class, mean bpd)."""
        cfg, w, synth, lam = self.cfg, self.w, self.synth, self.cfg.lambda_sim
        own, values = self.method.match_terms(synth, it, k)
        match = own
        if w.distributed and values is not None:
            # every class's value from its owner, summed in class order as one process sums them
            w.broadcast_blocks(values, w.blocks(self.real.num_classes))
            match = values.new_zeros(())
            for v in values:
                match = match + v
        mean_bpd = None
        if lam is not None and self.bpd_term is not None:
            mean_bpd = self.bpd_term(synth.images(), generator=g_bpd, straight_through=cfg.param == "pixels")
        loss = combine(own, mean_bpd, lam)
        total = combine(match.detach(), None if mean_bpd is None else mean_bpd.detach(), lam)
        if not torch.isfinite(total):
            self.bar.close()
            where = (f"; the last good checkpoint (iteration {self.last_good}) is kept at {self.paths['checkpoint']}"
                     if self.paths is not None and self.last_good > 0 else "")
            raise DivergedError(f"condensation loss became {float(total)} at iteration {it} (update {k}){where}; "
                                "lower --lr-img or check the data")
        self.opt.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
        if w.distributed and values is not None:
            if synth.data.grad is None:  # a rank with no classes and no bpd term
                synth.data.grad = torch.zeros_like(synth.data)
            w.broadcast_blocks(synth.data.grad, self.row_bounds)
        self.opt.step()
        if cfg.clamp:
            synth.project()
        self.method.after_update(synth, it, k)
        return match, mean_bpd

    def finish(self) -> CondenseResult:
        """The result; rank 0 writes the set, its figures and the log, and drops the checkpoint."""
        cfg, real, dev, paths, log, bpd_term = self.cfg, self.real, self.dev, self.paths, self.log, self.bpd_term
        images = self.synth.final_images(clamp=cfg.clamp).cpu()
        ds = ImageSet.create(images, self.synth.labels.cpu(), real.classes, where="condensed images",
                             unbounded=not cfg.clamp)
        ds = ds.with_meta(name=f"{real.name}:{cfg.method}-ipc{cfg.ipc}", factor=cfg.factor,
                          source_dataset=real.meta.get("name", real.name))
        # bits are defined for pixels in [0, 1]: an unclamped set's bpd is its clamped view's (as `bpd` reports it)
        final_bpd = bpd_term.score(images.clamp(0, 1).to(dev)) if bpd_term is not None else None
        iters_run = max(1, len(log))
        result = CondenseResult(images=ds, config=cfg, bpd=final_bpd, log=log, seconds=self.elapsed,
                                seconds_per_iteration=self.elapsed / iters_run if log else 0.0,
                                peak_rss_mb=peak_rss_mb(),
                                units=bpd_term.units(tuple(images.shape[1:])) if bpd_term is not None else None)
        if self.blind is not None:
            result.blind_spots, result.blind_spots_scored, result.blind_spot_note = self.blind
        if paths is not None and self.w.is_main:
            self._write(result, paths)
        if paths is not None:
            result.files = {k: str(v) for k, v in paths.items() if k != "checkpoint"}
        self.w.barrier()  # every rank returns once rank 0's files are in place
        return result

    def _write(self, result: CondenseResult, paths: dict[str, Path]) -> None:
        cfg, real, log, bpd_term, ds = self.cfg, self.real, self.log, self.bpd_term, result.images
        meta_extra = {"seconds": round(self.elapsed, 2),
                      "seconds_per_iteration": round(result.seconds_per_iteration, 4),
                      "peak_rss_mb": round(result.peak_rss_mb, 1), "eval_protocol": eval_protocol_for(cfg.method, real),
                      "density": bpd_term.spec if bpd_term is not None else None,
                      "bpd_loss": result.bpd_loss, "bpd_native": result.bpd_native,
                      "blind_spots": result.blind_spots, "blind_spots_scored": result.blind_spots_scored,
                      "final_match_loss": log[-1]["match_loss"] if log else None,
                      # what the set costs to keep: PNG files + hard labels (flow code length beside)
                      "storage": storage_bits(ds, model=bpd_term.spec if bpd_term is not None else None,
                                              device=self.dev)}
        save_condensed(paths["set"], ds, method=cfg.method, source=str(real.meta.get("name", real.name)),
                       factor=cfg.factor, settings=cfg.to_dict(), seed=cfg.seed, bpd=result.bpd, extra=meta_extra)
        save_png(paths["grid"], grid_image(ds))
        save_png(paths["diff"], difference_image(ds))
        atomic_write_json(paths["log"], {"config": cfg.to_dict(), "iterations": log, "bpd": result.bpd})
        paths["checkpoint"].unlink(missing_ok=True)
