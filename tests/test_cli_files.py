"""Output files and error paths every command shares: an existing unrelated --out is refused
without --force, output paths and --device are checked before any work, Ctrl-C says how to
continue, prune --evaluate names the pruned set beside its random-real baseline, and a sweep grid
is counted before it is expanded."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest
from conftest import make_blobs

from simplebits.cli.main import interrupted_message, main
from simplebits.data.condensed import save_condensed


def _npz(path, ds):
    np.savez(path, images=(ds.images.numpy() * 255).astype(np.uint8), labels=ds.labels.numpy())
    return path


def _one_line_exit_2(rc, capsys, *words):
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture
def cset_file(tmp_path):
    path = tmp_path / "set.safetensors"
    save_condensed(path, make_blobs(2, 3, (1, 8, 8)), method="dm", source="blobs")
    return path


def test_an_existing_unrelated_out_is_refused_and_kept_unless_force(tmp_path, capsys, cset_file):
    notes = tmp_path / "notes.safetensors"
    notes.write_text("my notes, not a condensed set")
    rc = main(["convert", str(cset_file), "--out", str(notes)])
    _one_line_exit_2(rc, capsys, "exists and is not a condensed file", "--force")
    assert notes.read_text() == "my notes, not a condensed set"
    # the same refusal happens before any work in the commands that take long
    for argv in (["condense", "digits", "--ipc", "1", "--out", str(notes)],
                 ["prune", str(cset_file), "--ipc", "1", "--rule", "random", "--out", str(notes)],
                 ["train-flow", "digits", "--out", str(notes), "--epochs", "1"]):
        t0 = time.perf_counter()
        _one_line_exit_2(main(argv), capsys, "--force")
        assert time.perf_counter() - t0 < 5 and notes.read_text().startswith("my notes")
    assert main(["convert", str(cset_file), "--out", str(notes), "--force"]) == 0
    capsys.readouterr()
    # a file of the kind the command writes is a rerun's output: replaced without --force
    assert main(["convert", str(cset_file), "--out", str(notes)]) == 0


def test_bpd_per_image_csv_is_replaced_only_when_it_is_ours(tmp_path, capsys):
    data = _npz(tmp_path / "d.npz", make_blobs(2, 2, (1, 8, 8)))
    csv = tmp_path / "rows.csv"
    csv.write_text("name,salary\nalice,1\n")
    rc = main(["bpd", str(data), "--density", "none", "--codec", "png", "--per-image", str(csv)])
    _one_line_exit_2(rc, capsys, "--per-image", "--force")
    assert csv.read_text().startswith("name,salary")
    assert main(["bpd", str(data), "--density", "none", "--codec", "png", "--per-image", str(csv), "--force"]) == 0
    assert main(["bpd", str(data), "--density", "none", "--codec", "png", "--per-image", str(csv)]) == 0
    assert csv.read_text().startswith("input,index,label")


@pytest.mark.parametrize("make_out, words", [
    (lambda tmp: str(tmp), ["is a folder"]),
    (lambda tmp: str(tmp / ("x" * 300 + ".safetensors")), ["over the file system's 255"]),
    (lambda tmp: "/proc/simplebits-out/set.safetensors", ["cannot write"]),
    (lambda tmp: str(tmp / "afile" / "set.safetensors"), ["is a file, not a folder"]),
])
def test_odd_out_paths_are_one_line_before_any_work(tmp_path, capsys, cset_file, make_out, words):
    (tmp_path / "afile").write_text("x")
    t0 = time.perf_counter()
    rc = main(["condense", "digits", "--ipc", "1", "--out", make_out(tmp_path)])
    _one_line_exit_2(rc, capsys, *words)
    assert time.perf_counter() - t0 < 5  # refused before loading data or condensing


@pytest.mark.parametrize("device, words", [("gpu", ["is not a device"]), ("cuda:7", ["--device cuda:7"]),
                                           ("", ["is not a device"])])
def test_device_is_checked_with_one_line(capsys, tmp_path, device, words):
    rc = main(["evaluate", "digits", "--ipc", "1", "--seeds", "1", "--device", device])
    _one_line_exit_2(rc, capsys, *words)


def test_ctrl_c_says_what_was_saved_and_the_resume_command(tmp_path):
    out = tmp_path / "set.safetensors"
    args = argparse.Namespace(command="condense", out=str(out), resume=False)
    argv = ["condense", "digits", "--ipc", "1", "--out", str(out)]
    assert "nothing to resume" in interrupted_message(args, argv)
    (tmp_path / "set.safetensors.ckpt").write_bytes(b"x")
    msg = interrupted_message(args, argv)
    assert f"{out}.ckpt" in msg and msg.endswith(f"simplebits condense digits --ipc 1 --out {out} --resume")
    plain = argparse.Namespace(command="bpd")
    assert "no partial output" in interrupted_message(plain, ["bpd", "digits"])


def test_prune_evaluate_names_the_pruned_set_and_carries_the_random_real_baseline(tmp_path, capsys):
    train = _npz(tmp_path / "train.npz", make_blobs(6, 3, (1, 8, 8)))
    test = _npz(tmp_path / "test.npz", make_blobs(3, 3, (1, 8, 8), seed=9))
    src = tmp_path / "set.safetensors"
    save_condensed(src, make_blobs(2, 3, (1, 8, 8)), method="dm", source=f"npz:{train}")
    out = tmp_path / "pruned.safetensors"
    assert main(["prune", str(src), "--ipc", "1", "--rule", "random", "--out", str(out), "--evaluate", "quick",
                 "--seeds", "1", "--test", f"npz:{test}", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)["evaluation"]
    assert ev["train"].startswith("pruned.safetensors") and "random" in ev["train"]
    assert ev["baseline"] is not None and ev["baseline"]["ipc"] == 1


def test_a_huge_sweep_grid_is_refused_before_it_is_expanded(tmp_path, capsys):
    from simplebits.pipeline.sweeps import parse_sweep

    raw = {"data": {"dataset": "digits"}, "sweep": {"out": str(tmp_path / "s"), "grid": {
        "seed": list(range(3000)), "evaluate.seeds": list(range(1, 3000))}}}
    t0 = time.perf_counter()
    with pytest.raises(Exception, match="more than 10,000"):
        parse_sweep(raw)
    assert time.perf_counter() - t0 < 2


def test_temp_files_of_killed_writes_go_with_the_next_run(tmp_path, capsys, cset_file):
    """A temp file whose writer is gone (pid not alive) is removed when a command starts on that
    output; a live process's temp file stays."""
    import os
    import subprocess
    import sys

    from simplebits import io as sbio

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    out = tmp_path / "new.safetensors"
    host = sbio._HOST
    stale = tmp_path / f".new.safetensors.ckpt.{dead}.{host}0123abcd.tmp"
    live = tmp_path / f".new.safetensors.{os.getpid()}.{host}89abcdef.tmp"
    stale.write_bytes(b"half a checkpoint")
    live.write_bytes(b"being written")
    assert main(["convert", str(cset_file), "--out", str(out)]) == 0
    capsys.readouterr()
    assert not stale.exists() and live.exists() and out.exists()
    # folder outputs (simplify, run, continual) are cleaned recursively
    nested = tmp_path / "runs" / "lam1-s0"
    nested.mkdir(parents=True)
    orphan = nested / f".result.json.{dead}.{host}00000000.tmp"
    orphan.write_text("{")
    assert sbio.remove_stale_temps(tmp_path / "runs", recursive=True) == [orphan] and not orphan.exists()


