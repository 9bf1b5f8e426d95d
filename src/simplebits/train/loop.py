"""The training loop shared by evaluation, pruning dynamics and the capabilities."""

from __future__ import annotations

import math
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageSet, flip_allowed
from ..errors import BadInputError, SimplebitsError
from ..progress import progress_bar
from .protocols import Protocol
from .seeding import derive_seed, generator
from .threads import couples_batch, step_pieces, work_threads

__all__ = ["train_classifier", "predict_logits", "accuracy", "progress_bar", "default_eval_batch"]

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
    """
    from ..augment import DSA, maybe_cutmix
    from .soft import soft_label_loss

    if protocol.soft and teacher is None:
        raise BadInputError(f"protocol {protocol.label()} trains on soft labels and needs a teacher network")
    if teacher is not None and not protocol.soft:
        raise BadInputError("a teacher was given but the protocol trains on hard labels; set labels to kl, sce or mse")

    device = next(model.parameters()).device
    x_all = train.images.to(device)
    y_all = train.labels.to(device)
    n = x_all.shape[0]
    bs = min(protocol.batch_size, n)
    per_epoch = max(1, -(-n // bs))
    total = protocol.total_steps(n)
    last = total if stop_epoch is None else min(total, int(stop_epoch) * per_epoch)
    g_order, g_aug = generator(seed, "order"), generator(seed, "augment")
    dsa = None
    if protocol.dsa:
        dsa = DSA(protocol.dsa, flip=flip_allowed(train))
    opt = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                          weight_decay=protocol.weight_decay)
    if teacher is not None:
        teacher.eval()
    model.train()
    forward: Callable[[torch.Tensor], torch.Tensor] = _compiled(model) if compile else model
    hw, coupled = tuple(x_all.shape[-2:]), couples_batch(model)
    step = 0
    with work_threads(bs, tuple(x_all.shape[-2:]), device), \
            torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(derive_seed(seed, "dropout"))  # dropout masks; global state restored after
        bar = progress_bar(last, desc=desc, enabled=progress)
        epoch = 0
        while step < last:
            order = torch.randperm(n, generator=g_order).to(device)
            for b in range(per_epoch):
                if step >= last:
                    break
                idx = order[b * bs : (b + 1) * bs]
                x, y = x_all[idx], y_all[idx]
                if dsa is not None:
                    x = dsa(x, generator=g_aug)
                for grp in opt.param_groups:
                    grp["lr"] = _lr_at(step, total, protocol)
                ya, yb, lam = y, y, 1.0
                if protocol.cutmix_prob > 0:
                    x, ya, yb, lam = maybe_cutmix(x, y, prob=protocol.cutmix_prob, generator=g_aug,
                                                  beta=protocol.cutmix_beta)
                opt.zero_grad(set_to_none=True)
                outs = []
                for a, b in step_pieces(x.shape[0], hw, device, coupled=coupled):
                    out, forward = _call(forward, model, x[a:b])
                    # the batch's mean loss, as a sum of per-piece sums over the whole batch's size
                    if teacher is not None:
                        with torch.no_grad():
                            t_out = teacher(x[a:b])
                        loss = soft_label_loss(out, t_out, protocol.labels, temperature=protocol.temperature,
                                               reduction="sum")
                    else:
                        loss = F.cross_entropy(out, ya[a:b], reduction="sum")
                        if lam != 1.0:
                            loss = lam * loss + (1 - lam) * F.cross_entropy(out, yb[a:b], reduction="sum")
                    (loss / x.shape[0]).backward()
                    outs.append(out.detach())
                if on_batch is not None:
                    on_batch(epoch, idx, outs[0] if len(outs) == 1 else torch.cat(outs))
                opt.step()
                step += 1
                bar.update(1)
            if on_epoch is not None:
                on_epoch(epoch, model)
            epoch += 1
        bar.close()
    model.eval()
    return model


def _compiled(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return torch.compile(model, dynamic=False)
    except Exception as e:  # noqa: BLE001 - no compiler support: the same training, eager speed
        warnings.warn(f"torch.compile unavailable ({e}); training in eager mode", stacklevel=3)
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
        warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); training in eager mode", stacklevel=3)
        return model(x), model


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
    """Logits for ``images`` (N, C, H, W) in eval mode, batched; returned on CPU.

    ``batch_size`` None: :func:`default_eval_batch` of the model's device. In eval mode no layer
    mixes the images of a batch, so the batch size changes speed, not predictions.
    """
    device = next(model.parameters()).device
    batch_size = batch_size or default_eval_batch(device)
    was_training = model.training
    model.eval()
    with work_threads(min(batch_size, max(1, images.shape[0])), tuple(images.shape[-2:]), device):
        outs = [model(images[i : i + batch_size].to(device)).float().cpu()
                for i in range(0, images.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(outs)


def accuracy(model: nn.Module, ds: ImageSet, *, batch_size: int | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``ds`` (fraction in [0, 1])."""
    pred = predict_logits(model, ds.images, batch_size=batch_size).argmax(1)
    return float((pred == ds.labels).float().mean())
