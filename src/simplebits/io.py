"""Atomic writes, safetensors + JSON metadata files, checkpoints and safe loading.

Our own files are safetensors with a JSON document stored in the header's metadata under the
key ``"simplebits"`` (one file, no sidecar to lose). Nothing here unpickles arbitrary objects:
foreign ``.pt`` files go through :func:`torch_load_safe` (``weights_only=True``).

Every reader here turns a damaged or hostile file into one :class:`~simplebits.errors.CorruptFileError`
naming the file: safetensors validates the header (JSON object, ``__metadata__`` a str -> str
map, offsets consistent with the file) before anything else is read, the simplebits JSON must be
an object nested at most :data:`MAX_JSON_DEPTH` deep, and a file larger than the input cap
(``SIMPLEBITS_MAX_INPUT_BYTES``) is refused before it is read into memory. What the JSON fields
mean is checked by the reader of each file kind (classifier, flow, condensed set, dynamics).

TorchScript files are programs: :func:`load_torchscript` refuses them unless the caller trusts
the file (``trust_code=True``, ``--trust-code``), and then loads and probes them in a separate
process first, stopped after ``SIMPLEBITS_TORCHSCRIPT_TIMEOUT`` seconds (default 60).
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import BadInputError, CorruptFileError, MismatchError, NotFoundError, SimplebitsError, check_input_size

__all__ = [
    "remove_stale_temps",
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
    "probe_torchscript",
    "torchscript_timeout",
    "is_zip_file",
    "check_state_dict",
    "UntrustedCodeError",
    "MAX_JSON_DEPTH",
    "DEFAULT_TORCHSCRIPT_TIMEOUT",
]

META_KEY = "simplebits"
#: Deepest nesting of the simplebits JSON document (objects and arrays) a file may have.
MAX_JSON_DEPTH = 200
#: Deepest nesting of a checkpoint tree (Python containers) :func:`load_state` rebuilds.
MAX_TREE_DEPTH = 60
#: Seconds a trusted TorchScript file may take to load and run its probe batch in the separate
#: probe process before it is stopped and refused (``SIMPLEBITS_TORCHSCRIPT_TIMEOUT``).
DEFAULT_TORCHSCRIPT_TIMEOUT = 60.0


class UntrustedCodeError(BadInputError):
    """A file holds a program (TorchScript) and the caller did not say it trusts it."""


def _first_line(e: BaseException) -> str:
    """``Type: first informative line`` of an exception (the type alone for an empty message)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    msg = lines[0][:200] if lines else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


# --------------------------------------------------------------------------------------------
# atomic writes

_UMASK_LOCK = threading.Lock()
# temp names: .NAME.<pid>.<host tag 8 hex><random 8 hex>[SUFFIX].tmp
_PID_TMP = re.compile(r"(\d+)\.([0-9a-f]{8})([0-9a-f]{8})(\.[^/]*)?\.tmp\Z")
# temp names of earlier versions (tempfile.mkstemp): .NAME.<8 random>[SUFFIX].tmp
_OLD_TMP = re.compile(r"[a-z0-9_]{8}(\.[A-Za-z0-9]+)?\.tmp\Z")
_OLD_TMP_AGE_S = 24 * 3600.0


def _host_tag() -> str:
    import hashlib
    import socket

    try:
        host = socket.gethostname()
    except OSError:  # pragma: no cover - no host name
        host = ""
    return hashlib.sha1(host.encode("utf-8", "replace")).hexdigest()[:8]


_HOST = _host_tag()


