"""The pipeline (`simplebits run` / `simplebits.run`): config checks, stages, skipping, resuming
after SIGKILL, refusing another config's directory, and the HTML report."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import simplebits as sb
from simplebits.cli.main import main
from simplebits.errors import BadInputError, MismatchError, NotFoundError, UnknownNameError
from simplebits.pipeline import PipelineConfig, builtin_config, list_builtin, load_config, parse_config
from simplebits.pipeline.config import apply_overrides, settings_table

pytestmark = pytest.mark.slow

# Every stage, minimal budgets, on sklearn's 8x8 digits: about a minute on 2 cores.
TINY = """
[data]
dataset = "digits"
bpd_images = 50
[evaluate]
seeds = 2
max_steps = 30
[condense]
ipc = [1]
lambda_sim = [0.0, 100.0]
iterations = 2
batch_real = 16
[prune]
from_ipc = 2
targets = [1]
rules = ["yoco", "random"]
runs = 1
[simplify]
lambdas = [2.0]
epochs = 1
train_size = 200
[explain]
n = 2
steps = 5
max_steps = 30
"""

# data + baseline only: seconds
MINI = {"data": {"dataset": "digits", "bpd_images": 20}, "evaluate": {"seeds": 1, "max_steps": 10,
                                                                      "baseline_ipc": [1]},
        "condense": {"enabled": False}, "prune": {"enabled": False}, "simplify": {"enabled": False},
        "explain": {"enabled": False}}


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "simplebits.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One uninterrupted CLI run of TINY: (config path, out dir, wall seconds)."""
    d = tmp_path_factory.mktemp("pipeline")
    cfg = d / "tiny.toml"
    cfg.write_text(TINY)
    out = d / "out"
    t0 = time.perf_counter()
    r = _cli("run", str(cfg), "--out", str(out), "--json")
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    (d / "stderr.txt").write_text(r.stderr)
    return cfg, out, wall, json.loads(r.stdout)


def _figures(out: Path) -> dict:
    return json.loads((out / "figures.json").read_text())


# ------------------------------------------------------------------------------------------ config


def test_builtin_configs_parse_and_round_trip_through_toml(tmp_path):
    assert {"demo", "small"} <= set(list_builtin())
    for name in list_builtin():
        cfg = builtin_config(name)
        p = tmp_path / f"{name}.toml"
        p.write_text(cfg.to_toml())
        assert load_config(p) == cfg
    demo = builtin_config("demo")
    assert demo.data.fallback == "mnist-5k" and demo.condense.lambda_sim == [0.0, 100.0]


