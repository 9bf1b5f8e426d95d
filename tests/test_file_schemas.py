"""Hostile and damaged files of every kind simplebits reads: one SimplebitsError line, never a
traceback, a hang, a giant allocation, silently accepted invalid data, or code run untrusted."""

from __future__ import annotations

import copy
import json
import os
import pickle
import random
import stat
import struct
import subprocess
import sys
import time
import warnings
import zipfile

import pytest
import torch
from torch import nn

from conftest import make_blobs
from simplebits import io as sbio
from simplebits.data.condensed import import_condensed, load_condensed, save_condensed
from simplebits.density import Glow, GlowConfig, load_flow, save_flow
from simplebits.density.store import card_note, card_path, flow_shapes
from simplebits.errors import BadInputError, CorruptFileError, SimplebitsError
from simplebits.io import (
    UntrustedCodeError,
    atomic_write_text,
    load_state,
    load_tensors,
    load_torchscript,
    read_metadata,
    save_state,
    save_tensors,
    torch_load_safe,
)
from simplebits.models import create_model
from simplebits.prune.dynamics import FORMAT as DYN_FORMAT
from simplebits.prune.dynamics import Dynamics, load_dynamics
from simplebits.train.checkpoint import check_classifier_input, load_classifier, save_classifier

warnings.filterwarnings("ignore", category=DeprecationWarning)

TINY_FLOW = GlowConfig(channels=1, image_size=8, levels=2, steps=1, width=4)


# ------------------------------------------------------------------------------------------
# tiny valid files of each kind, made with the package's own writers


def _classifier(path):
    net = create_model("convnet", channels=1, num_classes=3, image_size=8, seed=0, width=4, depth=1)
    save_classifier(path, net, name="convnet", channels=1, image_size=8, classes=["a", "b", "c"],
                    options={"width": 4, "depth": 1}, extra={"seed": 0})
    return net


def _flow(path):
    torch.manual_seed(0)
    m = Glow(TINY_FLOW)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_flow(path, m, meta={"trained_on": "test"})
    return m


def _condensed(path, unbounded=False):
    ds = make_blobs(2, 3, (1, 8, 8), seed=0)
    if unbounded:
        ds = type(ds).create(ds.images * 1.5 - 0.2, ds.labels, ds.classes, unbounded=True)
    save_condensed(path, ds, method="dc", source=None, seed=0)
    return ds


def _dynamics(path):
    r, e, n, c = 2, 3, 6, 3
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(r, e, n, c, generator=g)
    labels = torch.arange(n) % c
    correct = (logits.argmax(-1) == labels.view(1, 1, -1)).to(torch.uint8)
    meta = {"config": {"schedule_epochs": 4}, "identity": {}, "fingerprint": "abc", "source": "x", "num_samples": n,
            "factor": 1, "classes": ["a", "b", "c"], "seconds": 1.0, "runs": r}
    Dynamics(logits.half(), correct, logits[:, -1].softmax(-1).half(), torch.randn(r, n, 4, generator=g).half(),
             labels, meta).save(path)


def _dc_pt(path):
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(6, 1, 28, 28, generator=g) - 0.1307) / 0.3081
    torch.save({"data": [[images, torch.arange(6) % 3]], "accs_all_exps": {}}, path)


def _rewrite(src, dst, meta_fn=None, tensor_fn=None):
    """A valid safetensors file holding ``src``'s tensors and metadata, changed by the functions."""
    tensors, meta = load_tensors(src)
    meta = copy.deepcopy(meta)
    if meta_fn is not None:
        meta = meta_fn(meta) or meta
    if tensor_fn is not None:
        tensors = dict(tensors)
        changed = tensor_fn(tensors)
        tensors = tensors if changed is None else changed
    save_tensors(dst, tensors, meta)
    return dst


def _raw(path, header: bytes, data: bytes = b""):
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("valid")
    _classifier(d / "clf.safetensors")
    _flow(d / "flow.safetensors")
    _condensed(d / "set.safetensors")
    _condensed(d / "unbounded.safetensors", unbounded=True)
    _dynamics(d / "dyn.safetensors")
    save_state(d / "state.safetensors", {"model": nn.Linear(3, 2).state_dict(), "step": 3, "t": (1, 2.5, None)})
    _dc_pt(d / "res_DC_MNIST_ConvNet_2ipc.pt")
    return d


LOADERS = {
    "classifier": load_classifier,
    "flow": load_flow,
    "condensed": load_condensed,
    "dynamics": load_dynamics,
    "state": load_state,
}


