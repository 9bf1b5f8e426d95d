"""The condensation methods' registry: the one place a method is declared.

A method is a class (or factory) ``cls(cfg, real, *, device)`` returning an object with the
:class:`~simplebits.condense.methods.Method` interface, declared once with its presets, the
protocol its papers evaluate with and a line of help::

    @register_method("dc", presets={"quick": {...}, "paper": {...}}, eval_protocol="dc",
                     help="gradient matching")
    class DCMethod(Method): ...

Everything else reads the registry: :func:`~simplebits.condense.make_config` (the presets),
:meth:`CondenseConfig.validate <simplebits.condense.CondenseConfig.validate>` (the names, and what
a method's class says it accepts), the runner (the class, the evaluation protocol in the
metadata), ``simplebits condense --method`` and its description, the pipeline's
``condense.method`` check and its key table, and the tests that run every method. So adding a
method takes this decorator in one file; ``METHODS``, ``PRESETS`` and ``EVAL_PROTOCOL`` are live
views of the registry (a method registered later shows up in them).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator

from ..errors import BadInputError, UnknownNameError

__all__ = ["MethodSpec", "register_method", "unregister_method", "get_method", "list_methods", "list_presets",
           "METHODS", "PRESETS", "EVAL_PROTOCOL", "eval_protocol_for"]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its name, its class (or factory), presets, evaluation protocol, help."""

    name: str
    factory: Callable[..., Any]
    presets: Mapping[str, Mapping[str, Any]]
    eval_protocol: str
    help: str

    def preset(self, name: str) -> dict[str, Any]:
        """A copy of preset ``name``'s settings (UnknownNameError naming this method's presets)."""
        if name not in self.presets:
            raise UnknownNameError(f"preset of method {self.name!r}", str(name), tuple(self.presets))
        return dict(self.presets[name])

    def trait(self, name: str, default: Any) -> Any:
        """A class attribute of the method's class (what the config checks read: e.g. whether it
        decodes multi-formation images), or ``default`` for a factory that does not say."""
        return getattr(self.factory, name, default)


_REGISTRY: dict[str, MethodSpec] = {}
_NAME = re.compile(r"[a-z][a-z0-9_-]*")


def _load_builtins() -> None:
    """Import the module that registers the built-in methods (a no-op once imported; also safe
    while it is being imported, as import_module returns the module in progress)."""
    importlib.import_module(f"{__package__}.methods")


def _check_presets(name: str, presets: Any) -> dict[str, dict[str, Any]]:
    from .config import CondenseConfig

    if not isinstance(presets, Mapping) or not presets:
        raise BadInputError(f"method {name!r}: presets must be a non-empty dict of preset name -> settings")
    valid = {f.name for f in fields(CondenseConfig)} - {"method", "ipc", "preset"}
    out = {}
    for preset, settings in presets.items():
        if not isinstance(preset, str) or not _NAME.fullmatch(preset) or not isinstance(settings, Mapping):
            raise BadInputError(f"method {name!r}: preset {preset!r} must be a lower-case name with a dict of settings")
        bad = sorted(set(settings) - valid)
        if bad:
            raise BadInputError(f"method {name!r}, preset {preset!r}: unknown setting(s) {bad}; valid: {sorted(valid)}")
        out[preset] = dict(settings)
    return out


