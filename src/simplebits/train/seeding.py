"""Seeds split by purpose: one user seed -> independent streams for init, data order,
augmentation and dropout, so changing one part (e.g. turning augmentation on) does not shift
the others."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "generator"]


def derive_seed(seed: int, purpose: str) -> int:
    h = hashlib.sha256(f"{int(seed)}/{purpose}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator for ``purpose`` (draws are moved to the data's device by the caller)."""
    return torch.Generator().manual_seed(derive_seed(seed, purpose))