def current_umask() -> int:
    """The process umask, read without changing it where the OS tells (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: set a strict mask for an instant (never a looser one) and restore
        old = os.umask(0o077)
        os.umask(old)
    return old


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a pid we can judge: keep the file
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # exists (another user's) or cannot tell: keep
    return True


# per folder: when it was last listed and the hidden ``*.tmp`` names found (a folder of many
# outputs is listed at most once per _SCAN_EVERY_S, not once per file written)
_TEMP_INDEX: dict[str, tuple[float, set[str]]] = {}
_TEMP_INDEX_LOCK = threading.Lock()
_SCAN_EVERY_S = 10.0


def _temp_candidates(folder: Path, prefix: str) -> list[str]:
    key = os.path.abspath(folder)
    now = time.monotonic()
    with _TEMP_INDEX_LOCK:
        hit = _TEMP_INDEX.get(key)
        if hit is None or now - hit[0] > _SCAN_EVERY_S:
            try:
                with os.scandir(folder) as it:
                    names = {e.name for e in it if e.name.startswith(".") and e.name.endswith(".tmp")}
            except OSError:
                names = set()
            if len(_TEMP_INDEX) > 1000:
                _TEMP_INDEX.clear()
            hit = _TEMP_INDEX[key] = (now, names)
        return [n for n in hit[1] if n.startswith(prefix)]


def _forget_temp(folder: Path, name: str) -> None:
    with _TEMP_INDEX_LOCK:
        hit = _TEMP_INDEX.get(os.path.abspath(folder))
        if hit is not None:
            hit[1].discard(name)


def _remove_stale_temps(path: Path) -> None:
    """Remove temp files of earlier writes to ``path`` whose writer is dead (pid gone on this
    host), and temp files of earlier simplebits versions untouched for a day. Never a temp file
    of a live process."""
    prefix = f".{path.name}."
    now = time.time()
    for name in _temp_candidates(path.parent, prefix):
        rest = name[len(prefix):]
        m = _PID_TMP.match(rest)
        full = path.parent / name
        try:
            if m:
                if m.group(2) != _HOST or _pid_alive(int(m.group(1))):
                    continue
            elif _OLD_TMP.match(rest):
                if now - os.lstat(full).st_mtime < _OLD_TMP_AGE_S:
                    continue
            else:
                continue
            if stat.S_ISREG(os.lstat(full).st_mode):
                os.unlink(full)
            _forget_temp(path.parent, name)
        except FileNotFoundError:
            _forget_temp(path.parent, name)
        except (OSError, ValueError):
            continue  # cannot be removed: leave it


_ANY_PID_TMP = re.compile(r"\.(\d+)\.([0-9a-f]{8})[0-9a-f]{8}(\.[^/]*)?\.tmp\Z")


def remove_stale_temps(folder: str | os.PathLike, *, stem: str = "", recursive: bool = False) -> list[Path]:
    """Remove the temp files that killed writes left in ``folder`` (``.NAME.<pid>.<tag>.tmp`` whose
    process is gone on this host), for names starting with ``stem``; with ``recursive``, in its
    subfolders too. Commands call it on their output before they start, so an interrupted run's
    temp files go with the next run even when that run never writes the same name again. Never
    removes a live process's temp file. Returns the files removed."""
    root = Path(folder)
    if not root.is_dir():
        return []
    removed = []
    pattern = "**/.*.tmp" if recursive else ".*.tmp"
    for f in root.glob(pattern):
        if not f.name.startswith(f".{stem}"):
            continue
        m = _ANY_PID_TMP.search(f.name)
        try:
            if m is None or m.group(2) != _HOST or _pid_alive(int(m.group(1))):
                continue
            if stat.S_ISREG(os.lstat(f).st_mode):
                os.unlink(f)
                _forget_temp(f.parent, f.name)
                removed.append(f)
        except (OSError, ValueError):
            continue
    return removed


def _final_mode(path: Path) -> int:
    """The mode of the file being replaced, else what ``open()`` would give (0o666 & ~umask)."""
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode) & 0o777
    except OSError:
        pass
    return 0o666 & ~current_umask()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    A run killed mid-write leaves the previous file untouched (rename is atomic on POSIX). The
    new file gets the mode of the file it replaces, or the mode ``open()`` would give a new file
    (0o666 & ~umask). Temp files are named ``.NAME.<pid>.<random>.tmp``; each write to ``path``
    first removes temp files of earlier writes to it whose process is no longer alive.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    for _ in range(100):
        tmp_path = path.with_name(f".{path.name}.{os.getpid()}.{_HOST}{secrets.token_hex(4)}{suffix}.tmp")
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        break
    else:  # pragma: no cover - 100 random names all taken
        raise FileExistsError(f"cannot create a temporary file beside {path}")
    try:
        yield tmp_path
        os.chmod(tmp_path, _final_mode(path))
        with open(tmp_path, "rb") as fh:  # flush file contents to disk before the rename
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
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


