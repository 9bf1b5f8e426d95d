"""CIFAR-10 / CIFAR-100 "python version" pickle batches, read without running pickled code.

A batch is a pickled dict (bytes keys when written by Python 2): ``data`` is an N x 3072 uint8
array, each row an image in (3, 32, 32) order (R plane, G plane, B plane, row-major);
``labels`` (CIFAR-10) or ``fine_labels`` / ``coarse_labels`` (CIFAR-100) are lists of ints.
``batches.meta`` / ``meta`` hold ``label_names`` / ``fine_label_names``.

Reading is bounded before anything runs:

1. the opcode stream is scanned (:func:`pickletools.genops`) with a model of the unpickler's
   stack: nesting deeper than :data:`MAX_NESTING`, objects that would take more than
   ``64 x opcodes`` steps to walk (shared sub-objects: a memo DAG doubling per level), and
   memo indices beyond the opcode count are refused;
2. the unpickler resolves only the few globals a numpy array needs, and each is replaced by a
   checked stand-in: no numpy constructor ever sees a shape or dtype from the file before its
   data bytes are counted (an array's bytes must equal shape x itemsize, so no array is larger
   than the file); any other global (``os.system``, ``builtins.eval``...) is refused;
3. the result is checked without walking nested objects: labels are a flat list of ints.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError, CorruptFileError, MismatchError, NotFoundError, check_input_size, reading

__all__ = ["safe_unpickle", "read_cifar_batch", "read_cifar_meta", "write_cifar_batch", "write_cifar_meta", "MAX_NESTING"]

#: Deepest nesting of containers a pickle may build (a CIFAR batch needs about 8).
MAX_NESTING = 64
#: Steps to walk an object, per opcode in the file (shared sub-objects count each time they are
#: reached); a genuine batch stays under ~10.
_WALK_PER_OP = 64
_WALK_SLACK = 1024
#: Plain numeric dtypes an array or scalar in a batch may have ('b1' bool ... 'f8' float64).
_DTYPES = frozenset({"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"})


class _Refused(CorruptFileError):
    pass


def _text(x: Any) -> str | None:
    return x.decode("latin1") if isinstance(x, bytes) else x if isinstance(x, str) else None


class _Dtype:
    """Stand-in for ``numpy.dtype(descr, align, copy)`` + its BUILD state; only plain numeric dtypes."""

    def __init__(self, descr: Any, *_: Any):
        code = _text(descr)
        if code not in _DTYPES:
            raise _Refused(f"dtype {str(descr)[:20]!r} is not a plain numeric dtype")
        self.dtype, self.endian = np.dtype(code), "="

    def __setstate__(self, state: Any) -> None:
        if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise _Refused("unexpected dtype state")
        endian = _text(state[1])
        if endian not in ("<", ">", "|", "=") or state[2:5] != (None, None, None) or (len(state) == 9 and state[8]):
            raise _Refused("structured or sub-array dtypes are not allowed")
        self.endian = endian


def _dt(x: Any) -> np.dtype:
    if not isinstance(x, _Dtype):
        raise _Refused("expected a dtype")
    return x.dtype.newbyteorder(x.endian) if x.endian in "<>" else x.dtype


def _shape(x: Any) -> tuple[int, ...]:
    if type(x) is not tuple or len(x) > 32 or not all(type(d) is int and d >= 0 for d in x):
        raise _Refused("an array shape must be a tuple of non-negative ints")
    return x


def _from_bytes(raw: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> np.ndarray:
    """The only place arrays are made: the data bytes must be exactly shape x itemsize."""
    if not isinstance(raw, (bytes, bytearray)):
        raise _Refused("array data must be bytes")
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise _Refused(f"array of shape {shape} and dtype {dtype} does not match its {len(raw)} data bytes")
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(dtype.newbyteorder("="), copy=True)


class _Array:
    """Stand-in for ``_reconstruct(ndarray, ...)``: the array exists only once BUILD gives its bytes."""

    array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if type(state) is tuple and len(state) == 5:
            state = state[1:]
        if type(state) is not tuple or len(state) != 4:
            raise _Refused("unexpected ndarray state")
        shape, dtype, fortran, raw = state
        self.array = _from_bytes(raw, _dt(dtype), _shape(shape), bool(fortran))


class _NdarrayMarker:
    """What ``numpy.ndarray`` resolves to: a marker for ``_reconstruct``, not callable."""


_NDARRAY = _NdarrayMarker()


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _Array:
    if subtype is not _NDARRAY:
        raise _Refused("_reconstruct of something other than numpy.ndarray")
    return _Array()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _from_bytes(bytes(buf) if isinstance(buf, pickle.PickleBuffer) else buf, _dt(dtype), _shape(shape),
                       _text(order) == "F")


def _scalar(dtype: Any, raw: Any = None) -> Any:
    return _from_bytes(raw, _dt(dtype), (), False)[()]


def _encode(obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    if type(obj) is not str or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode other than str -> latin1 bytes")
    return obj.encode("latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _Dtype,
                                           ("_codecs", "encode"): _encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _reconstruct
        allowed[(mod, "scalar")] = _scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):  # arrays pickled with protocol 5
        allowed[(mod, "_frombuffer")] = _frombuffer
    return allowed


_ALLOWED = _allowed()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, *, source: str, **kw):
        super().__init__(file, **kw)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise CorruptFileError(
                f"{self._source}: refusing to unpickle global {module}.{name}; a CIFAR batch holds only "
                "numpy arrays, lists and strings (the file is not a genuine CIFAR batch, or is unsafe)"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise CorruptFileError(f"{self._source}: refusing to unpickle a persistent id; not a CIFAR batch")


# --- opcode scan: bound the work before the unpickler runs ----------------------------------------
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}
_GROWS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}  # modify the container below


def _pop(op, stack: list, marks: list) -> list:
    """Pop what ``op`` consumes (a MARK-delimited slice plus any items below the mark)."""
    before = op.stack_before
    if pickletools.markobject in before:
        if not marks:
            raise _Refused(f"{op.name} without a MARK")
        below = before.index(pickletools.markobject)
        start = marks.pop() - below
    else:
        start = len(stack) - len(before)
    if start < 0:
        raise _Refused(f"{op.name} on a stack too short")
    items = stack[start:]
    del stack[start:]
    return items


def _scan(data: bytes, where: Path) -> None:
    """Model the unpickler's stack: (nesting, walk steps) per object; refuse implausible structure."""
    stack: list[list[int]] = []  # [nesting, steps]; shared by reference with the memo, as objects are
    marks: list[int] = []
    memo: dict[int, list[int]] = {}
    for n_ops, (op, arg, _pos) in enumerate(pickletools.genops(data), start=1):
        name = op.name
        if name == "MARK":
            marks.append(len(stack))
        elif name in _PUTS or name == "MEMOIZE":
            idx = len(memo) if name == "MEMOIZE" else arg
            if not stack or not isinstance(idx, int) or not 0 <= idx <= n_ops:
                raise _Refused(f"memo index {idx} at opcode {n_ops}")
            memo[idx] = stack[-1]
        elif name in _GETS:
            if arg not in memo:
                raise _Refused(f"memo index {arg} read before it is written")
            stack.append(memo[arg])
        elif name == "DUP":
            if not stack:
                raise _Refused("DUP on an empty stack")
            stack.append(stack[-1])
        else:
            items = _pop(op, stack, marks)
            if not op.stack_after:
                continue
            if name in _GROWS:
                node, kids = items[0], items[1:]
            else:
                node, kids = [0, 0], items
            node[0] = max(node[0], 1 + max((k[0] for k in kids), default=0))
            node[1] += 1 + sum(k[1] for k in kids)
            if node[0] > MAX_NESTING:
                raise _Refused(f"objects nested more than {MAX_NESTING} deep")
            if node[1] > _WALK_PER_OP * n_ops + _WALK_SLACK:
                raise _Refused(f"an object reached through {node[1]:,} shared references after {n_ops:,} opcodes")
            stack.extend([node] * len(op.stack_after))


