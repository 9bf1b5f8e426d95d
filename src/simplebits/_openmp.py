"""How long torch's OpenMP threads spin before they sleep: set once, before torch is loaded.

Why. Torch's CPU ops run on a libgomp thread pool; at the end of every op the threads meet, and a
thread that finishes early *spins* (burns its core) for ``GOMP_SPINCOUNT`` iterations before it
sleeps, 300,000 by default. On an idle machine that keeps the next op's start fast. Beside another
busy process the spinning thread takes CPU time from the thread that is late because it shares its
core with the other process, at every op. Measured (``benchmarks/shared_cpu.py``, two-thread
ConvNet-3 steps of ten 28x28 images): 17.2 ms alone, 56.2 ms beside a one-core busy loop and
404.8 ms beside a two-thread torch job; with 1,000 spins 15.2, 37.2 and 39.9 ms. A Fashion-MNIST
IPC 1 evaluation beside the busy loop took 47.8 s before and 29.6 s now (16.0 s alone, either
way). 0 (sleep at once) costs an idle machine 1.1-1.2x, so 1,000 is the default.

The spin count changes when a waiting thread sleeps, never how the work is split: the same seed
gives the same bits with any value (tested).

libgomp reads the variable once, when torch loads it, so :func:`set_spin_default` runs when this
module is imported, the first import of ``simplebits/__init__.py``: it sets
``GOMP_SPINCOUNT=1000`` in this process's environment when torch is not loaded yet and neither
``GOMP_SPINCOUNT`` nor ``OMP_WAIT_POLICY`` is set (your own value always wins;
``SIMPLEBITS_SPINCOUNT=N`` chooses another default, ``SIMPLEBITS_SPINCOUNT=keep`` leaves
libgomp's). Child processes (torchrun workers, Ray tasks, the benchmarks' runs) inherit it.
When torch was imported before simplebits, nothing changes; set the variable before starting
Python (``GOMP_SPINCOUNT=1000 python ...``) to get the same behaviour.

Only the standard library is imported here.
"""

from __future__ import annotations

import os
import sys

__all__ = ["SPIN_DEFAULT", "SPIN_ENV_VAR", "set_spin_default"]

#: libgomp spin iterations before a waiting thread sleeps, as simplebits sets it (libgomp's own: 300,000)
SPIN_DEFAULT = 1000
#: environment variable that chooses simplebits' default (an integer >= 0, or "keep" for libgomp's)
SPIN_ENV_VAR = "SIMPLEBITS_SPINCOUNT"


def set_spin_default(environ: "os._Environ[str] | dict[str, str] | None" = None,
                     modules: dict | None = None) -> str | None:
    """Set ``GOMP_SPINCOUNT`` in ``environ`` (default: this process's) when it decides anything;
    returns the value set, or None when it left the environment alone (torch already loaded, the
    user's own ``GOMP_SPINCOUNT`` / ``OMP_WAIT_POLICY``, or ``SIMPLEBITS_SPINCOUNT=keep``). An
    unusable ``SIMPLEBITS_SPINCOUNT`` leaves it alone too: importing the package never fails."""
    env = os.environ if environ is None else environ
    loaded = sys.modules if modules is None else modules
    if "torch" in loaded or env.get("GOMP_SPINCOUNT") or env.get("OMP_WAIT_POLICY"):
        return None
    choice = env.get(SPIN_ENV_VAR, "").strip().lower()
    if choice == "keep":
        return None
    if choice:
        if not choice.isdigit():
            return None
        value = str(int(choice))
    else:
        value = str(SPIN_DEFAULT)
    env["GOMP_SPINCOUNT"] = value
    return value


set_spin_default()  # on import: see the module docstring
