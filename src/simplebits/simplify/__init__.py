"""SimpleBits during training (paper §3): a simplifier trained through an unrolled classifier
step so that simplified images keep the task information; baselines and trade-off curves.

Entry points: :func:`simplify` (one joint run per lambda and seed, evaluated three ways),
:func:`simplify_baselines` (blur, JPEG, MSE + bpd), :func:`tradeoff` (the plots).
"""

from .baselines import gaussian_blur, jpeg, simplify_baselines
from .config import PRESETS, SimplifyConfig, make_simplify_config
from .evaluate import fit, retrain
from .joint import JointTrainer, apply_simplifier
from .runner import SimplifyResult, load_simplifier, simplify
from .tradeoff import tradeoff

__all__ = [
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
    "retrain",
    "simplify",
    "simplify_baselines",
    "tradeoff",
]
