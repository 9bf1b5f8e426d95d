"""Joint training of a simplifier and a classifier through one unrolled classifier step
(paper §3, Eq. 4/5, S3/S4; REFERENCE.md §2).

Per batch ``(X, y)``:

1. ``X_sim = simplifier(X)``.
2. The same augmentation (DSA parameters drawn once) for ``X`` and ``X_sim``; every classifier
   forward of the step runs under the same dropout seed, so the masks match between passes.
3. One differentiable classifier update ``theta' = update(theta, grad_theta l(f_theta(X_sim), y))``
   (SGD, or AdamW with the classifier optimiser's current moments as `higher` does), through
   ``torch.func.functional_call``; the graph keeps ``grad_theta`` as a function of ``X_sim``.
4. Simplifier loss (S3): ``(10 l(f'(X)) + l(f(X_sim)) + l(f'(X_sim)) + lam * mean(gate * bpd(X_sim)))
   / (12 + lam)`` with the per-example gate ``clamp(0.1 - l(f'(x)), 0, 1) / 0.1`` (detached, S4).
   With ``relative`` (quick preset) each of the three classification terms is replaced per
   example by how much worse it is than with the original batch, ``relu(l_sim - l_orig_batch)``,
   so the simplified images are never rewarded for teaching better than the originals (the
   drift at lambda 0; see SimplifyConfig).
   bpd is computed only for examples whose gate is open: the others contribute exactly 0, so
   the loss and gradient are unchanged and the Glow pass shrinks to the open examples.
5. If ``X_sim``, the loss or a gradient is not finite, the step is skipped (both networks) and
   counted; ``max_skips`` skips in a row stop the run (:class:`~simplebits.errors.DivergedError`).
6. The classifier takes a normal AdamW step on the (detached) augmented ``X_sim``.

During the first ``warmup_epochs`` (quick preset: 1) only step 6 runs, on the untrained
simplifier's output (the identity): the simplifier starts learning from a classifier that knows
the task, not from an untrained one's noise (a deviation for short runs; see SimplifyConfig).

Two ablation switches (on in every preset): ``gated=False`` weighs every example's bpd fully;
``unrolled=False`` drops step 3 and trains the simplifier on ``l(f(X_sim))`` of the classifier as it
is (:meth:`JointTrainer._plain_step`).

``reinit_every=N`` (off in every preset) re-initialises the classifier and its optimiser at the
start of every N-th joint epoch after the first and trains it one pass on the simplifier's current
output alone (as the warm-up) before the joint steps resume: a classifier that never saw the
originals must learn the task from the simplified images, which is what a user's fresh classifier
does (the co-adaptation measured in docs/simplify.md, "Ablation").

``mode="mse"`` is the S8 baseline: the simplifier minimises ``mean (X_sim - X)^2 + lam * mean bpd``
and no classifier is involved.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..augment import DSA
from ..density import BpdTerm
from ..errors import DivergedError
from ..models import create_model
from ..train.seeding import derive_seed, generator
from .config import SimplifyConfig

__all__ = ["JointTrainer", "DensityTerm", "quantize", "RELATIVE_TOL"]

# relative classification terms: a simplified example within this many nats of the original's
# loss counts as no worse (float rounding between two computations of the same value is ~1e-7)
RELATIVE_TOL = 1e-5


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round images in [0, 1] to the 8-bit grid (what a saved image holds)."""
    return torch.round(x.clamp(0, 1) * 255.0) / 255.0


#: The simplifier's bpd term: the package's one (per example, straight-through 8-bit rounding by default,
#: ``score`` for reports); the old name stays importable from here.
DensityTerm = BpdTerm


def _all_finite(tensors) -> bool:
    return all(t is None or bool(torch.isfinite(t).all()) for t in tensors)