def test_the_valid_files_load(files):
    model, info = load_classifier(files / "clf.safetensors")
    assert info.classes == ("a", "b", "c") and info.options == {"width": 4, "depth": 1}
    assert load_flow(files / "flow.safetensors").config == TINY_FLOW
    assert len(load_condensed(files / "set.safetensors")) == 6
    assert load_condensed(files / "unbounded.safetensors").unbounded
    assert load_dynamics(files / "dyn.safetensors").runs == 2
    assert load_state(files / "state.safetensors")["t"] == (1, 2.5, None)
    assert len(import_condensed(files / "res_DC_MNIST_ConvNet_2ipc.pt")) == 6


# ------------------------------------------------------------------------------------------
# the safetensors header and the JSON document


def _deep(n: int) -> str:
    return '{"a": ' * n + "1" + "}" * n


HEADERS = {
    "header is a list": b"[1, 2]",
    "header not JSON": b"{not json",
    "metadata is a list": b'{"__metadata__": [1]}',
    "metadata value not a string": b'{"__metadata__": {"simplebits": 3}}',
    "deeply nested header": b'{"a": ' + b"[" * 50000 + b"]" * 50000 + b"}",
    "simplebits value is a list": json.dumps({"__metadata__": {"simplebits": "[1, 2]"}}).encode(),
    "simplebits value not JSON": json.dumps({"__metadata__": {"simplebits": "{'format': 1"}}).encode(),
    "simplebits JSON nested 300 deep": json.dumps({"__metadata__": {"simplebits": _deep(300)}}).encode(),
    "simplebits JSON nested 100000 deep": json.dumps({"__metadata__": {"simplebits": _deep(100000)}}).encode(),
    "offsets beyond the file": json.dumps({"__metadata__": {"simplebits": "{}"},
                                           "x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode(),
    "absurd shape": json.dumps({"__metadata__": {"simplebits": "{}"},
                                "x": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 4]}}).encode(),
}


@pytest.mark.parametrize("case", list(HEADERS))
@pytest.mark.parametrize("reader", ["read_metadata", "load_tensors", *LOADERS])
def test_bad_headers_are_one_corrupt_file_error(tmp_path, case, reader):
    p = _raw(tmp_path / "f.safetensors", HEADERS[case], b"\0" * 4)
    fn = {"read_metadata": read_metadata, "load_tensors": load_tensors, **LOADERS}[reader]
    with pytest.raises(CorruptFileError) as ei:
        fn(p)
    assert str(p) in str(ei.value) and len(str(ei.value).splitlines()) == 1


def test_an_oversized_file_is_refused_before_it_is_read(files, monkeypatch):
    monkeypatch.setenv("SIMPLEBITS_MAX_INPUT_BYTES", "100")
    with pytest.raises(CorruptFileError, match="SIMPLEBITS_MAX_INPUT_BYTES"):
        load_tensors(files / "set.safetensors")
    with pytest.raises(CorruptFileError, match="SIMPLEBITS_MAX_INPUT_BYTES"):
        torch_load_safe(files / "res_DC_MNIST_ConvNet_2ipc.pt")


# ------------------------------------------------------------------------------------------
# checkpoints (load_state)


def _set_tree(tree):
    def fn(meta):
        meta["tree"] = tree
    return fn


def _nest(depth):
    node = 1
    for _ in range(depth):
        node = {"__list__": [node]}
    return node


BAD_TREES = {
    "missing tensor": {"__tensor__": "t99"},
    "tensor key not a string": {"__tensor__": 5},
    "two tags": {"__list__": [], "__tuple__": []},
    "unknown tag": {"__set__": [1]},
    "dict entries not pairs": {"__dict__": [[1, 2, 3]]},
    "dict value not a list": {"__dict__": {"a": 1}},
    "unhashable key": {"__dict__": [[{"__list__": [1]}, 2]]},
    "bare list": [1, 2],
    "nested 150 deep": _nest(150),
}


@pytest.mark.parametrize("case", list(BAD_TREES))
def test_malformed_state_trees_are_refused(files, tmp_path, case):
    p = _rewrite(files / "state.safetensors", tmp_path / "s.safetensors", _set_tree(BAD_TREES[case]))
    with pytest.raises(CorruptFileError):
        load_state(p)


