"""The curve of paper Fig. S12: mean accuracy over the tasks seen so far after each stage, one
line per setting (solid with distillation, dashed without), error bars = std over seeds."""

from __future__ import annotations

import io as _io
import os

from ..errors import NotFoundError
from ..io import atomic_write_bytes
from .runner import ContinualResult

__all__ = ["plot_curve"]


def plot_curve(result: ContinualResult, path: str | os.PathLike) -> str:
    """Draw the curve to ``path`` (PNG, written atomically); needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NotFoundError("the continual-learning curve needs matplotlib: pip install 'simplebits[plots]'") from None
    n = len(result.tasks)
    xs = list(range(n))
    fig, ax = plt.subplots(figsize=(1.6 + 1.6 * n, 3.6), dpi=120)
    colours = {}
    for r in result.results:
        name = r.setting.name
        if name not in colours:
            colours[name] = f"C{len(colours)}"
        ms = [100 * r.stats(k)[0] for k in xs]
        ss = [100 * r.stats(k)[1] for k in xs]
        bpd = "" if r.replay_bpd is None else f" ({r.replay_bpd:.2f} bpd)"
        ax.errorbar(xs, ms, yerr=ss, color=colours[name], linestyle="-" if r.setting.kd else "--",
                    marker="o" if r.setting.kd else "s", capsize=3, label=r.setting.label + bpd)
    ax.set_xticks(xs)
    ax.set_xticklabels(["+".join(result.tasks[: k + 1]) if k == 0 else "+" + result.tasks[k] for k in xs])
    ax.set_xlabel("training stage")
    ax.set_ylabel("mean accuracy over seen tasks (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(" -> ".join(result.tasks), fontsize=9)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)
