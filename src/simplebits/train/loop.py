"""The one training loop (:func:`train_loop`, with hooks) that evaluation, pruning dynamics,
continual learning and SimpleBits' retraining all train through, and the classifier training on it."""

from __future__ import annotations

import math
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageSet, flip_allowed
from ..errors import BadInputError, SimplebitsError
from ..progress import progress_bar
from ..runtime import autocast_to, resolve_precision
from .protocols import Protocol
from .seeding import derive_seed, generator
from .threads import couples_batch, step_pieces, work_threads

__all__ = ["train_loop", "Batch", "train_classifier", "predict_logits", "accuracy", "progress_bar",
           "default_eval_batch"]

# Inference batch on a CPU: small enough that a batch's activations stay near the cache (ConvNet-3
# at width 128 holds 128x32x32 floats, 512 KB, per image and layer). Batch 1000 spends most of its
# time moving memory; 32 scores 10k Fashion-MNIST test images about 1.8x faster (ConvNet-3 and
# ResNet-10) with bitwise the same logits, and more steadily than 64 (benchmarks/test_pass.py,
# results/test_pass.json). Accelerators want large batches.
CPU_EVAL_BATCH = 32
ACCEL_EVAL_BATCH = 1000


def default_eval_batch(device: torch.device) -> int:
    """The inference batch size :func:`predict_logits` uses on ``device`` when none is given."""
    return CPU_EVAL_BATCH if device.type == "cpu" else ACCEL_EVAL_BATCH


def _lr_at(step: int, total: int, p: Protocol) -> float:
    """Step schedule: lr * gamma^(number of milestones passed)."""
    passed = sum(step >= int(math.floor(m * total)) for m in p.milestones)
    return p.lr * (p.gamma**passed)


@dataclass
class Batch:
    """One training step's data, made by :func:`train_loop`'s ``batch`` hook: the network's input
    ``x`` (augmented, on the model's device; the step's pieces are rows of it) and ``target``,
    whatever the ``loss`` hook scores the outputs against (labels, mixing weights, replay rows)."""

    x: torch.Tensor
    target: Any = None


BatchHook = Callable[[int, int, torch.Tensor], Batch]  # (epoch, step, sample indices) -> the step's Batch
LossHook = Callable[[torch.Tensor, Batch, slice], torch.Tensor]  # (outputs of a piece, batch, piece) -> its loss


