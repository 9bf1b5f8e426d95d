"""Dataset condensation with the SimpleBits simplification term (paper §4, REFERENCE.md §3).

>>> from simplebits.condense import condense, make_config
>>> cfg = make_config("dc", ipc=1, preset="quick", lambda_sim=100.0)   # doctest: +SKIP
>>> result = condense(train_set, cfg, out="fmnist-ipc1.safetensors")  # doctest: +SKIP

Methods: ``dc``, ``dsa``, ``idc`` (multi-formation), ``dream``, ``dm``, each declared once with
:func:`register_method` (presets, evaluation protocol, help); matching distances ``layerwise``,
``mse``, ``cos``, ``neg-product`` and the ``unrolled`` one-step loss.
"""

from .config import EVAL_PROTOCOL, MATCHES, METHODS, PRESETS, CondenseConfig, derive_loops, fit_network, make_config
from .registry import MethodSpec, eval_protocol_for, get_method, list_methods, list_presets, register_method, unregister_method
from .match import DISTANCES, GradientEngine, distance, matched_parameters
from .runner import CondenseResult, condense, output_paths, start_warning, starting_set
from .simplification import BpdTerm, combine
from .synth import SyntheticSet

__all__ = [
    "EVAL_PROTOCOL",
    "eval_protocol_for",
    "MATCHES",
    "METHODS",
    "PRESETS",
    "CondenseConfig",
    "derive_loops",
    "fit_network",
    "make_config",
    "MethodSpec",
    "get_method",
    "list_methods",
    "list_presets",
    "register_method",
    "unregister_method",
    "DISTANCES",
    "GradientEngine",
    "distance",
    "matched_parameters",
    "CondenseResult",
    "condense",
    "output_paths",
    "starting_set",
    "start_warning",
    "BpdTerm",
    "combine",
    "SyntheticSet",
]
