"""Continual learning with condensed replay (paper S12): a task sequence, replay of the earlier
tasks' condensed sets, optional knowledge distillation, accuracy on every task after every stage.

Imports the workshop (``data``, ``models``, ``augment``, ``train``) and ``io``; condensed sets
reach it as files.
"""

from .config import DEFAULT_TASKS, ContinualConfig, make_config
from .figures import plot_curve
from .runner import ContinualResult, Setting, SettingResult, kd_loss, make_settings, masked_ce, run_continual
from .tasks import Task, TaskSequence, build_tasks

__all__ = [
    "DEFAULT_TASKS", "ContinualConfig", "make_config", "plot_curve", "ContinualResult", "Setting", "SettingResult",
    "kd_loss", "make_settings", "masked_ce", "run_continual", "Task", "TaskSequence", "build_tasks",
]
