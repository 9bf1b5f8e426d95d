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
from ..errors import BadInputError, DivergedError, NotFoundError
from ..io import atomic_write_json, load_state, save_state
from ..progress import progress_bar
from .bpd import bpd, preprocess, score_bpd
from .glow import Glow, GlowConfig
from .store import card_path, save_flow

__all__ = ["FlowTrainConfig", "TrainingDiverged", "train_flow", "checkpoint_path", "log_path", "card_path"]


#: A held-out bpd must fall by more than this (bits per dimension) to count as better for early stopping.
MIN_GAIN = 1e-4


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
    test_images: int = 2000  # held-out images scored (the dequantisation bound) after each epoch
    seed: int = 0  # init, data order and dequantisation noise
    patience: int = 3  # stop after this many epochs without a better held-out bpd (0: never); the best is kept

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
    device: str | torch.device = "cpu",
    progress: bool | None = None,
    meta: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any], Glow], None] | None = None,
    card: dict[str, Any] | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    keep_checkpoint: bool = False,
    restart: bool = False,
) -> tuple[Glow, list[dict[str, Any]]]:
    """Train a Glow on ``train`` (images already fitted to ``model_config``'s shape).

    Every epoch writes a checkpoint ``OUT.ckpt`` (model, optimiser, generator states, log)
    atomically and appends to ``OUT.log.json``; ``resume=True`` continues from the checkpoint
    and reaches the same weights as an uninterrupted run. Without ``resume`` an existing checkpoint
    (an interrupted run) is an error, never silently discarded; ``restart=True`` (CLI ``--force``)
    deletes it and starts over. When the run finishes its checkpoint is removed, unless
    ``keep_checkpoint=True``: then resuming with a larger ``epochs`` extends the finished run exactly
    as if it had been asked for from the start (warm-up, then a constant learning rate: nothing
    depends on the total). At the end the model is written to ``OUT`` (safetensors + JSON config).
    A non-finite loss stops training with :class:`TrainingDiverged`; the last good checkpoint stays.

    With a ``test`` set, each epoch scores it with the dequantisation bound (``test_bpd``, bits per
    model dimension). ``config.patience > 0`` stops after that many epochs without a lower test bpd;
    the weights written are those of the best epoch (kept in the checkpoint, so resuming reaches the
    same file). ``init_state`` starts from given weights (a state dict of the same config: continuing a
    shipped model); ``card`` (training data, the command, ...) is completed with the run's figures and
    written beside the weights as ``FILE.card.json`` (:func:`card_path`).

    ``train`` may also be a stream of fresh data per epoch (for example
    :class:`simplebits.data.photos.PatchStream`): anything with ``epoch(e) -> ImageSet``, ``shape``,
    ``name`` and ``len()`` (images per epoch). Epoch ``e`` trains on ``train.epoch(e)``; the stream must
    give the same set for the same ``e`` (so ``resume`` stays exact).
    """
    config.validate()
    model_config.validate()
    streamed = hasattr(train, "epoch") and not isinstance(train, ImageSet)
    if not streamed:
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
    if init_state is not None:
        try:
            model.load_state_dict(init_state, strict=True)
        except RuntimeError as e:
            raise BadInputError(f"the starting weights do not fit {model_config}: {str(e).splitlines()[0]}") from None
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    g_order = torch.Generator().manual_seed(config.seed * 1000 + 1)
    g_noise = torch.Generator().manual_seed(config.seed * 1000 + 2)
    epoch0, step, log = 0, 0, []
    train_seconds = 0.0
    best: dict[str, Any] = {"bpd": float("inf"), "epoch": 0, "state": None}
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
        if "best_state" in st:
            best = {"bpd": st["best_bpd"], "epoch": st["best_epoch"], "state": st["best_state"]}
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
    def epoch_images(e: int) -> torch.Tensor:
        if not streamed:
            return train.images
        part = train.epoch(e)
        part.require_unit_range("training a density model")
        if part.shape != (c, s, s):
            raise BadInputError(f"the stream gave images of shape {part.shape} in epoch {e + 1}; the model takes {(c, s, s)}")
        return part.images

    x_all = epoch_images(epoch0)  # kept on CPU; batches move to the device
    n = x_all.shape[0]
    bs = min(config.batch_size, n)
    per_epoch = n // bs  # drop the ragged last batch: every step sees a full batch
    if epoch0 == 0 and step == 0:
        model.train()
        init = x_all[torch.randperm(n, generator=g_order)[: config.init_batch]].to(device)
        with torch.no_grad():
            model.log_prob(preprocess(init, dequantize="uniform", generator=g_noise))  # data-dependent ActNorm initialisation
    test_x = test.images[: config.test_images] if test is not None else None

    def stalled() -> bool:
        return config.patience > 0 and best["epoch"] > 0 and len(log) - best["epoch"] >= config.patience

    for epoch in range(epoch0, config.epochs):
        if stalled():
            break
        t0 = time.perf_counter()
        if streamed and epoch != epoch0:
            x_all = epoch_images(epoch)
            if x_all.shape[0] != n:
                raise BadInputError(f"the stream gave {x_all.shape[0]} images in epoch {epoch + 1}, not {n}")
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
            entry["test_bpd"] = float(score_bpd(model, test_x.to(device)).mean())
            if entry["test_bpd"] < best["bpd"] - MIN_GAIN:
                best = {"bpd": entry["test_bpd"], "epoch": epoch + 1,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        log.append(entry)
        extra = ({"best_state": best["state"], "best_bpd": best["bpd"], "best_epoch": best["epoch"]}
                 if best["state"] is not None else {})
        save_state(ckpt, {"model": model.state_dict(), "opt": opt.state_dict(), "g_order": g_order.get_state(),
                          "g_noise": g_noise.get_state(), "epoch": epoch + 1, "step": step, "log": log,
                          "settings": settings, "train_seconds": train_seconds, **extra})
        atomic_write_json(log_path(out), {"settings": settings, "log": log})
        if on_epoch is not None:
            on_epoch(entry, model)
    stopped_early = len(log) < config.epochs
    if best["state"] is not None:  # the best held-out epoch's weights are the model
        model.load_state_dict(best["state"])
    kept = best["epoch"] if best["state"] is not None else len(log)
    final = {"trained_on": train.name, "epochs": len(log), "kept_epoch": kept, "stopped_early": stopped_early,
             "train_seconds": round(train_seconds, 1),
             "test_bpd": best["bpd"] if best["state"] is not None else (log[-1].get("test_bpd") if log else None),
             "unit": "bits per model dimension", "dequantize": "bound", "log": log, "settings": settings,
             **(meta or {})}
    save_flow(out, model, meta=final)
    full_card = {**(card or {}), "file": Path(out).name, "model": model_config.to_dict(),
                 "n_params": sum(p.numel() for p in model.parameters()), "training_images": len(train),
                 "trained_on": (card or {}).get("trained_on", train.name), "epochs_run": len(log),
                 "kept_epoch": kept, "stopped_early": stopped_early, "patience": config.patience,
                 "train_seconds": round(train_seconds, 1), "test_bpd": final["test_bpd"],
                 "unit": "bits per model dimension", "dequantize": "uniform-dequantisation bound",
                 "settings": settings["train"], "log": log}
    atomic_write_json(card_path(out), full_card)
    if not keep_checkpoint:
        ckpt.unlink(missing_ok=True)
    model.eval()
    return model, log
