"""SimpleBits during training (paper §3): a simplifier trained through an unrolled classifier
step so that simplified images keep the task information; baselines and trade-off curves.

Entry points: :func:`simplify` (one joint run per lambda and seed, evaluated three ways),
:func:`simplify_baselines` (blur, JPEG, MSE + bpd), :func:`tradeoff` (the plots).
"""

from .baselines import DEFAULT_MSE_LAMBDAS, DEFAULT_QUALITIES, DEFAULT_SIGMAS, gaussian_blur, jpeg, simplify_baselines
from .config import PRESETS, SimplifyConfig, make_simplify_config
from .evaluate import fit, retrain
from .joint import DensityTerm, JointTrainer, apply_simplifier, quantize
from .runner import SimplifyResult, load_simplifier, simplify
from .tradeoff import read_runs, tradeoff

__all__ = [
    "DEFAULT_MSE_LAMBDAS",
    "DEFAULT_QUALITIES",
    "DEFAULT_SIGMAS",
    "DensityTerm",
    "JointTrainer",
    "PRESETS",
    "SimplifyConfig",
    "SimplifyResult",
    "apply_simplifier",
    "fit",
    "gaussian_blur",
    "jpeg",
    "load_simplifier",
    "make_simplify_config",
    "quantize",
    "read_runs",
    "retrain",
    "simplify",
    "simplify_baselines",
    "tradeoff",
]
