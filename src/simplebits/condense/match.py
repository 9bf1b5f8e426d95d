"""Gradient-matching distances and the engine that computes per-class network gradients.

Distances (REFERENCE.md §3), between lists of per-parameter gradients of the real and the
synthetic batch of one class:

``layerwise`` (DC's default): each weight gradient reshaped to (out_channels, -1); the sum over
    rows of ``1 - cos``; 1-D parameters (biases, norm affine) contribute 0.
``mse``: squared distance of the flattened concatenations (IDC).
``cos``: ``1 - cos`` of the flattened concatenations.
``neg-product``: ``-<g_real, g_syn>`` of the concatenations (paper S11).

Speed. The reference computes each class's real gradient as one 256-image forward/backward of a
contiguous tensor in eager mode. :class:`GradientEngine` computes the same gradient (the mean loss
is a sum of per-image losses, so pieces can be summed) in cache-sized pieces: eagerly in the
contiguous layout and pieces of :func:`simplebits.train.threads.step_pieces` (16384 pixels: 20 images
of 28x28; on a 2-core CPU 1.3x faster per real image than 32 channels-last images), or through
``torch.compile`` (fused norm/activation/pool kernels) in 32-image channels-last pieces.
The synthetic side keeps eager autograd with ``create_graph`` (compiled graphs are not twice
differentiable). ``benchmarks/condense_speed.py`` measures both against a one-class-at-a-time
eager loop and checks the loss values agree.

Classes side by side (:meth:`GradientEngine.real_many`, :meth:`GradientEngine.embed_many`). On a
CPU with T intra-op threads the classes' real batches are spread over T worker threads, each
running its classes on **one** intra-op thread: no OpenMP barrier after every op of a small
piece, and no core waits for another. Measured on this 2-core machine (the real side of a DC
iteration at paper settings, the two ways interleaved in one process, medians of 5-6): **1.26-1.37x**
faster in eager mode; compiled, 0.97-1.18x (within this machine's run-to-run noise), so compiled
engines keep one class at a time unless ``class_threads`` is given. Each class's real gradient is
computed on one thread whichever worker runs it, so it has the same bits for any T >= 2 and equals
:meth:`GradientEngine.real` on one thread (tested). ``SIMPLEBITS_THREADS`` and the small-work rule
of :mod:`simplebits.train.threads` decide T; off the CPU the classes run one after another.
"""

from __future__ import annotations

import contextlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnknownNameError
from ..runtime import autocast_to, resolve_precision
from ..train.threads import balanced_pieces, step_pieces, threads_for

__all__ = ["DISTANCES", "distance", "matched_parameters", "GradientEngine"]

DISTANCES = ("layerwise", "mse", "cos", "neg-product")
#: real images per piece when the real-batch network is compiled (channels-last; condense_speed.json)
COMPILED_CHUNK = 32
_EPS = 1e-6


def _layerwise(gr: Sequence[torch.Tensor], gs: Sequence[torch.Tensor]) -> torch.Tensor:
    total = gs[0].new_zeros(())
    for a, b in zip(gr, gs):
        if a.dim() < 2:
            continue
        a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        cos = (a2 * b2).sum(-1) / (a2.norm(dim=-1) * b2.norm(dim=-1) + _EPS)
        total = total + (1.0 - cos).sum()
    return total


def distance(gr: Sequence[torch.Tensor], gs: Sequence[torch.Tensor], kind: str = "layerwise") -> torch.Tensor:
    """Distance between two gradient lists (same parameters, same order); differentiable in ``gs``."""
    if kind == "layerwise":
        return _layerwise(gr, gs)
    if kind not in DISTANCES:
        raise UnknownNameError("match distance", kind, DISTANCES)
    a = torch.cat([g.reshape(-1) for g in gr])
    b = torch.cat([g.reshape(-1) for g in gs])
    if kind == "mse":
        return ((a - b) ** 2).sum()
    if kind == "cos":
        return 1.0 - (a * b).sum() / (a.norm() * b.norm() + _EPS)
    return -(a * b).sum()  # neg-product