class JointTrainer:
    """The two networks, their optimisers and one joint step. Built from a validated config.

    Parameters
    ----------
    config : :class:`SimplifyConfig`.
    channels, image_hw, num_classes : the data's format.
    flip : whether augmentation may flip (False for digits).
    device : where the networks live.
    simplifier : optional pre-built simplifier (tests inject faulty ones); default the registry's
        ``unet-simplifier`` with ``config.simplifier_options``.
    """

    def __init__(self, config: SimplifyConfig, *, channels: int, image_hw: tuple[int, int], num_classes: int,
                 flip: bool = True, device: str | torch.device = "cpu", simplifier: nn.Module | None = None) -> None:
        self.cfg = cfg = config
        self.device = dev = torch.device(device)
        self.num_classes = num_classes
        self.density = BpdTerm(cfg.density, shape=(channels, *image_hw), device=dev)
        self.simplifier = simplifier if simplifier is not None else create_model(
            "unet-simplifier", channels=channels, image_size=image_hw, seed=derive_seed(cfg.seed, "simplifier-init"),
            **cfg.simplifier_options)
        self.simplifier.to(dev)
        named = list(self.simplifier.named_parameters())
        groups = [{"params": [p for n, p in named if n != "w"]}]
        if any(n == "w" for n, _ in named):  # the residual scale (REFERENCE.md §2), optionally faster
            groups.append({"params": [p for n, p in named if n == "w"], "lr": cfg.lr_sim * cfg.gate_lr_mult})
        self.opt_sim = torch.optim.AdamW(groups, lr=cfg.lr_sim, betas=cfg.betas_sim, weight_decay=cfg.wd_sim)
        self.classifier: nn.Module | None = None
        self.opt_clf: torch.optim.AdamW | None = None
        self._format = (channels, num_classes, tuple(image_hw))
        if cfg.mode == "simplebits":
            self._new_classifier("classifier-init")
        self.dsa = DSA(cfg.augment, flip=flip) if cfg.augment else None
        # f'(X) and f'(X_sim) can share one forward pass when every example's output depends on that
        # example alone and no dropout mask would differ between the two halves
        self.merge_passes = self.classifier is not None and not any(
            isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)) for m in self.classifier.modules())
        self.skips_in_a_row = 0

    def _new_classifier(self, purpose: str) -> None:
        """A freshly initialised classifier (seed derived from ``purpose``) and a new optimiser."""
        cfg = self.cfg
        channels, num_classes, image_hw = self._format
        self.classifier = create_model(cfg.classifier, channels=channels, num_classes=num_classes,
                                       image_size=image_hw, seed=derive_seed(cfg.seed, purpose),
                                       **cfg.classifier_options).to(self.device)
        self.opt_clf = torch.optim.AdamW(self.classifier.parameters(), lr=cfg.lr_clf, weight_decay=cfg.wd_clf)

    def reinit_due(self, epoch: int) -> bool:
        """Whether ``config.reinit_every`` re-initialises the classifier at the start of ``epoch``:
        every N-th joint epoch after the first (the first joint epoch keeps the warmed-up one)."""
        k, w = self.cfg.reinit_every, self.cfg.warmup_epochs
        return self.classifier is not None and k > 0 and epoch > w and (epoch - w) % k == 0

    # ------------------------------------------------------------------ state (checkpoints)
    def state(self) -> dict[str, Any]:
        s: dict[str, Any] = {"simplifier": {k: v.detach().cpu() for k, v in self.simplifier.state_dict().items()},
                             "opt_sim": self.opt_sim.state_dict(), "skips_in_a_row": self.skips_in_a_row}
        if self.classifier is not None:
            s["classifier"] = {k: v.detach().cpu() for k, v in self.classifier.state_dict().items()}
            s["opt_clf"] = self.opt_clf.state_dict()
        return s

    def load(self, s: dict[str, Any]) -> None:
        self.simplifier.load_state_dict(s["simplifier"])
        self.opt_sim.load_state_dict(s["opt_sim"])
        self.skips_in_a_row = int(s.get("skips_in_a_row", 0))
        if self.classifier is not None:
            self.classifier.load_state_dict(s["classifier"])
            self.opt_clf.load_state_dict(s["opt_clf"])

    # ------------------------------------------------------------------ the unrolled update
    def _inner_update(self, params: dict[str, torch.Tensor], grads: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """theta' as a differentiable function of the gradients (SGD or AdamW with current moments)."""
        cfg = self.cfg
        lr = cfg.inner_rate
        if cfg.inner == "sgd":
            return {k: p - lr * g for (k, p), g in zip(params.items(), grads)}
        group = self.opt_clf.param_groups[0]
        b1, b2 = group["betas"]
        eps, wd = group["eps"], group["weight_decay"]
        out = {}
        for (k, p), g in zip(params.items(), grads):
            st = self.opt_clf.state.get(p, {})
            t = float(st["step"]) + 1 if "step" in st else 1.0
            m = st.get("exp_avg", torch.zeros_like(p))
            v = st.get("exp_avg_sq", torch.zeros_like(p))
            m1 = b1 * m + (1 - b1) * g
            v1 = b2 * v + (1 - b2) * g * g
            m_hat = m1 / (1 - b1**t)
            v_hat = v1 / (1 - b2**t)
            # +1e-30 inside the root keeps d sqrt(v)/dv finite where a gradient entry is exactly 0
            out[k] = p * (1 - lr * wd) - lr * m_hat / (torch.sqrt(v_hat + 1e-30) + eps)
        return out

    def _forward(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor,
                 dropout_seed: int) -> torch.Tensor:
        devices = [] if self.device.type == "cpu" else [self.device]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(dropout_seed)  # same masks in every pass of this step
            return functional_call(self.classifier, {**params, **buffers}, (x,))

    def step(self, x: torch.Tensor, y: torch.Tensor, *, g_aug: torch.Generator, g_noise: torch.Generator,
             dropout_seed: int) -> dict[str, float] | None:
        """One joint step on a batch; returns the logged values, or ``None`` when skipped."""
        cfg, lam = self.cfg, float(self.cfg.lambda_sim)
        self.simplifier.train()
        x_sim = self.simplifier(x)
        if cfg.mode == "mse":
            return self._mse_step(x, x_sim, lam, g_noise)
        clf = self.classifier
        clf.train()
        xa, xsa = self._augment(x, x_sim, g_aug)
        params = dict(clf.named_parameters())
        buffers = dict(clf.named_buffers())
        if not cfg.unrolled:
            return self._plain_step(x_sim, xa, xsa, y, params, buffers, lam, g_noise, dropout_seed)
        logits_sim = self._forward(params, buffers, xsa, dropout_seed)
        l_sim = F.cross_entropy(logits_sim, y)
        grads = torch.autograd.grad(l_sim, tuple(params.values()), create_graph=True)
        out_orig, out_sim_after = self._after_step(params, grads, buffers, xa, xsa, dropout_seed)
        l_orig_each = F.cross_entropy(out_orig, y, reduction="none")
        if cfg.relative:
            l_sim_after_each = F.cross_entropy(out_sim_after, y, reduction="none")
            l_sim_after = l_sim_after_each.mean()
        else:
            l_sim_after = F.cross_entropy(out_sim_after, y)
        open_, bpd_term, bpd_mean = self._gated_bpd(x_sim, l_orig_each, lam, g_noise)
        if cfg.relative:
            t_orig, t_sim, t_sim_after = self._relative_terms(params, buffers, xa, y, dropout_seed, logits_sim,
                                                              l_orig_each, l_sim_after_each)
        else:
            t_orig, t_sim, t_sim_after = l_orig_each.mean(), l_sim, l_sim_after
        loss = (cfg.orig_weight * t_orig + t_sim + t_sim_after + lam * bpd_term) / (cfg.orig_weight + 2 + lam)
        if not self._update_both(x_sim, loss, params, grads):
            return self._skip()
        self.skips_in_a_row = 0
        return {"loss": float(loss.detach()), "l_orig_after": float(l_orig_each.detach().mean()),
                "l_sim": float(l_sim.detach()), "l_sim_after": float(l_sim_after.detach()),
                "gate_open": float(open_.float().mean()), "bpd_open": bpd_mean,
                "acc_sim": float((logits_sim.detach().argmax(1) == y).float().mean())}

    def _plain_step(self, x_sim: torch.Tensor, xa: torch.Tensor, xsa: torch.Tensor, y: torch.Tensor,
                    params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], lam: float,
                    g_noise: torch.Generator, dropout_seed: int) -> dict[str, float] | None:
        """``unrolled=False`` (an ablation): the classification term on the classifier as it is, no
        unrolled step; ``(l(f(X_sim)) + lam * gated bpd) / (1 + lam)``, the gate from ``l(f(x))``."""
        cfg = self.cfg
        logits_x, logits_sim = self._pair(params, buffers, xa, xsa, dropout_seed)
        logits_x = logits_x.detach()
        l_sim_each = F.cross_entropy(logits_sim, y, reduction="none")
        l_x_each = F.cross_entropy(logits_x, y, reduction="none")
        l_sim = l_sim_each.mean()
        t_sim = F.relu(l_sim_each - l_x_each - RELATIVE_TOL).mean() if cfg.relative else l_sim
        open_, bpd_term, bpd_mean = self._gated_bpd(x_sim, l_x_each, lam, g_noise)
        loss = (t_sim + lam * bpd_term) / (1 + lam)
        # the classifier's own step: the gradient of l(f(X_sim)) at the current weights (graph kept for the loss)
        grads = torch.autograd.grad(l_sim, tuple(params.values()), retain_graph=True)
        if not self._update_both(x_sim, loss, params, grads):
            return self._skip()
        self.skips_in_a_row = 0
        return {"loss": float(loss.detach()), "l_orig_after": float(l_x_each.mean()), "l_sim": float(l_sim.detach()),
                "gate_open": float(open_.float().mean()), "bpd_open": bpd_mean,
                "acc_sim": float((logits_sim.detach().argmax(1) == y).float().mean())}

    def _augment(self, x: torch.Tensor, x_sim: torch.Tensor,
                 g_aug: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The same augmentation (parameters drawn once) for the originals and the simplified batch."""
        if self.dsa is None:
            return x, x_sim
        prm = self.dsa.sample(x.shape[0], generator=g_aug, device=x.device)
        return self.dsa.apply(x, prm), self.dsa.apply(x_sim, prm)

    def _after_step(self, params: dict[str, torch.Tensor], grads: tuple[torch.Tensor, ...],
                    buffers: dict[str, torch.Tensor], xa: torch.Tensor, xsa: torch.Tensor,
                    dropout_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of f' (the classifier after the unrolled update) on the originals and on the
        simplified batch, differentiable in the simplified batch through the update."""
        return self._pair(self._inner_update(params, grads), buffers, xa, xsa, dropout_seed)

    def _pair(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], xa: torch.Tensor,
              xsa: torch.Tensor, dropout_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the classifier with ``params`` on the originals and on the simplified batch."""
        if self.merge_passes:  # per-example network: one batched pass gives both (same values)
            both = self._forward(params, buffers, torch.cat([xa, xsa]), dropout_seed)
            return both[: xa.shape[0]], both[xa.shape[0]:]
        return self._forward(params, buffers, xa, dropout_seed), self._forward(params, buffers, xsa, dropout_seed)

    def _gated_bpd(self, x_sim: torch.Tensor, l_orig_each: torch.Tensor, lam: float,
                   g_noise: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(which examples' gate is open, the gated bpd term averaged over the batch, the mean bpd
        of the open examples or NaN): bpd only where the gate is open, the others contribute 0."""
        cfg = self.cfg
        if cfg.gated:  # detached: the gate must not push loss up
            gate = ((cfg.bpd_gate - l_orig_each.detach()).clamp(0, 1) / cfg.bpd_gate)
        else:  # the no-gate ablation: every example's bpd counts fully
            gate = torch.ones_like(l_orig_each.detach())
        open_ = gate > 0
        if not (lam > 0 and bool(open_.any())):
            return open_, x_sim.new_zeros(()), float("nan")
        b = self.density(x_sim[open_], generator=g_noise, escape=cfg.escape_loss)
        return open_, (gate[open_] * b).sum() / x_sim.shape[0], float(b.detach().mean())

    def _relative_terms(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], xa: torch.Tensor,
                        y: torch.Tensor, dropout_seed: int, logits_sim: torch.Tensor, l_orig_each: torch.Tensor,
                        l_sim_after_each: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three classification terms of ``relative``: each counts only where the simplified
        batch does worse than the same losses had the batch not been simplified (theta'_X from a
        step on X, no graph needed)."""
        logits_x = self._forward(params, buffers, xa, dropout_seed)
        l_x_each = F.cross_entropy(logits_x, y, reduction="none")
        g_x = torch.autograd.grad(l_x_each.mean(), tuple(params.values()))
        with torch.no_grad():
            new_x = self._inner_update(params, g_x)
            l_ref_each = F.cross_entropy(self._forward(new_x, buffers, xa, dropout_seed), y, reduction="none")
        l_x_each = l_x_each.detach()
        # no gradient where the simplified example does as well as the original, up to float
        # rounding (``grads`` keeps a graph and ``g_x`` does not: their kernels round differently)
        tol = RELATIVE_TOL
        t_orig = F.relu(l_orig_each - l_ref_each - tol).mean()
        t_sim = F.relu(F.cross_entropy(logits_sim, y, reduction="none") - l_x_each - tol).mean()
        t_sim_after = F.relu(l_sim_after_each - l_ref_each - tol).mean()
        return t_orig, t_sim, t_sim_after

    def _update_both(self, x_sim: torch.Tensor, loss: torch.Tensor, params: dict[str, torch.Tensor],
                     grads: tuple[torch.Tensor, ...]) -> bool:
        """The simplifier's step on ``loss`` and the classifier's on the simplified batch; False,
        with neither taken, when the output, the loss or a gradient is not finite."""
        sim_params = [p for p in self.simplifier.parameters() if p.requires_grad]
        ok = _all_finite([x_sim.detach(), loss.detach()])
        g_sim = torch.autograd.grad(loss, sim_params, allow_unused=True) if ok else ()
        ok = ok and _all_finite(g_sim)
        if not ok:
            return False
        self.opt_sim.zero_grad(set_to_none=True)
        for p, g in zip(sim_params, g_sim):
            p.grad = None if g is None else g.detach()
        # The real classifier step on the simplified batch (simplifier frozen). Its gradient is that
        # of l(f(X_sim)) at the current weights on the same batch and dropout masks: ``grads``,
        # already computed for the unrolled step, so no second forward/backward is needed.
        if not _all_finite(grads):
            return False
        self.opt_clf.zero_grad(set_to_none=True)
        for p, g in zip(params.values(), grads):
            p.grad = g.detach()
        if self.cfg.clip_sim is not None:
            torch.nn.utils.clip_grad_norm_(sim_params, self.cfg.clip_sim)
        self.opt_sim.step()
        self.opt_clf.step()
        return True

    def warmup_step(self, x: torch.Tensor, y: torch.Tensor, *, g_aug: torch.Generator,
                    dropout_seed: int) -> dict[str, float] | None:
        """A classifier-only step on the simplifier's (frozen) output: the warm-up of
        ``config.warmup_epochs`` (see :class:`SimplifyConfig`). The simplifier does not learn."""
        clf = self.classifier
        with torch.no_grad():
            self.simplifier.train()
            x_sim = self.simplifier(x)
            if self.dsa is not None:
                x_sim = self.dsa.apply(x_sim, self.dsa.sample(x.shape[0], generator=g_aug, device=x.device))
        clf.train()
        devices = [] if self.device.type == "cpu" else [self.device]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(dropout_seed)
            logits = clf(x_sim)
        loss = F.cross_entropy(logits, y)
        if not bool(torch.isfinite(loss)):
            return self._skip()
        self.opt_clf.zero_grad(set_to_none=True)
        loss.backward()
        if not _all_finite(p.grad for p in clf.parameters()):
            self.opt_clf.zero_grad(set_to_none=True)
            return self._skip()
        self.opt_clf.step()
        self.skips_in_a_row = 0
        return {"l_sim": float(loss.detach()), "acc_sim": float((logits.detach().argmax(1) == y).float().mean())}

    def _mse_step(self, x: torch.Tensor, x_sim: torch.Tensor, lam: float, g_noise: torch.Generator) -> dict | None:
        mse = ((x_sim - x) ** 2).mean()
        b = (self.density(x_sim, generator=g_noise, escape=self.cfg.escape_loss).mean() if lam > 0
             else x_sim.new_zeros(()))
        loss = mse + lam * b
        if not _all_finite([x_sim.detach(), loss.detach()]):
            return self._skip()
        self.opt_sim.zero_grad(set_to_none=True)
        loss.backward()
        if not _all_finite(p.grad for p in self.simplifier.parameters()):
            return self._skip()
        if self.cfg.clip_sim is not None:
            torch.nn.utils.clip_grad_norm_(self.simplifier.parameters(), self.cfg.clip_sim)
        self.opt_sim.step()
        self.skips_in_a_row = 0
        return {"loss": float(loss.detach()), "mse": float(mse.detach()),
                "bpd_open": float(b.detach()) if lam > 0 else float("nan")}

    def _skip(self) -> None:
        self.opt_sim.zero_grad(set_to_none=True)
        self.skips_in_a_row += 1
        if self.skips_in_a_row >= self.cfg.max_skips:
            raise DivergedError(
                f"{self.skips_in_a_row} joint steps in a row had non-finite simplifier output, loss or gradients "
                f"(max_skips={self.cfg.max_skips}); lower --lr-sim or --lambda-sim, or check the data"
            )
        return None

    # ------------------------------------------------------------------ an epoch
    def epoch(self, images: torch.Tensor, labels: torch.Tensor, *, epoch: int,
              on_step: Callable[[], None] | None = None) -> dict[str, Any]:
        """One pass over ``images`` (N, C, H, W) / ``labels`` in seeded random order.

        Every random draw of epoch ``e`` comes from generators derived from ``(seed, e)``, so a
        run resumed at an epoch boundary continues exactly as an uninterrupted one.
        """
        cfg = self.cfg
        n = images.shape[0]
        bs = min(cfg.batch_size, n)
        g_order = generator(cfg.seed, f"order/{epoch}")
        g_aug = generator(cfg.seed, f"augment/{epoch}")
        g_noise = generator(cfg.seed, f"dequant/{epoch}")
        order = torch.randperm(n, generator=g_order)
        warm = self.classifier is not None and epoch < cfg.warmup_epochs
        reinit = self.reinit_due(epoch)
        rewarm: dict[str, float] = {}
        if reinit:  # seeded by the epoch, so a run resumed here re-initialises the same way
            self._new_classifier(f"classifier-init/{epoch}")
            rewarm = self._rewarm(images, labels, epoch=epoch)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        skipped = 0
        t0 = time.perf_counter()
        for b, idx in _batches(order, bs):
            x = images[idx].to(self.device)
            y = labels[idx].to(self.device)
            dropout_seed = derive_seed(cfg.seed, f"dropout/{epoch}/{b}") & 0x7FFFFFFF
            if warm:
                rec = self.warmup_step(x, y, g_aug=g_aug, dropout_seed=dropout_seed)
            else:
                rec = self.step(x, y, g_aug=g_aug, g_noise=g_noise, dropout_seed=dropout_seed)
            if rec is None:
                skipped += 1
            else:
                for k, v in rec.items():
                    if not math.isnan(v):
                        sums[k] = sums.get(k, 0.0) + v
                        counts[k] = counts.get(k, 0) + 1
            if on_step is not None:
                on_step()
        out: dict[str, Any] = {"epoch": epoch, "skipped_steps": skipped, "seconds": round(time.perf_counter() - t0, 3),
                               "warmup": warm, **({"reinit": True, **rewarm} if reinit else {})}
        out.update({k: sums[k] / counts[k] for k in sums})
        return out

    def _rewarm(self, images: torch.Tensor, labels: torch.Tensor, *, epoch: int) -> dict[str, float]:
        """A re-initialised classifier's first pass: classifier-only steps on the simplifier's current
        (frozen) output, as the warm-up, so the joint steps that follow start from a classifier that
        learnt the task from simplified images alone. Returns its mean loss and accuracy."""
        cfg = self.cfg
        n = images.shape[0]
        order = torch.randperm(n, generator=generator(cfg.seed, f"rewarm-order/{epoch}"))
        g_aug = generator(cfg.seed, f"rewarm-augment/{epoch}")
        loss = acc = 0.0
        done = 0
        for b, idx in _batches(order, min(cfg.batch_size, n)):
            rec = self.warmup_step(images[idx].to(self.device), labels[idx].to(self.device), g_aug=g_aug,
                                   dropout_seed=derive_seed(cfg.seed, f"rewarm-dropout/{epoch}/{b}") & 0x7FFFFFFF)
            if rec is not None:
                loss, acc, done = loss + rec["l_sim"], acc + rec["acc_sim"], done + 1
        return {"rewarm_l_sim": loss / max(1, done), "rewarm_acc_sim": acc / max(1, done)}

    @torch.no_grad()
    def simplify_images(self, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """The simplifier's output for ``images``, on the 8-bit grid, CPU (eval mode)."""
        return apply_simplifier(self.simplifier, images, batch_size=batch_size)


def _batches(order: torch.Tensor, bs: int):
    """(batch number, indices) of one pass over ``order`` in batches of ``bs``; a last batch of one
    image is left out (its cross-entropy statistics are meaningless) unless it is the whole set."""
    n = order.numel()
    for b in range(-(-n // bs)):
        idx = order[b * bs:(b + 1) * bs]
        if idx.numel() >= 2 or n < 2:
            yield b, idx


@torch.no_grad()
def apply_simplifier(simplifier: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Run a simplifier over many images in eval mode; 8-bit grid, CPU float32."""
    was = simplifier.training
    simplifier.eval()
    dev = next(simplifier.parameters()).device
    out = [quantize(simplifier(images[i:i + batch_size].to(dev))).cpu() for i in range(0, images.shape[0], batch_size)]
    simplifier.train(was)
    return torch.cat(out) if out else images.clone()
