"""bf16 evaluation: the protocol's ``precision`` setting, from the loop to the CLI and the pipeline."""

import json

import pytest
import torch

from conftest import make_blobs
from simplebits import runtime
from simplebits.cli.main import main as cli_main
from simplebits.errors import BadInputError, UnknownNameError
from simplebits.models import create_model
from simplebits.pipeline import builtin_config, parse_config
from simplebits.prune import DynamicsConfig
from simplebits.train import evaluate, get_protocol, train_classifier
from simplebits.train.evaluate import resolved_protocol
from simplebits.train.loop import predict_logits


def tiny(**kw):
    return get_protocol("quick").with_overrides(model_options={"width": 16}, **kw)


def _train(precision: str, steps: int = 12):
    train = make_blobs(8, seed=0)
    p = tiny(max_steps=steps, precision=precision)
    net = create_model("convnet", channels=1, num_classes=3, image_size=12, seed=5, width=16)
    train_classifier(net, train, protocol=p, seed=0)
    return net


def test_precision_is_validated_labelled_and_left_out_of_fp32_keys():
    with pytest.raises(BadInputError, match="precision must be one of fp32, bf16, auto"):
        tiny(precision="fp16")
    assert "precision" not in tiny().to_dict()  # the keys of every earlier (float32) run hold
    assert tiny(precision="bf16").to_dict()["precision"] == "bf16"
    assert tiny(precision="bf16").label() == "quick@bf16"
    assert tiny(precision="bf16", labels="kl", temperature=4.0).label() == "quick+kl(T=4)@bf16"
    assert tiny().label() == "quick"


def test_auto_resolves_to_what_the_hardware_computes(monkeypatch):
    monkeypatch.setattr(runtime, "bf16_native", lambda device: True)
    assert resolved_protocol(tiny(precision="auto"), "cpu").precision == "bf16"
    monkeypatch.setattr(runtime, "bf16_native", lambda device: False)
    assert resolved_protocol(tiny(precision="auto"), "cpu").precision == "fp32"
    assert resolved_protocol(tiny(precision="bf16"), "cpu").precision == "bf16"  # explicit: as asked


def test_bf16_training_keeps_float32_weights_is_deterministic_and_really_changes_the_arithmetic():
    a, b, f = _train("bf16"), _train("bf16"), _train("fp32")
    assert all(p.dtype == torch.float32 for p in a.parameters())
    for (name, pa), pb, pf in zip(a.named_parameters(), b.parameters(), f.parameters()):
        assert torch.equal(pa, pb), name  # same seed, same bits
    diff = max((pa - pf).abs().max().item() for pa, pf in zip(a.parameters(), f.parameters()))
    assert 0 < diff < 0.05  # bf16 rounding moved the weights, a little


def test_bf16_test_pass_returns_float32_logits_close_to_float32():
    net = _train("fp32")
    x = make_blobs(4, seed=3).images
    lo32 = predict_logits(net, x)
    lo16 = predict_logits(net, x, autocast=torch.bfloat16)
    assert lo16.dtype == torch.float32 and not torch.equal(lo16, lo32)
    assert torch.allclose(lo16, lo32, atol=0.1, rtol=0.05)


def test_evaluation_in_bf16_learns_and_its_report_names_the_arithmetic():
    train, test = make_blobs(10, seed=0), make_blobs(10, seed=1)
    r = evaluate(train, test, protocol=tiny(max_steps=40, precision="bf16"), seeds=[0], baseline_from=train)
    assert r.mean > 0.9 and r.baseline.mean > 0.9
    assert r.protocol == "quick@bf16" and r.baseline.protocol == "quick@bf16"
    assert r.settings["protocol"]["precision"] == "bf16"


def test_cli_evaluate_precision_flag(capsys):
    rc = cli_main(["evaluate", "digits", "--ipc", "1", "--seeds", "1", "--precision", "bf16", "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["protocol"] == "quick@bf16"
    with pytest.raises(SystemExit) as e:
        cli_main(["evaluate", "digits", "--ipc", "1", "--precision", "half"])
    assert e.value.code == 2


def test_dynamics_precision_reaches_the_runs_and_fp32_files_stay_reusable():
    assert DynamicsConfig(precision="auto").train_protocol().precision == "auto"
    assert "precision" not in DynamicsConfig().identity() and "precision" not in DynamicsConfig().to_dict()
    assert DynamicsConfig(precision="bf16").identity()["precision"] == "bf16"
    with pytest.raises(BadInputError, match="precision"):
        DynamicsConfig(precision="fp8")


def test_pipeline_precision_keys_validated_and_unset_keeps_the_config_hash():
    base = builtin_config("demo")
    cfg = parse_config({"evaluate": {"precision": "bf16"}, "explain": {"precision": "auto"},
                        "prune": {"precision": "bf16"}})
    assert cfg.evaluate.precision == "bf16" and cfg.explain.precision == "auto" and cfg.prune.precision == "bf16"
    with pytest.raises(UnknownNameError, match="evaluate.precision"):
        parse_config({"evaluate": {"precision": "fp16"}})
    with pytest.raises(UnknownNameError, match="explain.precision"):
        parse_config({"explain": {"precision": "fp16"}})
    plain = parse_config({}).to_dict()  # unset keys are left out: configs written before them keep their hash
    assert "precision" not in plain["evaluate"] and "precision" not in plain["explain"]
    assert "precision" not in plain["prune"]
    assert base.evaluate.precision == "auto"  # the demo trains its networks in bf16 where the hardware has it


def test_pipeline_resolves_auto_so_that_its_stage_keys_name_the_arithmetic(monkeypatch, tmp_path):
    from simplebits.pipeline.runner import Context

    cfg = parse_config({"evaluate": {"precision": "auto"}})
    ctx = Context(cfg, tmp_path, device="cpu", resume=False, progress=False, log=lambda line: None)
    monkeypatch.setattr(runtime, "bf16_native", lambda device: True)
    assert ctx.protocol.precision == "bf16" and ctx.protocol.to_dict()["precision"] == "bf16"
    monkeypatch.setattr(runtime, "bf16_native", lambda device: False)  # the same folder on a machine without bf16
    assert ctx.protocol.precision == "fp32" and "precision" not in ctx.protocol.to_dict()


def test_cli_says_when_bf16_is_only_emulated(monkeypatch, capsys):
    from simplebits.cli import evaluate as cli_evaluate

    monkeypatch.setattr(cli_evaluate, "bf16_native", lambda device: False)
    cli_evaluate.precision_note("bf16", "cpu")
    assert "emulated" in capsys.readouterr().err
    cli_evaluate.precision_note("auto", "cpu")  # auto already picks fp32 there: nothing to say
    monkeypatch.setattr(cli_evaluate, "bf16_native", lambda device: True)
    cli_evaluate.precision_note("bf16", "cpu")
    assert capsys.readouterr().err == ""
