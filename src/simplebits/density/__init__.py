"""The measure: bits per dimension under a Glow density model, and compressed-size bpd."""

from .bpd import bits_summary, bpd, logp_to_bpd, preprocess, score_bpd
from .glow import Glow, GlowConfig
from .store import SHIPPED, default_flow, fit_images, list_flows, load_flow, save_flow
from .train import FlowTrainConfig, TrainingDiverged, train_flow

__all__ = [
    "FlowTrainConfig",
    "Glow",
    "GlowConfig",
    "SHIPPED",
    "TrainingDiverged",
    "bits_summary",
    "bpd",
    "default_flow",
    "fit_images",
    "list_flows",
    "load_flow",
    "logp_to_bpd",
    "preprocess",
    "save_flow",
    "score_bpd",
    "train_flow",
]
