"""CIFAR-10 / CIFAR-100 "python version" pickle batches, read without running pickled code.

A batch is a pickled dict (bytes keys when written by Python 2): ``data`` is an N x 3072 uint8
array, each row an image in (3, 32, 32) order (R plane, G plane, B plane, row-major);
``labels`` (CIFAR-10) or ``fine_labels`` / ``coarse_labels`` (CIFAR-100) are lists of ints.
``batches.meta`` / ``meta`` hold ``label_names`` / ``fine_label_names``.

The unpickler resolves only the few globals a numpy array needs; any other global (``os.system``,
``builtins.eval``, ...) is refused with :class:`CorruptFileError` before anything is called.
"""

from __future__ import annotations

import codecs
import importlib
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError, CorruptFileError, MismatchError, NotFoundError, SimplebitsError

__all__ = ["safe_unpickle", "read_cifar_batch", "read_cifar_meta", "write_cifar_batch", "write_cifar_meta"]


def _multiarray():
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        return importlib.import_module("numpy.core.multiarray")


def _numeric():
    try:
        return importlib.import_module("numpy._core.numeric")
    except ImportError:  # numpy < 2
        return importlib.import_module("numpy.core.numeric")


def _allowed() -> dict[tuple[str, str], Any]:
    ma, nu = _multiarray(), _numeric()
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = ma._reconstruct
        allowed[(mod, "scalar")] = ma.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):  # arrays pickled with protocol 5
        allowed[(mod, "_frombuffer")] = nu._frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, *, source: str, **kw):
        super().__init__(file, **kw)
        self._source = source
        self._allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        obj = self._allowed.get((module, name))
        if obj is None:
            raise CorruptFileError(
                f"{self._source}: refusing to unpickle global {module}.{name}; a CIFAR batch holds only "
                "numpy arrays, lists and strings (the file is not a genuine CIFAR batch, or is unsafe)"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise CorruptFileError(f"{self._source}: refusing to unpickle a persistent id; not a CIFAR batch")


def safe_unpickle(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` allowing only numpy arrays/dtypes and plain Python containers."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"file not found: {p}")
    try:
        with open(p, "rb") as fh:
            return _RestrictedUnpickler(fh, source=str(p), encoding="bytes").load()
    except SimplebitsError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated/garbage pickles raise many types
        raise CorruptFileError(f"{p}: not a readable pickle, truncated or corrupt ({type(e).__name__}: {e})") from None


def _key(k: Any) -> Any:
    return k.decode("latin1") if isinstance(k, bytes) else k


def _as_dict(obj: Any, p: Path) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{p}: expected a pickled dict (a CIFAR batch), got {type(obj).__name__}")
    return {_key(k): v for k, v in obj.items()}


def read_cifar_batch(path: str | os.PathLike, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Read one batch: returns (uint8 (N, 3, 32, 32), int64 (N,))."""
    p = Path(path)
    d = _as_dict(safe_unpickle(p), p)
    for k in ("data", label_key):
        if k not in d:
            raise CorruptFileError(f"{p}: CIFAR batch has no {k!r} entry (keys: {', '.join(map(str, d))})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise CorruptFileError(f"{p}: 'data' must be a uint8 array, got {getattr(data, 'dtype', type(data).__name__)}")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CorruptFileError(f"{p}: 'data' must have shape (N, 3072), got {data.shape}")
    try:
        labels = np.asarray(d[label_key])
    except Exception as e:  # noqa: BLE001
        raise CorruptFileError(f"{p}: unreadable {label_key!r} ({e})") from None
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise CorruptFileError(f"{p}: {label_key!r} must be a list of integers")
    if labels.shape[0] != data.shape[0]:
        raise MismatchError(f"{p}: {data.shape[0]} images but {labels.shape[0]} labels")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), labels.astype(np.int64)


def read_cifar_meta(path: str | os.PathLike, key: str = "label_names") -> list[str]:
    """Class names from ``batches.meta`` (key ``label_names``) or CIFAR-100 ``meta`` (``fine_label_names``)."""
    p = Path(path)
    d = _as_dict(safe_unpickle(p), p)
    if key not in d:
        raise CorruptFileError(f"{p}: no {key!r} entry (keys: {', '.join(map(str, d))})")
    names = d[key]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise CorruptFileError(f"{p}: {key!r} must be a list of strings")
    return [_key(n) for n in names]


def write_cifar_batch(path: str | os.PathLike, images, labels, label_key: str | bytes = b"labels") -> None:
    """Write a batch in the real format (pickled dict, bytes keys): ``images`` uint8 (N, 3, 32, 32)."""
    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[1:] != (3, 32, 32):
        raise BadInputError(f"write_cifar_batch: images must be uint8 (N, 3, 32, 32), got {a.dtype} {a.shape}")
    key = label_key.encode() if isinstance(label_key, str) else label_key
    n = a.shape[0]
    obj = {
        b"batch_label": b"simplebits test batch",
        key: [int(v) for v in np.asarray(labels).reshape(-1)],
        b"data": np.ascontiguousarray(a.reshape(n, -1)),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_cifar_meta(path: str | os.PathLike, names, key: str | bytes = b"label_names") -> None:
    """Write a ``batches.meta`` / ``meta`` file holding the class names."""
    k = key.encode() if isinstance(key, str) else key
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump({k: [str(n).encode() for n in names]}, fh, protocol=2)