def test_state_round_trip_is_bitwise(tmp_path):
    net = nn.Linear(4, 3)
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 4)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(), "k": ("a", 1)}
    save_state(tmp_path / "ck.safetensors", state)
    got = load_state(tmp_path / "ck.safetensors")
    assert torch.equal(got["rng"], state["rng"]) and got["k"] == ("a", 1)
    assert all(torch.equal(got["model"][k], v) for k, v in state["model"].items())
    assert torch.equal(got["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


# ------------------------------------------------------------------------------------------
# classifier files


def _set(key, value):
    def fn(meta):
        if value is _DELETE:
            meta.pop(key, None)
        else:
            meta[key] = value
    return fn


_DELETE = object()

CLASSIFIER_META = {
    "format": ["simplebits.flow/1", None, 3],
    "model": ["nope", 3, None, ["convnet"], "nf-wrn-16-2"],
    "channels": [2, 0, "1", True, 1.0, None, 10**12],
    "image_size": [3, 1025, "8", 8.0, -8, None, True],
    "classes": [[], ["a"], "abc", [1, 2, 3], None, {"a": 1}, ["a", "b"], ["a", "b", "c", "d"]],
    "options": [[], "width=4", {"width": "4"}, {"width": 10**9}, {"width": 0}, {"bogus": 1},
                {"width": 4, "depth": 1, "norm": "weird"}, {"width": 4, "depth": 1, "act": 3},
                {"width": 4, "depth": 33}, {"width": 4, "depth": 1, "pool": None}, {"width": 8, "depth": 1},
                {"width": 4096, "depth": 32}, {"width": 4, "depth": 1, "seed": 3}],
}


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in CLASSIFIER_META.items() for v in vs] +
                         [(k, _DELETE) for k in CLASSIFIER_META if k != "options"])
def test_classifier_schema_fields(files, tmp_path, key, value):
    p = _rewrite(files / "clf.safetensors", tmp_path / "c.safetensors", _set(key, value))
    t0 = time.perf_counter()
    with pytest.raises(CorruptFileError) as ei:
        load_classifier(p)
    assert time.perf_counter() - t0 < 2.0  # a huge model is refused from its shapes, never allocated
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_classifier_with_non_finite_weights_is_refused(files, tmp_path, bad):
    def poison(t):
        t["classifier.weight"] = t["classifier.weight"].clone()
        t["classifier.weight"][0, 0] = bad
    p = _rewrite(files / "clf.safetensors", tmp_path / "nan.safetensors", tensor_fn=poison)
    with pytest.raises(CorruptFileError, match="'classifier.weight'.*NaN or infinite"):
        load_classifier(p)


@pytest.mark.parametrize("change", ["missing", "extra", "shape", "dtype"])
def test_classifier_tensors_must_fit_the_model(files, tmp_path, change):
    def fn(t):
        if change == "missing":
            t.pop("classifier.bias")
        elif change == "extra":
            t["extra"] = torch.zeros(2)
        elif change == "shape":
            t["classifier.bias"] = torch.zeros(4)
        else:
            t["classifier.bias"] = torch.zeros(3, dtype=torch.int64)
    p = _rewrite(files / "clf.safetensors", tmp_path / "c.safetensors", tensor_fn=fn)
    with pytest.raises(CorruptFileError, match="classifier.bias|extra"):
        load_classifier(p)


# ------------------------------------------------------------------------------------------
# TorchScript: programs, refused unless trusted


class _Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


class _Writer(nn.Module):
    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self.lin = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.target)
        return self.lin(x.flatten(1))


