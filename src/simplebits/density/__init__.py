"""The measure: bits per dimension under a Glow density model (and the bpd term of a loss, :class:`BpdTerm`),
and compressed-size bpd."""

from .bpd import DEFAULT_DRAWS, ESCAPE, Bits, bits_summary, bpd, measure_bits, score_bpd
from .glow import Glow, GlowConfig
from .summary import record_storage, set_bits, storage_bits
from .store import SHIPPED, default_flow, fit_images, flow_digest, flow_identity, list_flows, load_flow, save_flow
from .term import BpdTerm
from .train import FlowTrainConfig, TrainingDiverged, train_flow

__all__ = [
    "Bits",
    "BpdTerm",
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
    "flow_digest",
    "flow_identity",
    "list_flows",
    "load_flow",
    "measure_bits",
    "save_flow",
    "score_bpd",
    "record_storage",
    "set_bits",
    "storage_bits",
    "train_flow",
]
