"""The method registry is the one place a condensation method is declared: a method registered in
a test (a trivial subclass with its presets) shows up in `simplebits condense --help`, in the
pipeline's key table and checks, in make_config and in the smoke tests' parameter list; every
CondenseConfig setting is a CLI flag and a [condense] key, generated from its field."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

import pytest
import torch

from simplebits.cli.condense import config_of
from simplebits.cli.main import build_parser
from simplebits.condense import (EVAL_PROTOCOL, METHODS, PRESETS, CondenseConfig, get_method, list_methods,
                                 make_config, register_method, unregister_method)
from simplebits.condense.config import NetOptions
from simplebits.condense.methods import DMMethod
from simplebits.errors import BadInputError, UnknownNameError
from simplebits.pipeline import PipelineConfig, builtin_config, parse_config
from simplebits.pipeline.config import (CONDENSE_FROM_RUN, CondenseSection, condense_config, section_dict,
                                        settings_table)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_TOY_PRESET = dict(init="real", iterations=600, batch_real=128, lr_img=1.0, outer_loop=1, inner_loop=0)


class ToyMethod(DMMethod):
    """Distribution matching with summed instead of mean embeddings (the docs' example)."""

    def real_side(self, batches):
        return [e.sum(0) for e in self.engine.embed_many([xr for _, xr in batches])]

    def class_term(self, c, xs, real):
        return ((real - self.engine.embed_synthetic(xs).sum(0)) ** 2).sum()


@pytest.fixture
def toy():
    """``toy`` registered for the test, the registry as it was afterwards."""
    before = list_methods()
    register_method("toy", eval_protocol="quick", help="a toy method of the tests",
                    presets={"quick": _TOY_PRESET, "paper": dict(_TOY_PRESET, iterations=20000)})(ToyMethod)
    yield "toy"
    unregister_method("toy")
    assert list_methods() == before


def _condense_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["condense"]


def test_builtin_methods_come_from_the_registry():
    assert METHODS == ("dc", "dsa", "idc", "dream", "dm") and PRESETS == ("quick", "paper")
    assert dict(EVAL_PROTOCOL) == {"dc": "dc", "dsa": "dsa", "idc": "idc", "dream": "idc", "dm": "dsa"}
    assert make_config("idc", preset="paper").iterations == 2000 and make_config("dm").iterations == 600
    with pytest.raises(UnknownNameError, match="unknown method 'nope'; valid: dc, dm, dream, dsa, idc"):
        make_config("nope")


def test_a_registered_method_is_everywhere(toy, tmp_path):
    # the library: the live views, make_config, the checks that read the class's traits
    assert toy in METHODS and EVAL_PROTOCOL[toy] == "quick" and get_method(toy).factory is ToyMethod
    assert make_config(toy, preset="paper").iterations == 20000
    with pytest.raises(BadInputError, match=r"toy matches mean embeddings; --match applies to dc/dsa/idc/dream only"):
        make_config(toy, match="mse")
    # the CLI: --method's choices, the description, and a parsed command's config
    help_text = _condense_parser().format_help()
    assert "{dc,dsa,idc,dream,dm,toy}" in help_text and "toy: a toy method of the tests" in " ".join(help_text.split())
    args = build_parser().parse_args(["condense", "digits", "--ipc", "2", "--out", "o", "--method", toy])
    assert config_of(args) == make_config(toy, ipc=2)
    # the pipeline: its key table, its checks, the stage's config
    assert "condensation method (dc, dsa, idc, dream, dm, toy)" in settings_table()
    cfg = parse_config({"condense": {"method": toy, "iterations": 2}})
    assert condense_config(cfg.condense, ipc=1, lam=0.0, seed=0).method == toy
    # the smoke tests: the toy is in their parameter list, and runs as they run every method
    import test_condense

    assert (toy, {}) in test_condense.smoke_cases()
    test_condense.test_every_method_writes_a_condensed_set(tmp_path, toy, {})


def test_the_registry_is_restored_after_the_toy():
    assert "toy" not in METHODS and "toy" not in _condense_parser().format_help()
    with pytest.raises(UnknownNameError, match="condense.method"):
        parse_config({"condense": {"method": "toy"}})


@pytest.mark.parametrize("name,kw,match", [
    ("dc", {}, "already registered"),
    ("Bad Name", {}, "lower-case"),
    ("new", {"presets": {"quick": {"lr_image": 1.0}}}, r"unknown setting\(s\) \['lr_image'\]"),
    ("new", {"presets": {"quick": {"ipc": 10}}}, r"unknown setting\(s\) \['ipc'\]"),
    ("new", {"presets": {}}, "non-empty"),
    ("new", {"eval_protocol": ""}, "eval_protocol"),
    ("new", {"eval_protocol": "nope"}, "unknown protocol 'nope'"),
])
def test_bad_registrations_are_clear_errors(name, kw, match):
    args = {"presets": {"quick": {}}, "eval_protocol": "dc", "help": "x", **kw}
    with pytest.raises(BadInputError, match=match):
        register_method(name, **args)(ToyMethod)
    assert "new" not in METHODS


def test_a_method_without_a_preset_names_its_own():
    register_method("one-preset", eval_protocol="dc", help="x", presets={"quick": {}})(ToyMethod)
    try:
        with pytest.raises(UnknownNameError, match="unknown preset of method 'one-preset' 'paper'; valid: quick"):
            make_config("one-preset", preset="paper")
    finally:
        unregister_method("one-preset")


# ---------------------------------------------------------------------------------------------- one field, every place

def test_every_setting_is_a_flag_of_condense():
    dests = {a.dest for a in _condense_parser()._actions}
    for f in fields(CondenseConfig):
        if f.name == "net_options":  # a table: its keys are flags of their own
            assert {g.name for g in fields(NetOptions)} <= dests
        else:
            assert f.name in dests, f.name
    assert all(f.metadata.get("help") for f in fields(CondenseConfig))


def test_every_setting_is_a_condense_key_of_the_pipeline():
    keys = {f.name for f in fields(CondenseSection)}
    assert {f.name for f in fields(CondenseConfig)} - keys == set(CONDENSE_FROM_RUN)  # seed: the run's
    table = settings_table()
    assert all(f"`condense.{k}`" in table for k in keys)


def test_flags_reach_the_config():
    argv = ["condense", "digits", "--ipc", "3", "--out", "o", "--method", "dsa", "--lr-net", "0.02", "--betas",
            "0.4,0.9", "--no-clamp", "--width", "16", "--act", "elu", "--no-compile", "--dsa", "", "--seed", "4"]
    cfg = config_of(build_parser().parse_args(argv))
    assert cfg == make_config("dsa", ipc=3, lr_net=0.02, betas=(0.4, 0.9), clamp=False, compile=False, dsa="",
                              seed=4, net_options={"width": 16, "act": "elu"})
    plain = config_of(build_parser().parse_args(["condense", "digits", "--ipc", "1", "--out", "o"]))
    assert plain == make_config("dc", ipc=1)  # every flag left out: the preset's


def test_keys_reach_the_config_and_round_trip_through_toml():
    cfg = parse_config({"condense": {"method": "idc", "lr_img": 0.05, "net_options": {"width": 8},
                                     "betas": [0.4, 0.9], "compile": "auto", "dsa": "", "outer_loop": 2}})
    cc = condense_config(cfg.condense, ipc=2, lam=0.0, seed=7)
    assert cc == make_config("idc", ipc=2, iterations=30, batch_real=128, lr_img=0.05, net_options={"width": 8},
                             betas=(0.4, 0.9), compile="auto", dsa="", outer_loop=2, seed=7)
    again = parse_config(tomllib.loads(cfg.to_toml()))
    assert again == cfg and again.to_toml() == cfg.to_toml()


@pytest.mark.parametrize("table,match", [
    ({"lr_img": "fast"}, "condense.lr_img must be a number"),
    ({"net_options": 3}, "condense.net_options must be a table"),
    ({"match": "nope"}, r"\[condense\] \(ipc 1, lambda_sim 0\): unknown match 'nope'"),
    ({"factor": 2}, "belongs to --method idc or dream"),
    ({"no_such_key": 1}, "unknown key 'no_such_key' in table \\[condense\\]"),
])
def test_bad_condense_keys_are_refused_at_load(table, match):
    with pytest.raises(BadInputError, match=match):
        parse_config({"condense": table})


def test_configs_without_the_new_keys_keep_their_hash_and_stage_keys():
    # the [condense] table of `small` as it was before every setting became a key: what its hashes hold
    assert section_dict(builtin_config("small").condense) == {
        "enabled": True, "method": "dc", "ipc": [1], "lambda_sim": [0.0, 100.0], "iterations": 3, "preset": "quick",
        "batch_real": 32}
    assert set(PipelineConfig().to_dict()["condense"]) == {"enabled", "method", "ipc", "lambda_sim", "iterations",
                                                           "preset", "batch_real"}
    # today's keys mean what they meant: 0 = the preset's, and the stage's config is the one it was
    cfg = parse_config({"condense": {"iterations": 0, "batch_real": 0, "method": "dm"}})
    assert condense_config(cfg.condense, ipc=1, lam=100.0, seed=0) == make_config("dm", ipc=1, lambda_sim=100.0)


def test_make_method_builds_the_registered_class(toy):
    from conftest import make_blobs
    from simplebits.condense.methods import DCMethod, IDCMethod, make_method

    ds = make_blobs(4, 2, (1, 12, 12))
    dev = torch.device("cpu")
    small = {"net_options": {"width": 8}, "compile": False}
    assert type(make_method(make_config("dc", **small), ds, device=dev)) is DCMethod
    assert type(make_method(make_config("idc", outer_loop=1, **small), ds, device=dev)) is IDCMethod
    assert type(make_method(make_config(toy, **small), ds, device=dev)) is ToyMethod
