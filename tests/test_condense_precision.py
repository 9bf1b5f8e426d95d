"""The real side of condensation in bfloat16 (``precision``): close gradients, float32 elsewhere,
old digests kept, clear errors, ``auto`` only where the hardware has bf16."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import make_blobs
from simplebits import runtime
from simplebits.condense import GradientEngine, condense, make_config, matched_parameters
from simplebits.errors import BadInputError, UnknownNameError
from simplebits.models import create_model

TINY = {"net_options": {"width": 8}, "compile": False, "chunk": 4, "batch_real": 6, "iterations": 2}


def _engine(precision: str) -> tuple[GradientEngine, list[torch.nn.Parameter]]:
    net = create_model("convnet", channels=1, num_classes=3, image_size=28, seed=0, width=16)
    params = matched_parameters(net)
    return GradientEngine(net, params, precision=precision), params


def test_bf16_real_gradients_are_float32_and_within_a_few_percent_of_fp32():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 28, 28, generator=g), torch.randint(0, 3, (40,), generator=g)
    fp32, _ = _engine("fp32")
    bf16, params = _engine("bf16")
    assert fp32.real_dtype is None and bf16.real_dtype is torch.bfloat16
    ref, got = fp32.real(x, y), bf16.real(x, y)
    for a, b, p in zip(ref, got, params, strict=True):
        assert b.dtype == torch.float32 and b.shape == p.shape
        assert F.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99  # bf16 keeps 8 significant bits
    whole_ref, whole = torch.cat([a.flatten() for a in ref]), torch.cat([b.flatten() for b in got])
    assert float((whole - whole_ref).norm() / whole_ref.norm()) < 0.05
    assert any(not torch.equal(a, b) for a, b in zip(ref, got))  # it did compute in bf16
    emb = bf16.embed_real(x)
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb, fp32.embed_real(x), rtol=0.05, atol=0.05)


def test_the_synthetic_side_stays_float32_and_differentiable():
    bf16, params = _engine("bf16")
    fp32, _ = _engine("fp32")
    xs = torch.rand(3, 1, 28, 28, requires_grad=True)
    y = torch.arange(3)
    for a, b in zip(fp32.synthetic(xs, y), bf16.synthetic(xs, y), strict=True):
        assert torch.equal(a, b)  # no autocast on the side that needs the second derivative
    loss = sum(g.square().sum() for g in bf16.synthetic(xs, y))
    (gx,) = torch.autograd.grad(loss, xs)
    assert gx.dtype == torch.float32 and torch.isfinite(gx).all()


def test_the_networks_own_steps_follow_the_precision_and_match_the_eager_fp32_step():
    """dc's inner loop (and idc's steps on real batches) take the real side's path: float32 logits,
    bf16 arithmetic under precision bf16, the same values as the module itself in fp32."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 1, 28, 28, generator=g)
    fp32, _ = _engine("fp32")
    bf16, _ = _engine("bf16")
    bf16.model.load_state_dict(fp32.model.state_dict())
    with torch.no_grad():
        ref = fp32.model(x)
        a, b = fp32.train_logits(x), bf16.train_logits(x)
    assert a.dtype == b.dtype == torch.float32 and a.shape == (12, 3)
    torch.testing.assert_close(a, ref)  # fp32: the same step as before
    assert not torch.equal(b, ref)  # bf16: it did compute in bf16 ...
    torch.testing.assert_close(b, ref, rtol=0.05, atol=0.05)  # ... and stays close
    logits = bf16.train_logits(x)
    logits.sum().backward()  # differentiable w.r.t. the weights, float32 gradients
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in bf16.model.parameters())


def test_dc_inner_loop_and_idc_net_steps_go_through_the_engine(monkeypatch):
    calls = []
    original = GradientEngine.train_logits
    monkeypatch.setattr(GradientEngine, "train_logits",
                        lambda self, x: calls.append((len(x), self.real_dtype)) or original(self, x))
    ds = make_blobs(8, 3, (1, 12, 12))
    condense(ds, make_config("dc", ipc=2, preset="quick", precision="bf16", inner_loop=3, **TINY), progress=False)
    # 2 iterations x (2 updates - 1) x 3 steps, each on the 6 synthetic images, in bf16
    assert calls == [(6, torch.bfloat16)] * 6
    calls.clear()
    condense(ds, make_config("idc", ipc=1, preset="quick", outer_loop=2, batch_train=5, **TINY), progress=False)
    assert calls == [(5, None)] * 2  # idc: net_steps on real batches, float32 by default