def matched_parameters(model: nn.Module, which: str = "all", kind: str = "layerwise") -> list[nn.Parameter]:
    """The parameters whose gradients are matched.

    ``all``: every trainable parameter (DC); with the layerwise distance the 1-D ones are left
    out, since they contribute 0 (this saves their double backward, not a change of the loss).
    ``conv``: the weights of the Conv2d layers only (IDC).
    """
    if which == "conv":
        return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    ps = [p for p in model.parameters() if p.requires_grad]
    if kind == "layerwise":
        ps = [p for p in ps if p.dim() >= 2]
    return ps


class GradientEngine:
    """Per-class gradients of the cross-entropy of one network, for matching.

    ``model`` is used in place (a runner re-initialises its weights each outer iteration, so a
    compiled graph is built once per input shape and reused).
    """

    def __init__(self, model: nn.Module, params: Sequence[nn.Parameter], *, chunk: int = 0,
                 compile: bool = False, class_threads: int | None = None, precision: str = "fp32") -> None:
        #: memory layout of the real pieces: channels-last feeds the compiled kernels, eager
        #: convolutions on small pieces run faster contiguous
        self.layout = torch.channels_last if compile else torch.contiguous_format
        self.model = model.to(memory_format=self.layout)
        self.params = list(params)
        self.chunk = int(chunk) if chunk else (COMPILED_CHUNK if compile else 0)
        self._fast: Callable[[torch.Tensor], torch.Tensor] = self.model
        self._fast_embed: Callable[[torch.Tensor], torch.Tensor] | None = getattr(model, "embed", None)
        self.compiled = False
        #: worker threads for several classes at once (None: see :meth:`workers`)
        self.class_threads = class_threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._warm: set[str] = set()  # the compiled functions already called once
        device = self.params[0].device if self.params else torch.device("cpu")
        #: the real side's autocast dtype (None: float32); the synthetic side always runs in float32
        self.real_dtype = resolve_precision(precision, device)
        if compile:
            try:
                # kernels read the thread count when they run (not when compiled), so one compiled
                # graph serves the main thread and the one-thread class workers alike
                opts = {"cpp.dynamic_threads": True}
                self._fast = torch.compile(self.model, dynamic=False, options=opts)
                if self._fast_embed is not None:
                    self._fast_embed = torch.compile(model.embed, dynamic=False, options=opts)
                self.compiled = True
            except Exception as e:  # noqa: BLE001 - no compiler: same results, eager speed
                warnings.warn(f"torch.compile unavailable ({e}); condensing in eager mode", stacklevel=2)

    def pieces(self, n: int, hw: tuple[int, int] = (32, 32)) -> list[tuple[int, int]]:
        """``[(start, stop), ...]`` over ``n`` real images of size ``hw``: ``chunk`` images at most,
        or (``chunk`` 0) the training loop's cache-sized pieces."""
        if not self.chunk:
            return step_pieces(n, hw, self.params[0].device if self.params else "cpu")
        return balanced_pieces(n, self.chunk)

    def _call_fast(self, fn_name: str, x: torch.Tensor) -> torch.Tensor:
        fn = self._fast if fn_name == "forward" else self._fast_embed
        try:
            return fn(x)
        except Exception as e:  # noqa: BLE001 - e.g. no C++ compiler for inductor
            if not self.compiled:
                raise
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); continuing in eager mode",
                          stacklevel=3)
            self.compiled = False
            self._fast, self._fast_embed = self.model, getattr(self.model, "embed", None)
            return self._call_fast(fn_name, x)

    def _real_arithmetic(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the real side when :attr:`real_dtype` is set (weights and gradients stay
        float32; the convolutions run in bf16 with float32 accumulation), else nothing."""
        device = self.params[0].device if self.params else torch.device("cpu")
        return autocast_to(self.real_dtype, device.type)

    def real(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Gradient of the mean cross-entropy of (x, y) w.r.t. the matched parameters (detached)."""
        n = x.shape[0]
        grads: list[torch.Tensor] | None = None
        for a, b in self.pieces(n, tuple(x.shape[-2:])):
            xb = x[a:b].contiguous(memory_format=self.layout)
            with self._real_arithmetic():
                out = self._call_fast("forward", xb)
            loss = F.cross_entropy(out.float(), y[a:b], reduction="sum") / n
            g = torch.autograd.grad(loss, self.params)
            grads = list(g) if grads is None else [s + t for s, t in zip(grads, g)]
        assert grads is not None
        return [g.detach() for g in grads]

    def train_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for one of the network's own SGD steps between image updates (dc's inner loop,
        idc's steps on real batches), float32, differentiable w.r.t. the weights.

        These steps need no gradient w.r.t. the images, so they take the real side's path: the
        compiled forward (its backward compiled too) and the real side's precision. At dc IPC 10
        (450 steps of 100 images per iteration, most of an iteration's time) one step on a 2-core
        CPU with AVX512-BF16 went from 314 ms eager to 213 ms compiled in fp32, and from 287 to 88
        ms compiled in bf16 (``benchmarks/condense_inner.py``)."""
        with self._real_arithmetic():
            out = self._call_fast("forward", x.contiguous(memory_format=self.layout))
        return out.float()

    def synthetic(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """The same gradient for synthetic images, differentiable w.r.t. ``x`` (create_graph)."""
        loss = F.cross_entropy(self.model(x.contiguous(memory_format=self.layout)), y)
        return list(torch.autograd.grad(loss, self.params, create_graph=True))

    # ------------------------------------------------------------------ several classes
    def workers(self, batches: Sequence[torch.Tensor]) -> int:
        """Worker threads for these per-class batches: 1 (sequential, as many intra-op threads as
        torch has) off the CPU, for one class, when compiled (measured no faster side by side) or
        when the small-work rule gives one thread; ``class_threads`` overrides all but the device."""
        if not batches or (self.params and self.params[0].device.type != "cpu"):
            return 1
        if self.class_threads is not None:
            n = self.class_threads
        elif self.compiled:
            n = 1
        else:
            n = threads_for(batches[0].shape[0], tuple(batches[0].shape[-2:]))
        return max(1, min(int(n), len(batches)))

    def _spread(self, key: str, fn: Callable[[int], object], n: int, workers: int) -> list:
        """``[fn(0), ..., fn(n - 1)]``, on ``workers`` threads of one intra-op thread each."""
        if workers <= 1:
            return [fn(i) for i in range(n)]
        if self._pool is None or self._pool_size != workers:
            self.close()
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="simplebits-class",
                                            initializer=torch.set_num_threads, initargs=(1,))
            self._pool_size = workers

        out: list = [None] * n
        start = 0
        if self.compiled and key not in self._warm:  # compile once, on a worker, before the others call it
            out[0] = self._pool.submit(fn, 0).result()
            self._warm.add(key)
            start = 1

        def share(k: int) -> list:
            return [(i, fn(i)) for i in range(start + k, n, workers)]

        for f in [self._pool.submit(share, k) for k in range(workers)]:
            for i, r in f.result():
                out[i] = r
        return out

    def real_many(self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[list[torch.Tensor]]:
        """:meth:`real` of each ``(x, y)``, the classes side by side (see the module docstring)."""
        return self._spread("forward", lambda i: self.real(*batches[i]), len(batches),
                            self.workers([x for x, _ in batches]))

    def embed_many(self, batches: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """:meth:`embed_real` of each batch, the classes side by side."""
        return self._spread("embed", lambda i: self.embed_real(batches[i]), len(batches), self.workers(batches))

    def close(self) -> None:
        """Stop the worker threads (they also end with the process)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    @torch.no_grad()
    def embed_real(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of real images (no graph), in pieces."""
        with self._real_arithmetic():
            outs = [self._call_fast("embed", x[a:b].contiguous(memory_format=self.layout)).float()
                    for a, b in self.pieces(x.shape[0], tuple(x.shape[-2:]))]
        return torch.cat(outs)

    def embed_synthetic(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x.contiguous(memory_format=self.layout))