# --------------------------------------------------------------------------------------------
# safetensors + JSON


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write ``tensors`` and a JSON ``metadata`` document to a safetensors file, atomically."""
    from safetensors.torch import save as st_save

    payload = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {META_KEY: json.dumps(metadata, sort_keys=True, default=_json_default)}
    atomic_write_bytes(path, st_save(payload, metadata=header))


def json_depth(obj: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (iterative; stops counting past ``limit``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict):
            items = o.values()
        elif isinstance(o, list):
            items = o
        else:
            continue
        deepest = max(deepest, d)
        if d > limit:
            return d
        stack.extend((v, d + 1) for v in items)
    return deepest


def parse_json_object(text: str, where: object, what: str = "metadata") -> dict[str, Any]:
    """Parse a JSON document that must be an object nested at most :data:`MAX_JSON_DEPTH` deep."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError, MemoryError) as e:
        raise CorruptFileError(f"{where}: its {what} is not valid JSON ({_first_line(e)}); re-create the file") from None
    if not isinstance(doc, dict):
        raise CorruptFileError(f"{where}: its {what} is a JSON {type(doc).__name__}, not an object; re-create the file")
    if json_depth(doc) > MAX_JSON_DEPTH:
        raise CorruptFileError(f"{where}: its {what} is nested more than {MAX_JSON_DEPTH} levels deep; re-create the file")
    return doc


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read only the JSON metadata of a simplebits safetensors file (no tensor data).

    safetensors checks the header first (a JSON object, ``__metadata__`` a map of strings,
    tensor offsets within the file); the simplebits document must be a JSON object."""
    from safetensors import safe_open

    p = _require_file(path, "file")
    try:
        with safe_open(str(p), framework="pt") as f:
            header_meta = f.metadata()
    except Exception as e:  # noqa: BLE001 - SafetensorError, OSError, ... : one line naming the file
        raise CorruptFileError(f"{p} is not a safetensors file or is truncated or corrupt ({_first_line(e)}); "
                               "re-create it") from None
    meta = (header_meta or {}).get(META_KEY)
    if meta is None:
        raise CorruptFileError(f"{p} is a safetensors file but not one written by simplebits (no '{META_KEY}' metadata)")
    return parse_json_object(meta, p)


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a file written by :func:`save_tensors`; clear errors for missing/truncated/foreign files."""
    from safetensors.torch import load as st_load

    p = _require_file(path, "file")
    meta = read_metadata(p)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise CorruptFileError(f"{p}: cannot read the file ({_first_line(e)})") from None
    check_input_size(size, p, "tensor data")
    try:
        tensors = st_load(p.read_bytes())
    except Exception as e:  # noqa: BLE001 - safetensors raises its own SafetensorError type
        raise CorruptFileError(f"{p} is truncated or corrupt ({_first_line(e)}); re-create it") from None
    return tensors, meta


