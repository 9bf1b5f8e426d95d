"""The condensation methods: what one image update matches, and what the network does between.

Every method sees the same runner (:mod:`simplebits.condense.runner`): per outer iteration a
fresh network (``begin``), ``updates`` image updates, each preceded by ``match_loss`` and
followed by ``after_update``. All randomness (network init, real batches, augmentation) comes
from generators derived from ``(seed, iteration, update)``, so a resumed run draws exactly what
an uninterrupted one does.

dc / dsa   per-class gradient matching (Zhao & Bilen 2021/2021); between image updates the
           network takes ``inner_loop`` SGD steps on the synthetic set (none after the last
           update, as DC); dsa applies the same DSA transform (shared parameters, one op per
           class) to a class's real and synthetic batch.
idc        multi-formation (Kim et al. 2022): the decoded f*f crops are matched; ``mse`` on conv
           weights; between updates the network trains on real batches (``net_steps``).
dream      idc whose real batches are representative (Liu et al. 2023): k-means on the
           embeddings of a pool of the class's images (``4 * batch_real``, for CPU cost; DREAM
           clusters the whole class), the images nearest the ``batch_real`` centres, re-clustered
           every ``dream_every`` updates.
dm         distribution matching (Zhao & Bilen 2023): squared distance of mean embeddings of the
           real and synthetic batch of each class under a random network, summed over classes.

``match_loss`` returns the loss summed over classes (DC's convention, for which its lr is tuned).

Each method is declared here once, with :func:`~simplebits.condense.registry.register_method`
(its presets and evaluation protocol beside its class); the CLI, the pipeline, the docs and the
tests read the registry. docs/condense.md, "Adding a method", shows a new one.

Per-class independence (for torchrun). Every random draw of class ``c``'s matching (its real
batch, its DSA parameters, DREAM's k-means) comes from a generator of its own, derived from
``(seed, iteration, update, c)``; the network's own steps draw from the iteration's generator.
So a class's term depends only on the network and the class's images, and under torchrun each
rank computes the terms of its block of classes (:mod:`simplebits.train.distributed`); the runner
then exchanges the image gradients. ``unrolled`` couples all classes in one step, so every rank
computes it whole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..augment import DSA
from ..data import ImageSet, flip_allowed
from ..models import create_model
from ..train.kmeans import kmeans, nearest_to_centres
from ..train.distributed import world
from ..train.seeding import derive_seed, generator
from .config import DSA_STRATEGY, CondenseConfig, compiles
from .match import GradientEngine, distance, matched_parameters
from .registry import get_method, register_method
from .synth import SyntheticSet, class_indices

__all__ = ["Method", "DCMethod", "DSAMethod", "IDCMethod", "DREAMMethod", "DMMethod", "make_method"]


class Method:
    """Shared machinery: the persistent network, per-class index lists, DSA, real batches.

    A method declares what the config checks need to know as class attributes (its *traits*,
    read through the registry): ``multi_formation`` (it decodes factor x factor images from each
    stored one, so ``factor > 1`` is allowed), ``matches`` (``"gradients"``, or what it matches
    instead, which makes ``match`` meaningless) and ``net_momentum`` (of the network's SGD).
    """

    multi_formation = False
    matches = "gradients"
    net_momentum = 0.0

    def __init__(self, cfg: CondenseConfig, real: ImageSet, *, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.num_classes = real.num_classes
        self.x_real = real.images.to(device)
        self.y_real = real.labels.to(device)
        self.idx = [i.to(device) for i in class_indices(real)]
        self.model_kw = dict(channels=real.channels, num_classes=real.num_classes,
                             image_size=tuple(real.shape[1:]), **cfg.net_options)
        self.net = create_model(cfg.net, seed=derive_seed(cfg.seed, "net/template"), **self.model_kw).to(device)
        self.net.train()
        self.params = matched_parameters(self.net, cfg.match_params,
                                         cfg.match if cfg.match != "unrolled" else "all")
        self.engine = GradientEngine(self.net, self.params, chunk=cfg.chunk, compile=compiles(cfg),
                                     precision=cfg.precision)
        self.dsa = DSA(cfg.dsa, flip=flip_allowed(real)) if cfg.dsa else None
        self.updates = cfg.loops[0]
        self.g: torch.Generator = generator(cfg.seed, "iter/0")
        self.world = world(device)
        #: the classes whose terms this process computes (all of them unless under torchrun)
        self.partitioned = cfg.match != "unrolled"
        self.classes = list(self.world.mine(self.num_classes)) if self.partitioned else list(range(self.num_classes))

    # ------------------------------------------------------------------ per iteration
    def begin(self, it: int) -> None:
        """Fresh network weights (in place, so compiled graphs are reused) and this
        iteration's random stream."""
        fresh = create_model(self.cfg.net, seed=derive_seed(self.cfg.seed, f"net/{it}"), **self.model_kw)
        with torch.no_grad():
            for p, q in zip(self.net.parameters(), fresh.parameters()):
                p.copy_(q.to(self.device))
            for b, q in zip(self.net.buffers(), fresh.buffers()):
                b.copy_(q.to(self.device))
        self.net.train()
        self.g = generator(self.cfg.seed, f"iter/{it}")
        self.net_opt = torch.optim.SGD(self.net.parameters(), lr=self.cfg.lr_net, momentum=self.net_momentum)

    def class_generator(self, it: int, k: int, c: int) -> torch.Generator:
        """The random stream of class ``c``'s matching at update ``k`` of iteration ``it``."""
        return generator(self.cfg.seed, f"iter/{it}/update/{k}/class/{c}")

    def real_batch(self, c: int, n: int, g: torch.Generator | None = None) -> torch.Tensor:
        pool = self.idx[c]
        sel = torch.randperm(len(pool), generator=g or self.g)[: min(n, len(pool))].to(self.device)
        return self.x_real[pool[sel]]

    def augment_pair(self, xr: torch.Tensor, xs: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The same DSA transform (one op, shared parameters) on the real and synthetic batch."""
        if self.dsa is None:
            return xr, xs
        p = self.dsa.sample(1, generator=g, device=self.device, siamese=True)
        return self.dsa.apply(xr, p), self.dsa.apply(xs, p)

    def label(self, c: int, n: int) -> torch.Tensor:
        return torch.full((n,), c, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ matching
    def match_loss(self, synth: SyntheticSet, it: int, k: int) -> torch.Tensor:
        """The matching loss summed over all classes (single process)."""
        total, _ = self.match_terms(synth, it, k)
        return total

    def match_terms(self, synth: SyntheticSet, it: int, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(loss, values)``: the loss summed over :attr:`classes` (what this process
        differentiates) and the detached per-class values, shape ``(C,)``, zero for the classes of
        other ranks (``None`` when the loss is not a sum over classes, i.e. ``unrolled``)."""
        xs_all, ys_all = synth.decoded()
        if self.cfg.match == "unrolled":
            return self._unrolled(xs_all, ys_all), None
        total = xs_all.new_zeros(())
        values = torch.zeros(self.num_classes, dtype=xs_all.dtype, device=xs_all.device)
        # 1. each class's real batch and augmentation, from its own random stream
        pairs = [self.augment_pair(self.class_real_batch(c, k, g), xs_all[synth.class_slice(c)], g)
                 for c in self.classes for g in [self.class_generator(it, k, c)]]
        # 2. the real side of every class at once (the costly part; classes side by side on a CPU)
        reals = self.real_side([(c, xr) for c, (xr, _) in zip(self.classes, pairs)])
        # 3. the synthetic side and the distance, class by class
        for c, (_, xs), r in zip(self.classes, pairs, reals):
            term = self.class_term(c, xs, r)
            values[c] = term.detach()
            total = total + term
        return total, values

    def real_side(self, batches: list[tuple[int, torch.Tensor]]) -> list:
        """The real-data targets of the classes' matching: their network gradients."""
        return self.engine.real_many([(xr, self.label(c, len(xr))) for c, xr in batches])

    def class_term(self, c: int, xs: torch.Tensor, real: list[torch.Tensor]) -> torch.Tensor:
        """Class ``c``'s matching term from its (augmented) synthetic images and real target."""
        gs = self.engine.synthetic(xs, self.label(c, len(xs)))
        return distance(real, gs, self.cfg.match)

    def class_real_batch(self, c: int, k: int, g: torch.Generator) -> torch.Tensor:
        return self.real_batch(c, self.cfg.batch_real, g)

    def _unrolled(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Paper S11: cross-entropy of a real batch after one SGD step (lr_net) on the synthetic
        batch. The real side is computed in pieces against detached stepped weights; the returned
        value is that loss and its gradient w.r.t. the images is exact (chain rule through the step)."""
        names = [n for n, _ in self.net.named_parameters()]
        params = list(self.net.parameters())
        if self.dsa is not None:
            xs = self.dsa(xs, generator=self.g)
        loss_s = F.cross_entropy(self.net(xs.contiguous(memory_format=self.engine.layout)), ys.to(self.device))
        grads = torch.autograd.grad(loss_s, params, create_graph=True)
        stepped = [p - self.cfg.lr_net * g for p, g in zip(params, grads)]
        leaves = [s.detach().requires_grad_(True) for s in stepped]
        xr = torch.cat([self.real_batch(c, self.cfg.batch_real) for c in range(self.num_classes)])
        yr = torch.cat([self.label(c, min(self.cfg.batch_real, len(self.idx[c]))) for c in range(self.num_classes)])
        if self.dsa is not None:
            xr = self.dsa(xr, generator=self.g)
        value = xs.new_zeros(())
        g_real = [torch.zeros_like(p) for p in leaves]
        for a, b in self.engine.pieces(len(xr), tuple(xr.shape[-2:])):
            out = functional_call(self.net, dict(zip(names, leaves)), (xr[a:b].contiguous(memory_format=self.engine.layout),))
            part = F.cross_entropy(out, yr[a:b], reduction="sum") / len(xr)
            gp = torch.autograd.grad(part, leaves)
            g_real = [s + t for s, t in zip(g_real, gp)]
            value = value + part.detach()
        surrogate = sum((g * s).sum() for g, s in zip(g_real, stepped))
        return value + surrogate - surrogate.detach()

    def after_update(self, synth: SyntheticSet, it: int, k: int) -> None:
        """Network steps between image updates (none after the last one)."""
        if k == self.updates - 1:
            return
        inner = self.cfg.loops[1]
        if inner == 0:
            return
        xs, ys = synth.decoded()
        xs, ys = xs.detach(), ys.to(self.device)
        for _ in range(inner):
            sel = torch.randperm(len(xs), generator=self.g)[: self.cfg.batch_train].to(self.device)
            xb = xs[sel]
            if self.dsa is not None:
                xb = self.dsa(xb, generator=self.g)
            self._net_step(xb, ys[sel])

    def _net_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        loss = F.cross_entropy(self.engine.train_logits(x), y)
        self.net_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.net_opt.step()


# ---------------------------------------------------------------------------------------------- presets
# paper: the published settings (hours on a CPU, meant for a GPU; the real side in bf16 where the
# hardware has it: precision "auto"); quick: sized for a 2-core CPU, float32 (config.py's module docstring). With --lambda-sim, config._SIMPLEBITS is applied on top.
_BASE = dict(match="layerwise", match_params="all", init="real", param="pixels", optimizer="sgd", lr_img=0.1,
             mom_img=0.5)
# IDC: mse on conv weights, network trained on real data between updates, DSA, mix init, clamping
_IDC = dict(match="mse", match_params="conv", init="mix", factor=2, inner_loop=0, net_steps=1, batch_real=128,
            batch_train=128, dsa=DSA_STRATEGY, param="pixels", optimizer="adam", lr_img=0.01, compile="auto")
_IDC_PRESETS = {"quick": dict(_IDC, iterations=30, outer_loop=10),
                "paper": dict(_IDC, iterations=2000, outer_loop=100, precision="auto")}
_DM = dict(init="real", dsa=DSA_STRATEGY, param="pixels", optimizer="sgd", lr_img=1.0, mom_img=0.5, outer_loop=1,
           inner_loop=0, compile="auto")


@register_method("dc", eval_protocol="dc", help="gradient matching", presets={
    "quick": dict(_BASE, iterations=150, batch_real=256, compile="auto"),
    "paper": dict(_BASE, iterations=1000, batch_real=256, init="noise", compile="auto", precision="auto")})
class DCMethod(Method):
    """DC (Zhao et al. 2021): per-class gradient matching, the shared machinery as it is."""


@register_method("dsa", eval_protocol="dsa", help="with Siamese augmentation", presets={
    "quick": dict(_BASE, iterations=150, batch_real=256, dsa=DSA_STRATEGY, compile="auto"),
    "paper": dict(_BASE, iterations=1000, batch_real=256, dsa=DSA_STRATEGY, compile="auto", precision="auto")})
class DSAMethod(Method):
    """DSA (Zhao & Bilen 2021): DC with the same augmentation on a class's real and synthetic batch
    (the ``dsa`` setting of its presets)."""


@register_method("idc", eval_protocol="idc", help="multi-formation", presets=_IDC_PRESETS)
class IDCMethod(Method):
    """Network trained on real batches between image updates (``net_steps`` each)."""

    multi_formation = True
    net_momentum = 0.5

    def after_update(self, synth: SyntheticSet, it: int, k: int) -> None:
        if k == self.updates - 1:
            return
        for _ in range(self.cfg.net_steps):
            n = self.cfg.batch_train
            sel = torch.randperm(len(self.x_real), generator=self.g)[:n].to(self.device)
            xb = self.x_real[sel]
            if self.dsa is not None:
                xb = self.dsa(xb, generator=self.g)
            self._net_step(xb, self.y_real[sel])


@register_method("dream", eval_protocol="idc", help="idc with k-means representative batches",
                 presets={k: dict(v) for k, v in _IDC_PRESETS.items()})
class DREAMMethod(IDCMethod):
    """IDC with representative real batches: images nearest the k-means centres of a class."""

    def begin(self, it: int) -> None:
        super().begin(it)
        self._reps: dict[int, torch.Tensor] = {}

    def class_real_batch(self, c: int, k: int, g: torch.Generator) -> torch.Tensor:
        if k % self.cfg.dream_every == 0 or c not in self._reps:
            pool = self.real_batch(c, 4 * self.cfg.batch_real, g)
            kk = min(self.cfg.batch_real, len(pool))
            emb = self.engine.embed_real(pool)
            centres, _ = kmeans(emb, kk, iters=10, generator=g)
            self._reps[c] = pool[nearest_to_centres(emb, centres)]
        return self._reps[c]


@register_method("dm", eval_protocol="dsa", help="distribution matching", presets={
    "quick": dict(_DM, iterations=600, batch_real=128), "paper": dict(_DM, iterations=20000, batch_real=256, precision="auto")})
class DMMethod(Method):
    """Mean-embedding matching under a random network; one image update per network."""

    matches = "mean embeddings"

    def __init__(self, cfg: CondenseConfig, real: ImageSet, *, device: torch.device) -> None:
        super().__init__(cfg, real, device=device)
        self.updates = 1
        for p in self.net.parameters():
            p.requires_grad_(False)

    def real_side(self, batches: list[tuple[int, torch.Tensor]]) -> list:
        """The classes' mean real embeddings."""
        return [e.mean(0) for e in self.engine.embed_many([xr for _, xr in batches])]

    def class_term(self, c: int, xs: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        ms = self.engine.embed_synthetic(xs).mean(0)
        return ((real - ms) ** 2).sum()

    def after_update(self, synth: SyntheticSet, it: int, k: int) -> None:
        return


def make_method(cfg: CondenseConfig, real: ImageSet, *, device: torch.device) -> Method:
    """The registered method of ``cfg.method``, set up on ``real``."""
    return get_method(cfg.method).factory(cfg, real, device=device)
