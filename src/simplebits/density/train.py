"""Training a Glow by maximum likelihood, with atomic per-epoch checkpoints and exact resume."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..data import ImageSet
from ..errors import BadInputError, DivergedError
from ..io import atomic_write_json, load_state, save_state
from ..progress import progress_bar
from .bpd import bpd, preprocess, score_bpd
from .glow import Glow, GlowConfig
from .store import save_flow

__all__ = ["FlowTrainConfig", "TrainingDiverged", "train_flow", "checkpoint_path", "log_path"]


class TrainingDiverged(DivergedError):
    """The loss or the weights became NaN/inf; the last good checkpoint is kept."""


@dataclass(frozen=True)
class FlowTrainConfig:
    epochs: int = 10  # passes over the training set
    batch_size: int = 64  # images per Adam step
    lr: float = 1e-3  # Adam learning rate after warm-up
    warmup_steps: int = 200  # linear warm-up from 0 (Glow uses warm-up to survive early steps)
    grad_clip: float = 50.0  # max global gradient norm (0: off)
    init_batch: int = 512  # images for the data-dependent ActNorm initialisation
    test_images: int = 2000  # test images scored (midpoint bpd) after each epoch
    seed: int = 0  # init, data order and dequantisation noise

    def validate(self) -> "FlowTrainConfig":
        for k in ("epochs", "batch_size", "init_batch"):
            if getattr(self, k) < 1:
                raise BadInputError(f"{k} must be >= 1, got {getattr(self, k)}")
        if not self.lr > 0:
            raise BadInputError(f"lr must be > 0, got {self.lr}")
        return self


def checkpoint_path(out: str | os.PathLike) -> Path:
    return Path(str(out) + ".ckpt")


def log_path(out: str | os.PathLike) -> Path:
    return Path(str(out) + ".log.json")


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings that must match to resume; ``epochs`` may grow (the schedule does not depend on it)."""
    return {**settings, "train": {k: v for k, v in settings["train"].items() if k != "epochs"}}


def _finite_params(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def train_flow(
    train: ImageSet,
    test: ImageSet | None,
    *,
    model_config: GlowConfig,
    config: FlowTrainConfig = FlowTrainConfig(),
    out: str | os.PathLike,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
    meta: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any], Glow], None] | None = None,
) -> tuple[Glow, list[dict[str, Any]]]:
    """Train a Glow on ``train`` (images already fitted to ``model_config``'s shape).

    Every epoch writes a checkpoint ``OUT.ckpt`` (model, optimiser, generator states, log)
    atomically and appends to ``OUT.log.json``; ``resume=True`` continues from the checkpoint
    and reaches the same weights as an uninterrupted run; resuming with a larger ``epochs``
    extends a finished run exactly as if it had been asked for from the start (warm-up, then a
    constant learning rate: nothing depends on the total). At the end the model is written to
    ``OUT`` (safetensors + JSON config). A non-finite loss stops training with
    :class:`TrainingDiverged`; the last good checkpoint stays.
    """
    config.validate()
    model_config.validate()
    train.require_unit_range("training a density model")
    c, s = model_config.channels, model_config.image_size
    if train.shape != (c, s, s):
        raise BadInputError(f"training images are {train.shape}, the model takes {(c, s, s)}; fit them first")
    out = Path(out)
    ckpt = checkpoint_path(out)
    settings = {"model": model_config.to_dict(), "train": asdict(config), "n_train": len(train)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Glow(model_config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    g_order = torch.Generator().manual_seed(config.seed * 1000 + 1)
    g_noise = torch.Generator().manual_seed(config.seed * 1000 + 2)
    epoch0, step, log = 0, 0, []
    train_seconds = 0.0
    if resume and ckpt.exists():
        st = load_state(ckpt)
        if _comparable(st["settings"]) != _comparable(json.loads(json.dumps(settings))):
            raise BadInputError(
                f"{ckpt} was written with other settings; resume with the same options or remove it "
                f"(checkpoint: {st['settings']}, now: {settings})"
            )
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        g_order.set_state(st["g_order"])
        g_noise.set_state(st["g_noise"])
        epoch0, step, log, train_seconds = st["epoch"], st["step"], st["log"], st["train_seconds"]
    elif not resume and ckpt.exists():
        ckpt.unlink()  # a fresh run must not be mistaken for the old one
    x_all = train.images  # kept on CPU; batches move to the device
    n = x_all.shape[0]
    bs = min(config.batch_size, n)
    per_epoch = n // bs  # drop the ragged last batch: every step sees a full batch
    if epoch0 == 0 and step == 0:
        model.train()
        init = x_all[torch.randperm(n, generator=g_order)[: config.init_batch]].to(device)
        with torch.no_grad():
            model.log_prob(preprocess(init, dequantize="uniform", generator=g_noise))  # data-dependent ActNorm initialisation
    test_x = test.images[: config.test_images] if test is not None else None
    for epoch in range(epoch0, config.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=g_order)
        bar = progress_bar(per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}", enabled=progress)
        total, count = 0.0, 0
        for b in range(per_epoch):
            x = x_all[order[b * bs : (b + 1) * bs]].to(device)
            lr = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
            for grp in opt.param_groups:
                grp["lr"] = lr
            loss = bpd(model, x, dequantize="uniform", generator=g_noise).mean()
            if not torch.isfinite(loss):
                bar.close()
                raise TrainingDiverged(
                    f"training diverged: loss is {loss.item()} at epoch {epoch + 1}, step {step}; the last good "
                    f"checkpoint ({'epoch ' + str(epoch) if ckpt.exists() else 'none yet'}) is kept at {ckpt}; "
                    "lower --lr or raise --warmup and run again with --resume"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            step += 1
            total += loss.item() * x.shape[0]
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
        train_seconds += time.perf_counter() - t0
        entry = {"epoch": epoch + 1, "step": step, "train_bpd": total / max(count, 1),
                 "seconds": round(train_seconds, 1)}
        if test_x is not None:
            entry["test_bpd"] = float(score_bpd(model, test_x.to(device), batch_size=500).mean())
        log.append(entry)
        save_state(ckpt, {"model": model.state_dict(), "opt": opt.state_dict(), "g_order": g_order.get_state(),
                          "g_noise": g_noise.get_state(), "epoch": epoch + 1, "step": step, "log": log,
                          "settings": settings, "train_seconds": train_seconds})
        atomic_write_json(log_path(out), {"settings": settings, "log": log})
        if on_epoch is not None:
            on_epoch(entry, model)
    final = {"trained_on": train.name, "epochs": config.epochs, "train_seconds": round(train_seconds, 1),
             "test_bpd": log[-1].get("test_bpd") if log else None, "log": log, "settings": settings,
             **(meta or {})}
    save_flow(out, model, meta=final)
    model.eval()
    return model, log