def train_loop(
    model: nn.Module, *, n: int, batch_size: int, steps: int, optimizer: torch.optim.Optimizer,
    order: Callable[[int], torch.Tensor], batch: BatchHook, loss: LossHook, dropout_seed: int,
    lr: Callable[[int], float] | None = None, on_batch: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    on_epoch: Callable[[int, nn.Module], None] | None = None, image_hw: tuple[int, int] | None = None,
    compile: bool = False, progress: bool | None = None, desc: str = "train", autocast: torch.dtype | None = None,
) -> nn.Module:
    """The one training loop: ``steps`` optimiser steps over ``n`` samples in epochs of batches
    of ``batch_size``; trains ``model`` in place (eval mode after) and returns it.

    Each epoch cuts ``order(epoch)``, a permutation of the sample indices, into batches (the last
    epoch may stop part-way). A step sets the learning rate to ``lr(step)`` (None: the
    optimiser's own), makes its :class:`Batch` with ``batch(epoch, step, indices)`` and
    backpropagates ``loss(outputs, batch, piece)`` for each piece of the batch's rows; then
    ``on_batch(epoch, indices, outputs)`` sees the (detached) outputs and the optimiser steps.
    ``on_epoch(epoch, model)`` follows every epoch; it may evaluate the model (the next epoch
    starts in train mode). Dropout draws from the global generator seeded with ``dropout_seed``
    inside ``torch.random.fork_rng``: the caller's random state is untouched and a seed gives the
    same bits. ``image_hw``: the loop follows :mod:`simplebits.train.threads` for images of that
    size, its thread rule and its step pieces (the loss hook then returns each piece's share of
    the batch's loss); None: torch's threads, whole steps. ``compile``: as in :func:`train_classifier`.
    ``autocast``: a dtype (``torch.bfloat16``) the forward passes run in under ``torch.autocast``;
    weights, gradients and the optimiser stay float32, and the loss hook sees float32 outputs.
    """
    device = next(model.parameters()).device
    per_epoch = max(1, -(-n // batch_size))
    model.train()
    forward: Callable[[torch.Tensor], torch.Tensor] = _compiled(model) if compile else model
    cut = _piece_rule(model, image_hw, device)
    step = epoch = 0
    with work_threads(batch_size, image_hw, device) if image_hw is not None else nullcontext(), \
            torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(dropout_seed)  # dropout masks; global state restored after
        bar = progress_bar(steps, desc=desc, enabled=progress)
        while step < steps:
            model.train()
            perm = order(epoch)
            for b in range(min(per_epoch, steps - step)):
                idx = perm[b * batch_size : (b + 1) * batch_size]
                if lr is not None:
                    for grp in optimizer.param_groups:
                        grp["lr"] = lr(step)
                data = batch(epoch, step, idx)
                outs, forward = _backward(model, forward, optimizer, data, loss, cut(data.x.shape[0]), autocast)
                if on_batch is not None:
                    on_batch(epoch, idx, outs[0] if len(outs) == 1 else torch.cat(outs))
                optimizer.step()
                step += 1
                bar.update(1)
            if on_epoch is not None:
                on_epoch(epoch, model)
            epoch += 1
        bar.close()
    model.eval()
    return model


def _piece_rule(model: nn.Module, image_hw: tuple[int, int] | None,
                device: torch.device) -> Callable[[int], list[tuple[int, int]]]:
    """``cut(rows)``: the pieces a step over ``rows`` images is computed in (one without ``image_hw``)."""
    if image_hw is None:
        return lambda rows: [(0, rows)]
    coupled = couples_batch(model)
    return lambda rows: step_pieces(rows, image_hw, device, coupled=coupled)


def _backward(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer,
              data: Batch, loss: LossHook, pieces: list[tuple[int, int]], autocast: torch.dtype | None = None,
              ) -> tuple[list[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """One step's gradient, summed over its pieces; the pieces' detached outputs and the forward
    to go on with (the eager model once a compiled forward failed). ``autocast``: the forward's dtype."""
    optimizer.zero_grad(set_to_none=True)
    outs = []
    device_type = data.x.device.type
    for a, b in pieces:
        with autocast_to(autocast, device_type):
            out, forward = _call(forward, model, data.x[a:b])
        out = out.float()
        loss(out, data, slice(a, b)).backward()
        outs.append(out.detach())
    return outs, forward


def train_classifier(
    model: nn.Module,
    train: ImageSet,
    *,
    protocol: Protocol,
    seed: int,
    progress: bool | None = None,
    desc: str = "train",
    on_epoch: Callable[[int, nn.Module], None] | None = None,
    on_batch: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    stop_epoch: int | None = None,
    compile: bool = False,
    teacher: nn.Module | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``train`` under ``protocol``; returns the model.

    The device is the model's; the number of CPU threads follows :mod:`simplebits.train.threads`
    (one thread for small steps), and so do the pieces a CPU step is computed in (a step's
    gradient summed over cache-sized pieces: the same step up to float rounding, 1.4-1.8x faster
    at batch 256; never for batch-norm models). Data order, augmentation and dropout draw from separate
    streams derived from ``seed`` (see :mod:`simplebits.train.seeding`), so the same seed gives
    the same weights on CPU. ``on_epoch(epoch, model)`` is called after each epoch (used for
    training dynamics). ``on_batch(epoch, indices, logits)`` sees every training step's
    sample indices and (detached) outputs on the augmented batch. ``stop_epoch`` ends training
    after that many epochs while keeping the protocol's full learning-rate schedule, so a run
    stopped early is exactly the first epochs of the full run (pruning dynamics rely on it).
    ``compile`` runs the forward/backward through ``torch.compile`` (same training up to float
    rounding; a fresh network of the same shape reuses the compiled graph, so an evaluation
    compiles once; eager fallback with a warning when no compiler works).
    ``teacher``: the frozen network whose logits on each augmented training batch are the labels
    when ``protocol.labels`` is a soft-label loss (:mod:`simplebits.train.soft`); required then,
    refused with hard labels. CutMix mixes images only: the teacher labels the mixed image.
    ``protocol.precision`` (fp32; bf16; auto: bf16 where :func:`simplebits.runtime.bf16_native`)
    sets the forward passes' arithmetic (autocast; float32 weights, gradients and loss; the
    teacher stays float32). The steps are :func:`train_loop`'s.
    """
    if protocol.soft and teacher is None:
        raise BadInputError(f"protocol {protocol.label()} trains on soft labels and needs a teacher network")
    if teacher is not None and not protocol.soft:
        raise BadInputError("a teacher was given but the protocol trains on hard labels; set labels to kl, sce or mse")
    device = next(model.parameters()).device
    n = train.images.shape[0]
    bs = min(protocol.batch_size, n)
    total = protocol.total_steps(n)
    last = total if stop_epoch is None else min(total, int(stop_epoch) * max(1, -(-n // bs)))
    g_order = generator(seed, "order")
    batch, loss = _classifier_hooks(train, protocol, seed=seed, device=device, teacher=teacher)
    opt = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    if teacher is not None:
        teacher.eval()
    return train_loop(
        model, n=n, batch_size=bs, steps=last, optimizer=opt,
        order=lambda epoch: torch.randperm(n, generator=g_order).to(device), batch=batch, loss=loss,
        lr=lambda step: _lr_at(step, total, protocol), dropout_seed=derive_seed(seed, "dropout"),
        on_batch=on_batch, on_epoch=on_epoch, image_hw=tuple(train.images.shape[-2:]), compile=compile,
        progress=progress, desc=desc, autocast=resolve_precision(protocol.precision, device),
    )


def _classifier_hooks(train: ImageSet, protocol: Protocol, *, seed: int, device: torch.device,
                      teacher: nn.Module | None) -> tuple[BatchHook, LossHook]:
    """:func:`train_classifier`'s batch hook (DC's per-image augmentation, DSA, then CutMix, all from
    the seed's augmentation stream) and loss hook (cross-entropy on the mixed labels, or the teacher's soft labels)."""
    from ..augment import DSA, DCAugment, maybe_cutmix
    from .soft import soft_label_loss

    x_all, y_all = train.images.to(device), train.labels.to(device)
    g_aug = generator(seed, "augment")
    dsa = DSA(protocol.dsa, flip=flip_allowed(train)) if protocol.dsa else None
    dc_aug = DCAugment(protocol.dc_aug) if protocol.dc_aug else None

    def batch(epoch: int, step: int, idx: torch.Tensor) -> Batch:
        x, y = x_all[idx], y_all[idx]
        if dc_aug is not None:
            x = dc_aug(x, generator=g_aug)
        if dsa is not None:
            x = dsa(x, generator=g_aug)
        ya, yb, lam = y, y, 1.0
        if protocol.cutmix_prob > 0:
            x, ya, yb, lam = maybe_cutmix(x, y, prob=protocol.cutmix_prob, generator=g_aug, beta=protocol.cutmix_beta)
        return Batch(x, (ya, yb, lam))

    def loss(out: torch.Tensor, data: Batch, piece: slice) -> torch.Tensor:
        # the batch's mean loss, as a sum of per-piece sums over the whole batch's size
        if teacher is not None:
            with torch.no_grad():
                t_out = teacher(data.x[piece])
            total = soft_label_loss(out, t_out, protocol.labels, temperature=protocol.temperature, reduction="sum")
        else:
            ya, yb, lam = data.target
            total = F.cross_entropy(out, ya[piece], reduction="sum")
            if lam != 1.0:
                total = lam * total + (1 - lam) * F.cross_entropy(out, yb[piece], reduction="sum")
        return total / data.x.shape[0]

    return batch, loss


def _compiled(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return torch.compile(model, dynamic=False)
    except Exception as e:  # noqa: BLE001 - no compiler support: the same training, eager speed
        warnings.warn(f"torch.compile unavailable ({e}); training in eager mode", stacklevel=4)
        return model


def _call(forward: Callable[[torch.Tensor], torch.Tensor], model: nn.Module,
          x: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``forward(x)``; when a compiled forward fails (e.g. no C++ compiler for inductor), warn once
    and go on with the eager module (compilation fails before anything is computed)."""
    if forward is model:
        return model(x), forward
    try:
        return forward(x), forward
    except SimplebitsError:  # the model's own input checks: the same error eagerly
        raise
    except Exception as e:  # noqa: BLE001
        warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); training in eager mode", stacklevel=5)
        return model(x), model


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int | None = None,
                   autocast: torch.dtype | None = None) -> torch.Tensor:
    """Logits for ``images`` (N, C, H, W) in eval mode, batched; returned on CPU as float32.

    ``batch_size`` None: :func:`default_eval_batch` of the model's device. In eval mode no layer
    mixes the images of a batch, so the batch size changes speed, not predictions.
    ``autocast``: a dtype (``torch.bfloat16``) the forward passes run in (see :func:`train_loop`).
    """
    device = next(model.parameters()).device
    batch_size = batch_size or default_eval_batch(device)
    was_training = model.training
    model.eval()
    with work_threads(min(batch_size, max(1, images.shape[0])), tuple(images.shape[-2:]), device), \
            autocast_to(autocast, device.type):
        outs = [model(images[i : i + batch_size].to(device)).float().cpu()
                for i in range(0, images.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(outs)


def accuracy(model: nn.Module, ds: ImageSet, *, batch_size: int | None = None,
             autocast: torch.dtype | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``ds`` (fraction in [0, 1]); ``autocast`` as in :func:`predict_logits`."""
    pred = predict_logits(model, ds.images, batch_size=batch_size, autocast=autocast).argmax(1)
    return float((pred == ds.labels).float().mean())
