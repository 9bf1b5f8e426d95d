"""One declaration per setting: a dataclass field with its help drives the CLI flag, the TOML key
and the docs row.

A config dataclass declares each user-facing setting once, with :func:`setting`::

    @dataclass(frozen=True)
    class MyConfig:
        iterations: int = setting(200, "outer iterations")
        match: str = setting("layerwise", "gradient distance", choices=MATCHES)
        lambda_sim: float | None = setting(None, "weight of the simplification term", metavar="L")

and everything a user sees is generated from those fields:

- :func:`add_arguments` adds ``--iterations``, ``--match {...}``, ``--lambda-sim L`` to an argparse
  parser, typed from the annotation, with ``default=None`` (= "the preset's value"), so that
  :func:`overrides` returns only what the user gave;
- :func:`doc_rows` lists (key, type, default, help) for the docs and the pipeline's key table;
- :func:`coerce` checks a TOML value against the field's annotation, naming the key.

Only this module knows how an annotation maps to a flag; ``choices`` may be a callable (read when
the parser is built), so a registry's names, not a copied tuple, are offered.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import MISSING, Field, fields
from typing import Any, Callable, Iterable, Iterator, Union

from .errors import BadInputError

__all__ = ["setting", "settings_difference", "user_fields", "add_arguments", "overrides", "doc_rows", "coerce", "type_name",
           "flag_name"]


def setting(default: Any = MISSING, help: str = "", *, choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,  # noqa: A002
            flag: str | None = None, metavar: str | None = None, cli: bool = True, toml: bool = True,
            default_text: str | None = None) -> Any:
    """A dataclass field that carries its user-facing description.

    ``help`` one line, the text of ``--help`` and of the docs; ``choices`` valid values (or a
    function returning them); ``flag`` the CLI spelling when it is not ``--name-with-dashes``;
    ``cli``/``toml`` False keep the setting off the command line / out of TOML tables;
    ``default_text`` what ``(default: ...)`` says when the dataclass default is not what a user
    gets (e.g. "preset's").
    """
    meta = {"help": help, "choices": choices, "flag": flag, "metavar": metavar, "cli": cli, "toml": toml,
            "default_text": default_text}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def user_fields(cls: type, *, where: str = "cli") -> Iterator[Field]:
    """The fields of ``cls`` declared with :func:`setting` and meant for ``where`` (cli or toml)."""
    for f in fields(cls):
        if "help" in f.metadata and f.metadata.get(where, True):
            yield f


def flag_name(f: Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _choices(f: Field) -> list[str] | None:
    c = f.metadata.get("choices")
    if c is None:
        return None
    return list(c() if callable(c) else c)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_none(tp: Any) -> tuple[Any, bool]:
    """(``X``, True) for ``X | None``; (tp, False) otherwise."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        return tp, True
    return tp, False


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def type_name(tp: Any) -> str:
    """How the docs name an annotation: integer, number, string, true/false, list of ..."""
    tp, optional = _strip_none(tp)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {type_name(args[0])}" if args else "list"
    if origin in (Union, types.UnionType):  # bool | str (e.g. compile: true, false or "auto")
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is dict or tp is dict:
        return "table"
    return {int: "integer", float: "number", str: "string", bool: "true/false"}.get(tp, getattr(tp, "__name__", str(tp)))