def test_auto_follows_the_hardware_check(monkeypatch):
    monkeypatch.setattr(runtime, "bf16_native", lambda device: True)
    assert runtime.resolve_precision("auto", "cpu") is torch.bfloat16
    monkeypatch.setattr(runtime, "bf16_native", lambda device: False)
    assert runtime.resolve_precision("auto", "cpu") is None
    assert runtime.resolve_precision("bf16", "cpu") is torch.bfloat16  # asked for: always
    assert runtime.resolve_precision("fp32", "cpu") is None
    with pytest.raises(BadInputError, match="fp32, bf16, auto"):
        runtime.resolve_precision("fp16", "cpu")
    assert isinstance(runtime.bf16_native("cpu"), bool) and runtime.bf16_native("meta") is False


def test_config_default_keeps_old_digests_and_bf16_changes_them():
    base = make_config("dc", ipc=1, preset="quick")
    assert base.precision == "fp32" and "precision" not in base.to_dict()
    bf = make_config("dc", ipc=1, preset="quick", precision="bf16")
    assert bf.to_dict()["precision"] == "bf16" and bf.digest() != base.digest()
    assert make_config("dc", ipc=1, preset="paper").precision == "auto"
    with pytest.raises(UnknownNameError, match="precision"):
        make_config("dc", precision="half")


def test_a_bf16_condensation_runs_and_is_deterministic():
    ds = make_blobs(8, 3, (1, 12, 12))
    cfg = make_config("dc", ipc=1, preset="quick", precision="bf16", **TINY)
    a = condense(ds, cfg, progress=False)
    b = condense(ds, cfg, progress=False)
    assert torch.equal(a.images.images, b.images.images)
    assert a.to_dict()["config"]["precision"] == "bf16"
    plain = condense(ds, make_config("dc", ipc=1, preset="quick", **TINY), progress=False)
    assert not torch.equal(a.images.images, plain.images.images)
    assert F.mse_loss(a.images.images, plain.images.images) < 1e-2  # same run up to bf16 rounding


def test_the_cli_flag_overrides_the_preset_and_a_bad_value_is_exit_2(capsys):
    from simplebits.cli.condense import config_of
    from simplebits.cli.main import build_parser, main

    def parsed(*extra: str):
        return config_of(build_parser().parse_args(["condense", "digits", "--ipc", "1", "--out", "x.safetensors",
                                                    *extra]))

    assert parsed().precision == "fp32"
    assert parsed("--preset", "paper").precision == "auto"
    assert parsed("--preset", "paper", "--precision", "fp32").precision == "fp32"
    assert parsed("--precision", "bf16").precision == "bf16"
    with pytest.raises(SystemExit) as stop:
        main(["condense", "digits", "--ipc", "1", "--out", "x.safetensors", "--precision", "fp16"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--precision" in err and "fp16" in err


def test_resuming_with_another_precision_names_it(tmp_path):
    from simplebits.condense import output_paths
    from simplebits.errors import MismatchError

    ds = make_blobs(8, 3, (1, 12, 12))
    base = make_config("dc", ipc=1, preset="quick", **{**TINY, "iterations": 3, "checkpoint_every": 1})
    out = tmp_path / "part.safetensors"

    def stop(entry):
        if entry["iteration"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        condense(ds, base, out=out, progress=False, on_iteration=stop)
    assert output_paths(out)["checkpoint"].exists()
    bf16 = make_config("dc", ipc=1, preset="quick", precision="bf16", **{**TINY, "iterations": 3, "checkpoint_every": 1})
    with pytest.raises(MismatchError, match="precision"):  # fp32 is left out of the saved settings: still named
        condense(ds, bf16, out=out, resume=True, progress=False)
