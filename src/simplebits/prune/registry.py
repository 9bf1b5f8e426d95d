"""The pruning rules by name: one decorated declaration per rule.

A rule is a function ``fn(rule, selection) -> kept indices`` declared once with
:func:`register_rule`: its name, the score whose training dynamics it reads, the end it keeps and
whether classes stay balanced by default, whether it needs dynamics at all, and one line of help.
:func:`~.rules.prune_set`, :func:`~.table.prune_table`, the pipeline's validation, the CLI's
help and defaults and the parametrised tests all read this registry, so adding a rule is one
declaration in :mod:`.rules` (plus its test)::

    @register_rule("first", needs_dynamics=False, balanced=True, help="the first images of every class")
    def first(rule: Rule, sel: Selection) -> torch.Tensor:
        return prune(torch.arange(sel.labels.numel()).float(), sel.labels, balanced=rule.balanced, **sel.size)

The rules are listed in the order they are registered, which is the column order of the
comparison table (appendix Table 2: the baselines, then YOCO).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..errors import UnknownNameError
from .select import KEEPS

__all__ = ["Rule", "RULES", "register_rule", "unregister_rule", "get_rule", "list_rules", "rule_names"]


@dataclass(frozen=True)
class Rule:
    """A named pruning rule: which score, which end to keep, and whether classes stay balanced.

    ``select(rule, selection)`` returns the kept indices; it receives the rule itself so that the
    ablation modifiers (:meth:`with_options`) reach it. ``score`` names the score of
    :mod:`.scores` (or ``ssp``) whose epochs of dynamics the rule needs.
    """

    name: str
    score: str | None  # a score of .scores, or 'ssp'; None for a rule that needs no dynamics
    keep: str  # 'easy' | 'hard' (ignored by random, ssp and ccs)
    balanced: bool
    description: str
    select: Callable[["Rule", Any], Any] | None = field(default=None, compare=False, repr=False)
    needs_dynamics: bool = True

    def with_options(self, *, balanced: bool | None = None, keep: str | None = None) -> "Rule":
        return replace(self, balanced=self.balanced if balanced is None else balanced,
                       keep=self.keep if keep is None else keep)


#: every registered rule by name, in registration order (the registry itself, not a copy)
RULES: dict[str, Rule] = {}


def register_rule(name: str, *, help: str, score: str | None = None, keep: str = "easy",  # noqa: A002
                  balanced: bool = False, needs_dynamics: bool = True) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(rule, selection) -> kept indices`` as the rule ``name``.

    ``help`` one line for ``--help`` and the error listing the rules; ``score`` the score whose
    epochs of dynamics the rule needs (required when ``needs_dynamics``); ``keep`` / ``balanced``
    the defaults that ``:easy``/``:hard``/``:balanced``/``:imbalanced`` override. Several rules
    may share one function (``register_rule(...)(by_score)``). Mistakes here are the
    programmer's, so they raise ValueError at import.
    """
    if not name or ":" in name or "," in name:
        raise ValueError(f"rule name {name!r} must be non-empty without ':' or ',' (they separate modifiers and rules)")
    if keep not in KEEPS:
        raise ValueError(f"rule {name!r}: keep must be 'easy' or 'hard', got {keep!r}")
    if needs_dynamics and score is None:
        raise ValueError(f"rule {name!r} needs dynamics but names no score (which epochs to record)")

    def deco(fn: Callable) -> Callable:
        if name in RULES:
            raise ValueError(f"pruning rule {name!r} registered twice")
        RULES[name] = Rule(name, score, keep, balanced, help, fn, needs_dynamics)
        return fn

    return deco


def unregister_rule(name: str) -> Rule:
    """Remove a rule (a test's toy rule, a plugin's); returns it."""
    return RULES.pop(get_rule(name).name)


def _ensure_loaded() -> None:
    from . import rules  # noqa: F401  (registers the built-in rules on import)


def get_rule(name: str | Rule) -> Rule:
    if isinstance(name, Rule):
        return name
    _ensure_loaded()
    if name not in RULES:
        raise UnknownNameError("pruning rule", name, list(RULES))
    return RULES[name]


def list_rules() -> list[Rule]:
    _ensure_loaded()
    return list(RULES.values())


def rule_names() -> list[str]:
    """The registered rules' names, in registration order (the table's column order)."""
    return [r.name for r in list_rules()]
