"""The pruning-rule registry: the one place a rule is declared. A toy rule registered here reaches
the API, the comparison table, the CLI's help and the parametrised per-rule tests, and leaves no
trace after."""

from __future__ import annotations

import json

import pytest
import torch

import test_prune as per_rule
from conftest import make_blobs
from test_prune import cset  # noqa: F401 (the per-rule test's fixture)
from simplebits.cli.main import build_parser, main
from simplebits.data.condensed import save_condensed
from simplebits.errors import UnknownNameError
from simplebits.prune import (
    RULES,
    DynamicsConfig,
    epochs_needed,
    get_rule,
    list_rules,
    prune,
    prune_set,
    register_rule,
    rule_names,
    unregister_rule,
)
from simplebits.prune.table import parse_rule

TOY = "toyfirst"  # no hyphen: --help wraps lines at hyphens


def _command_help(command: str) -> str:
    """`simplebits COMMAND --help` of a freshly built parser, on one line."""
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    return " ".join(sub[command].format_help().split())


@pytest.fixture
def toy_rule():
    """A rule declared the way the built-in ones are, removed again whatever the test does."""
    before = list(RULES)

    @register_rule(TOY, needs_dynamics=False, balanced=True, help="toy: the first images of every class")
    def first(rule, sel):
        return prune(torch.arange(sel.labels.numel()).float(), sel.labels, balanced=rule.balanced, keep=rule.keep,
                     **sel.size)

    try:
        yield TOY
    finally:
        if TOY in RULES:
            unregister_rule(TOY)
    assert list(RULES) == before


def test_the_papers_rules_are_registered_in_the_tables_column_order():
    # appendix Table 2: the baselines, then YOCO
    assert rule_names() == ["random", "ssp", "entropy", "aum", "forgetting", "el2n", "ccs", "yoco"]
    assert [r.name for r in list_rules()] == list(RULES)
    yoco = get_rule("yoco")
    assert (yoco.score, yoco.keep, yoco.balanced, yoco.needs_dynamics) == ("lbpe", "easy", True, True)
    assert not get_rule("random").needs_dynamics
    assert all(r.description and r.select is not None for r in list_rules())


def test_bad_declarations_fail_at_import():
    with pytest.raises(ValueError, match="registered twice"):
        register_rule("yoco", score="lbpe", help="again")(lambda rule, sel: None)
    with pytest.raises(ValueError, match="':'"):
        register_rule("a:b", score="el2n", help="x")
    with pytest.raises(ValueError, match="names no score"):
        register_rule("no-score", help="x")
    with pytest.raises(ValueError, match="keep"):
        register_rule("sideways", score="el2n", keep="middle", help="x")
    assert "no-score" not in RULES and get_rule("yoco").description.startswith("YOCO")


def test_a_registered_rule_reaches_the_api_the_table_and_the_cli(toy_rule, cset, tmp_path, capsys):  # noqa: F811
    assert toy_rule in rule_names() and toy_rule in per_rule.rules_under_test()
    from simplebits.prune.table import DEFAULT_RULES

    assert DEFAULT_RULES[-1] == toy_rule
    assert epochs_needed([toy_rule], DynamicsConfig()) == 0
    spec = parse_rule(f"{toy_rule}:imbalanced")
    assert spec.rule == toy_rule and not spec.resolve().balanced
    # the parametrised per-rule test passes for it unchanged
    per_rule.test_every_rule_on_our_file_and_on_idc_data_pt(toy_rule, cset, None, tmp_path)
    small = make_blobs(4, 3, seed=1)
    res = prune_set(small, ipc=1, rule=toy_rule, progress=False)
    assert res.indices.tolist() == [0, 4, 8] and res.dynamics is None
    # --help of both commands lists it, read from the registry when the parser is built
    assert f"{toy_rule}: toy: the first images of every class" in _command_help("prune")
    assert f",{toy_rule})" in _command_help("prune-table").replace(" ", "")
    # and the command runs it
    f = tmp_path / "set.safetensors"
    save_condensed(f, small, method="dm", source="blobs")
    assert main(["prune", str(f), "--ipc", "1", "--rule", toy_rule, "--out", str(tmp_path / "o.safetensors"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rule"] == toy_rule and out["indices"] == [0, 4, 8] and out["settings"]["dynamics"] is None


def test_an_unregistered_rule_is_gone(toy_rule):
    unregister_rule(toy_rule)
    with pytest.raises(UnknownNameError, match="unknown pruning rule"):
        get_rule(toy_rule)
    assert toy_rule not in _command_help("prune") and toy_rule not in _command_help("prune-table")