def check_state_dict(p: Path, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str, *,
                     dtypes: bool = True) -> None:
    """File tensors vs the state dict of the network the metadata describes: same names,
    shapes, kinds of dtype (``dtypes=False``: any real dtype); every floating value finite.
    Names the first offending tensor."""
    missing = [k for k in expected if k not in tensors]
    extra = [k for k in tensors if k not in expected]
    if missing or extra:
        parts = ([f"lacks {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else "")] if missing else []) + \
                ([f"has unexpected {', '.join(extra[:3])}" + (" ..." if len(extra) > 3 else "")] if extra else [])
        raise CorruptFileError(f"{p}: weights do not fit {what} ({'; '.join(parts)}); re-create the file")
    for k, want in expected.items():
        t = tensors[k]
        if tuple(t.shape) != tuple(want.shape):
            raise CorruptFileError(f"{p}: tensor {k!r} has shape {tuple(t.shape)} but {what} needs {tuple(want.shape)}; "
                                   "re-create the file")
        if t.is_complex() or dtypes and (want.is_floating_point() != t.is_floating_point()
                                         or (not want.is_floating_point() and t.dtype != want.dtype)):
            raise CorruptFileError(f"{p}: tensor {k!r} is {t.dtype} but {what} needs {want.dtype}; re-create the file")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            n_bad = int((~torch.isfinite(t)).sum())
            raise CorruptFileError(f"{p}: tensor {k!r} holds {n_bad} NaN or infinite value(s); the weights are damaged "
                                   "(or training diverged): re-create the file")


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


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor], where: object = "checkpoint", depth: int = 0) -> Any:
    """Inverse of :func:`_flatten`; any node :func:`_flatten` cannot have written is refused."""
    if depth > MAX_TREE_DEPTH:
        raise CorruptFileError(f"{where}: its state tree is nested more than {MAX_TREE_DEPTH} levels deep; re-create it")
    if isinstance(obj, dict):
        if len(obj) != 1:
            raise CorruptFileError(f"{where}: malformed state tree (a node with keys {sorted(map(str, obj))[:4]})")
        (tag, val), = obj.items()
        if tag == "__tensor__":
            if not isinstance(val, str) or val not in tensors:
                raise CorruptFileError(f"{where}: the state tree refers to tensor {val!r}, which the file lacks; re-create it")
            return tensors[val]
        if not isinstance(val, list):
            raise CorruptFileError(f"{where}: malformed state tree ({tag!r} holds a {type(val).__name__}, not a list)")
        if tag == "__dict__":
            out: dict[Any, Any] = {}
            for pair in val:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise CorruptFileError(f"{where}: malformed state tree (a dict entry is not a [key, value] pair)")
                k = _unflatten(pair[0], tensors, where, depth + 1)
                if isinstance(k, (dict, list, torch.Tensor)):
                    raise CorruptFileError(f"{where}: malformed state tree (a dict key is a {type(k).__name__})")
                try:
                    hash(k)
                except TypeError:
                    raise CorruptFileError(f"{where}: malformed state tree (an unhashable dict key)") from None
                out[k] = _unflatten(pair[1], tensors, where, depth + 1)
            return out
        if tag == "__list__":
            return [_unflatten(v, tensors, where, depth + 1) for v in val]
        if tag == "__tuple__":
            return tuple(_unflatten(v, tensors, where, depth + 1) for v in val)
        raise CorruptFileError(f"{where}: malformed state tree (unknown node {str(tag)[:40]!r})")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CorruptFileError(f"{where}: malformed state tree (a bare {type(obj).__name__})")


def save_state(path: str | os.PathLike, state: Any, *, kind: str = "checkpoint") -> None:
    """Save a nested structure of tensors and plain values (model + optimizer state, RNG
    states, counters) as one safetensors file. Atomic: a crash leaves the last good file."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _flatten(state, "", tensors)
    save_tensors(path, tensors, {"kind": kind, "tree": tree})


def load_state(path: str | os.PathLike, *, kind: str = "checkpoint") -> Any:
    tensors, meta = load_tensors(path)
    if meta.get("kind") != kind or "tree" not in meta:
        raise CorruptFileError(f"{path} is a simplebits file but not a {kind} (kind={str(meta.get('kind'))[:60]!r})")
    try:
        return _unflatten(meta["tree"], tensors, path)
    except RecursionError:
        raise CorruptFileError(f"{path}: its state tree is nested too deeply; re-create it") from None


# --------------------------------------------------------------------------------------------
# foreign torch files


def _torch_detail(e: BaseException) -> str:
    """The informative line of a torch.load error (torch puts a long preamble first)."""
    skip = ("weights only load failed", "please file an issue", "check the documentation", "in pytorch 2.6")
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.lower().startswith(skip)]
    msg = (useful or lines or [""])[0][:200]
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _sized_file(path: str | os.PathLike, what: str) -> Path:
    """An existing file whose size is within the input cap (checked before it is read)."""
    p = _require_file(path, "file")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise CorruptFileError(f"{p}: cannot read the file ({_first_line(e)})") from None
    check_input_size(size, p, what)
    return p


def torch_load_safe(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` with clear errors. Never executes pickled code.

    Every failure is one :class:`CorruptFileError` naming the file (torch raises a dozen
    exception types on damaged files, some with an empty message)."""
    import pickle

    p = _sized_file(path, "torch data")
    try:
        # a zip (torch.save since 1.6) is read by torch's zip reader, which checks record sizes; the
        # legacy format is one pickle stream read from memory, so a length a damaged opcode declares
        # (a 3 GB string in a 3 KB file) reads what the file holds instead of allocating what it claims
        source: Any = p if is_zip_file(p) else io.BytesIO(p.read_bytes())
        return torch.load(source, map_location="cpu", weights_only=True)
    except SimplebitsError:
        raise
    except pickle.UnpicklingError as e:
        detail = _torch_detail(e)
        if "global" in str(e).lower():
            raise CorruptFileError(
                f"{p} holds objects other than tensors, lists and dicts, which simplebits refuses to "
                f"unpickle for safety ({detail}); save it with plain tensors"
            ) from None
        raise CorruptFileError(f"{p} is not a readable torch file or is truncated ({detail}); simplebits reads .pt "
                               "files with weights_only=True and refuses to unpickle anything but tensors, lists "
                               "and dicts") from None
    except Exception as e:  # noqa: BLE001 - RuntimeError, EOFError, BadZipFile, IndexError, KeyError, struct.error...
        raise CorruptFileError(f"{p} is not a readable torch file or is truncated ({_torch_detail(e)})") from None