def test_unknown_key_is_named_with_the_valid_keys(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[condense]\nipcs = [1]\n')
    with pytest.raises(BadInputError) as e:
        load_config(p)
    msg = str(e.value)
    assert "'ipcs'" in msg and "[condense]" in msg and "ipc" in msg and "lambda_sim" in msg
    p.write_text('[condence]\nipc = [1]\n')
    with pytest.raises(BadInputError, match=r"unknown table \[condence\].*\[condense\]"):
        load_config(p)
    p.write_text('outdir = "x"\n')
    with pytest.raises(BadInputError, match="unknown key 'outdir' in the top level; valid keys: out, seed"):
        load_config(p)


@pytest.mark.parametrize("text, where", [
    ('[evaluate]\nseeds = "3"\n', "evaluate.seeds must be an integer"),
    ('[condense]\nipc = 1\n', "condense.ipc must be a list of integer"),
    ('[condense]\nlambda_sim = [0, "a"]\n', r"condense.lambda_sim\[1\] must be a number"),
    ('[prune]\nenabled = 1\n', "prune.enabled must be a true/false"),
    ('seed = 1.5\n', "seed must be an integer"),
])
def test_wrong_type_names_the_key_and_the_type(tmp_path, text, where):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(BadInputError, match=where):
        load_config(p)


def test_contradictory_settings_are_refused():
    with pytest.raises(BadInputError, match=r"IPC_T = 10 but from_ipc \(IPC_F\) is 10"):
        parse_config({"prune": {"from_ipc": 10, "targets": [1, 10]}})
    with pytest.raises(BadInputError, match="IPC_T = 12"):
        parse_config({"prune": {"from_ipc": 10, "targets": [12]}})
    with pytest.raises(BadInputError, match="add 10 to condense.ipc"):
        parse_config({"prune": {"source": "condensed", "from_ipc": 10}, "condense": {"ipc": [1]}})
    with pytest.raises(UnknownNameError, match="yoco"):
        parse_config({"prune": {"rules": ["yocco"]}})
    with pytest.raises(UnknownNameError, match="dsa"):
        parse_config({"condense": {"method": "gm"}})
    with pytest.raises(BadInputError, match="lambda_sim values must be >= 0"):
        parse_config({"condense": {"lambda_sim": [-1.0]}})
    # disabled stages are not checked against each other
    assert parse_config({"prune": {"enabled": False, "from_ipc": 1, "targets": [5]}}).prune.targets == [5]


def test_bad_toml_and_missing_file_are_clear(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[data\n")
    with pytest.raises(BadInputError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(NotFoundError, match="config file not found.*built-in"):
        load_config(tmp_path / "nope.toml")


def test_set_overrides_read_toml_values():
    cfg = apply_overrides(PipelineConfig(), ["evaluate.seeds=1", "condense.lambda_sim=[0, 10]", "out=run2",
                                             "data.dataset=mnist-5k"])
    assert cfg.evaluate.seeds == 1 and cfg.condense.lambda_sim == [0.0, 10.0] and cfg.out == "run2"
    assert cfg.data.dataset == "mnist-5k"  # not TOML: taken as a string
    with pytest.raises(BadInputError, match="KEY=VALUE"):
        apply_overrides(PipelineConfig(), ["evaluate.seeds"])
    with pytest.raises(BadInputError, match="unknown key 'seed' in table"):
        apply_overrides(PipelineConfig(), ["evaluate.seed=1"])


def test_docs_settings_table_is_current():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "pipeline.md").read_text()
    assert settings_table() in doc, "regenerate: python -m simplebits.pipeline.schema (see docs/pipeline.md)"



# the config fields each stage sets itself instead of its table (documented in pipeline/config.py)
_FROM_RUN = {"simplify": {"density"}, "explain": {"seed", "density"}, "continual": set(), "prune": {"seed"}}


def test_stage_tables_take_every_setting_of_their_config_dataclass():
    from dataclasses import fields

    from simplebits.continual.config import ContinualConfig
    from simplebits.explain.posthoc import ExplainConfig
    from simplebits.pipeline import config as pc
    from simplebits.prune.dynamics import DynamicsConfig
    from simplebits.settings import user_fields
    from simplebits.simplify.config import SimplifyConfig

    classes = {"simplify": SimplifyConfig, "explain": ExplainConfig, "continual": ContinualConfig,
               "prune": DynamicsConfig}
    generated = {"simplify": pc.SIMPLIFY_KEYS, "explain": pc.EXPLAIN_KEYS, "continual": pc.CONTINUAL_KEYS,
                 "prune": pc.PRUNE_KEYS}
    for name, cls in classes.items():
        keys = {f.name for f in fields(pc.SECTIONS[name])}
        settings = {f.name for f in user_fields(cls, where="toml")}
        assert settings - keys == _FROM_RUN[name], name  # every setting is a key, but the run's own
        assert set(generated[name]) <= settings and generated[name], name
        assert all(getattr(pc.SECTIONS[name](), k) is None for k in generated[name])  # absent: the preset's

    # nothing given: the stages build the configs they built before these keys existed
    cfg = PipelineConfig()
    assert pc.dynamics_config(cfg.prune, seed=0) is None  # prune_set's own default
    from simplebits.continual import make_config
    from simplebits.explain import make_explain_config
    from simplebits.simplify import make_simplify_config

    assert pc.simplify_config(cfg.simplify, density=None) == make_simplify_config(preset="quick", epochs=3)
    assert pc.explain_config(cfg.explain, seed=0, density=None) == make_explain_config(space="latent", steps=300,
                                                                                       seed=0)
    assert pc.continual_config(cfg.continual) == make_config("quick")


def test_generated_stage_keys_given_in_toml_reach_the_stage_configs(tmp_path):
    from simplebits.pipeline import config as pc

    p = tmp_path / "c.toml"
    p.write_text('seed = 4\n[simplify]\nlr_sim = 0.01\nwarmup_epochs = 0\ninner = "sgd"\n'
                 '[explain]\nlr = 0.2\nbatch_size = 4\n[continual]\nkd_weight = 0.5\nchannels = 3\n'
                 '[prune]\nprotocol = "quick"\nstop_epoch = 5\ntop_k = 2\nmodel_options = {width = 16}\n')
    cfg = load_config(p)
    sc = pc.simplify_config(cfg.simplify, density=None)  # what the stages call (pipeline/runner.py)
    assert (sc.lr_sim, sc.warmup_epochs, sc.inner, sc.epochs) == (0.01, 0, "sgd", 3)
    ec = pc.explain_config(cfg.explain, seed=cfg.seed, density=None)
    assert (ec.lr, ec.batch_size, ec.steps, ec.seed) == (0.2, 4, 300, 4)
    kc = pc.continual_config(cfg.continual)
    assert (kc.kd_weight, kc.channels, kc.preset) == (0.5, 3, "quick")
    dc = pc.dynamics_config(cfg.prune, seed=cfg.seed)
    assert (dc.protocol, dc.stop_epoch, dc.top_k, dc.model_options, dc.runs, dc.seed) == ("quick", 5, 2,
                                                                                         {"width": 16}, 3, 4)
    (tmp_path / "back.toml").write_text(cfg.to_toml())  # round trip: OUT/config.toml reads back the same
    assert load_config(tmp_path / "back.toml") == cfg
    assert "kd_weight = 0.5" in cfg.to_toml() and "model_options = {width = 16}" in cfg.to_toml()
    # a given key is part of the config's identity; an unset one is not written
    assert "max_train" not in cfg.to_toml() and "first_cycles" not in cfg.to_dict()["continual"]
    # settings the config itself refuses are refused when the config is loaded, naming the table
    with pytest.raises(BadInputError, match=r"\[simplify\]: warmup-epochs \(5\) must be fewer than epochs"):
        parse_config({"simplify": {"warmup_epochs": 5}})
    with pytest.raises(BadInputError, match=r"\[prune\]: unknown protocol 'nope'"):
        parse_config({"prune": {"protocol": "nope"}})


@pytest.mark.parametrize("text, where", [
    ('[simplify]\nlr_sim = "fast"\n', "simplify.lr_sim must be a number"),
    ('[explain]\nbatch_size = 1.5\n', "explain.batch_size must be an integer"),
    ('[continual]\nhead = 1\n', "continual.head must be a string"),
    ('[prune]\nmodel_options = 3\n', "prune.model_options must be a table"),
])
def test_generated_stage_key_of_the_wrong_type_is_one_clear_error(tmp_path, text, where):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(BadInputError, match=where) as e:
        load_config(p)
    assert len(str(e.value).splitlines()) == 1

# ------------------------------------------------------------------------------------------ CLI errors


def test_cli_bad_config_exits_2_with_one_line(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text('[prune]\nfrom_ipc = 2\ntargets = [2]\n')
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "IPC_T = 2" in err
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_missing_data_set_is_refused_before_anything_is_written(tmp_path, capsys):
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "out"
    p = tmp_path / "c.toml"
    p.write_text(f'out = "{out}"\n[data]\ndataset = "fashion-mnist"\nroot = "{empty}"\n')
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fashion-mnist" in err and "data.fallback" in err
    assert not out.exists()
    p.write_text(f'out = "{out}"\n[data]\ndataset = "no-such-set"\n')
    assert main(["run", str(p)]) == 2
    assert "no-such-set" in capsys.readouterr().err


def test_run_without_config_explains(capsys):
    assert main(["run"]) == 2
    assert "--print-config demo" in capsys.readouterr().err
    assert main(["run", "--print-config", "small"]) == 0
    assert 'dataset = "digits"' in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ API


def test_api_twin_returns_the_figures_and_writes_the_report(tmp_path):
    res = sb.run(MINI, out=tmp_path / "o", log=lambda s: None)
    assert res.dataset == "digits" and set(res.figures) == {"data", "baseline"}
    (row,) = res.figures["baseline"]["rows"]
    assert row["ipc"] == 1 and 0 <= row["accuracy"]["mean"] <= 1 and row["accuracy"]["seeds"] == [0]
    assert res.figures["data"]["bpd"] is None or res.figures["data"]["bpd"]["n"] == 20
    assert json.loads((tmp_path / "o" / "figures.json").read_text())["figures"] == res.figures
    html = Path(res.report).read_text()
    assert "Random real baseline" in html and "Condensed sets" not in html
    # a second call finds every stage finished and changes nothing
    again = sb.run(MINI, out=tmp_path / "o", log=lambda s: None)
    assert again.skipped == ["data", "baseline"] and again.figures == res.figures


def test_scores_for_every_condensed_set_with_the_whole_data_networks_kept_in_the_run(tmp_path):
    cfg = {**MINI, "evaluate": {"seeds": 1, "max_steps": 10, "scores": True, "score_labels": "kl", "temperature": 2.0},
           "condense": {"method": "dm", "ipc": [1], "lambda_sim": [0.0], "iterations": 1, "batch_real": 8}}
    res = sb.run(cfg, out=tmp_path / "o", log=lambda s: None)
    (s,) = res.figures["condense"]["sets"]
    sc = s["scores"]
    assert sc["protocol"] == "quick+kl(T=2)" and set(sc["scores"]) == {"hlr", "ior", "lrs", "ars"}
    # HLR pairs the whole-data network with the set trained on hard labels, seed by seed
    acc = sc["accuracies"]
    assert sc["scores"]["hlr"]["mean"] == pytest.approx(100 * (acc["full_hard"]["mean"] - acc["set_hard"]["mean"]))
    assert list((tmp_path / "o" / "cache" / "full-data").glob("*.safetensors"))
    html = Path(res.report).read_text()
    assert "DD-Ranking scores" in html and "Accuracy vs bits to store" in html


def test_scores_settings_are_checked(tmp_path):
    with pytest.raises(UnknownNameError, match="score_labels"):
        sb.run({**MINI, "evaluate": {"score_labels": "soft"}}, out=tmp_path / "o", log=lambda s: None)


def test_test_size_takes_a_class_balanced_subset_of_the_test_split(tmp_path):
    res = sb.run({**MINI, "data": {**MINI["data"], "test_size": 100}}, out=tmp_path / "o", log=lambda s: None)
    d = res.figures["data"]
    assert d["n_test"] == 100 and d["counts_test"] == [10] * 10
    assert "a class-balanced subset of the test split" in Path(res.report).read_text()


def test_another_configs_directory_is_refused_unless_forced(tmp_path):
    out = tmp_path / "o"
    sb.run(MINI, out=out, log=lambda s: None)
    before = (out / "baseline" / "stage.json").read_text()
    other = {**MINI, "evaluate": {**MINI["evaluate"], "baseline_ipc": [1, 2]}}
    with pytest.raises(MismatchError, match="results of a different config.*--force"):
        sb.run(other, out=out, log=lambda s: None)
    assert (out / "baseline" / "stage.json").read_text() == before  # nothing touched
    res = sb.run(other, out=out, force=True, log=lambda s: None)
    assert res.skipped == ["data"]  # data settings unchanged: kept; baseline recomputed
    assert [r["ipc"] for r in res.figures["baseline"]["rows"]] == [1, 2]
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(MismatchError, match="not empty and holds no simplebits pipeline run"):
        sb.run(MINI, out=stray, log=lambda s: None)


def test_interrupted_run_needs_resume(tmp_path):
    out = tmp_path / "o"
    sb.run(MINI, out=out, log=lambda s: None)
    meta = json.loads((out / "pipeline.json").read_text())
    meta["state"] = "running"  # as a killed run leaves it
    (out / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(MismatchError, match="interrupted run of this config: pass --resume"):
        sb.run(MINI, out=out, log=lambda s: None)
    assert sb.run(MINI, out=out, resume=True, log=lambda s: None).skipped == ["data", "baseline"]


# ------------------------------------------------------------------------------------------ whole runs


def test_full_run_has_every_stage_and_a_baseline_beside_every_accuracy(tiny_run):
    _, out, _, doc = tiny_run
    f = doc["figures"]
    assert list(f) == ["data", "baseline", "condense", "prune", "simplify", "explain"]
    assert [r["ipc"] for r in f["baseline"]["rows"]] == [1]  # every IPC evaluated; IPC_F only in baseline_ipc
    for s in f["condense"]["sets"]:
        assert s["baseline"] == f["baseline"]["by_ipc"]["1"] and len(s["accuracy"]["accuracies"]) == 2
        assert (out / s["file"]).is_file() and (out / s["grid"]).is_file()
    plain, simple = f["condense"]["sets"]
    assert simple["bpd"] < plain["bpd"]  # the simplification term lowers bpd even at 2 iterations
    # both lambdas start from the same real images, evaluated once under the same protocol and seeds
    assert plain["start"] == simple["start"] and len(plain["start"]["accuracies"]) == 2
    assert plain["below_start"] == (plain["accuracy"]["mean"] < plain["start"]["mean"])
    assert [(r["rule"], r["ipc_to"], r["kept"]) for r in f["prune"]["rows"]] == [("yoco", 1, 10), ("random", 1, 10)]
    assert all(r["baseline"] == f["baseline"]["by_ipc"]["1"] for r in f["prune"]["rows"])
    assert f["simplify"]["original"]["retrain"]["n"] >= 1 and f["simplify"]["rows"][0]["lambda_sim"] == 2.0
    # digits are 8x8, padded to gray32's 32x32: SimpleBits' figures in both units, as the data section's (#19)
    so, row = f["simplify"]["original"], f["simplify"]["rows"][0]
    assert so["bpd_native"] == pytest.approx(16 * so["bpd"])
    assert row["bpd_native"]["mean"] == pytest.approx(16 * row["bpd"]["mean"])
    assert f["simplify"]["units"]["native_dims"] == 64
    assert f["explain"]["n"] == 2 and (out / "explain" / "figure.png").is_file()
    # every set the run makes carries what it costs to store: PNG files + hard labels
    for r in f["baseline"]["rows"] + f["condense"]["sets"] + f["prune"]["rows"]:
        st = r["storage"]
        assert st["total_bits"] == pytest.approx(st["png_bits"] + st["labels"]["bits"]) and st["labels"]["kind"] == "hard"
    assert f["prune"]["rows"][0]["storage"]["n_images"] == 10
    assert f["simplify"]["original"]["storage"]["n_images"] == f["simplify"]["cells"][0]["storage"]["n_images"]
    html = (out / "report.html").read_text()
    assert "its start %" in html and "bits to store" in html and "Accuracy vs bits to store" in html
    simp = html[html.index("<h2 id='simplify'>"):]
    simp = simp[:simp.index("<h2", 5)]
    assert "native bpd" in simp and "94% of the model&#x27;s input is padding" in simp
    # digits cost gray32 more than their raw values: each stage whose loss is the flow says so (#19)
    for sec in ("condense", "simplify", "explain"):
        part = html[html.index(f"<h2 id='{sec}'>"):]
        part = part[:part.index("<h2", 5)]
        assert "cost gray32 8 bits or more per value of the image as given" in part, sec
    assert f["simplify"]["blind_spot_note"] and f["explain"]["blind_spot_note"]
    assert plain["blind_spot_note"] is None and simple["blind_spot_note"]  # only a run with the term is told
    for title in ("Data set", "Random real baseline", "Condensed sets", "Accuracy against bits per dimension",
                  "Pruning", "SimpleBits", "Explanation", "Settings, seeds, versions and timings"):
        assert title in html, title
    assert "Continual learning" not in html  # not run: no section
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html), "the report must not load anything from outside"


def test_each_stage_counts_its_pieces_with_an_eta(tiny_run):
    _, out, _, _ = tiny_run
    err = (out.parent / "stderr.txt").read_text().splitlines()
    for stage, n in [("baseline", 1), ("condense", 7), ("prune", 4), ("simplify", 2), ("explain", 2)]:
        lines = [ln for ln in err if ln.startswith(f"  {stage} ")]
        assert [ln.split()[1] for ln in lines] == [f"{k}/{n}:" for k in range(1, n + 1)], (stage, lines)
        assert all("so far, about" in ln and ln.endswith(" left") for ln in lines[:-1]), lines
        assert lines[-1].endswith(" so far")  # the stage's last piece: nothing left to estimate


def test_rerun_skips_everything_and_report_command_rebuilds(tiny_run, tmp_path):
    cfg, out, _, doc = tiny_run
    r = _cli("run", str(cfg), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads(r.stdout)
    assert again["skipped"] == list(doc["figures"]) and again["figures"] == doc["figures"]
    r = _cli("report", str(out), "--out", str(tmp_path / "r.html"))
    assert r.returncode == 0 and (tmp_path / "r.html").read_text().count("data:image/png;base64,") >= 8
    r = _cli("report", str(tmp_path))
    assert r.returncode == 2 and "no pipeline run" in r.stderr


def test_sigkill_at_a_random_moment_then_resume_gives_the_same_figures(tiny_run, tmp_path):
    cfg, out_ref, wall, _ = tiny_run
    out = tmp_path / "killed"
    delay = random.Random(os.urandom(8)).uniform(1.0, max(2.0, 0.8 * wall))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "simplebits.cli.main", "run", str(cfg), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_during = proc.returncode == -signal.SIGKILL
    r = _cli("run", str(cfg), "--out", str(out), "--resume")
    assert r.returncode == 0, f"killed after {delay:.1f}s; resume failed: {r.stderr[-2000:]}"
    assert _figures(out) == _figures(out_ref), f"killed after {delay:.1f}s (during the run: {killed_during})"


def test_report_renders_in_headless_chromium(tiny_run):
    """Every image loads and nothing overflows the page; the screenshot is kept as an artifact."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (make setup installs it as root: apt-get install chromium)")
    _, out, _, _ = tiny_run
    from simplebits.pipeline.browser import check_report

    default = Path(__file__).resolve().parents[1] / "test-artifacts"
    artifacts = Path(os.environ.get("SIMPLEBITS_TEST_ARTIFACTS", default))
    res = check_report(out / "report.html", screenshot=artifacts / "report-screenshot.png", browser=browser)
    assert res["images"] >= 8 and res["broken"] == [], res
    assert res["overflow"] == [] and res["scrollWidth"] <= res["clientWidth"], res
    assert (artifacts / "report-screenshot.png").stat().st_size > 10_000
    # the check itself catches what it looks for: a broken image and an element wider than the page
    bad = artifacts / "broken-report.html"
    bad.write_text((out / "report.html").read_text().replace(
        "</body>", '<img src="data:image/png;base64,AAAA" alt="bad"><div style="width:3000px">wide</div></body>'))
    res = check_report(bad, browser=browser)
    assert res["broken"] == ["bad"] and any(o.startswith("div") for o in res["overflow"]), res


def test_demo_is_run_on_the_builtin_config(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--dataset", "digits", "--out", str(out), "--json", "--set", "evaluate.seeds=1",
                 "--set", "evaluate.max_steps=10", "--set", "evaluate.baseline_ipc=[1]", "--set", "data.bpd_images=20",
                 "--set", "condense.enabled=false", "--set", "prune.enabled=false", "--set", "simplify.enabled=false",
                 "--set", "explain.enabled=false"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dataset"] == "digits" and doc["config"]["data"]["fallback"] == "mnist-5k"
    assert (out / "report.html").is_file() and (out / "config.toml").is_file()


def test_a_flow_trained_again_under_the_same_path_recomputes_every_bpd_figure(tmp_path):
    """The same config over a flow file written again (other weights, same name): the bpd and
    storage figures are recomputed under the new weights, the evaluations are reused; with the
    weights unchanged, everything is skipped."""
    from simplebits.data import load_dataset
    from simplebits.density import FlowTrainConfig, GlowConfig, train_flow

    flow = tmp_path / "mine.safetensors"
    tiny = GlowConfig(channels=1, image_size=8, levels=2, steps=1, width=8)
    digits = load_dataset("digits", split="train"), load_dataset("digits", split="test")

    def train(seed: int) -> None:  # a second of training: below the raw 8 bits, and the two seeds differ
        train_flow(*digits, model_config=tiny, out=flow, progress=False, config=FlowTrainConfig(
            epochs=2, warmup_steps=5, lr=1e-2, seed=seed, patience=0, test_images=64))

    train(0)
    cfg = {**MINI, "density": {"model": str(flow)}}
    lines: list[str] = []
    first = sb.run(cfg, out=tmp_path / "o", log=lines.append)
    bpd0, (row0,) = first.figures["data"]["bpd"], first.figures["baseline"]["rows"]
    assert bpd0["model"] == str(flow) and row0["storage"]["flow_bits"] is not None

    evaluation = tmp_path / "o" / "baseline" / "ipc1.item.json"
    evaluated_at = evaluation.stat().st_mtime_ns
    train(1)  # train-flow writes the file again
    lines.clear()
    second = sb.run(cfg, out=tmp_path / "o", log=lines.append)
    assert second.skipped == [] and any("weights of the density model" in s for s in lines)
    bpd1, (row1,) = second.figures["data"]["bpd"], second.figures["baseline"]["rows"]
    assert bpd1["mean"] != pytest.approx(bpd0["mean"], abs=1e-6)
    assert row1["storage"]["flow_bits"] != pytest.approx(row0["storage"]["flow_bits"], abs=1e-3)
    assert row1["accuracy"] == row0["accuracy"]
    assert evaluation.stat().st_mtime_ns == evaluated_at  # the evaluation was reused, not trained again
    # the figures are those of a fresh run under the new weights
    fresh = sb.run(cfg, out=tmp_path / "fresh", log=lambda s: None)
    assert fresh.figures == second.figures
    # unchanged weights: nothing recomputed
    assert sb.run(cfg, out=tmp_path / "o", log=lambda s: None).skipped == ["data", "baseline"]
    # the flow file moved away: the finished run still reports its figures (nothing to recompute them with)
    flow.rename(tmp_path / "moved.safetensors")
    kept = sb.run(cfg, out=tmp_path / "o", log=lambda s: None)
    assert kept.skipped == ["data", "baseline"] and kept.figures == second.figures
    with pytest.raises(NotFoundError, match="mine.safetensors"):  # a new run needs it, and says so
        sb.run(cfg, out=tmp_path / "new", log=lambda s: None)


def test_a_folder_from_before_the_weights_digest_reuses_its_sets_and_evaluations(tmp_path):
    """stage.json files without the density digest (folders written before it existed) run their
    stages once more: the evaluations and the condensed and pruned sets are reused, the figures equal."""
    cfg = {**MINI, "condense": {"method": "dm", "ipc": [2], "lambda_sim": [0.0], "iterations": 1, "batch_real": 8},
           "prune": {"from_ipc": 2, "targets": [1], "rules": ["random"], "runs": 1}}
    out = tmp_path / "o"
    first = sb.run(cfg, out=out, log=lambda s: None)
    for stage_json in out.glob("*/stage.json"):
        doc = json.loads(stage_json.read_text())
        assert doc["density"]["model"] == "gray32"
        doc.pop("density")
        stage_json.write_text(json.dumps(doc))
    kept = {p: p.stat().st_mtime_ns for p in out.glob("*/*") if p.name.endswith((".eval.json", ".safetensors"))
            or p.name in ("ipc2-lam0.item.json", "ipc2-to-1-random.item.json")}
    assert len(kept) >= 4
    again = sb.run(cfg, out=out, log=lambda s: None)
    assert again.skipped == [] and again.figures == first.figures
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # nothing trained or condensed again
    assert sb.run(cfg, out=out, log=lambda s: None).skipped == ["data", "baseline", "condense", "prune"]
