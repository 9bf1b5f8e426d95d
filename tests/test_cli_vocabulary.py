"""One vocabulary across the subcommands (docs/cli.md, "Vocabulary"): the same concept has the same
flag everywhere, flags are never abbreviated, an unknown flag is reported against the subcommand's
own usage, every old spelling still works with one deprecation line, and every command that trains
takes --device (default auto). Checked on the parsers themselves, so a new subcommand is covered
without listing it here."""

from __future__ import annotations

import argparse
import json

import pytest

from simplebits.cli.common import REMOVED_IN, _Deprecated, seed_list
from simplebits.cli.main import build_parser, main
from simplebits.cli.reference import _walk

#: the commands that train a network (or a flow, or a simplifier), and so take --device
TRAINS = {"evaluate", "train-flow", "simplify", "simplify-baselines", "continual", "explain", "train-classifier",
          "condense", "prune", "prune-table", "run", "sweep", "demo"}

#: destination -> the one flag spelling of that concept
CONCEPTS = {"net": "--net", "classifier": "--net", "density": "--density", "seed": "--seed", "seeds": "--seeds",
            "max_train": "--max-train", "max_images": "--max-images", "device": "--device", "data_root": "--data-root",
            "json": "--json", "force": "--force", "out": "--out"}

#: spellings no subcommand shows any more (still accepted, hidden, where they existed)
RETIRED = {"--classifier", "--model", "--nets", "--train-size", "--limit", "--eval-seeds"}


def _leaves() -> list[tuple[str, argparse.ArgumentParser]]:
    return [(" ".join(path), p) for path, p in _walk(build_parser(), [])
            if path and not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]


def _visible(p: argparse.ArgumentParser):
    return [a for a in p._actions if a.option_strings and a.help != argparse.SUPPRESS
            and not isinstance(a, argparse._HelpAction)]


def _minimal(name: str, p: argparse.ArgumentParser) -> list[str]:
    """The subcommand with its positionals and required flags filled in (``1`` parses as text and as int)."""
    argv = name.split()
    for a in p._actions:
        if not a.option_strings and a.nargs not in ("?", "*"):
            argv.append("1")
        elif a.option_strings and a.required:
            argv += [a.option_strings[0], "1"]
    return argv


def _value(a: argparse.Action) -> list[str]:
    if a.nargs == 0:
        return []
    return [str(list(a.choices)[0])] if a.choices else ["1"]


LEAVES = _leaves()


def test_every_parser_refuses_abbreviations():
    for path, p in _walk(build_parser(), []):
        assert p.allow_abbrev is False, " ".join(path) or "simplebits"