class _Loop(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        while bool(y.sum() > -1.0):
            y = y + 1.0
        return self.lin(y.flatten(1))


def _script(module, path):
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def test_torchscript_is_refused_unless_trusted_and_then_loads(tmp_path):
    p = _script(_Plain(), tmp_path / "plain.ts")
    with pytest.raises(UntrustedCodeError, match="programs that run.*--trust-code.*trust_code=True"):
        load_classifier(p)
    model, info = load_classifier(p, trust_code=True)
    x = torch.rand(2, 1, 8, 8)
    assert info.kind == "torchscript" and model(x).shape == (2, 3)
    check_classifier_input(model, info, x, 3)  # the probe forward runs in a separate process, then here


def test_untrusted_torchscript_code_never_runs(tmp_path):
    target = tmp_path / "written-by-the-model.pt"
    p = _script(_Writer(str(target)), tmp_path / "writer.ts")
    for call in (lambda: load_classifier(p), lambda: load_torchscript(p), lambda: load_torchscript(p, probe=torch.zeros(1, 64))):
        with pytest.raises(UntrustedCodeError):
            call()
    assert not target.exists()
    # the same file, trusted, does run its code (in the probe process): the refusal above mattered
    load_torchscript(p, trust_code=True, probe=torch.zeros(1, 1, 8, 8))
    assert target.exists()


def test_a_torchscript_forward_that_never_ends_is_stopped(tmp_path):
    p = _script(_Loop(), tmp_path / "loop.ts")
    model, info = load_classifier(p, trust_code=True, timeout=5)  # loading is fine
    t0 = time.perf_counter()
    with pytest.raises(CorruptFileError, match=r"did not finish its first forward.*within 5 s.*stopped"):
        check_classifier_input(model, info, torch.zeros(4, 1, 8, 8), 3)
    assert time.perf_counter() - t0 < 30


def test_damaged_torchscript_zips_are_one_line(tmp_path):
    data = _script(_Plain(), tmp_path / "ok.ts").read_bytes()
    rng = random.Random(7)
    outcomes = []
    for i in range(60):
        b = bytearray(data)
        if i % 3 == 0:
            b = b[: rng.randrange(1, len(b))]
        else:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        q = tmp_path / f"m{i}.ts"
        q.write_bytes(bytes(b))
        try:
            load_classifier(q)  # untrusted: zip checks, then the refusal; nothing runs
            outcomes.append("ok")
        except SimplebitsError as e:
            outcomes.append(type(e).__name__)
            assert len(str(e).splitlines()) == 1
    assert "CorruptFileError" in outcomes and "UntrustedCodeError" in outcomes


def test_zip_with_bad_member_names_is_corrupt(tmp_path):
    p = tmp_path / "names.ts"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("m/code/x.py", "x")
    b = bytearray(p.read_bytes())
    cd = b.rfind(b"PK\x01\x02")  # central directory entry: set the UTF-8 flag, break the name
    b[cd + 8] |= 0x08
    name_at = cd + 46
    b[name_at] = 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(CorruptFileError):
        load_torchscript(p, trust_code=True)


# ------------------------------------------------------------------------------------------
# flow files


FLOW_CONFIG = {
    "steps": [10**5, 0, 33, "1", 1.0, None, 2],
    "levels": [0, 7, 3, True],
    "width": [0, 513, "4", 8],
    "image_size": [12, 4, 512, 8.0, "8"],
    "channels": [2, 0, 3, "1"],
}


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in FLOW_CONFIG.items() for v in vs])
def test_flow_config_fields(files, tmp_path, key, value):
    def fn(meta):
        meta["config"][key] = value
    p = _rewrite(files / "flow.safetensors", tmp_path / "f.safetensors", fn)
    t0 = time.perf_counter()
    with pytest.raises(CorruptFileError):
        load_flow(p)
    assert time.perf_counter() - t0 < 1.0  # e.g. 10^5 steps: refused from the config, nothing built


@pytest.mark.parametrize("config", [None, [1, 8, 2, 1, 4], {"channels": 1}, "glow",
                                    {**TINY_FLOW.to_dict(), "extra": 1}])
def test_flow_config_shape(files, tmp_path, config):
    p = _rewrite(files / "flow.safetensors", tmp_path / "f.safetensors", _set("config", config))
    with pytest.raises(CorruptFileError, match="config"):
        load_flow(p)


@pytest.mark.parametrize("key", ["levels.0.0.coupling.net.0.weight", "top_prior", "levels.1.0.actnorm.logs"])
def test_flow_with_non_finite_weights_is_refused(files, tmp_path, key):
    def poison(t):
        t[key] = t[key].clone().flatten()
        t[key][0] = float("nan")
        t[key] = t[key].view(load_tensors(files / "flow.safetensors")[0][key].shape)
    p = _rewrite(files / "flow.safetensors", tmp_path / "nan.safetensors", tensor_fn=poison)
    with pytest.raises(CorruptFileError, match=f"'{key}'.*NaN or infinite"):
        load_flow(p)


@pytest.mark.parametrize("key,value", [("levels.0.0.invconv.p", 0.5), ("levels.0.0.invconv.sign_s", 0.0),
                                       ("levels.0.0.invconv.eye", 2.0), ("levels.0.0.actnorm.initialized", 7.0)])
def test_flow_fixed_buffers_are_checked(files, tmp_path, key, value):
    def fn(t):
        t[key] = t[key].clone()
        t[key].view(-1)[0] = value
    p = _rewrite(files / "flow.safetensors", tmp_path / "b.safetensors", tensor_fn=fn)
    with pytest.raises(CorruptFileError, match=key.replace(".", r"\.")):
        load_flow(p)


def test_flow_shapes_match_a_built_glow():
    for cfg in [TINY_FLOW, GlowConfig(3, 16, 3, 2, 5), GlowConfig(1, 32, 3, 8, 96), GlowConfig(3, 32, 3, 6, 64)]:
        with torch.device("meta"):
            built = {k: tuple(v.shape) for k, v in Glow(cfg).state_dict().items()}
        assert built == flow_shapes(cfg)


def test_an_unreadable_card_is_a_note_not_a_crash(files, tmp_path):
    p = tmp_path / "f.safetensors"
    p.write_bytes((files / "flow.safetensors").read_bytes())
    for junk in (b"\xff\xfe not json", b"[1, 2]", b"[" * 100000):
        card_path(p).write_bytes(junk)
        m = load_flow(p)
        assert m.card is None and "no model card" in card_note(m)


