"""Registry of named data sources: ``load_dataset("fashion-mnist:test")``.

A source is one decorated function. The CLI's ``data list``, its choices and the
parametrised smoke tests read this registry, so adding a source needs no other edit.

Spec syntax
-----------
``NAME`` or ``NAME:SPLIT`` for named sources (``fashion-mnist:test``, ``mnist-5k:train``);
``NAME:PATH`` for sources that read a user path (``npz:/data/x.npz``,
``image-folder:/data/xray``), with the split passed separately.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import BadInputError, UnknownNameError
from .imageset import ImageSet

__all__ = ["SourceInfo", "register_source", "list_sources", "get_source", "parse_spec", "is_dataset_spec", "load_dataset", "data_root"]


@dataclass(frozen=True)
class SourceInfo:
    name: str
    description: str
    loader: Callable[..., ImageSet]
    splits: tuple[str, ...] = ("train", "test")
    takes_path: bool = False  # True: spec is NAME:PATH, loader(path=..., split=...)
    builtin: bool = False  # True: ships with an installed package (no user files needed)


_SOURCES: dict[str, SourceInfo] = {}


def register_source(
    name: str,
    *,
    description: str,
    splits: tuple[str, ...] = ("train", "test"),
    takes_path: bool = False,
    builtin: bool = False,
) -> Callable[[Callable[..., ImageSet]], Callable[..., ImageSet]]:
    """Decorator: register ``fn(*, split, root)`` (or ``fn(*, path, split)`` with ``takes_path``)."""

    def deco(fn: Callable[..., ImageSet]) -> Callable[..., ImageSet]:
        if name in _SOURCES:
            raise ValueError(f"data source {name!r} registered twice")
        _SOURCES[name] = SourceInfo(name, description, fn, tuple(splits), takes_path, builtin)
        return fn

    return deco


def _ensure_loaded() -> None:
    from . import sources  # noqa: F401  (registers the built-in sources on import)


def list_sources() -> list[SourceInfo]:
    _ensure_loaded()
    return [_SOURCES[k] for k in sorted(_SOURCES)]


def get_source(name: str) -> SourceInfo:
    _ensure_loaded()
    if name not in _SOURCES:
        raise UnknownNameError("data set", name, list(_SOURCES))
    return _SOURCES[name]


def parse_spec(spec: str) -> tuple[SourceInfo, str | None, str | None]:
    """Split ``spec`` into (source, split or None, path or None)."""
    if not isinstance(spec, str) or not spec.strip():
        raise BadInputError("empty data set name; run `simplebits data list` for the valid names")
    name, sep, rest = spec.partition(":")
    info = get_source(name)
    if info.takes_path:
        if not rest:
            raise BadInputError(f"data set {name!r} needs a path: {name}:PATH")
        return info, None, rest
    if sep and rest not in info.splits:
        raise BadInputError(f"data set {name!r} has no split {rest!r}; valid: {', '.join(info.splits)}")
    return info, (rest or None), None


def is_dataset_spec(spec: str) -> bool:
    """True when ``spec`` names a registered data set (``fashion-mnist:train``, ``mnist-5k``,
    ``npz:PATH``), False for anything else (a file path, an unknown name); loads nothing."""
    try:
        parse_spec(spec)
    except (BadInputError, UnknownNameError):
        return False
    return True


def data_root(root: str | os.PathLike | None, subdir: str) -> Path | None:
    """Where to look for a source's files: ``root`` if given, else ``$SIMPLEBITS_DATA/subdir``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("SIMPLEBITS_DATA")
    return Path(env) / subdir if env else None


def load_dataset(spec: str, *, split: str | None = None, root: str | os.PathLike | None = None) -> ImageSet:
    """Load a registered data set by spec; returns a validated :class:`ImageSet`.

    Parameters
    ----------
    spec : ``NAME[:SPLIT]`` or ``NAME:PATH`` (see module docstring).
    split : split to load when the spec names none (default ``"train"``).
    root : folder holding the source's files (``--data-root``); defaults per source.
    """
    info, spec_split, path = parse_spec(spec)
    use_split = spec_split or split or "train"
    if info.takes_path:
        ds = info.loader(path=path, split=split)
    else:
        if use_split not in info.splits:
            raise BadInputError(f"data set {info.name!r} has no split {use_split!r}; valid: {', '.join(info.splits)}")
        ds = info.loader(split=use_split, root=root)
    return ds.with_meta(name=spec if (spec_split or info.takes_path) else f"{info.name}:{use_split}", source=info.name,
                        split=ds.meta.get("split", use_split if not info.takes_path else split))
