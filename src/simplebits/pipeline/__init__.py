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

from .config import PipelineConfig, builtin_config, list_builtin, load_config, parse_config, settings_table
from .report import render_report, write_report
from .runner import STAGES, PipelineResult, load_result, run
from .sweeps import SweepConfig, SweepResult, load_sweep, load_sweep_result, sweep, sweep_prune_table

__all__ = ["PipelineConfig", "PipelineResult", "STAGES", "builtin_config", "list_builtin", "load_config",
           "load_result", "parse_config", "render_report", "run", "settings_table", "write_report",
           "SweepConfig", "SweepResult", "load_sweep", "load_sweep_result", "sweep", "sweep_prune_table"]
