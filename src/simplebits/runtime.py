"""Where a run executes and what it costs: the device a name resolves to, and the peak memory.

A base module (stdlib, torch and :mod:`simplebits.errors` only), so the CLI, the pipeline and
every capability check a device name the same way, before any work, and report memory alike.
"""

from __future__ import annotations

import contextlib
import resource

import torch

from .errors import BadInputError

__all__ = ["resolve_device", "peak_rss_mb", "DEVICE_KINDS", "PRECISIONS", "bf16_native", "resolve_precision",
           "precision_name", "autocast_to", "cpu_name"]

#: What a device name may be besides ``auto``: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
DEVICE_KINDS = ("cpu", "cuda", "mps")


def resolve_device(name: str, *, setting: str = "--device") -> str:
    """The device to run on, checked before any work: ``auto`` -> ``cuda`` when available, else
    ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` are returned (trimmed, lower case) when this
    machine has them. Anything else is a :class:`~simplebits.errors.BadInputError` of one line.

    ``setting`` is how the user wrote the choice, named in the messages: ``--device`` on the
    command line, ``device =`` in a pipeline config.
    """
    name = str(name).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in DEVICE_KINDS:
        raise BadInputError(f"{setting} {name!r} is not a device; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError(f"{setting} {name}: no CUDA device is available here; use {setting} cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise BadInputError(f"{setting} {name}: this machine has {count} CUDA device(s), numbered 0-{count - 1}")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise BadInputError(f"{setting} {name}: Apple MPS is not available here; use {setting} cpu")
    return name


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


#: arithmetic of the passes of condensation that need no image gradient (:class:`simplebits.condense.GradientEngine`)
PRECISIONS = ("fp32", "bf16", "auto")


def bf16_native(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions in hardware: a CUDA GPU that supports
    bf16, or a CPU with AVX512-BF16 or AMX (read through torch's CPU capability checks; False
    when they are missing). Elsewhere bf16 is emulated and slower than float32."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type != "cpu":
        return False
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, name, None)
        try:
            if check is not None and check():
                return True
        except Exception:  # noqa: BLE001 - a private check that changed: treat as not native
            continue
    return False


def resolve_precision(precision: str, device: str | torch.device) -> torch.dtype | None:
    """``fp32`` -> None (no autocast), ``bf16`` -> torch.bfloat16, ``auto`` -> bf16 where
    :func:`bf16_native` says the hardware has it, else None. Anything else: one clear error."""
    if precision not in PRECISIONS:
        raise BadInputError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "bf16" or (precision == "auto" and bf16_native(device)):
        return torch.bfloat16
    return None


def precision_name(precision: str, device: str | torch.device) -> str:
    """``precision`` with ``auto`` replaced by what :func:`resolve_precision` computes in on ``device``:
    ``"bf16"`` or ``"fp32"`` (what a report or a cache key should name)."""
    return "bf16" if resolve_precision(precision, device) is not None else "fp32"


def autocast_to(dtype: torch.dtype | None, device_type: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` (what :func:`resolve_precision` returns) on ``device_type``, or
    nothing when ``dtype`` is None (float32): the one way training, testing and condensation enter bf16."""
    return torch.autocast(device_type=device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for benchmark records; ``"unknown"`` elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    except OSError:
        return "unknown"
