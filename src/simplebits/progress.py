"""Progress bars for long work (tqdm on stderr; shown only on a terminal unless asked)."""

from __future__ import annotations

__all__ = ["progress_bar"]


def progress_bar(total: int, *, desc: str, enabled: bool | None = None, unit: str = "step"):
    """A tqdm bar; ``enabled=None`` lets tqdm show it only when stderr is a terminal."""
    from tqdm.auto import tqdm

    disable = (not enabled) if enabled is not None else None
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=False, dynamic_ncols=True)
