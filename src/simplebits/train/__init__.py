"""The workshop's training loop, evaluation protocols and the evaluation entry point."""

from .evaluate import EvalReport, check_compatible, evaluate, evaluate_real_subset
from .fulldata import FullData, cache_root, full_data
from .loop import accuracy, predict_logits, train_classifier
from .protocols import Protocol, get_protocol, list_protocols, register_protocol
from .scores import (
    EvaluationMemo,
    RankingReport,
    augmentation_robust_score,
    hard_label_recovery,
    improvement_over_random,
    label_robust_score,
    ranking_scores,
)
from .soft import LABEL_MODES, SOFT_LOSSES, soft_label_loss
from .seeding import derive_seed, generator

__all__ = [
    "EvalReport",
    "EvaluationMemo",
    "FullData",
    "LABEL_MODES",
    "Protocol",
    "RankingReport",
    "SOFT_LOSSES",
    "accuracy",
    "augmentation_robust_score",
    "cache_root",
    "check_compatible",
    "derive_seed",
    "evaluate",
    "evaluate_real_subset",
    "full_data",
    "generator",
    "get_protocol",
    "hard_label_recovery",
    "improvement_over_random",
    "label_robust_score",
    "list_protocols",
    "predict_logits",
    "ranking_scores",
    "register_protocol",
    "soft_label_loss",
    "train_classifier",
]
