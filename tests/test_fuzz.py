"""The fuzz campaign of benchmarks/fuzz.py, small: every reader, seeded mutated files, each read in
a worker process under a memory limit and a timeout. Every outcome must be a valid result or one
SimplebitsError line (the full campaign, 100,000 inputs per reader, is in docs/files.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import fuzz  # noqa: E402


def test_mutations_are_seeded_and_change_the_file(tmp_path):
    seeds = fuzz.make_seeds(tmp_path / "seeds")
    for reader in ("condensed", "npz", "idx-gz", "png-folder", "usps", "sweep-toml"):
        a = [fuzz.input_for(seeds, reader, i, 0) for i in range(20)]
        assert a == [fuzz.input_for(seeds, reader, i, 0) for i in range(20)]  # reproducible, so resumable
        assert sum(x != seeds[reader]["bytes"] for x in a) >= 15


def test_a_small_campaign_over_every_reader_has_no_bad_outcome(tmp_path):
    state = fuzz.campaign(fuzz.ALL, 40, workers=1, timeout=30, memory_mb=1024, state_path=tmp_path / "state.json",
                          seeds_dir=tmp_path / "seeds", progress=False)
    doc = fuzz.summary(state, fuzz.ALL)
    assert doc["total"]["inputs"] == 40 * len(fuzz.ALL)
    assert doc["met"], doc["examples"]
    # resumable: a second call with the same state file has nothing left to do
    again = fuzz.campaign(fuzz.ALL, 40, workers=1, state_path=tmp_path / "state.json", seeds_dir=tmp_path / "seeds2",
                          progress=False)
    assert fuzz.summary(again, fuzz.ALL)["total"] == doc["total"]