# ------------------------------------------------------------------------------------------
# condensed-set files


CONDENSED_META = {
    "format": ["simplebits.flow/1", None],
    "ipc": [3, 0, -1, "2", 2.0, True, 10**12],
    "counts": [[2, 2], [2, 2, 3], "2,2,2", [2, 2, "2"]],
    "factor": [0, -1, "2", 2.5, 65, 9, True, None],
    "shape": [[1, 8, 9], [3, 8, 8], "1x8x8"],
    "classes": [["a", "b"], [], "abc", None, [None, None, None], ["a"] * 100001],
    "range": ["unbounded", "[0, 2]", 7],
    "allow_empty_class": ["yes", 1],
    "source": [3, ["a"]],
    "seed": ["x", 1.5],
    "bpd": ["x", float("nan")],
    "settings": [[1]],
}


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in CONDENSED_META.items() for v in vs])
def test_condensed_schema_fields(files, tmp_path, key, value):
    p = _rewrite(files / "set.safetensors", tmp_path / "s.safetensors", _set(key, value))
    with pytest.raises(CorruptFileError) as ei:
        load_condensed(p)
    assert str(p) in str(ei.value)


CONDENSED_TENSORS = {
    "labels out of class order": lambda t: t.__setitem__("labels", t["labels"].flip(0).contiguous()),
    "label out of range": lambda t: t.__setitem__("labels", torch.tensor([0, 0, 1, 1, 2, 3])),
    "negative label": lambda t: t.__setitem__("labels", torch.tensor([-1, 0, 1, 1, 2, 2])),
    "fewer labels": lambda t: t.__setitem__("labels", t["labels"][:5].contiguous()),
    "labels int32": lambda t: t.__setitem__("labels", t["labels"].int()),
    "labels 2-D": lambda t: t.__setitem__("labels", t["labels"].view(2, 3).contiguous()),
    "nan pixel": lambda t: t["images"].view(-1).__setitem__(0, float("nan")),
    "pixel above 1": lambda t: t["images"].view(-1).__setitem__(0, 1.5),
    "images float64": lambda t: t.__setitem__("images", t["images"].double()),
    "images 3-D": lambda t: t.__setitem__("images", t["images"][:, 0].contiguous()),
    "2 channels": lambda t: t.__setitem__("images", t["images"].repeat(1, 2, 1, 1).contiguous()),
    "more images than metadata says": lambda t: (t.__setitem__("images", torch.cat([t["images"], t["images"][:1]])),
                                                 t.__setitem__("labels", torch.cat([t["labels"], t["labels"][-1:]]))),
    "extra tensor": lambda t: t.__setitem__("extra", torch.zeros(1)),
    "no labels": lambda t: t.pop("labels"),
}


@pytest.mark.parametrize("case", list(CONDENSED_TENSORS))
def test_condensed_metadata_must_agree_with_the_tensors(files, tmp_path, case):
    def fn(t):
        t["images"] = t["images"].clone()
        CONDENSED_TENSORS[case](t)
    p = _rewrite(files / "set.safetensors", tmp_path / "s.safetensors", tensor_fn=fn)
    with pytest.raises(CorruptFileError):
        load_condensed(p)


@pytest.mark.parametrize("vr", [[0.0, 1.0], None, "x", [float("nan"), 1.0], [-0.2]])
def test_unbounded_sets_must_record_their_value_range(files, tmp_path, vr):
    p = _rewrite(files / "unbounded.safetensors", tmp_path / "u.safetensors", _set("value_range", vr))
    with pytest.raises(CorruptFileError, match="value_range"):
        load_condensed(p)


# ------------------------------------------------------------------------------------------
# dynamics files


DYN_CASES = {
    "schedule shorter than the epochs held": lambda m, t: m["config"].__setitem__("schedule_epochs", 2),
    "schedule a string": lambda m, t: m["config"].__setitem__("schedule_epochs", "4"),
    "no config": lambda m, t: m.pop("config"),
    "runs disagree": lambda m, t: m.__setitem__("runs", 3),
    "num_samples disagree": lambda m, t: m.__setitem__("num_samples", 7),
    "classes disagree": lambda m, t: m.__setitem__("classes", ["a"]),
    "factor 0": lambda m, t: m.__setitem__("factor", 0),
    "seconds negative": lambda m, t: m.__setitem__("seconds", -1),
    "correct 2": lambda m, t: t.__setitem__("correct", t["correct"] * 2 + 2),
    "probs above 1": lambda m, t: t.__setitem__("final_probs", t["final_probs"] * 4),
    "nan logits": lambda m, t: t.__setitem__("logits", t["logits"] * float("nan")),
    "label out of range": lambda m, t: t.__setitem__("labels", t["labels"] + 3),
    "embeddings wrong runs": lambda m, t: t.__setitem__("embeddings", t["embeddings"][:1].contiguous()),
    "correct wrong shape": lambda m, t: t.__setitem__("correct", t["correct"][:, :2].contiguous()),
}


