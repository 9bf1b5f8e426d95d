"""Pruning one condensed set to any smaller size: YOCO (LBPE + balanced construction) and the
baseline rules (random, EL2N, AUM, forgetting, entropy, SSP, CCS), from recorded training
dynamics; and the appendix's comparison table.

    >>> from simplebits.prune import prune_set
    >>> res = prune_set(condensed, ipc=1, rule="yoco", out="ipc1.safetensors")
"""

from .dynamics import Dynamics, DynamicsConfig, load_dynamics, record_dynamics
from .rules import RULES, PruneResult, Rule, epochs_needed, get_rule, list_rules, prune_set, select
from .scores import SCORES, list_scores, score
from .select import ccs, prune, ssp

__all__ = [
    "Dynamics",
    "DynamicsConfig",
    "PruneResult",
    "RULES",
    "Rule",
    "SCORES",
    "ccs",
    "epochs_needed",
    "get_rule",
    "list_rules",
    "list_scores",
    "load_dynamics",
    "prune",
    "prune_set",
    "record_dynamics",
    "score",
    "select",
    "ssp",
]