def is_zip_file(path: str | os.PathLike) -> bool:
    """True for a zip archive (torch.save and torch.jit.save both write zips)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(2)
        return head == b"PK" and zipfile.is_zipfile(p)
    except (OSError, zipfile.BadZipFile, ValueError):  # is_zipfile raises for e.g. a multi-disk end record
        return False


# --------------------------------------------------------------------------------------------
# TorchScript: programs, loaded only when trusted, probed in a separate process


def torchscript_timeout() -> float:
    """Seconds a trusted TorchScript file may take to load and run its probe batch
    (``SIMPLEBITS_TORCHSCRIPT_TIMEOUT``, default 60)."""
    raw = os.environ.get("SIMPLEBITS_TORCHSCRIPT_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TORCHSCRIPT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise BadInputError(f"SIMPLEBITS_TORCHSCRIPT_TIMEOUT={raw!r} must be a positive number of seconds")
    return value


def _torchscript_names(p: Path) -> list[str]:
    """The zip members of a would-be TorchScript file (zip-level damage -> CorruptFileError)."""
    if not is_zip_file(p):
        raise CorruptFileError(f"{p} is not a TorchScript file (not a zip archive)")
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except Exception as e:  # noqa: BLE001 - BadZipFile, UnicodeDecodeError, ValueError, OSError...
        raise CorruptFileError(f"{p}: cannot read the TorchScript zip ({_first_line(e)}); re-create it") from None
    return names


def _untrusted_message(p: Path) -> str:
    return (f"{p} is a TorchScript file; TorchScript files are programs that run when they are loaded and called "
            "(they can read and write files), so simplebits does not load them unless you trust the file: pass "
            "--trust-code (trust_code=True in Python) for a file you trust, or save the model with simplebits' "
            "save_classifier (safetensors weights, no code)")


_PROBE_SCRIPT = r"""
import json, sys, warnings
res = {"stage": "import"}
out = sys.argv[3]
def done():
    with open(out, "w") as fh:
        json.dump(res, fh)
def fail(e):
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    res["error"] = type(e).__name__ + (": " + lines[0][:200] if lines else "")
    done()
    raise SystemExit(3)
try:
    warnings.simplefilter("ignore")
    import torch
    torch.set_num_threads(1)
    res["stage"] = "load"
    done()
    m = torch.jit.load(sys.argv[1], map_location="cpu")
    m.eval()
    if sys.argv[2]:
        from safetensors.torch import load_file
        x = load_file(sys.argv[2])["x"]
        res["stage"] = "forward"
        done()
        with torch.no_grad():
            y = m(x)
        res["out"] = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
    res["stage"] = "done"
    res["ok"] = True
    done()
except BaseException as e:
    fail(e)
