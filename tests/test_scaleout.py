"""Scale-out: torchrun (gloo) condensation and evaluation equal a single process; sweeps run the
same cells in order or on Ray with the same numbers, skip finished cells, refuse another sweep's
folder, and fail clearly on an unreachable Ray address."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from simplebits.data.condensed import load_condensed
from simplebits.errors import BadInputError, MismatchError
from simplebits.io import read_metadata
from simplebits.pipeline.sweeps import expand, load_sweep, sweep, sweep_prune_table
from simplebits.train.distributed import World, block_bounds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**kw: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **kw}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _single(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simplebits.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())


def _torchrun(n: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n), "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "simplebits.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())


# ------------------------------------------------------------------------------------------ partitions
def test_blocks_cover_every_item_once_in_order_and_leave_extra_ranks_idle():
    for n in range(0, 13):
        for size in range(1, 6):
            b = block_bounds(n, size)
            assert b[0][0] == 0 and b[-1][1] == n
            assert all(b[i][1] == b[i + 1][0] for i in range(size - 1))
            sizes = [e - s for s, e in b]
            assert max(sizes) - min(sizes) <= 1
    w = World(rank=3, size=4)
    assert list(w.mine(3)) == [] and "idle" in w.idle_note(3, "classes")
    assert World(rank=0, size=2).idle_note(10, "classes") is None


# ------------------------------------------------------------------------------------------ torchrun
CONDENSE = ["--ipc", "2", "--iterations", "2", "--no-compile", "--width", "16", "--batch-real", "16"]


def _same_set(a: Path, b: Path) -> None:
    x, y = load_condensed(a), load_condensed(b)
    assert torch.equal(x.images, y.images), float((x.images - y.images).abs().max())
    assert torch.equal(x.labels, y.labels)
    # the whole file is the same but for the timings it records
    timing = {"seconds", "seconds_per_iteration", "peak_rss_mb"}
    ma, mb = read_metadata(a), read_metadata(b)
    assert {k: v for k, v in ma.items() if k not in timing} == {k: v for k, v in mb.items() if k not in timing}


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_torchrun_two_ranks_condense_to_the_single_process_images(tmp_path, method):
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    extra = ["--lambda-sim", "10"] if method == "dc" else []
    r1 = _single("condense", "digits", "--method", method, *CONDENSE, *extra, "--out", str(one), "--json")
    assert r1.returncode == 0, r1.stderr[-2000:]
    r2 = _torchrun(2, "condense", "digits", "--method", method, *CONDENSE, *extra, "--out", str(two), "--json")
    assert r2.returncode == 0, r2.stderr[-3000:]
    _same_set(one, two)
    # one JSON document on stdout (rank 0 only), the same loss log as the single process
    d1, d2 = json.loads(r1.stdout), json.loads(r2.stdout)
    assert d1["final_match_loss"] == d2["final_match_loss"] and d1["bpd"] == d2["bpd"]
    assert json.loads(Path(f"{one}.log.json").read_text())["iterations"][0]["match_loss"] == \
        json.loads(Path(f"{two}.log.json").read_text())["iterations"][0]["match_loss"]
    assert not Path(f"{two}.ckpt").exists()


def _two_class_npz(path: Path) -> Path:
    g = np.random.default_rng(0)
    x = g.integers(0, 256, size=(40, 10, 10), dtype=np.uint8)
    y = np.repeat(np.arange(2), 20)
    x[y == 1, 2:8, 2:8] = 255  # a class that can be learnt
    np.savez(path, images=x, labels=y)
    return path


def test_more_ranks_than_classes_leaves_ranks_idle_with_a_note_and_the_same_result(tmp_path):
    data = "npz:" + str(_two_class_npz(tmp_path / "two.npz"))
    one, three = tmp_path / "one.safetensors", tmp_path / "three.safetensors"
    args = ["--ipc", "1", "--iterations", "2", "--no-compile", "--width", "8", "--batch-real", "8"]
    r1 = _single("condense", data, *args, "--out", str(one))
    assert r1.returncode == 0, r1.stderr[-2000:]
    r3 = _torchrun(3, "condense", data, *args, "--out", str(three))
    assert r3.returncode == 0, r3.stderr[-3000:]
    assert "3 ranks for 2 classes" in r3.stderr and "idle" in r3.stderr
    _same_set(one, three)


def test_torchrun_evaluate_spreads_seeds_and_reports_the_single_process_accuracies(tmp_path):
    one = tmp_path / "one.safetensors"
    assert _single("condense", "digits", *CONDENSE, "--out", str(one)).returncode == 0
    args = ["evaluate", str(one), "--test", "digits:test", "--seeds", "3", "--no-baseline", "--json"]  # 2 + 1 seeds
    r1, r2 = _single(*args), _torchrun(2, *args)
    assert r1.returncode == 0 and r2.returncode == 0, r2.stderr[-3000:]
    a, b = json.loads(r1.stdout), json.loads(r2.stdout)
    assert a["accuracies"] == b["accuracies"] and a["seeds"] == b["seeds"] == [0, 1, 2]


def test_torchrun_refuses_commands_that_do_not_split_work(tmp_path):
    r = _torchrun(2, "run", "small", "--out", str(tmp_path / "x"))
    assert r.returncode != 0
    assert r.stderr.count("only condense and evaluate split their work") == 1  # rank 0 says it once
    # torchrun prints its own summary of the failed children; no simplebits code raised
    assert not [ln for ln in r.stderr.splitlines() if ln.strip().startswith("File") and "simplebits" in ln]
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------ sweeps
BASE = {"data": {"dataset": "digits", "bpd_images": 0}, "evaluate": {"seeds": 1, "max_steps": 10},
        "condense": {"enabled": False}, "simplify": {"enabled": False}, "explain": {"enabled": False},
        "prune": {"enabled": False}}


def _sweep(out: Path, grid: dict, **base) -> dict:
    raw = json.loads(json.dumps(BASE))
    for k, v in base.items():
        raw.setdefault(k, {}).update(v) if isinstance(v, dict) else raw.__setitem__(k, v)
    raw["sweep"] = {"out": str(out), "cpus_per_task": 1, "grid": grid}
    return raw


GRID = {"seed": [0, 1], "evaluate.baseline_ipc": [1, 2]}


def _numbers(out: Path) -> list:
    res = json.loads((out / "results.json").read_text())
    return [(c["name"], c["figures"]["baseline"]["by_ipc"]) for c in res["cells"]]


@pytest.fixture(scope="module")
def sequential_sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    t0 = time.perf_counter()
    r = sweep(_sweep(d / "seq", GRID), log=lambda s: None)
    return d, r, time.perf_counter() - t0


def test_sweep_config_errors_name_the_key(tmp_path):
    with pytest.raises(BadInputError, match="no \\[sweep\\] table"):
        load_sweep({k: v for k, v in _sweep(tmp_path, GRID).items() if k != "sweep"})
    with pytest.raises(BadInputError, match="unknown key 'nope' in \\[condense\\]"):
        load_sweep(_sweep(tmp_path, {"condense.nope": [1]}))
    with pytest.raises(BadInputError, match="cannot vary"):
        load_sweep(_sweep(tmp_path, {"out": ["a", "b"]}))
    with pytest.raises(BadInputError, match="non-empty list"):
        load_sweep(_sweep(tmp_path, {"seed": []}))
    with pytest.raises(BadInputError, match="sweep cell seed-0__evaluate.network-nonet"):
        load_sweep(_sweep(tmp_path, {"seed": [0], "evaluate.network": ["nonet"]}))
    bad = _sweep(tmp_path, GRID)
    bad["sweep"]["cpus_per_task"] = 0
    with pytest.raises(BadInputError, match="cpus_per_task"):
        load_sweep(bad)
    cells = expand(load_sweep(_sweep(tmp_path, GRID)))
    assert [c.overrides for c in cells] == [{"seed": 0, "evaluate.baseline_ipc": [1]},
                                            {"seed": 0, "evaluate.baseline_ipc": [2]},
                                            {"seed": 1, "evaluate.baseline_ipc": [1]},
                                            {"seed": 1, "evaluate.baseline_ipc": [2]}]
    assert len({c.config.out for c in cells}) == 4


def test_run_on_a_sweep_file_points_to_sweep(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[sweep]\nout = "x"\n[sweep.grid]\nseed = [0, 1]\n')
    r = _single("run", str(f))
    assert r.returncode == 2 and "simplebits sweep" in r.stderr and "Traceback" not in r.stderr


def test_sequential_sweep_writes_every_cell_results_and_report(sequential_sweep):
    d, r, _ = sequential_sweep
    out = d / "seq"
    assert [c["state"] for c in r.cells] == ["done"] * 4 and not r.failed
    for c in r.cells:
        assert (out / c["folder"] / "figures.json").is_file() and (out / c["folder"] / "report.html").is_file()
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["state"] == "done" and len(meta["cells"]) == 4
    html = (out / "report.html").read_text()
    assert "cells/seed-1__evaluate.baseline_ipc-2/report.html" in html and "http" not in html.split("<body>")[1]
    # cells that differ only in seed are pooled: 2 seeds x 1 network per row
    rows = {(json.dumps(t["setting"]), t["label"]): t for t in r.table}
    assert rows[(json.dumps({"evaluate.baseline_ipc": [2]}), "random real ipc2")]["n"] == 2


def test_rerun_skips_finished_cells_with_the_same_numbers(sequential_sweep):
    d, r, first = sequential_sweep
    out = d / "seq"
    before = _numbers(out)
    t0 = time.perf_counter()
    again = sweep(_sweep(out, GRID), log=lambda s: None)
    assert sorted(again.skipped) == sorted(c["name"] for c in r.cells)
    assert _numbers(out) == before
    assert time.perf_counter() - t0 < first


def test_a_folder_of_another_sweep_is_refused_unless_force(sequential_sweep, tmp_path):
    d, r, _ = sequential_sweep
    src = d / "seq"
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(src, out)
    other = _sweep(out, GRID, evaluate={"max_steps": 12})
    stamp = (out / "sweep.json").read_text()
    with pytest.raises(MismatchError, match="different sweep config"):
        sweep(other, log=lambda s: None)
    assert (out / "sweep.json").read_text() == stamp  # nothing touched
    cli = _single("sweep", _write_toml(tmp_path / "other.toml", other))
    assert cli.returncode == 2 and "--force" in cli.stderr and "Traceback" not in cli.stderr
    # a cell folder holding another config's results is refused too
    one = _sweep(out, {"seed": [0], "evaluate.baseline_ipc": [1]})
    cell = expand(load_sweep(one))[0]
    meta = json.loads((Path(cell.config.out) / "pipeline.json").read_text())
    meta["config_hash"] = "0" * 16
    (Path(cell.config.out) / "pipeline.json").write_text(json.dumps(meta))
    (out / "sweep.json").unlink()
    (out / "results.json").unlink()
    for f in out.iterdir():
        if f.is_file():
            f.unlink()
    with pytest.raises(MismatchError):
        sweep(one, log=lambda s: None)
    res = sweep(one, force=True, log=lambda s: None)
    assert res.cells[0]["state"] == "done" and not res.skipped


def _write_toml(path: Path, raw: dict) -> str:
    from simplebits.pipeline.config import _toml_value

    lines = []
    for k, v in raw.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in raw.items():
        if isinstance(v, dict) and k != "sweep":
            lines.append(f"[{k}]")
            lines += [f"{a} = {_toml_value(b)}" for a, b in v.items()]
    sw = raw["sweep"]
    lines += ["[sweep]", f"out = {_toml_value(sw['out'])}", f"cpus_per_task = {sw['cpus_per_task']}", "[sweep.grid]"]
    lines += [f"{json.dumps(a)} = {_toml_value(b)}" for a, b in sw["grid"].items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_sweep_prune_table_pools_the_cells_rules(tmp_path):
    raw = _sweep(tmp_path / "pr", {"seed": [0, 1], "prune.rules": ["yoco", "random"]},
                 prune={"enabled": True, "from_ipc": 2, "targets": [1], "runs": 1})
    r = sweep(raw, log=lambda s: None)
    table = sweep_prune_table(r.out)
    assert table.rules == ["yoco", "random"] and table.ipcs == [1]
    assert len(table.cells["convnet"]["yoco"]["1"]) == 2  # 2 seeds x 1 network
    saved = json.loads((Path(r.out) / "prune-table.json").read_text())
    assert saved["cells"] == table.cells
    assert "Pruning table" in (Path(r.out) / "report.html").read_text()
    cli = _single("prune-table", "--from-sweep", r.out, "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["cells"] == table.cells


def test_unreachable_ray_address_fails_clearly_and_writes_nothing(tmp_path):
    pytest.importorskip("ray")
    f = _write_toml(tmp_path / "s.toml", _sweep(tmp_path / "out", GRID))
    port = _free_port()  # nothing listens there
    r = _single("sweep", f, "--ray", f"127.0.0.1:{port}", timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot reach a Ray cluster" in lines[0] and "nothing was written" in lines[0]
    assert not (tmp_path / "out").exists()
    bad = _single("sweep", f, "--ray", "no-port-here")
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr


def test_ray_sweep_gives_the_sequential_numbers(sequential_sweep, tmp_path):
    pytest.importorskip("ray")
    d, _, _ = sequential_sweep
    f = _write_toml(tmp_path / "s.toml", _sweep(tmp_path / "ray", GRID))
    r = _single("sweep", f, "--ray", "local", "--json", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["engine"] == "ray (local)" and not doc["failed"]
    assert _numbers(tmp_path / "ray") == _numbers(d / "seq")


def test_the_example_sweep_file_parses_into_four_cells():
    cfg = load_sweep(Path(__file__).resolve().parents[1] / "examples" / "sweep-small.toml")
    cells = expand(cfg)
    assert len(cells) == 4 and cfg.out == "sweep-small"
    assert {c.config.condense.lambda_sim[0] for c in cells} == {0.0, 100.0}


def test_a_broken_sweep_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep\nout = 1\n")
    with pytest.raises(BadInputError, match="not valid TOML.*docs/scale-out.md"):
        load_sweep(bad)
    r = _single("sweep", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "sweep config not found" in r.stderr and "Traceback" not in r.stderr