def _list_parser(item: type, flag: str) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            vals = [item(v) for v in str(text).split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes {type_name(item)}s separated by commas, got {text!r}") from None
        if not vals:
            raise argparse.ArgumentTypeError(f"{flag} is empty")
        return vals

    return parse


def add_arguments(parser: argparse.ArgumentParser | Any, cls: type, *, skip: Iterable[str] = (),
                  only: Iterable[str] | None = None, defaults: dict[str, Any] | None = None,
                  default_text: str | None = None) -> list[str]:
    """Add one flag per user field of ``cls`` to ``parser`` (an ArgumentParser or a group).

    Every flag defaults to ``None`` unless ``defaults`` names it, so :func:`overrides` returns
    exactly what the user typed and the preset fills the rest. ``bool`` fields become
    ``--name/--no-name``; ``list``/``tuple`` fields take comma-separated values; fields of other
    types (tables such as ``net_options``) are left to the caller. ``default_text`` (or the
    field's own) is appended to the help as ``(default: ...)``; otherwise the dataclass default is.
    Returns the destination names added.
    """
    skip = set(skip)
    keep = set(only) if only is not None else None
    defaults = defaults or {}
    hints = _hints(cls)
    added = []
    for f in user_fields(cls, where="cli"):
        if f.name in skip or (keep is not None and f.name not in keep):
            continue
        tp, _ = _strip_none(hints[f.name])
        origin = typing.get_origin(tp)
        flag = flag_name(f)
        kw: dict[str, Any] = {"dest": f.name, "default": defaults.get(f.name)}
        if f.metadata.get("metavar"):
            kw["metavar"] = f.metadata["metavar"]
        said = f.metadata.get("default_text") or default_text
        if said is None:
            d = defaults.get(f.name, _default(f))
            said = None if d is MISSING or d is None else ("on" if d is True else "off" if d is False else str(d))
        help_text = f.metadata["help"] + (f" (default: {said})" if said else "")
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif origin in (list, tuple):
            args = [a for a in typing.get_args(tp) if a is not Ellipsis]
            item = args[0] if args else str
            kw["type"] = _list_parser(item, flag)
            kw.setdefault("metavar", f"{type_name(item).upper()}[,...]".replace("INTEGER", "N").replace("NUMBER", "X"))
        elif tp in (int, float, str):
            kw["type"] = tp
            choices = _choices(f)
            if choices is not None:
                kw["choices"] = choices
        elif origin in (Union, types.UnionType):  # e.g. bool | str: read as text, the config validates it
            kw["type"] = str
            choices = _choices(f)
            if choices is not None:
                kw["choices"] = choices
        else:
            continue
        parser.add_argument(flag, help=help_text.replace("%", "%%"), **kw)
        added.append(f.name)
    return added


def overrides(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The values the user gave for ``cls``'s fields (flags left at None are left out)."""
    out = {}
    for f in fields(cls):
        v = getattr(args, f.name, None)
        if v is not None:
            out[f.name] = tuple(v) if isinstance(_default(f), tuple) and isinstance(v, list) else v
    return out


def doc_rows(cls: type, *, where: str = "toml") -> list[tuple[str, str, Any, str]]:
    """(name, type name, default, help) of every user field of ``cls`` meant for ``where``."""
    hints = _hints(cls)
    return [(f.name, type_name(hints[f.name]), _default(f), f.metadata["help"]) for f in user_fields(cls, where=where)]


def coerce(where: str, value: Any, tp: Any) -> Any:
    """``value`` checked against annotation ``tp`` (TOML types), or a BadInputError naming the key."""
    tp, optional = _strip_none(tp)
    name = type_name(tp)
    bad = BadInputError(f"{where} must be {'an' if name[:1] in 'aeiou' else 'a'} {name}, got {value!r} "
                        f"({type(value).__name__})")
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise bad
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        vals = [coerce(f"{where}[{i}]", v, args[0]) for i, v in enumerate(value)] if args else list(value)
        return tuple(vals) if origin is tuple else vals
    if origin in (Union, types.UnionType):
        for a in typing.get_args(tp):
            try:
                return coerce(where, value, a)
            except BadInputError:
                continue
        raise bad
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    raise BadInputError(f"{where}: settings of type {tp!r} cannot be read from TOML")


def settings_difference(saved: dict[str, Any], now: dict[str, Any], *,
                        ignore: Iterable[str] = ()) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, value now)}`` for every setting that differs between two ``to_dict()``
    forms, ``ignore`` aside. Keys are taken from both sides: a config leaves some settings out of its
    dict at their default (so older digests hold), and such a setting still shows (as None)."""
    skip = set(ignore)
    return {k: (saved.get(k), now.get(k)) for k in sorted(saved.keys() | now.keys())
            if k not in skip and saved.get(k) != now.get(k)}
