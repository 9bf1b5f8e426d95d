"""simplebits: make training data smaller and simpler, and see what a classifier needs.

Importing the package has no side effects (no global torch settings).
"""

from . import continual  # the subpackage; its entry point is simplebits.continual.run_continual
from . import condense  # the subpackage; its entry point is simplebits.condense.condense
from . import prune  # the subpackage; its entry point is simplebits.prune.prune_set
from . import simplify  # the subpackage; its entry point is simplebits.simplify.simplify
from . import pipeline  # the main job; its entry point is simplebits.run
from .condense import CondenseConfig, CondenseResult
from .data import ImageSet, list_sources, load_dataset, real_subset, resize
from .data.condensed import decode, import_condensed, load_condensed, save_condensed
from .errors import BadInputError, CorruptFileError, MismatchError, NotFoundError, SimplebitsError, UnknownNameError
from .models import create_model, list_models
from .pipeline import PipelineConfig, PipelineResult, SweepResult, load_config, run, sweep, write_report
from .train import EvalReport, Protocol, evaluate, evaluate_real_subset, get_protocol, list_protocols

__version__ = "0.2.0"

__all__ = [
    "BadInputError",
    "CondenseConfig",
    "CondenseResult",
    "CorruptFileError",
    "EvalReport",
    "ImageSet",
    "MismatchError",
    "PipelineConfig",
    "PipelineResult",
    "NotFoundError",
    "Protocol",
    "SimplebitsError",
    "UnknownNameError",
    "__version__",
    "condense",
    "continual",
    "create_model",
    "decode",
    "evaluate",
    "evaluate_real_subset",
    "get_protocol",
    "import_condensed",
    "list_models",
    "list_protocols",
    "list_sources",
    "load_condensed",
    "load_config",
    "load_dataset",
    "prune",
    "pipeline",
    "real_subset",
    "resize",
    "run",
    "sweep",
    "SweepResult",
    "save_condensed",
    "simplify",
    "write_report",
]
