"""The measure: bits per dimension under a Glow density model, and compressed-size bpd."""

from .bpd import DEFAULT_DRAWS, ESCAPE, Bits, bits_summary, bpd, logp_to_bpd, measure_bits, preprocess, score_bpd
from .glow import Glow, GlowConfig
from .summary import BITS_DEFINITION, FLOW_STORAGE_LIMIT, record_storage, set_bits, storage_bits
from .store import SHIPPED, default_flow, fit_images, list_flows, load_flow, save_flow
from .train import FlowTrainConfig, TrainingDiverged, train_flow

__all__ = [
    "BITS_DEFINITION",
    "FLOW_STORAGE_LIMIT",
    "Bits",
    "DEFAULT_DRAWS",
    "ESCAPE",
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
    "measure_bits",
    "preprocess",
    "save_flow",
    "score_bpd",
    "record_storage",
    "set_bits",
    "storage_bits",
    "train_flow",
]
