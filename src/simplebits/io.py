"""Atomic writes, safetensors + JSON metadata files, checkpoints and safe loading.

Our own files are safetensors with a JSON document stored in the header's metadata under the
key ``"simplebits"`` (one file, no sidecar to lose). Nothing here unpickles arbitrary objects:
foreign ``.pt`` files go through :func:`torch_load_safe` (``weights_only=True``).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import CorruptFileError, NotFoundError

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "save_tensors",
    "load_tensors",
    "read_metadata",
    "save_state",
    "load_state",
    "torch_load_safe",
    "load_torchscript",
    "is_zip_file",
]

META_KEY = "simplebits"


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    A run killed mid-write leaves the previous file untouched (rename is atomic on POSIX).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:  # flush file contents to disk before the rename
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _require_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{what} not found: {p}")
    if not p.is_file():
        raise NotFoundError(f"{what} is not a file: {p}")
    return p


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write ``tensors`` and a JSON ``metadata`` document to a safetensors file, atomically."""
    from safetensors.torch import save as st_save

    payload = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {META_KEY: json.dumps(metadata, sort_keys=True, default=_json_default)}
    atomic_write_bytes(path, st_save(payload, metadata=header))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read only the JSON metadata of a simplebits safetensors file (no tensor data)."""
    p = _require_file(path, "file")
    try:
        with open(p, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if n <= 0 or n > 100_000_000 or n + 8 > p.stat().st_size:
                raise ValueError("bad header length")
            header = json.loads(fh.read(n))
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"{p} is not a safetensors file or is truncated ({e}); re-create it") from None
    meta = (header.get("__metadata__") or {}).get(META_KEY)
    if meta is None:
        raise CorruptFileError(f"{p} is a safetensors file but not one written by simplebits (no '{META_KEY}' metadata)")
    return json.loads(meta)


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a file written by :func:`save_tensors`; clear errors for missing/truncated/foreign files."""
    from safetensors.torch import load as st_load

    p = _require_file(path, "file")
    meta = read_metadata(p)
    try:
        tensors = st_load(p.read_bytes())
    except Exception as e:  # safetensors raises its own SafetensorError type
        raise CorruptFileError(f"{p} is truncated or corrupt ({e}); re-create it") from None
    return tensors, meta


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors in a nested structure by references into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, prefix, tensors), _flatten(v, prefix, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__" if isinstance(obj, list) else "__tuple__": [_flatten(v, prefix, tensors) for v in obj]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_unflatten(v, tensors) for v in obj["__list__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
    return obj


def save_state(path: str | os.PathLike, state: Any, *, kind: str = "checkpoint") -> None:
    """Save a nested structure of tensors and plain values (model + optimizer state, RNG
    states, counters) as one safetensors file. Atomic: a crash leaves the last good file."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _flatten(state, "", tensors)
    save_tensors(path, tensors, {"kind": kind, "tree": tree})


def load_state(path: str | os.PathLike, *, kind: str = "checkpoint") -> Any:
    tensors, meta = load_tensors(path)
    if meta.get("kind") != kind or "tree" not in meta:
        raise CorruptFileError(f"{path} is a simplebits file but not a {kind} (kind={meta.get('kind')!r})")
    return _unflatten(meta["tree"], tensors)


def torch_load_safe(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` with clear errors. Never executes pickled code."""
    import pickle

    p = _require_file(path, "file")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CorruptFileError(
            f"{p} holds objects other than tensors, lists and dicts, which simplebits refuses to "
            f"unpickle for safety ({str(e).splitlines()[0]}); save it with plain tensors"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CorruptFileError(f"{p} is not a readable torch file or is truncated ({str(e).splitlines()[0]})") from None


def is_zip_file(path: str | os.PathLike) -> bool:
    """True for a zip archive (torch.save and torch.jit.save both write zips)."""
    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(2)
    return head == b"PK" and zipfile.is_zipfile(p)


def load_torchscript(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a TorchScript module (``torch.jit.save``): a typed program format, not a pickle of
    arbitrary Python objects. A plain ``torch.save`` zip is refused (it would need unpickling)."""
    p = _require_file(path, "file")
    if not is_zip_file(p):
        raise CorruptFileError(f"{p} is not a TorchScript file")
    with zipfile.ZipFile(p) as zf:
        names = zf.namelist()
    if not any("/code/" in n for n in names):
        raise CorruptFileError(f"{p} is a torch.save file, not TorchScript; simplebits does not unpickle model objects: "
                               "save the model with torch.jit.save or simplebits' save_classifier")
    import warnings

    try:
        with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; users still bring these files
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(p), map_location=device)
    except (RuntimeError, ValueError) as e:
        raise CorruptFileError(f"{p}: cannot read the TorchScript file ({str(e).splitlines()[0]})") from None
    return model.eval()
