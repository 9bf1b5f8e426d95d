"""Post-hoc simplification of a trained classifier's inputs (paper §5, Alg. 1/2) with the
saliency baselines (expected gradients, prediction difference analysis).

Imports the workshop (``models``, ``train``) and the measure (``density``).
"""

from .losses import ForgettingLoss, gate_gradients, grad_distance, kl
from .posthoc import SPACES, ExplainConfig, PosthocResult, make_explain_config, simplify_posthoc
from .runner import ExplainResult, explain, load_explained, select_images
from .saliency import expected_gradients, prediction_difference

__all__ = [
    "ForgettingLoss", "gate_gradients", "grad_distance", "kl", "SPACES", "ExplainConfig", "PosthocResult",
    "make_explain_config", "simplify_posthoc", "ExplainResult", "explain", "load_explained", "select_images", "expected_gradients",
    "prediction_difference",
]
