"""The workshop's training loop, evaluation protocols and the evaluation entry point."""

from .evaluate import EvalReport, check_compatible, evaluate, evaluate_real_subset
from .loop import accuracy, predict_logits, progress_bar, train_classifier
from .protocols import Protocol, get_protocol, list_protocols, register_protocol
from .seeding import derive_seed, generator

__all__ = [
    "EvalReport",
    "Protocol",
    "accuracy",
    "check_compatible",
    "derive_seed",
    "evaluate",
    "evaluate_real_subset",
    "generator",
    "get_protocol",
    "list_protocols",
    "predict_logits",
    "progress_bar",
    "register_protocol",
    "train_classifier",
]
