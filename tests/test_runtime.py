"""simplebits.runtime: one set of device checks for the CLI and the pipeline, and peak memory."""

from __future__ import annotations

import pytest
import torch

from simplebits import runtime
from simplebits.errors import BadInputError
from simplebits.runtime import peak_rss_mb, resolve_device


def test_auto_and_cpu_resolve_trimmed_and_lower_case():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" CPU ") == "cpu"


@pytest.mark.parametrize("name", ["npu", "", "cuda:x", " TPU ", "meta"])
def test_unknown_names_are_one_line_errors_naming_the_setting(name):
    with pytest.raises(BadInputError, match="is not a device; use auto, cpu, cuda or cuda:N") as e:
        resolve_device(name)
    assert str(e.value).startswith(f"--device {name.strip().lower()!r}") and "\n" not in str(e.value)
    with pytest.raises(BadInputError, match=r"^device = "):
        resolve_device(name, setting="device =")


def test_missing_devices_are_refused_before_any_work(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BadInputError, match="--device cuda:1: no CUDA device is available here; use --device cpu"):
        resolve_device("cuda:1")
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("auto") == "cuda"
    with pytest.raises(BadInputError, match="this machine has 2 CUDA device"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(BadInputError, match="Apple MPS is not available here"):
        resolve_device("mps", setting="device =")


def test_the_cli_and_the_pipeline_use_the_one_check():
    from simplebits.cli import evaluate
    from simplebits.pipeline import runner

    assert evaluate.resolve_device is runtime.resolve_device
    with pytest.raises(BadInputError, match=r"^device = 'gpu' is not a device"):
        runner._resolve_device("gpu")


def test_peak_rss_is_positive_and_never_falls():
    a = peak_rss_mb()
    big = torch.ones(4_000_000)  # 16 MB touched
    b = peak_rss_mb()
    assert 0 < a <= b
    del big


def test_the_api_defaults_to_auto_and_checks_the_device_like_the_cli(monkeypatch):
    import inspect

    import simplebits as sb
    from simplebits.condense import condense
    from simplebits.prune import prune_set
    from simplebits.train import evaluate

    for fn in (condense, evaluate, prune_set):
        assert inspect.signature(fn).parameters["device"].default == "auto", fn.__name__
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ds = sb.load_dataset("digits").subset(list(range(20)))
    # a device this machine lacks: one clear error before any work, as `--device` gives it
    with pytest.raises(BadInputError, match="no CUDA device is available here"):
        evaluate(ds, ds, protocol="quick", seeds=1, device="cuda")
    with pytest.raises(BadInputError, match="'gpu' is not a device"):
        condense(ds, method="dc", ipc=1, iterations=1, device="gpu")
