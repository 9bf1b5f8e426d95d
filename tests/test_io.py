import os

import pytest
import torch

from simplebits.errors import CorruptFileError, NotFoundError
from simplebits.io import (
    atomic_path,
    atomic_write_text,
    load_state,
    load_tensors,
    read_metadata,
    save_state,
    save_tensors,
    torch_load_safe,
)


def test_tensors_round_trip_with_metadata(tmp_path):
    p = tmp_path / "a.safetensors"
    t = {"x": torch.randn(3, 4), "y": torch.arange(5)}
    save_tensors(p, t, {"hello": [1, 2], "nested": {"a": None}})
    got, meta = load_tensors(p)
    assert torch.equal(got["x"], t["x"]) and torch.equal(got["y"], t["y"])
    assert meta == {"hello": [1, 2], "nested": {"a": None}}
    assert read_metadata(p) == meta


def test_failed_write_keeps_previous_file(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "good")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half writ")
            raise RuntimeError("killed mid-write")
    assert p.read_text() == "good"
    assert [f.name for f in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind


def test_truncated_safetensors_is_refused(tmp_path):
    p = tmp_path / "a.safetensors"
    save_tensors(p, {"x": torch.randn(100, 100)}, {"k": 1})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="truncated|corrupt"):
        load_tensors(p)


def test_foreign_and_missing_files(tmp_path):
    p = tmp_path / "junk.safetensors"
    p.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CorruptFileError):
        load_tensors(p)
    with pytest.raises(NotFoundError, match="not found"):
        load_tensors(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CorruptFileError, match="not one written by simplebits"):
        load_tensors(tmp_path / "other.safetensors")


def test_state_round_trip_with_optimizer(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "opt": opt.state_dict(), "step": 7, "rng": torch.get_rng_state()}
    save_state(tmp_path / "ck.safetensors", state)
    got = load_state(tmp_path / "ck.safetensors")
    assert got["step"] == 7
    assert torch.equal(got["rng"], state["rng"])
    net2 = torch.nn.Linear(3, 2)
    net2.load_state_dict(got["model"])
    opt2 = torch.optim.Adam(net2.parameters())
    opt2.load_state_dict(got["opt"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_torch_load_safe_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.pt"
    torch.save({"data": _Evil()}, p)
    with pytest.raises(CorruptFileError, match="refuses to unpickle"):
        torch_load_safe(p)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    q = tmp_path / "trunc.pt"
    torch.save({"x": torch.randn(1000)}, q)
    q.write_bytes(q.read_bytes()[:300])
    with pytest.raises(CorruptFileError):
        torch_load_safe(q)


def test_probe_torchscript_refusals_name_the_stage(tmp_path):
    from simplebits.errors import MismatchError
    from simplebits.io import probe_torchscript

    p = tmp_path / "lin.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 2)), str(p))
    assert probe_torchscript(p, torch.zeros(3, 4), timeout=60) == {"out": [3, 2]}
    with pytest.raises(MismatchError, match=r"fails on a probe batch of shape 3x5 \(RuntimeError"):
        probe_torchscript(p, torch.zeros(3, 5), timeout=60)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip at all" * 8)
    with pytest.raises(CorruptFileError, match="cannot read the TorchScript file"):
        probe_torchscript(junk, timeout=60)


@pytest.mark.skipif(os.name != "posix", reason="kills the probe process with SIGKILL")
def test_probe_torchscript_crash_is_one_line_with_the_last_stderr_line(tmp_path, monkeypatch):
    import simplebits.io as sbio

    # a probe process that dies from a signal after saying it is loading (as a segfaulting model would)
    crash = ("import json, os, sys\njson.dump({'stage': 'load'}, open(sys.argv[3], 'w'))\n"
             "sys.stderr.write('boom: bad opcode\\n'); sys.stderr.flush()\nos.kill(os.getpid(), 9)\n")
    monkeypatch.setattr(sbio, "_PROBE_SCRIPT", crash)
    p = tmp_path / "m.pt"
    p.write_bytes(b"x")
    with pytest.raises(CorruptFileError, match=r"crashed while loading \(killed by signal 9: boom: bad opcode\); refused"):
        sbio.probe_torchscript(p, timeout=60)