@pytest.mark.parametrize("name,parser", LEAVES, ids=[n for n, _ in LEAVES])
def test_no_abbreviation_and_unknown_flags_name_the_subcommand(name, parser, capsys):
    longs = [o for a in _visible(parser) for o in a.option_strings if o.startswith("--") and len(o) > 4]
    assert longs, name
    # an abbreviation of every flag (one that is not itself a flag), and a flag no command has
    tries = [o[:-1] for o in longs if o[:-1] not in parser._option_string_actions] + ["--no-such-flag"]
    for bad in tries:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(_minimal(name, parser) + [bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err == (f"simplebits {name}: error: unrecognized arguments: {bad} "
                       f"(see `simplebits {name} --help`)\n"), (name, bad, err)


def test_seed_is_not_read_as_seeds(capsys):
    args = build_parser().parse_args(["evaluate", "digits", "--seed", "1"])
    assert (args.seed, args.seeds, seed_list(args)) == (1, 3, [1, 2, 3])
    with pytest.raises(SystemExit) as e:  # argparse exits with status 2 on a bad flag
        main(["evaluate", "digits", "--se", "1"])
    assert e.value.code == 2
    assert "simplebits evaluate: error: unrecognized arguments: --se 1" in capsys.readouterr().err


@pytest.mark.parametrize("name,parser", LEAVES, ids=[n for n, _ in LEAVES])
def test_the_same_concept_has_the_same_flag(name, parser):
    for a in _visible(parser):
        if a.dest in CONCEPTS:
            assert a.option_strings[0] == CONCEPTS[a.dest], (name, a.option_strings, a.dest)
        for flag in a.option_strings:
            assert flag not in RETIRED, (name, flag)
            if flag in CONCEPTS.values():
                assert CONCEPTS.get(a.dest) == flag, (name, flag, a.dest)
        if "--steps" in a.option_strings:  # optimisation steps; a network's depth is --depth
            assert name == "explain", name
        if "--seeds" in a.option_strings:  # always a count, S..S+N-1 from --seed
            assert isinstance(a.default, int) and "--seed" in parser._option_string_actions, name


@pytest.mark.parametrize("name,parser", LEAVES, ids=[n for n, _ in LEAVES])
def test_device_defaults_to_auto(name, parser):
    dev = parser._option_string_actions.get("--device")
    if name in TRAINS:
        assert dev is not None, f"{name} trains but has no --device"
    if dev is not None and name in ("run", "demo", "sweep"):  # None: the config's own device, else auto
        assert dev.default is None and "else auto" in dev.help, name
    elif dev is not None:
        assert dev.default == "auto", name
        assert build_parser().parse_args(_minimal(name, parser)).device == "auto"


def _deprecated():
    return [(name, a) for name, p in LEAVES for a in p._actions if isinstance(a, _Deprecated)]


@pytest.mark.parametrize("name,action", _deprecated(), ids=[f"{n} {a.option_strings[0]}" for n, a in _deprecated()])
def test_every_old_spelling_still_works_with_one_deprecation_line(name, action, capsys):
    parser = dict(LEAVES)[name]
    old = action.option_strings[0]
    args = build_parser().parse_args(_minimal(name, parser) + [old, *_value(action)])
    want = build_parser().parse_args(_minimal(name, parser) + [action.new, *_value(action)])
    assert getattr(args, action.dest) == getattr(want, action.dest)
    err = capsys.readouterr().err
    assert err == (f"simplebits {name}: note: {old} is deprecated, use {action.new} (the old spelling goes in "
                   f"simplebits {REMOVED_IN})\n")
    assert old not in parser.format_help()


@pytest.mark.parametrize("argv,dest,value,note", [
    (["bpd", "x", "--model", "gray32"], "density", "gray32", "--model is deprecated, use --density"),
    (["bpd", "x", "--limit", "5"], "max_images", 5, "--limit is deprecated, use --max-images"),
    (["train-flow", "x", "--out", "f", "--steps", "2"], "depth", 2, "--steps is deprecated, use --depth"),
    (["train-classifier", "x", "--out", "f", "--model", "convnet"], "net", "convnet", "--model is deprecated, use --net"),
    (["simplify", "x", "--out", "d", "--classifier", "convnet"], "classifier", "convnet",
     "--classifier is deprecated, use --net"),
    (["simplify", "x", "--out", "d", "--train-size", "400"], "max_train", 400,
     "--train-size is deprecated, use --max-train"),
    (["simplify-baselines", "x", "--out", "d", "--train-size", "400"], "max_train", 400,
     "--train-size is deprecated, use --max-train"),
])
def test_the_renamed_flags(argv, dest, value, note, capsys):
    assert getattr(build_parser().parse_args(argv), dest) == value
    assert note in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["simplify", "simplify-baselines", "continual"])
@pytest.mark.parametrize("given,seeds,note", [
    ("0,1,2", [0, 1, 2], "--seeds 0,1,2 (a list of seed numbers) is deprecated, use --seed 0 --seeds 3"),
    ("3,4", [3, 4], "--seeds 3,4 (a list of seed numbers) is deprecated, use --seed 3 --seeds 2"),
    ("1,5", [1, 5], "--seeds 1,5 (a list of seed numbers) is deprecated, use --seed S --seeds N"),
    ("0", [0], "--seeds 0 (a seed number) is deprecated, use --seed 0 --seeds 1"),
    ("2", [0, 1], "--seeds 2 runs 2 seed(s)"),  # a count now: said on stderr, never silently
])
def test_seed_numbers_where_seeds_took_them(cmd, given, seeds, note, capsys):
    args = build_parser().parse_args([cmd, *(["x"] if cmd != "continual" else []), "--out", "d", "--seeds", given])
    assert seed_list(args) == seeds
    assert note in capsys.readouterr().err


def test_seeds_is_a_count_from_seed(capsys):
    p = build_parser()
    assert seed_list(p.parse_args(["simplify", "x", "--out", "d"])) == [0]
    assert seed_list(p.parse_args(["continual", "--out", "d"])) == [0, 1, 2]
    assert seed_list(p.parse_args(["continual", "--out", "d", "--seed", "5", "--seeds", "2"])) == [5, 6]
    assert seed_list(p.parse_args(["evaluate", "x", "--seeds", "2", "--seed", "4"])) == [4, 5]
    assert capsys.readouterr().err.count("note:") == 1  # only continual's --seeds 2 (a count since 0.3)
    for argv in (["evaluate", "x", "--seeds", "0,1"], ["evaluate", "x", "--seeds", "0"],
                 ["simplify", "x", "--out", "d", "--seeds", "a,b"]):
        with pytest.raises(SystemExit) as e:
            p.parse_args(argv)
        assert e.value.code == 2
        assert "--seeds: takes a number of seeds" in capsys.readouterr().err


def test_old_spellings_in_a_real_run(capsys):
    assert main(["bpd", "digits:test", "--model", "none", "--codec", "png", "--limit", "5", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["n"] == 5
    assert captured.err.count("is deprecated") == 2


class _Done:
    """What a pipeline run returns, as far as `simplebits run` reads it (the tests below fake the run)."""

    def to_dict(self):
        return {}

    def summary(self):
        return "done"


@pytest.mark.parametrize("cmd", [["run", "small"], ["demo"]])
def test_run_and_demo_write_device_into_the_config(cmd, tmp_path, monkeypatch, capsys):
    import simplebits.pipeline as pipeline

    seen = {}

    def fake_run(cfg, **kw):
        seen["device"] = cfg.device
        return _Done()

    monkeypatch.setattr(pipeline, "run", fake_run)
    out = ["--out", str(tmp_path / "o")]
    assert main([*cmd, *out]) == 0 and seen["device"] == "cpu"  # auto, on a machine without CUDA
    assert main([*cmd, *out, "--device", "cpu", "--set", 'device="auto"']) == 0 and seen["device"] == "auto"
    assert main([*cmd, *out, "--device", "nonsense"]) == 2
    assert "--device" in capsys.readouterr().err


def test_sweep_writes_device_into_the_base_config(tmp_path, monkeypatch):
    import simplebits.pipeline.sweeps as sweeps

    seen = {}

    def fake_sweep(cfg, **kw):
        seen["device"] = cfg.base.device
        raise SystemExit(0)

    monkeypatch.setattr(sweeps, "sweep", fake_sweep)
    toml = tmp_path / "s.toml"
    toml.write_text(f'device = "cuda"\n[data]\ndataset = "digits"\n[sweep]\nout = "{tmp_path / "s"}"\n'
                    '[sweep.grid]\nseed = [0, 1]\n')
    with pytest.raises(SystemExit):
        main(["sweep", str(toml), "--device", "cpu"])
    assert seen["device"] == "cpu"
    with pytest.raises(SystemExit):
        main(["sweep", str(toml), "--ray", "local", "--device", "auto"])
    assert seen["device"] == "auto"  # resolved where each cell runs
    with pytest.raises(SystemExit):
        main(["sweep", str(toml)])
    assert seen["device"] == "cuda"  # the file names its device: no --device keeps it
    toml.write_text(toml.read_text().replace('device = "cuda"\n', ""))
    with pytest.raises(SystemExit):
        main(["sweep", str(toml)])
    assert seen["device"] == "cpu"  # the file names none: auto, on a machine without CUDA


def test_run_keeps_the_device_its_config_file_names(tmp_path, monkeypatch):
    import simplebits.pipeline as pipeline

    seen = {}

    monkeypatch.setattr(pipeline, "run", lambda cfg, **kw: seen.update(device=cfg.device) or _Done())
    toml = tmp_path / "r.toml"
    toml.write_text(f'device = "cuda:1"\nout = "{tmp_path / "o"}"\n[data]\ndataset = "digits"\n')
    assert main(["run", str(toml)]) == 0 and seen["device"] == "cuda:1"  # not replaced by the default auto
    assert main(["run", str(toml), "--device", "cpu"]) == 0 and seen["device"] == "cpu"
