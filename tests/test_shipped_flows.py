"""The density models shipped in the package: present, loadable, and ordering images by complexity."""

import pytest
import torch

from simplebits.data import load_dataset
from simplebits.density import fit_images, list_flows, load_flow, score_bpd
from simplebits.density.store import SHIPPED, WEIGHTS_DIR


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_installed_with_its_record(name):
    assert (WEIGHTS_DIR / f"{name}.safetensors").is_file(), "run scripts/train_default_flows.py " + name
    info = {d["name"]: d for d in list_flows()}[name]
    assert info["present"] and info["test_bpd"] is not None and info["train_seconds"] > 0
    m = load_flow(name)
    assert m.config.image_size == 32 and m.config.channels == (1 if name == "gray32" else 3)


@pytest.mark.parametrize("name", SHIPPED)
def test_black_digits_noise_ordering(name):
    m = load_flow(name)
    c = m.config.channels
    g = torch.Generator().manual_seed(0)
    digits = load_dataset("mnist-5k:test").images[:16]
    sets = {
        "black": torch.zeros(16, c, 32, 32),
        "mnist": fit_images(digits, m, gray_to_rgb=True),
        "noise": torch.randint(0, 256, (16, c, 32, 32), generator=g).float() / 255,
    }
    means = {k: float(score_bpd(m, v).mean()) for k, v in sets.items()}
    assert means["black"] < means["mnist"] < means["noise"], means