@pytest.mark.parametrize("case", list(DYN_CASES))
def test_dynamics_schema(files, tmp_path, case):
    tensors, meta = load_tensors(files / "dyn.safetensors")
    tensors, meta = dict(tensors), copy.deepcopy(meta)
    DYN_CASES[case](meta, tensors)
    assert meta.get("format", DYN_FORMAT) == DYN_FORMAT
    save_tensors(tmp_path / "d.safetensors", tensors, meta)
    with pytest.raises(CorruptFileError):
        load_dynamics(tmp_path / "d.safetensors")


# ------------------------------------------------------------------------------------------
# foreign .pt files


@pytest.mark.parametrize("exc", [IndexError(), KeyError(), struct.error(), UnicodeDecodeError("utf-8", b"\xff", 0, 1, ""),
                                 RuntimeError(""), zipfile.BadZipFile(), EOFError(), pickle.UnpicklingError(""),
                                 RecursionError(), MemoryError(), ValueError("\n\n"), AttributeError("x")])
def test_torch_load_safe_maps_every_exception(files, monkeypatch, exc):
    def boom(*a, **k):
        raise exc
    monkeypatch.setattr(torch, "load", boom)
    with pytest.raises(CorruptFileError) as ei:
        torch_load_safe(files / "res_DC_MNIST_ConvNet_2ipc.pt")
    assert "res_DC_MNIST" in str(ei.value) and len(str(ei.value).splitlines()) == 1


def test_a_real_pickle_with_an_empty_message_error(tmp_path):
    p = tmp_path / "data.pt"
    torch.save({"x": torch.zeros(3)}, p)
    # rewrite data.pkl with a pickle whose load fails inside torch (an index into no storage)
    src = zipfile.ZipFile(p)
    names = src.namelist()
    blobs = {n: src.read(n) for n in names}
    src.close()
    pkl = next(n for n in names if n.endswith("data.pkl"))
    blobs[pkl] = b"\x80\x02}q\x00."[:-1]  # truncated: no STOP
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
        for n in names:
            zf.writestr(n, blobs[n])
    with pytest.raises(CorruptFileError, match="data.pt"):
        torch_load_safe(p)


def test_the_refusal_of_code_keeps_its_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch PWNED",))

    torch.save({"data": [[Evil(), torch.zeros(1)]]}, tmp_path / "res_x.pt")
    with pytest.raises(CorruptFileError, match="refuses to unpickle"):
        import_condensed(tmp_path / "res_x.pt")
    assert not (tmp_path / "PWNED").exists()


PT_OBJECTS = {
    "images not a tensor": {"data": [["abc", torch.zeros(2)]]},
    "labels strings": {"data": [[torch.rand(2, 1, 8, 8), ["a", "b"]]]},
    "complex images": {"data": [[torch.zeros(2, 1, 8, 8, dtype=torch.complex64), torch.zeros(2)]]},
    "bool images": {"data": [[torch.zeros(2, 1, 8, 8, dtype=torch.bool), torch.zeros(2)]]},
    "sparse images": {"data": [[torch.zeros(2, 1, 8, 8).to_sparse(), torch.zeros(2)]]},
    "0-d images": {"data": [[torch.tensor(1.0), torch.zeros(2)]]},
    "expanded giant": {"data": [[torch.zeros(1, 1, 1, 1).expand(10**5, 3, 10**3, 10**3), torch.zeros(10**5)]]},
    "label count differs": {"data": [[torch.rand(3, 1, 8, 8), torch.zeros(2, dtype=torch.long)]]},
    "nan labels": {"data": [[torch.rand(2, 1, 8, 8), torch.tensor([0.0, float("nan")])]]},
    "nan images": {"data": [[torch.full((2, 1, 8, 8), float("nan")), torch.zeros(2, dtype=torch.long)]]},
    "data a dict": {"data": {"a": 1}},
    "data empty": {"data": []},
    "pair too short": {"data": [[torch.zeros(1)]]},
    "no data": {"x": 1},
    "nested lists": {"data": [[[[[1]]], [[2]]]]},
}


@pytest.mark.parametrize("case", list(PT_OBJECTS))
def test_foreign_pt_structure_is_checked(tmp_path, case):
    p = tmp_path / "res_DC_MNIST_ConvNet_1ipc.pt"
    torch.save(PT_OBJECTS[case], p)
    with pytest.raises(SimplebitsError) as ei:
        import_condensed(p, normalization="none", source="mnist:train")
    assert len(str(ei.value).splitlines()) == 1


