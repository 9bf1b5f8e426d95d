"""Shared fixtures. Tests make their own small data; DEVICE=cuda runs the same suite on a GPU."""

from __future__ import annotations

import os

import pytest
import torch

from simplebits.data import ImageSet

DEVICE = os.environ.get("DEVICE", "cpu")


def pytest_collection_modifyitems(config, items):
    if DEVICE.startswith("cuda") and torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (set DEVICE=cuda on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device() -> str:
    return DEVICE


def perturbed_glow(cfg, seed: int = 0):
    """A Glow (eval mode) whose every parameter is non-trivial: zero-init layers are not the
    identity any more, so tests see a real density rather than the init's Gaussian."""
    from simplebits.density import Glow

    torch.manual_seed(seed)
    m = Glow(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def make_blobs(n_per_class: int = 20, num_classes: int = 3, shape=(1, 12, 12), seed: int = 0) -> ImageSet:
    """A tiny learnable image set: class c has a bright square at position c, plus noise."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = shape
    xs, ys = [], []
    for k in range(num_classes):
        x = 0.15 * torch.rand(n_per_class, c, h, w, generator=g)
        r = (k * (h // num_classes)) % (h - 3)
        x[:, :, r : r + 3, 2:8] += 0.8
        xs.append(x.clamp(0, 1))
        ys.append(torch.full((n_per_class,), k))
    return ImageSet.create(torch.cat(xs), torch.cat(ys), [f"c{k}" for k in range(num_classes)], {"name": "blobs"})


@pytest.fixture
def blobs() -> ImageSet:
    return make_blobs()
