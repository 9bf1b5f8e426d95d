"""Pruning one condensed set to any smaller size: YOCO (LBPE + balanced construction) and the
baseline rules (random, EL2N, AUM, forgetting, entropy, SSP, CCS), from recorded training
dynamics; and the appendix's comparison table. Rules are declared once each, with
:func:`register_rule` (see :mod:`.registry`).

    >>> from simplebits.prune import prune_set
    >>> res = prune_set(condensed, ipc=1, rule="yoco", out="ipc1.safetensors")
"""

from .dynamics import Dynamics, DynamicsConfig, load_dynamics, record_dynamics
from .registry import register_rule, rule_names, unregister_rule
from .rules import RULES, PruneResult, Rule, Selection, epochs_needed, get_rule, list_rules, prune_set, select
from .scores import SCORES, list_scores, score
from .select import ccs, prune, ssp

__all__ = [
    "Dynamics",
    "DynamicsConfig",
    "PruneResult",
    "RULES",
    "Rule",
    "SCORES",
    "Selection",
    "ccs",
    "epochs_needed",
    "get_rule",
    "list_rules",
    "list_scores",
    "load_dynamics",
    "prune",
    "prune_set",
    "record_dynamics",
    "register_rule",
    "rule_names",
    "score",
    "select",
    "ssp",
    "unregister_rule",
]