@pytest.mark.parametrize("obj", [[torch.rand(2, 1, 8, 8)], ["a", "b"], [torch.rand(2, 1, 8, 8), {"x": 1}], 5])
def test_idc_structure_is_checked(tmp_path, obj):
    p = tmp_path / "data.pt"
    torch.save(obj, p)
    with pytest.raises(SimplebitsError):
        import_condensed(p, format="idc", normalization="none", source="mnist:train")


# ------------------------------------------------------------------------------------------
# atomic writes: modes and stale temp files


def _umask(mask):
    old = os.umask(mask)
    return old


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_mode_open_would_give(tmp_path, mask, mode):
    old = _umask(mask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        save_tensors(tmp_path / "b.safetensors", {"x": torch.zeros(1)}, {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == mode
    assert stat.S_IMODE(os.stat(tmp_path / "b.safetensors").st_mode) == mode


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600])
def test_replacing_a_file_keeps_its_mode(tmp_path, mode):
    p = tmp_path / "a.txt"
    p.write_text("old")
    os.chmod(p, mode)
    old = _umask(0o077)
    try:
        atomic_write_text(p, "new")
    finally:
        os.umask(old)
    assert p.read_text() == "new" and stat.S_IMODE(os.stat(p).st_mode) == mode


def _temp_name(target, pid, host=None):
    return f".{target.name}.{pid}.{host or sbio._HOST}{'0' * 7}1.tmp"


def test_stale_temp_files_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "out.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / _temp_name(target, dead.pid)
        from_live = tmp_path / _temp_name(target, live.pid)
        mine = tmp_path / _temp_name(target, os.getpid())
        other_host = tmp_path / _temp_name(target, dead.pid, host="deadbeef" if sbio._HOST != "deadbeef" else "feedface")
        other_file = tmp_path / _temp_name(tmp_path / "other.json", dead.pid)
        old_style = tmp_path / f".{target.name}.abcd1234.tmp"
        old_style_fresh = tmp_path / f".{target.name}.wxyz9876.tmp"
        for f in (stale, from_live, mine, other_host, other_file, old_style, old_style_fresh):
            f.write_text("partial")
        os.utime(old_style, (time.time() - 3 * 86400, time.time() - 3 * 86400))
        atomic_write_text(target, "{}")
        assert not stale.exists() and not old_style.exists()
        assert from_live.exists() and mine.exists() and other_host.exists() and other_file.exists()
        assert old_style_fresh.exists()
        assert target.read_text() == "{}"
    finally:
        live.kill()
        live.wait()


def test_temp_names_carry_the_pid_and_failed_writes_leave_nothing(tmp_path):
    seen = []
    with pytest.raises(RuntimeError):
        with sbio.atomic_path(tmp_path / "f.bin") as tmp:
            seen.append(tmp.name)
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert seen[0].startswith(f".f.bin.{os.getpid()}.") and seen[0].endswith(".tmp")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# seeded mutation campaigns: every outcome is a valid load or a SimplebitsError


EXTREMES = [None, -1, 0, 1, 2**31, 2**63, 10**18, -(10**18), 1e308, float("nan"), float("inf"), "", "abc", "NaN",
            [], {}, [1, 2, 3], {"a": 1}, True, False, 0.5, [[[[[]]]]], "x" * 1000]


def _paths(doc, prefix=()):
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:5]):
            out += _paths(v, prefix + (i,))
    return out


def _json_mutant(meta, rng):
    meta = copy.deepcopy(meta)
    paths = [p for p in _paths(meta) if p]
    path = rng.choice(paths)
    parent = meta
    for k in path[:-1]:
        parent = parent[k]
    r = rng.random()
    if r < 0.15 and isinstance(parent, dict):
        del parent[path[-1]]
    elif r < 0.25 and isinstance(parent, dict):
        parent["bogus_" + str(rng.randrange(100))] = rng.choice(EXTREMES)
    else:
        value = parent[path[-1]]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and rng.random() < 0.5:
            parent[path[-1]] = rng.choice([value + 1, value - 1, value * 2, -value, value * 10**6])
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(EXTREMES))
    return meta


