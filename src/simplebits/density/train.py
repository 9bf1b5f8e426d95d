"""Training a Glow by maximum likelihood, with atomic per-epoch checkpoints and exact resume.

Checkpoints: every epoch of :func:`train_flow` writes ``OUT.ckpt`` (model, optimiser, generator
states, log) atomically and appends to ``OUT.log.json``; ``resume=True`` continues from the
checkpoint and reaches the same weights as an uninterrupted run. Without ``resume`` an existing
checkpoint (an interrupted run) is an error, never silently discarded; ``restart=True`` (CLI
``--force``) deletes it and starts over. When the run finishes its checkpoint is removed, unless
``keep_checkpoint=True``: then resuming with a larger ``epochs`` extends the finished run exactly
as if it had been asked for from the start (warm-up, then a constant learning rate: nothing
depends on the total). A non-finite loss stops training with :class:`TrainingDiverged`; the last
good checkpoint stays.

Streams: ``train`` may also be a stream of fresh data per epoch (for example
:class:`simplebits.data.photos.PatchStream`): anything with ``epoch(e) -> ImageSet``, ``shape``,
``name`` and ``len()`` (images per epoch). Epoch ``e`` trains on ``train.epoch(e)``; the stream
must give the same set for the same ``e`` (so ``resume`` stays exact).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..data import ImageSet
from ..errors import BadInputError, DivergedError, NotFoundError
from ..io import atomic_write_json, load_state, save_state
from ..progress import progress_bar
from ..settings import setting
from .bpd import bpd, preprocess, score_bpd
from .glow import Glow, GlowConfig
from .store import card_path, save_flow
from ..runtime import resolve_device

__all__ = ["FlowTrainConfig", "TrainingDiverged", "train_flow", "checkpoint_path", "log_path", "card_path"]


#: A held-out bpd must fall by more than this (bits per dimension) to count as better for early stopping.
MIN_GAIN = 1e-4


class TrainingDiverged(DivergedError):
    """The loss or the weights became NaN/inf; the last good checkpoint is kept."""


@dataclass(frozen=True)
class FlowTrainConfig:
    epochs: int = setting(10, "passes over the training set")
    batch_size: int = setting(64, "images per Adam step")
    lr: float = setting(1e-3, "Adam learning rate after warm-up")
    warmup_steps: int = setting(200, "steps of linear warm-up from 0 (Glow needs it to survive early steps)",
                                flag="--warmup")
    grad_clip: float = 50.0  # max global gradient norm (0: off)
    init_batch: int = 512  # images for the data-dependent ActNorm initialisation
    test_images: int = 2000  # held-out images scored (the dequantisation bound) after each epoch
    seed: int = setting(0, "seed of the initialisation, data order and dequantisation noise", metavar="S")
    patience: int = setting(3, "stop after N epochs without a better held-out bpd (0: never); the best epoch is kept",
                            metavar="N")

    def validate(self) -> "FlowTrainConfig":
        for k in ("epochs", "batch_size", "init_batch"):
            if getattr(self, k) < 1:
                raise BadInputError(f"{k} must be >= 1, got {getattr(self, k)}")
        if not self.lr > 0:
            raise BadInputError(f"lr must be > 0, got {self.lr}")
        if self.patience < 0:
            raise BadInputError(f"patience must be >= 0, got {self.patience}")
        return self


def checkpoint_path(out: str | os.PathLike) -> Path:
    return Path(str(out) + ".ckpt")


def log_path(out: str | os.PathLike) -> Path:
    return Path(str(out) + ".log.json")


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings that must match to resume; ``epochs`` and ``patience`` may change (the schedule does not
    depend on them). Checkpoints from before ``patience`` existed compare as patience 0."""
    drop = ("epochs", "patience")
    return {**settings, "train": {k: v for k, v in settings["train"].items() if k not in drop}}