def test_explain_and_train_classifier_follow_the_same_out_rule(tmp_path, capsys):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "thesis.tex").write_text("do not touch")
    rc = main(["explain", str(tmp_path / "clf.safetensors"), "digits", "--out", str(mine)])
    _one_line_exit_2(rc, capsys, "holding other files", "--force")
    notes = tmp_path / "notes.safetensors"
    notes.write_text("mine")
    rc = main(["train-classifier", "digits", "--out", str(notes), "--epochs", "1"])
    _one_line_exit_2(rc, capsys, "not a classifier file", "--force")
    assert notes.read_text() == "mine" and (mine / "thesis.tex").read_text() == "do not touch"


def test_results_files_and_reports_follow_the_same_out_rule(tmp_path, capsys, cset_file):
    mine = tmp_path / "mine.json"
    mine.write_text('{"budget": 12}')
    rc = main(["prune-table", str(cset_file), "--ipc", "1", "--out", str(mine)])
    _one_line_exit_2(rc, capsys, "not a results file", "--force")
    page = tmp_path / "page.html"
    page.write_text("<p>my page</p>")
    rc = main(["report", str(tmp_path), "--out", str(page)])
    _one_line_exit_2(rc, capsys, "not an HTML report", "--force")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "draft.txt").write_text("x")
    rc = main(["tradeoff", str(tmp_path), "--out", str(plots)])
    _one_line_exit_2(rc, capsys, "holding other files")
    assert mine.read_text() == '{"budget": 12}' and page.read_text() == "<p>my page</p>"


def test_a_real_ctrl_c_keeps_the_checkpoint_and_prints_the_resume_command(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "set.safetensors"
    argv = [sys.executable, "-m", "simplebits.cli.main", "condense", "digits", "--ipc", "1", "--iterations", "400",
            "--width", "8", "--batch-real", "32", "--no-compile", "--device", "cpu", "--out", str(out)]
    # SIG_DFL in the child: a suite started in the background (`cmd &`) passes SIGINT on as ignored, and a
    # Python that starts with SIGINT ignored never raises KeyboardInterrupt; a user's terminal does not
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = tmp_path / "set.safetensors.ckpt"
    t0 = time.perf_counter()
    while not ckpt.exists() and proc.poll() is None and time.perf_counter() - t0 < 120:
        time.sleep(0.05)
    assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint within 120 s"
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130
    last = err.strip().splitlines()[-1]
    assert "interrupted" in last and str(ckpt) in last and last.endswith("--resume") and "Traceback" not in err
    assert ckpt.exists() and not out.exists()


def test_json_into_a_pipe_that_closes_early_is_no_traceback():
    """`simplebits data list --json | head -c 20`: the reader leaves, simplebits ends quietly."""
    import subprocess
    import sys

    cmd = f"{sys.executable} -m simplebits.cli.main data list --json | head -c 20 >/dev/null"
    res = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}; echo rc=$?"], capture_output=True, text=True,
                         timeout=120)
    assert "Traceback" not in res.stderr and "BrokenPipeError" not in res.stderr, res.stderr