"""


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover
            proc.kill()
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass


def probe_torchscript(path: str | os.PathLike, probe: torch.Tensor | None = None, *,
                      timeout: float | None = None) -> dict[str, Any]:
    """Load a TorchScript file (and run ``probe`` through it) in a separate Python process.

    A TorchScript loop runs in C++, where Python cannot interrupt it; the separate process is
    killed after ``timeout`` seconds (default :func:`torchscript_timeout`, 60 s). Refused with one
    line: a load that fails, crashes or times out (:class:`CorruptFileError`); a probe forward
    that times out or crashes (:class:`CorruptFileError`) or raises (:class:`MismatchError`).
    Returns ``{"out": output shape}`` when the probe ran. Only call this for a trusted file.
    """
    p = Path(path)
    limit = torchscript_timeout() if timeout is None else float(timeout)
    shape = "x".join(str(s) for s in probe.shape) if probe is not None else None
    with tempfile.TemporaryDirectory(prefix="simplebits-probe-") as td:
        tdp = Path(td)
        result, inp, errf = tdp / "result.json", "", tdp / "stderr.txt"
        if probe is not None:
            from safetensors.torch import save_file

            inp = str(tdp / "probe.safetensors")
            save_file({"x": probe.detach().to("cpu", torch.float32).contiguous()}, inp)
        rc = _run_probe_process(p, inp, result, errf, limit)
        res = _read_probe_result(result)
        if rc == 0 and res.get("ok"):
            return {"out": res.get("out")}
        raise _probe_refusal(p, rc, res, errf, limit, shape)


def _run_probe_process(p: Path, inp: str, result: Path, errf: Path, limit: float) -> int | None:
    """Run :data:`_PROBE_SCRIPT` on ``p`` in its own process group (stderr to ``errf``); its exit
    status, or ``None`` when it was killed for running past ``limit`` seconds. An interrupt here
    (Ctrl-C) kills the group too: a C++ loop left running would outlive us."""
    with open(errf, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", _PROBE_SCRIPT, str(p.resolve()), inp, str(result)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=result.parent,
                                start_new_session=True)
        try:
            return proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
            return None
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise


def _read_probe_result(result: Path) -> dict[str, Any]:
    """What the probe process wrote last (its stage, error or output); ``{}`` when nothing usable."""
    try:
        res = json.loads(result.read_text()) if result.is_file() else {}
    except (OSError, ValueError):
        res = {}
    return res if isinstance(res, dict) else {}


def _probe_refusal(p: Path, rc: int | None, res: dict[str, Any], errf: Path, limit: float,
                   shape: str | None) -> SimplebitsError:
    """The one-line error for a probe that did not succeed, by how it ended: timed out, raised
    (at which stage) or crashed (with the last line of its stderr)."""
    stage = str(res.get("stage", "load"))
    doing = f"its first forward on a probe batch of shape {shape}" if stage in ("forward", "done") and shape \
        else "loading"
    if rc is None:
        return CorruptFileError(
            f"{p}: the TorchScript model did not finish {doing} within {limit:g} s (it may loop forever) and was "
            "stopped; refused (for a slow but sound model raise SIMPLEBITS_TORCHSCRIPT_TIMEOUT, in seconds)")
    if res.get("error"):
        if stage == "forward":
            return MismatchError(f"{p}: the TorchScript model fails on a probe batch of shape {shape} "
                                 f"({res['error']})")
        if stage == "import":
            return BadInputError(f"cannot start the TorchScript probe process ({res['error']})")
        return CorruptFileError(f"{p}: cannot read the TorchScript file ({res['error']})")
    try:
        tail = [ln for ln in errf.read_bytes()[-2000:].decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        tail = []
    why = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
    return CorruptFileError(f"{p}: the TorchScript model crashed while {doing} ({why}"
                            + (f": {tail[-1].strip()[:200]}" if tail else "") + "); refused")


def load_torchscript(path: str | os.PathLike, *, trust_code: bool = False, device: str | torch.device = "cpu",
                     probe: torch.Tensor | None = None, timeout: float | None = None) -> torch.nn.Module:
    """Load a TorchScript module (``torch.jit.save``), only when ``trust_code`` is true.

    TorchScript files are programs: their code runs when they are loaded and called, and it can
    read and write files. Without ``trust_code`` the file is refused (:class:`UntrustedCodeError`)
    before anything in it runs. With it, the file is first loaded (and ``probe``, when given, run
    through it) in a separate process stopped after ``timeout`` seconds (default 60,
    ``SIMPLEBITS_TORCHSCRIPT_TIMEOUT``), then loaded here. A plain ``torch.save`` zip is refused
    (it would need unpickling); damaged zips are a :class:`CorruptFileError`."""
    p = _sized_file(path, "TorchScript data")
    names = _torchscript_names(p)
    if not any("/code/" in n for n in names):
        raise CorruptFileError(f"{p} is a torch.save file, not TorchScript; simplebits does not unpickle model objects: "
                               "save the model with torch.jit.save or simplebits' save_classifier")
    if not trust_code:
        raise UntrustedCodeError(_untrusted_message(p))
    probe_torchscript(p, probe, timeout=timeout)
    import warnings

    try:
        with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; users still bring these files
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(p), map_location=device)
    except Exception as e:  # noqa: BLE001 - RuntimeError, ValueError, UnicodeDecodeError...
        raise CorruptFileError(f"{p}: cannot read the TorchScript file ({_first_line(e)})") from None
    return model.eval()