def _finite_params(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def train_flow(
    train: ImageSet | Any,
    test: ImageSet | None,
    *,
    model_config: GlowConfig,
    config: FlowTrainConfig = FlowTrainConfig(),
    out: str | os.PathLike,
    resume: bool = False,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    meta: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any], Glow], None] | None = None,
    card: dict[str, Any] | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    keep_checkpoint: bool = False,
    restart: bool = False,
) -> tuple[Glow, list[dict[str, Any]]]:
    """Train a Glow on ``train`` (images already fitted to ``model_config``'s shape, or a stream) and
    write it to ``out`` (safetensors + JSON config). Checkpoints, ``resume`` / ``restart`` /
    ``keep_checkpoint`` and streams: see the module docstring.

    With a ``test`` set, each epoch scores it with the dequantisation bound (``test_bpd``, bits per
    model dimension). ``config.patience > 0`` stops after that many epochs without a lower test bpd;
    the weights written are those of the best epoch (kept in the checkpoint, so resuming reaches the
    same file). ``init_state`` starts from given weights (a state dict of the same config: continuing a
    shipped model); ``card`` (training data, the command, ...) is completed with the run's figures and
    written beside the weights as ``FILE.card.json`` (:func:`card_path`).
    """
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    streamed, shape = _check_inputs(train, model_config, config)
    out = Path(out)
    ckpt = checkpoint_path(out)
    settings = {"model": model_config.to_dict(), "train": asdict(config), "n_train": len(train)}
    run = _FlowRun(model_config, config, device=device, init_state=init_state, progress=progress)
    _start_or_resume(run, ckpt, out, settings, resume=resume, restart=restart)
    _train_epochs(run, train, test, shape, streamed, ckpt=ckpt, out=out, settings=settings, on_epoch=on_epoch)
    _finish(run, out, train, model_config, settings, meta=meta, card=card)
    if not keep_checkpoint:
        ckpt.unlink(missing_ok=True)
    run.model.eval()
    return run.model, run.log


def _check_inputs(train: Any, model_config: GlowConfig, config: FlowTrainConfig) -> tuple[bool, tuple[int, int, int]]:
    """Validate the settings and the training data; returns (is a stream, the model's input shape)."""
    config.validate()
    model_config.validate()
    streamed = hasattr(train, "epoch") and not isinstance(train, ImageSet)
    shape = (model_config.channels, model_config.image_size, model_config.image_size)
    if not streamed:
        train.require_unit_range("training a density model")
    if train.shape != shape:
        raise BadInputError(f"training images are {train.shape}, the model takes {shape}; fit them first")
    return streamed, shape


def _train_epochs(run: "_FlowRun", train: Any, test: ImageSet | None, shape: tuple[int, int, int], streamed: bool, *,
                  ckpt: Path, out: Path, settings: dict[str, Any],
                  on_epoch: Callable[[dict[str, Any], Glow], None] | None) -> None:
    """The epochs from where ``run`` stands to ``config.epochs`` (or early stopping), each one
    checkpointed and logged."""
    config = run.config
    epoch0 = run.epoch
    x_all = _epoch_images(train, epoch0, shape, streamed)  # kept on CPU; batches move to the device
    n = x_all.shape[0]
    if epoch0 == 0 and run.step == 0:
        run.init_actnorm(x_all)
    test_x = test.images[: config.test_images] if test is not None else None
    for epoch in range(epoch0, config.epochs):
        if run.stalled():
            break
        t0 = time.perf_counter()
        if streamed and epoch != epoch0:
            x_all = _epoch_images(train, epoch, shape, streamed)
            if x_all.shape[0] != n:
                raise BadInputError(f"the stream gave {x_all.shape[0]} images in epoch {epoch + 1}, not {n}")
        entry = run.train_epoch(x_all, epoch, ckpt, t0)
        if test_x is not None:
            run.score_test(entry, test_x)
        run.log.append(entry)
        run.epoch = epoch + 1
        run.save_checkpoint(ckpt, settings)
        atomic_write_json(log_path(out), {"settings": settings, "log": run.log})
        if on_epoch is not None:
            on_epoch(entry, run.model)


def _epoch_images(train: Any, epoch: int, shape: tuple[int, int, int], streamed: bool) -> torch.Tensor:
    """The images of ``epoch``: the set itself, or the stream's set for that epoch (checked)."""
    if not streamed:
        return train.images
    part = train.epoch(epoch)
    part.require_unit_range("training a density model")
    if part.shape != shape:
        raise BadInputError(f"the stream gave images of shape {part.shape} in epoch {epoch + 1}; "
                            f"the model takes {shape}")
    return part.images