def _byte_mutant(data: bytes, rng) -> bytes:
    b = bytearray(data)
    op = rng.randrange(6)
    if op == 0:
        for _ in range(rng.randint(1, 10)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif op == 1:
        at = rng.randrange(len(b))
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == 2:
        at = rng.randrange(len(b))
        del b[at:at + rng.randint(1, 16)]
    elif op == 3:
        b = b[: rng.randrange(len(b))]
    else:  # overwrite a 4- or 8-byte field with an extreme (often the header length or a JSON number)
        width = 4 if op == 4 else 8
        at = 0 if rng.random() < 0.2 else rng.randrange(max(1, len(b) - width))
        value = rng.choice([0, 1, 2**(8 * width) - 1, 2**(8 * width - 1) - 1, 2**(8 * width - 1), 7])
        b[at:at + width] = value.to_bytes(width, "little")
    return bytes(b)


def _campaign(tmp_path, src, load, n=150, seed=0, json_fraction=0.4, name="m.safetensors"):
    rng = random.Random(seed)
    data = src.read_bytes()
    tensors, meta = (load_tensors(src) if src.suffix == ".safetensors" else (None, None))
    outcomes = {"ok": 0, "refused": 0}
    for i in range(n):
        q = tmp_path / name
        if meta is not None and rng.random() < json_fraction:
            save_tensors(q, tensors, _json_mutant(meta, rng))
        else:
            q.write_bytes(_byte_mutant(data, rng))
        t0 = time.perf_counter()
        try:
            load(q)
            outcomes["ok"] += 1
        except SimplebitsError as e:
            assert len(str(e).splitlines()) == 1, str(e)
            outcomes["refused"] += 1
        assert time.perf_counter() - t0 < 5.0, f"variant {i} took {time.perf_counter() - t0:.1f} s"
    assert outcomes["refused"] > n // 5 and outcomes["ok"] > 0, outcomes
    print(src.name, outcomes)
    return outcomes


@pytest.mark.parametrize("kind", ["classifier", "flow", "condensed", "unbounded", "dynamics", "state"])
def test_mutated_own_files_never_escape(files, tmp_path, kind):
    src = {"classifier": "clf", "flow": "flow", "condensed": "set", "unbounded": "unbounded", "dynamics": "dyn",
           "state": "state"}[kind]
    load = LOADERS.get(kind, load_condensed)
    seed = ["classifier", "flow", "condensed", "unbounded", "dynamics", "state"].index(kind)
    _campaign(tmp_path, files / f"{src}.safetensors", load, seed=seed)


def test_mutated_foreign_pt_files_never_escape(files, tmp_path):
    _campaign(tmp_path, files / "res_DC_MNIST_ConvNet_2ipc.pt", import_condensed, seed=3, name="res_DC_MNIST_ConvNet_2ipc.pt")


def test_mutated_pt_objects_never_escape(tmp_path):
    rng = random.Random(5)
    g = torch.Generator().manual_seed(0)
    leaves = [torch.rand(2, 1, 8, 8, generator=g), torch.arange(2), torch.zeros(2, 3), torch.tensor(5.0), "x", 3, None,
              [], {}, torch.zeros(0, 1, 8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.float16), torch.ones(2, 2).long(),
              torch.full((2, 1, 8, 8), 1e30), torch.zeros(2, 8, 8, 1), torch.zeros(1, 1, 1, 1).expand(2, 1, 8, 8)]
    for i in range(60):
        images, labels = rng.choice(leaves), rng.choice(leaves)
        obj = rng.choice([{"data": [[images, labels]]}, [images, labels], images, {"data": [images, labels]}])
        p = tmp_path / rng.choice(["res_DC_MNIST_ConvNet_1ipc.pt", "data.pt", "images_best.pt"])
        torch.save(obj, p)
        torch.save(labels, tmp_path / "labels_best.pt")
        try:
            import_condensed(p)
        except SimplebitsError:
            pass
        finally:
            p.unlink()


def test_bad_input_error_is_the_base_of_the_refusals():
    assert issubclass(UntrustedCodeError, BadInputError) and issubclass(CorruptFileError, BadInputError)


def test_a_zip_whose_end_record_claims_several_disks_is_one_line(tmp_path):
    """zipfile.is_zipfile itself raises BadZipFile ("span multiple disks") for such a file: found
    by the fuzz campaign on TorchScript classifiers."""
    import zipfile as _zip

    from simplebits.train.checkpoint import load_classifier

    p = tmp_path / "clf.ts"
    with _zip.ZipFile(p, "w") as z:
        z.writestr("clf/code/__torch__.py", "x")
    import struct

    raw = p.read_bytes()
    end = raw.rfind(b"PK\x05\x06")
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 1, 0, 2)  # a zip64 locator on disk 1 of 2
    p.write_bytes(raw[:end] + locator + raw[end:])
    with pytest.raises(_zip.BadZipFile, match="multiple disks"):
        _zip.is_zipfile(p) and _zip.ZipFile(p)
    with pytest.raises(SimplebitsError):
        load_classifier(p)
