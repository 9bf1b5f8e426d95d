"""The main job: one pipeline from data to a smaller, simpler data set, and its HTML report.

Composes the capabilities (``condense``, ``prune``, ``simplify``, ``explain``, ``continual``)
with the measure (``density``) and the workshop (``train``); nothing else imports it.

    >>> import simplebits as sb
    >>> result = sb.run("my-run.toml")          # doctest: +SKIP
    >>> result.figures["condense"]["sets"][0]["accuracy"]["mean"]   # doctest: +SKIP

Stages: data summary and bpd histogram -> random-real baselines -> condensed sets -> pruning
(IPC_F -> IPC_T, rules) -> SimpleBits simplifiers -> explanation -> continual learning. See
``docs/pipeline.md`` for the config keys and :mod:`.runner` for resuming and skipping.
:func:`sweep` runs a grid of such pipelines (in order, or as Ray tasks): ``docs/scale-out.md``.
"""

from .config import PipelineConfig, builtin_config, list_builtin, load_config, parse_config
from .report import write_report
from .runner import PipelineResult, run
from .sweeps import SweepConfig, SweepResult, sweep

__all__ = ["PipelineConfig", "PipelineResult", "builtin_config", "list_builtin", "load_config", "parse_config", "run",
           "write_report", "SweepConfig", "SweepResult", "sweep"]