class _FlowRun:
    """One training run's moving parts: the model, its optimiser, the order and noise generators,
    and where the run stands (epoch, step, log, time, best held-out epoch), all of which a
    checkpoint holds so that a resumed run continues exactly."""

    def __init__(self, model_config: GlowConfig, config: FlowTrainConfig, *, device: str | torch.device,
                 init_state: dict[str, torch.Tensor] | None, progress: bool | None) -> None:
        self.config, self.device, self.progress = config, device, progress
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = Glow(model_config).to(device)
        if init_state is not None:
            try:
                self.model.load_state_dict(init_state, strict=True)
            except RuntimeError as e:
                raise BadInputError(f"the starting weights do not fit {model_config}: "
                                    f"{str(e).splitlines()[0]}") from None
        self.opt = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.g_order = torch.Generator().manual_seed(config.seed * 1000 + 1)
        self.g_noise = torch.Generator().manual_seed(config.seed * 1000 + 2)
        self.epoch, self.step, self.log, self.train_seconds = 0, 0, [], 0.0  # epochs done, Adam steps, ...
        self.best: dict[str, Any] = {"bpd": float("inf"), "epoch": 0, "state": None}

    def load(self, st: dict[str, Any]) -> None:
        """Continue from a checkpoint's state (see :meth:`save_checkpoint`)."""
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.g_order.set_state(st["g_order"])
        self.g_noise.set_state(st["g_noise"])
        self.epoch, self.step, self.log, self.train_seconds = st["epoch"], st["step"], st["log"], st["train_seconds"]
        if "best_state" in st:
            self.best = {"bpd": st["best_bpd"], "epoch": st["best_epoch"], "state": st["best_state"]}

    def init_actnorm(self, x_all: torch.Tensor) -> None:
        """The data-dependent ActNorm initialisation, on ``init_batch`` images in seeded order."""
        self.model.train()
        pick = torch.randperm(x_all.shape[0], generator=self.g_order)[: self.config.init_batch]
        with torch.no_grad():
            self.model.log_prob(preprocess(x_all[pick].to(self.device), dequantize="uniform", generator=self.g_noise))

    def stalled(self) -> bool:
        """``patience`` epochs have passed without a better held-out bpd."""
        p = self.config.patience
        return p > 0 and self.best["epoch"] > 0 and len(self.log) - self.best["epoch"] >= p

    def train_epoch(self, x_all: torch.Tensor, epoch: int, ckpt: Path, t0: float) -> dict[str, Any]:
        """One pass over ``x_all`` in seeded order, full batches only (the ragged last batch is
        dropped), under linear warm-up; returns the epoch's log entry (time counted from ``t0``)."""
        cfg, model = self.config, self.model
        n = x_all.shape[0]
        bs = min(cfg.batch_size, n)
        per_epoch = n // bs
        model.train()
        order = torch.randperm(n, generator=self.g_order)
        bar = progress_bar(per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", enabled=self.progress)
        total, count = 0.0, 0
        for b in range(per_epoch):
            x = x_all[order[b * bs : (b + 1) * bs]].to(self.device)
            loss = self._step(x, epoch, ckpt, bar)
            total += loss * x.shape[0]
            count += x.shape[0]
            bar.update(1)
            if b % 20 == 0:
                bar.set_postfix(bpd=f"{total / count:.3f}")
        bar.close()
        if not _finite_params(model):
            raise TrainingDiverged(
                f"training diverged: weights became NaN/inf in epoch {epoch + 1}; the last good checkpoint is kept "
                f"at {ckpt}; lower --lr and run again with --resume"
            )
        self.train_seconds += time.perf_counter() - t0
        return {"epoch": epoch + 1, "step": self.step, "train_bpd": total / max(count, 1),
                "seconds": round(self.train_seconds, 1)}

    def _step(self, x: torch.Tensor, epoch: int, ckpt: Path, bar: Any) -> float:
        """One Adam step on a batch; returns its mean bpd. A non-finite loss stops the run."""
        cfg = self.config
        lr = cfg.lr * min(1.0, (self.step + 1) / max(1, cfg.warmup_steps))
        for grp in self.opt.param_groups:
            grp["lr"] = lr
        loss = bpd(self.model, x, dequantize="uniform", generator=self.g_noise).mean()
        if not torch.isfinite(loss):
            bar.close()
            raise TrainingDiverged(
                f"training diverged: loss is {loss.item()} at epoch {epoch + 1}, step {self.step}; the last good "
                f"checkpoint ({'epoch ' + str(epoch) if ckpt.exists() else 'none yet'}) is kept at {ckpt}; "
                "lower --lr or raise --warmup and run again with --resume"
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.step += 1
        return loss.item()

    def score_test(self, entry: dict[str, Any], test_x: torch.Tensor) -> None:
        """Add the held-out bpd to the epoch's entry; keep the weights when it is the best so far."""
        entry["test_bpd"] = float(score_bpd(self.model, test_x.to(self.device)).mean())
        if entry["test_bpd"] < self.best["bpd"] - MIN_GAIN:
            self.best = {"bpd": entry["test_bpd"], "epoch": entry["epoch"],
                         "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}

    def save_checkpoint(self, ckpt: Path, settings: dict[str, Any]) -> None:
        """Everything :meth:`load` needs to continue from here, written atomically."""
        extra = ({"best_state": self.best["state"], "best_bpd": self.best["bpd"], "best_epoch": self.best["epoch"]}
                 if self.best["state"] is not None else {})
        save_state(ckpt, {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                          "g_order": self.g_order.get_state(), "g_noise": self.g_noise.get_state(), "epoch": self.epoch,
                          "step": self.step, "log": self.log, "settings": settings,
                          "train_seconds": self.train_seconds, **extra})


def _start_or_resume(run: _FlowRun, ckpt: Path, out: Path, settings: dict[str, Any], *, resume: bool,
                     restart: bool) -> None:
    """Load the checkpoint to resume from, or make sure a fresh run mistakes nothing for its own:
    an interrupted run's checkpoint is never discarded silently (``restart`` deletes it)."""
    if resume and ckpt.exists():
        st = load_state(ckpt)
        if _comparable(st["settings"]) != _comparable(json.loads(json.dumps(settings))):
            raise BadInputError(
                f"{ckpt} was written with other settings; resume with the same options or remove it "
                f"(checkpoint: {st['settings']}, now: {settings})"
            )
        run.load(st)
    elif not resume and ckpt.exists():
        if not restart:
            raise BadInputError(f"{ckpt} holds an interrupted run; pass --resume to continue it, or --force to "
                                "delete it and start over")
        ckpt.unlink()  # a fresh run must not be mistaken for the old one
    elif resume and out.exists():
        raise BadInputError(f"{out} is already finished (its checkpoint was removed when it finished); run without "
                            "--resume to train again, or pass --keep-checkpoint to be able to extend a run later")
    elif resume:
        raise NotFoundError(f"nothing to resume: no checkpoint {ckpt} and no finished {out}")


def _finish(run: _FlowRun, out: Path, train: Any, model_config: GlowConfig, settings: dict[str, Any], *,
            meta: dict[str, Any] | None, card: dict[str, Any] | None) -> None:
    """Write the model (the best held-out epoch's weights when there is one) and its card."""
    model, log, best = run.model, run.log, run.best
    stopped_early = len(log) < run.config.epochs
    if best["state"] is not None:  # the best held-out epoch's weights are the model
        model.load_state_dict(best["state"])
    kept = best["epoch"] if best["state"] is not None else len(log)
    final = {"trained_on": train.name, "epochs": len(log), "kept_epoch": kept, "stopped_early": stopped_early,
             "train_seconds": round(run.train_seconds, 1),
             "test_bpd": best["bpd"] if best["state"] is not None else (log[-1].get("test_bpd") if log else None),
             "unit": "bits per model dimension", "dequantize": "bound", "log": log, "settings": settings,
             **(meta or {})}
    save_flow(out, model, meta=final)
    full_card = {**(card or {}), "file": Path(out).name, "model": model_config.to_dict(),
                 "n_params": sum(p.numel() for p in model.parameters()), "training_images": len(train),
                 "trained_on": (card or {}).get("trained_on", train.name), "epochs_run": len(log),
                 "kept_epoch": kept, "stopped_early": stopped_early, "patience": run.config.patience,
                 "train_seconds": round(run.train_seconds, 1), "test_bpd": final["test_bpd"],
                 "unit": "bits per model dimension", "dequantize": "uniform-dequantisation bound",
                 "settings": settings["train"], "log": log}
    atomic_write_json(card_path(out), full_card)