def _resolve(x: Any) -> Any:
    if isinstance(x, _Array):
        if x.array is None:
            raise _Refused("an array without its data")
        return x.array
    return x


def safe_unpickle(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` allowing only numpy arrays/dtypes/scalars and plain Python containers,
    after bounding its structure (see the module docstring).

    Arrays at the top level or as values of a top-level dict are returned as numpy arrays; deeper
    ones stay as opaque stand-ins (a CIFAR batch has none).
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"file not found: {p}")
    check_input_size(p.stat().st_size, p, "pickle")
    with reading(p, "pickle"):
        data = p.read_bytes()
        try:
            _scan(data, p)
            obj = _RestrictedUnpickler(io.BytesIO(data), source=str(p), encoding="bytes").load()
            return {k: _resolve(v) for k, v in obj.items()} if type(obj) is dict else _resolve(obj)
        except _Refused as e:
            raise CorruptFileError(f"{p}: not a genuine CIFAR pickle ({e}); re-extract the archive") from None


def _as_dict(obj: Any, p: Path) -> dict[str, Any]:
    if type(obj) is not dict:
        raise CorruptFileError(f"{p}: expected a pickled dict (a CIFAR batch), got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        key = _text(k)
        if key is None:
            raise CorruptFileError(f"{p}: a CIFAR batch has string keys, found a {type(k).__name__} key")
        out[key] = v
    return out


def _need(d: dict[str, Any], key: str, p: Path) -> Any:
    if key not in d:
        keys = ", ".join(k[:40] for k in list(d)[:10])
        raise CorruptFileError(f"{p}: CIFAR batch has no {key!r} entry (keys: {keys})")
    return d[key]


def _labels(raw: Any, n: int, key: str, p: Path) -> np.ndarray:
    """Flat integer labels, checked element by element without walking into nested objects."""
    if isinstance(raw, np.ndarray):
        if raw.ndim != 1 or raw.dtype.kind not in "iu":
            raise CorruptFileError(f"{p}: {key!r} must be a 1-D integer array, got {raw.dtype} {raw.shape}")
        labels = raw.astype(np.int64)
    elif type(raw) in (list, tuple):
        if not all(type(x) is int or isinstance(x, np.integer) for x in raw):
            raise CorruptFileError(f"{p}: {key!r} must be a list of integers")
        if raw and (min(raw) < 0 or max(raw) >= 2**31):
            raise CorruptFileError(f"{p}: {key!r} holds labels outside 0..2^31-1 ({min(raw)}..{max(raw)})")
        labels = np.array(raw, dtype=np.int64)
    else:
        raise CorruptFileError(f"{p}: {key!r} must be a list of integers, got {type(raw).__name__}")
    if labels.shape[0] != n:
        raise MismatchError(f"{p}: {n} images but {labels.shape[0]} labels")
    if n and int(labels.min()) < 0:
        raise CorruptFileError(f"{p}: {key!r} holds a negative label {int(labels.min())}")
    return labels


def read_cifar_batch(path: str | os.PathLike, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Read one batch: returns (uint8 (N, 3, 32, 32), int64 (N,))."""
    p = Path(path)
    d = _as_dict(safe_unpickle(p), p)
    data = _need(d, "data", p)
    raw_labels = _need(d, label_key, p)
    if type(data) is not np.ndarray or data.dtype != np.uint8:
        raise CorruptFileError(f"{p}: 'data' must be a uint8 array, got {getattr(data, 'dtype', type(data).__name__)}")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CorruptFileError(f"{p}: 'data' must have shape (N, 3072), got {data.shape}")
    if data.shape[0] == 0:
        raise CorruptFileError(f"{p}: CIFAR batch holds no images; re-extract the archive")
    labels = _labels(raw_labels, data.shape[0], label_key, p)
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), labels


def read_cifar_meta(path: str | os.PathLike, key: str = "label_names") -> list[str]:
    """Class names from ``batches.meta`` (key ``label_names``) or CIFAR-100 ``meta`` (``fine_label_names``)."""
    p = Path(path)
    d = _as_dict(safe_unpickle(p), p)
    names = _need(d, key, p)
    if type(names) not in (list, tuple) or not all(type(n) in (bytes, str) for n in names):
        raise CorruptFileError(f"{p}: {key!r} must be a list of strings")
    return [_text(n) for n in names]


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