def register_method(name: str, *, presets: Mapping[str, Mapping[str, Any]], eval_protocol: str,
                    help: str, replace: bool = False) -> Callable[[Any], Any]:  # noqa: A002 - the word users read
    """Class decorator: declare condensation method ``name``.

    ``presets`` maps each preset name (``quick``, ``paper``; a method may add its own) to the
    settings it fixes (any :class:`~simplebits.condense.CondenseConfig` field but method, ipc and
    preset); ``eval_protocol`` names the training protocol its papers evaluate with (what
    ``--evaluate`` with no value uses); ``help`` one line for ``--help`` and the docs.
    ``replace=True`` re-declares a registered name (e.g. a test's variant); otherwise a second
    declaration is an error, so two methods cannot silently share a name.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadInputError(f"method name {name!r} must be lower-case letters, digits, '-' or '_', starting with a letter")
    if name in _REGISTRY and not replace:
        raise BadInputError(f"condensation method {name!r} is already registered ({_REGISTRY[name].factory.__qualname__}); "
                            "choose another name or pass replace=True")
    checked = _check_presets(name, presets)
    if not isinstance(eval_protocol, str) or not eval_protocol:
        raise BadInputError(f"method {name!r}: eval_protocol must name a training protocol, e.g. \"dc\"")
    from ..train import get_protocol

    get_protocol(eval_protocol)  # an unknown protocol: refused here, not after a long run with --evaluate

    def decorate(factory: Any) -> Any:
        if not callable(factory):
            raise BadInputError(f"method {name!r}: register_method decorates a class or factory, got {factory!r}")
        _REGISTRY[name] = MethodSpec(name, factory, checked, eval_protocol, " ".join(str(help).split()))
        return factory

    return decorate


def unregister_method(name: str) -> MethodSpec:
    """Remove ``name`` from the registry and return its spec (tests restore the registry with it)."""
    _load_builtins()
    if name not in _REGISTRY:
        raise UnknownNameError("method", str(name), list_methods())
    return _REGISTRY.pop(name)


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``, or UnknownNameError listing the registered ones."""
    _load_builtins()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownNameError("method", str(name), list_methods())
    return _REGISTRY[name]


def list_methods() -> list[str]:
    """The registered method names, in the order they were declared."""
    _load_builtins()
    return list(_REGISTRY)


def list_presets() -> list[str]:
    """Every preset name some method declares, in order of first declaration."""
    _load_builtins()
    return list(dict.fromkeys(p for spec in _REGISTRY.values() for p in spec.presets))


class _Names(Sequence):
    """A read-only tuple-like view of names computed from the registry on every use."""

    def __init__(self, names: Callable[[], list[str]]) -> None:
        self._names = names

    def __getitem__(self, i: Any) -> Any:
        return tuple(self._names())[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _Names)) else other)

    __hash__ = None  # type: ignore[assignment]  # mutable contents

    def __repr__(self) -> str:
        return repr(tuple(self))


class _EvalProtocols(Mapping):
    """A read-only view: method name -> the protocol its papers evaluate with."""

    def __getitem__(self, name: str) -> str:
        _load_builtins()
        if name not in _REGISTRY:
            raise KeyError(name)
        return _REGISTRY[name].eval_protocol

    def __len__(self) -> int:
        return len(list_methods())

    def __iter__(self) -> Iterator[str]:
        return iter(list_methods())

    def __repr__(self) -> str:
        return repr(dict(self))


#: the registered method names (live: a method registered later is in it)
METHODS: Sequence[str] = _Names(list_methods)
#: every preset name (live)
PRESETS: Sequence[str] = _Names(list_presets)
#: method -> its papers' evaluation protocol, the CLI's ``--evaluate`` default (live)
EVAL_PROTOCOL: Mapping[str, str] = _EvalProtocols()


def eval_protocol_for(method: str, data: Any = None) -> str:
    """The protocol ``method``'s papers evaluate a set of ``data`` (an ImageSet) with.

    ``EVAL_PROTOCOL[method]``, except that DC evaluates MNIST with its per-image crop / scale /
    rotate augmentation (the DC paper's MNIST figures were measured that way): ``dc`` becomes
    ``dc-mnist`` for a set that is MNIST or made from it (``data.is_mnist``).
    """
    proto = EVAL_PROTOCOL[method]
    if proto == "dc" and data is not None:
        from ..data import is_mnist

        if is_mnist(data):
            return "dc-mnist"
    return proto
