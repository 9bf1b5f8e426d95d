"""Running under ``torchrun``: which rank this is, which classes or seeds are its, and the
exchanges that make a multi-process run equal a single-process one.

simplebits starts no processes of its own: ``torchrun --nproc-per-node N simplebits condense ...``
starts N copies of the command with ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` set; :func:`world` sees them and joins the default process group once (NCCL
when the device is CUDA, gloo on CPU). Without those variables (or with ``WORLD_SIZE=1``) it
returns a one-process world and every exchange is a no-op, so library code calls the same
functions either way.

Work is split into contiguous blocks (:meth:`World.blocks`): with ``n`` items and ``W`` ranks,
the first ``n mod W`` ranks own ``n//W + 1`` of them and the rest ``n//W``, in order. With fewer
items than ranks the blocks of ranks ``n..W-1`` are empty: those ranks stay idle but still take
part in every exchange (documented in docs/scale-out.md). Exchanges copy exact bytes (a
broadcast of each owner's block), never sums, so a gathered tensor is bit for bit what its
owners computed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..errors import BadInputError

__all__ = ["World", "world", "block_bounds"]


def block_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each rank's contiguous block of ``n`` items over ``size`` ranks; block
    sizes differ by at most one, the larger ones first (so with ``n < size`` ranks ``n..`` idle)."""
    base, extra = divmod(n, size)
    out, start = [], 0
    for r in range(size):
        end = start + base + (1 if r < extra else 0)
        out.append((start, end))
        start = end
    return out


@dataclass(frozen=True)
class World:
    """The process group as simplebits uses it (``size == 1``: a plain single process)."""

    rank: int = 0
    size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def blocks(self, n: int) -> list[tuple[int, int]]:
        return block_bounds(n, self.size)

    def mine(self, n: int) -> range:
        """This rank's items among ``n``: a contiguous, possibly empty, range."""
        a, b = self.blocks(n)[self.rank]
        return range(a, b)

    def idle_note(self, n: int, what: str) -> str | None:
        """A one-line note when some ranks get no ``what`` (``n`` < ranks), else ``None``."""
        if n >= self.size:
            return None
        return (f"{self.size} ranks for {n} {what}: ranks {n}..{self.size - 1} own none and stay idle "
                f"(they still join every exchange); use --nproc-per-node {n} or fewer to use every process")

    def broadcast_blocks(self, t: torch.Tensor, bounds: Sequence[tuple[int, int]]) -> None:
        """In place: rows ``[a, b)`` of ``t`` (dim 0) take the values of the rank that owns them."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for r, (a, b) in enumerate(bounds):
            if b > a:
                piece = t[a:b]
                if piece.is_contiguous():
                    dist.broadcast(piece, src=r)
                else:  # pragma: no cover - our tensors are contiguous
                    buf = piece.contiguous()
                    dist.broadcast(buf, src=r)
                    piece.copy_(buf)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (a small JSON-like value), in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def agree(self, ok: bool, message: str | None) -> None:
        """Raise the same error on every rank when any rank failed a check (no rank left waiting)."""
        if not self.distributed:
            return
        got = self.gather_objects(None if ok else (message or "failed on another rank"))
        bad = [m for m in got if m is not None]
        if bad:
            raise BadInputError(bad[0])


_WORLD: World | None = None


def world(device: str | torch.device | None = None) -> World:
    """The current world; joins the process group on first use when run under torchrun.

    ``device`` chooses the backend the first time (cuda: NCCL, else gloo; override with
    ``SIMPLEBITS_DIST_BACKEND``). On CUDA each rank uses ``cuda:LOCAL_RANK``.
    """
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        _WORLD = World()
        return _WORLD
    import torch.distributed as dist

    if not dist.is_available():
        raise BadInputError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run without torchrun")
    if not dist.is_initialized():
        dev = torch.device(device) if device is not None else torch.device("cpu")
        backend = os.environ.get("SIMPLEBITS_DIST_BACKEND") or ("nccl" if dev.type == "cuda" else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        for var in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
            if var not in os.environ:
                raise BadInputError(f"WORLD_SIZE={size} is set but {var} is not: start the command with "
                                    "torchrun --nproc-per-node N simplebits ... (it sets all of them)")
        dist.init_process_group(backend=backend)
    _WORLD = World(rank=dist.get_rank(), size=dist.get_world_size(), backend=dist.get_backend())
    return _WORLD


def local_device(device: str | torch.device) -> torch.device:
    """``cuda`` under torchrun means this rank's GPU (``cuda:LOCAL_RANK``)."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return dev


def warn_once(w: World, message: str | None) -> None:
    """A one-line note on stderr, printed by rank 0 only."""
    if message and w.is_main:
        print(f"simplebits: note: {message}", file=sys.stderr, flush=True)
