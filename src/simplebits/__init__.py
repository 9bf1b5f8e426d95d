"""simplebits: make training data smaller and simpler, and see what a classifier needs.

The root holds what README.md and examples/ use, nothing more. The verbs are all called the
same way, ``sb.<verb>(...)``::

    import simplebits as sb

    sb.run("my-run.toml")                                  # the whole pipeline (simplebits.pipeline.run)
    sb.evaluate(cond, test, protocol="dc")                 # simplebits.train.evaluate
    sb.condense(train, method="dc", ipc=1)                 # simplebits.condense.condense
    sb.prune(cond, ipc=1, rule="yoco")                     # simplebits.prune.prune_set
    sb.simplify(train, test, lambdas=[0, 8])               # simplebits.simplify.simplify

``sb.condense``, ``sb.prune`` and ``sb.simplify`` are their subpackages made callable (calling
one calls its entry point), not functions that shadow them: ``import simplebits.condense as c``
binds ``c`` through ``getattr(simplebits, "condense")`` (Python >= 3.7), so a root function of
that name would hand back the function and break ``c.make_config``, ``sb.condense.make_config``
and ``import simplebits.condense.methods``. As modules that are also callable, ``sb.condense(...)``,
``sb.condense.make_config(...)`` and ``from simplebits.condense import make_config`` all work.

Everything else lives in its subpackage and is imported from there: ``simplebits.data``
(``real_subset``, ``resize``...), ``simplebits.train`` (protocols, ``evaluate_real_subset``),
``simplebits.models``, ``simplebits.density``, ``simplebits.pipeline`` (``load_config``,
``write_report``...), ``simplebits.errors`` (the subclasses of :class:`SimplebitsError`).

Importing the package changes no torch settings; beyond loading its modules it makes those three
subpackages callable and, only when torch is not loaded yet and you have not set it yourself, sets
``GOMP_SPINCOUNT=1000`` in the environment, so that torch's OpenMP threads stop spinning soon
after each op and a busy core elsewhere on the machine does not multiply the time of every step
(:mod:`simplebits._openmp`; the same bits either way; ``SIMPLEBITS_SPINCOUNT=keep`` opts out).
"""

from . import _openmp  # noqa: F401  first: sets GOMP_SPINCOUNT before anything below loads torch

import inspect as _inspect
import sys as _sys
import types as _types

from . import condense, prune, simplify  # the callable subpackages (see the module docstring)
from .data import ImageSet, list_sources, load_dataset
from .data.condensed import import_condensed, load_condensed, save_condensed
from .errors import SimplebitsError
from .pipeline import run, sweep
from .train import evaluate, get_protocol

__version__ = "0.2.0"

#: subpackage -> the function that ``sb.<subpackage>(...)`` calls
_ENTRY_POINTS = {"condense": "condense", "prune": "prune_set", "simplify": "simplify"}


def _entry_point(module: _types.ModuleType):
    # looked up at every call, so patching ``simplebits.prune.prune_set`` also patches ``sb.prune(...)``
    return getattr(module, _ENTRY_POINTS[module.__name__.rpartition(".")[2]])


class _CallableSubpackage(_types.ModuleType):
    """A capability subpackage that is also its entry point: ``sb.prune(...)`` is
    ``sb.prune.prune_set(...)``; attributes and imports behave as for any module."""

    def __call__(self, *args, **kwargs):
        return _entry_point(self)(*args, **kwargs)

    @property
    def __signature__(self) -> _inspect.Signature:
        return _inspect.signature(_entry_point(self))


for _name in _ENTRY_POINTS:
    _sys.modules[f"{__name__}.{_name}"].__class__ = _CallableSubpackage
del _name

__all__ = [
    "ImageSet",
    "SimplebitsError",
    "condense",
    "evaluate",
    "get_protocol",
    "import_condensed",
    "list_sources",
    "load_condensed",
    "load_dataset",
    "prune",
    "run",
    "save_condensed",
    "simplify",
    "sweep",
]
