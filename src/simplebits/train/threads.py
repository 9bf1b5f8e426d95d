"""How CPU work is sized: the threads a step gets, and the pieces a training step is cut into.

Why. Torch's CPU ops run on an OpenMP pool with one thread per core. On a small batch each op is
a few microseconds of work per thread, and the threads meet at a barrier after every op; when
another process holds a core (a browser, a second job), the thread that lost its core arrives
late at every barrier and the others spin waiting for it. A small evaluation that takes 6 s alone
took 22 s beside a two-thread torch job (``benchmarks/shared_cpu.py``). One thread has no barrier
to wait at, and on such small work it is as fast as two anyway.

The rule (deterministic in the work, never in the machine's load, so a seed gives the same bits
on an idle and on a busy machine):

* a step that holds fewer than :data:`SMALL_WORK` image pixels (batch x height x width; e.g. 10
  images of 8x8, or 50 of 8x8) runs on **one thread**;
* larger steps run on the threads torch already has (the number of cores, or what
  ``OMP_NUM_THREADS`` / ``torch.set_num_threads`` set);
* ``SIMPLEBITS_THREADS=N`` (a positive integer) fixes the number for all work, whatever its size.

The number of threads changes floating-point summation order, hence the last bits of trained
weights: results are reproducible for a fixed rule and thread count, and a run with
``SIMPLEBITS_THREADS=1`` is a different (equally valid) path than the default.

Steps that keep two threads still wait at every op for a thread whose core is shared; what the
waiting thread does meanwhile is libgomp's spin count, which :mod:`simplebits._openmp` lowers to
1,000 when simplebits is imported before torch (a spinning thread no longer takes CPU from the
late one): the same bits, and a Fashion-MNIST IPC 1 evaluation 1.26-1.62x faster beside a busy
process (docs/evaluate.md).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import BadInputError

__all__ = ["SMALL_WORK", "ENV_VAR", "PIECE_PIXELS", "PIECE_ENV_VAR", "threads_for", "work_threads",
           "couples_batch", "step_pieces", "balanced_pieces"]

# Pixels (batch x H x W) under which a step runs on one thread. ConvNet-3 steps on an idle 2-core
# machine (benchmarks/results/shared_cpu.json, "rule"): two threads are 1.2x (8x8 x 10), 1.4-1.5x
# (16x16 x 10, 8x8 x 50) and 1.6-1.8x (28x28 x 10 and x 100) faster than one. Below the threshold
# the steps are milliseconds, so an evaluation's fixed costs hide the difference (digits IPC 1:
# 8.64 s with one thread, 8.73 s with two), while beside a busy process one thread is 1.6-1.9x faster.
SMALL_WORK = 4096
ENV_VAR = "SIMPLEBITS_THREADS"

# Image pixels (images x H x W) per forward/backward piece of a CPU training step. A ConvNet-3
# activation at width 128 is 512 KB per 32x32 image and layer; a 256-image step moves ~130 MB per
# layer through memory, a 16-image piece stays near the cache. Measured (benchmarks/train_pieces.py,
# results/train_pieces.json): a 256-image step of 28x28 or 32x32 images 1.4-1.8x faster in pieces of
# 16384 pixels than whole, 64 images of 28x28 1.4x; 8x8 steps are unchanged (one piece).
PIECE_PIXELS = 16384
PIECE_ENV_VAR = "SIMPLEBITS_PIECE_PIXELS"


def _env_int(name: str, least: int, what: str, example: int) -> int | None:
    """The integer in environment variable ``name`` (None when unset or empty); one clear error otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = least - 1
    if n < least:
        raise BadInputError(f"{name}={raw!r} is not {what}; unset it or set e.g. {name}={example}")
    return n


_WARNED_OVER: set[tuple[int, int]] = set()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it, else the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _env_threads() -> int | None:
    n = _env_int(ENV_VAR, 1, "a positive integer", 1)
    if n is None or n == 1:  # the common cases, on every step: no system call
        return n
    cores = usable_cores()
    if n > cores and (n, cores) not in _WARNED_OVER:
        # honoured as set (the number decides the bits), but said once: it is rarely what anyone wants
        _WARNED_OVER.add((n, cores))
        import warnings

        warnings.warn(f"{ENV_VAR}={n} is more threads than the {cores} core(s) this process may use: threads that "
                      f"share a core wait for each other at every op, often several times slower; set {ENV_VAR}="
                      f"{cores} or less (docs/evaluate.md)", UserWarning, stacklevel=2)
    return n


def threads_for(batch: int, image_hw: tuple[int, int], device: torch.device | str = "cpu") -> int:
    """Intra-op threads for one step over ``batch`` images of ``image_hw`` on ``device``.

    Accelerators are unaffected (the current count is returned). See the module docstring.
    """
    current = torch.get_num_threads()
    env = _env_threads()
    if env is not None:
        return env
    if torch.device(device).type != "cpu":
        return current
    pixels = int(batch) * int(image_hw[0]) * int(image_hw[1])
    return 1 if pixels < SMALL_WORK else current


@contextmanager
def work_threads(batch: int, image_hw: tuple[int, int], device: torch.device | str = "cpu") -> Iterator[int]:
    """Run the body with :func:`threads_for`'s number of threads; the previous number is restored."""
    before = torch.get_num_threads()
    n = threads_for(batch, image_hw, device)
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _env_piece_pixels() -> int | None:
    return _env_int(PIECE_ENV_VAR, 0, "an integer >= 0 (0: whole steps)", PIECE_PIXELS)


def couples_batch(model: torch.nn.Module) -> bool:
    """True when a layer of ``model`` mixes the images of a training batch (batch norm): such a
    step cannot be cut into pieces without changing what it computes."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def step_pieces(batch: int, image_hw: tuple[int, int], device: torch.device | str = "cpu", *,
                coupled: bool = False) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: the pieces one training step over ``batch`` images is computed in.

    A step's loss is the mean of per-image losses, so its gradient is the sum of the pieces'
    gradients (each piece's summed loss divided by ``batch``): the same step up to float summation
    order. On a CPU, pieces hold at most :data:`PIECE_PIXELS` image pixels (at least one image), in
    sizes that differ by at most one; on accelerators, and for models with batch statistics
    (``coupled``), the step is one piece. ``SIMPLEBITS_PIECE_PIXELS=N`` sets the limit (0: one
    piece always). Like the thread rule, it depends only on the work, so a seed gives the same bits.
    """
    batch = int(batch)
    env = _env_piece_pixels()
    limit = PIECE_PIXELS if env is None else env
    if coupled or limit == 0 or torch.device(device).type != "cpu" or batch <= 1:
        return [(0, batch)]
    return balanced_pieces(batch, max(1, limit // max(1, int(image_hw[0]) * int(image_hw[1]))))


def balanced_pieces(n: int, most: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``n`` items in the fewest pieces of at most ``most``, whose
    sizes differ by at most one (so a compiled graph sees at most two shapes)."""
    k = max(1, -(-int(n) // max(1, int(most))))
    base, extra = divmod(int(n), k)
    out, start = [], 0
    for i in range(k):
        size = base + (1 if i < extra else 0)
        out.append((start, start + size))
        start += size
    return out
