"""Fuzz campaign: mutated files through every reader of a user's files, counted per outcome.

    python benchmarks/fuzz.py [--per-reader 100000] [--readers idx,npz,...] [--workers 2]
                              [--state benchmarks/results/fuzz_state.json] [--out benchmarks/results/fuzz.json]

Each reader gets a small valid file written by the package's own writers (a condensed set, a
classifier, a flow, training dynamics, IDX plain and gzip, npz, an image folder's PNG, a DC
``res_*.pt``, an IDC ``data.pt``, an MTT ``images_best.pt``, a TorchScript classifier (read without
``--trust-code``: it must be refused whatever the damage), a CIFAR batch, an SVHN ``.mat``, USPS
bz2, pipeline and sweep TOML). Input ``i`` of a
reader is that file mutated by a seeded recipe (bit flips, 1/2/4/8-byte fields set to extremes,
truncation, insertions, deletions, duplicated chunks; for compressed and checksummed formats the
payload is mutated and re-packed too, and for our safetensors files the JSON metadata is mutated
value by value), so the campaign is reproducible and resumable: ``--state`` records how far each
reader got and the counts, and a rerun continues from there.

Every input is read in a worker process (one torch thread each) and ends as one outcome:

- ``ok``: read, and the result passes the invariants (finite values, consistent shapes, labels in
  range, every weight finite);
- ``clean``: refused with a SimplebitsError (the CLI's one line, exit 2);
- ``traceback``: any other exception (the message, type and the deepest simplebits frame are kept);
- ``silent``: read without error but the result breaks an invariant (invalid data accepted);
- ``hang``: no answer within ``--timeout`` seconds (30), the worker is killed;
- ``crash``: the worker died (a segfault, an abort);
- ``memory``: the read asked for more than ``--memory-mb`` (1024) MB: the worker runs under an
  address-space limit of its start size plus that, so an allocation beyond it is caught even when
  the reader would have mapped it lazily, and its peak RSS growth is checked too.

The target of issue #23: 0 of every outcome but ``ok`` and ``clean``. Examples of each bad outcome
(the mutated file and the message) go to ``--examples`` (not committed).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import io
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import traceback
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("ok", "clean", "traceback", "silent", "hang", "crash", "memory")
BAD = ("traceback", "silent", "hang", "crash", "memory")

# ------------------------------------------------------------------------------------------ seeds


def _tiny_set(n_classes: int = 4, ipc: int = 2, size: int = 8, channels: int = 1):
    import torch

    from simplebits.data import ImageSet

    g = torch.Generator().manual_seed(0)
    x = torch.rand(n_classes * ipc, channels, size, size, generator=g)
    y = torch.arange(n_classes).repeat_interleave(ipc)
    return ImageSet.create(x, y, [f"c{i}" for i in range(n_classes)], meta={"name": "fuzz"})


def make_seeds(d: Path) -> dict[str, dict]:
    """Write one valid file per reader into ``d``; returns reader -> {file, bytes, kind}."""
    import numpy as np
    import torch

    from simplebits.data.cifar import write_cifar_batch
    from simplebits.data.condensed import save_condensed
    from simplebits.data.idx import write_idx
    from simplebits.data.npz import save_npz
    from simplebits.data.svhn import write_svhn_mat
    from simplebits.data.usps import write_usps
    from simplebits.density import GlowConfig, save_flow
    from simplebits.density.glow import Glow
    from simplebits.models import create_model
    from simplebits.train.checkpoint import save_classifier

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ds = _tiny_set()
    seeds: dict[str, dict] = {}

    def add(name: str, path: Path, kind: str) -> None:
        seeds[name] = {"file": path.name, "bytes": path.read_bytes(), "kind": kind}

    save_condensed(d / "set.safetensors", ds, method="dc", source="fashion-mnist")
    add("condensed", d / "set.safetensors", "safetensors")
    torch.manual_seed(0)
    net = create_model("convnet", channels=1, num_classes=4, image_size=8, width=4, depth=1)
    save_classifier(d / "clf.safetensors", net, name="convnet", channels=1, image_size=8, classes=ds.classes,
                    options={"width": 4, "depth": 1})
    add("classifier", d / "clf.safetensors", "safetensors")
    save_flow(d / "flow.safetensors", Glow(GlowConfig(channels=1, image_size=8, levels=2, steps=1, width=8)))
    add("flow", d / "flow.safetensors", "safetensors")
    from simplebits.prune.dynamics import DynamicsConfig, record_dynamics

    record_dynamics(ds, DynamicsConfig(runs=1, protocol="quick", epochs=2, stop_epoch=2, top_k=1),
                    path=d / "dyn.safetensors", progress=False)
    add("dynamics", d / "dyn.safetensors", "safetensors")
    imgs = rng.integers(0, 256, (6, 8, 8), dtype=np.uint8)
    write_idx(d / "train-images-idx3-ubyte", imgs)
    add("idx", d / "train-images-idx3-ubyte", "raw")
    write_idx(d / "train-images-idx3-ubyte.gz", imgs)
    add("idx-gz", d / "train-images-idx3-ubyte.gz", "gzip")
    save_npz(d / "set.npz", imgs, np.arange(6) % 3, ["a", "b", "c"])
    add("npz", d / "set.npz", "zip")
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(d / "img.png")
    add("png-folder", d / "img.png", "png")
    torch.save({"data": [[torch.randn(4, 1, 8, 8), torch.arange(4)]], "accs_all_exps": {"ConvNet": [0.5]}},
               d / "res_DC_toy.pt")
    add("dc-pt", d / "res_DC_toy.pt", "raw")
    torch.save([torch.randn(4, 1, 8, 8), torch.arange(4)], d / "data.pt")
    add("idc-pt", d / "data.pt", "raw")
    torch.save(torch.randn(4, 1, 8, 8), d / "images_best.pt")
    add("mtt-pt", d / "images_best.pt", "raw")
    torch.save(torch.arange(4), d / "labels_best.pt")  # beside every mutated images_best.pt, unchanged
    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4)))
    torch.jit.save(scripted, str(d / "clf.ts"))
    add("torchscript", d / "clf.ts", "zip")
    write_cifar_batch(d / "data_batch_1", rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8), [0, 1, 2])
    add("cifar", d / "data_batch_1", "raw")
    write_svhn_mat(d / "train_32x32.mat", rng.integers(0, 256, (3, 3, 8, 8), dtype=np.uint8), [1, 2, 0])
    add("svhn", d / "train_32x32.mat", "raw")
    write_usps(d / "usps.bz2", rng.random((3, 16, 16)), [0, 5, 9])
    add("usps", d / "usps.bz2", "bz2")
    (d / "run.toml").write_text((ROOT / "src/simplebits/pipeline/configs/small.toml").read_text())
    add("pipeline-toml", d / "run.toml", "text")
    sweep = (ROOT / "src/simplebits/pipeline/configs/small.toml").read_text() + (
        '\n[sweep]\nout = "sw"\ncpus_per_task = 1\n\n[sweep.grid]\nseed = [0, 1]\n"condense.ipc" = [[1], [2]]\n')
    (d / "sweep.toml").write_text(sweep)
    add("sweep-toml", d / "sweep.toml", "text")
    return seeds


# -------------------------------------------------------------------------------------- mutations

_EXTREMES = [0, 1, 0xFF, 0x7F, 0x80, 0xFFFF, 0x7FFF, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFFFFFFFFFF,
             0x7FFFFFFFFFFFFFFF, 10**6, 10**9, 56 * 2**30]


def _raw(b: bytes, r: random.Random) -> bytes:
    """One to three byte-level edits."""
    a = bytearray(b)
    for _ in range(r.choice((1, 1, 1, 2, 3))):
        op = r.randrange(8)
        n = len(a)
        if n == 0:
            a += bytes(r.randrange(256) for _ in range(r.randrange(1, 16)))
            continue
        # header-biased positions: half the edits land in the first 64 bytes
        pos = r.randrange(min(n, 64)) if r.random() < 0.5 else r.randrange(n)
        if op == 0:  # bit flips
            for _ in range(r.randrange(1, 9)):
                q = r.randrange(n)
                a[q] ^= 1 << r.randrange(8)
        elif op == 1:  # a field set to an extreme value
            w = r.choice((1, 2, 4, 8))
            v = r.choice(_EXTREMES) & ((1 << (8 * w)) - 1)
            a[pos:pos + w] = v.to_bytes(w, r.choice(("little", "big")))
        elif op == 2:  # truncation
            del a[r.randrange(n):]
        elif op == 3:  # insertion
            a[pos:pos] = bytes(r.randrange(256) for _ in range(r.choice((1, 2, 4, 16, 100))))
        elif op == 4:  # deletion
            del a[pos:pos + r.choice((1, 2, 4, 16, 100))]
        elif op == 5:  # a chunk duplicated
            k = r.randrange(n)
            a[pos:pos] = a[k:k + r.choice((4, 16, 64, 512))]
        elif op == 6:  # zeros
            a[pos:pos + r.choice((1, 4, 16, 256))] = bytes(r.choice((1, 4, 16, 256)))
        else:  # random bytes overwrite
            k = r.choice((1, 2, 4, 8))
            a[pos:pos + k] = bytes(r.randrange(256) for _ in range(k))
    return bytes(a)


def _json_leaf_mutation(doc, r: random.Random):
    """Set one value somewhere in a JSON document to something of a wrong type or out of range."""
    weird = [None, -1, 0, 10**12, -(10**12), 1e308, "abc", "", [], {}, [1, 2], True, 2**63, 0.5, "NaN",
             {"a": {"b": {"c": 1}}}, "../../etc/passwd", "x" * 1000]
    paths = []

    def walk(o, path):
        paths.append(path)
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, path + [k])
        elif isinstance(o, list):
            for i, v in enumerate(o[:20]):
                walk(v, path + [i])

    walk(doc, [])
    path = r.choice(paths[1:] or [[]])
    if not path:
        return r.choice(weird)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and r.random() < 0.2:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = r.choice(weird)
    return doc


def _safetensors_meta(b: bytes, r: random.Random) -> bytes:
    """Mutate one value of the simplebits JSON metadata and re-pack the header with its right length."""
    n = int.from_bytes(b[:8], "little")
    header = json.loads(b[8:8 + n])
    meta = header.get("__metadata__", {})
    if "simplebits" in meta and r.random() < 0.85:
        doc = _json_leaf_mutation(json.loads(meta["simplebits"]), r)
        meta["simplebits"] = json.dumps(doc)
    else:  # the safetensors part: a tensor's dtype, shape or offsets
        names = [k for k in header if k != "__metadata__"]
        if names:
            t = header[r.choice(names)]
            field = r.choice(("dtype", "shape", "data_offsets"))
            t[field] = r.choice({"dtype": ["F16", "I64", "BOOL", "X", 3],
                                 "shape": [[], [0], [10**9, 10**9], [-1], "a", [2, 2, 2, 2, 2, 2, 2, 2]],
                                 "data_offsets": [[0, 0], [0, 10**12], [5, 1], None]}[field])
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + b[8 + n:]


def _png_chunk(b: bytes, r: random.Random) -> bytes:
    """Mutate inside one PNG chunk (often IHDR: width/height/depth) and fix its CRC, so the decoder
    gets past the checksum."""
    chunks, pos = [], 8
    while pos + 8 <= len(b):
        length = int.from_bytes(b[pos:pos + 4], "big")
        chunks.append((pos, length))
        pos += 12 + length
    if not chunks:
        return _raw(b, r)
    start, length = chunks[0] if r.random() < 0.5 else r.choice(chunks)
    body = bytearray(b[start + 4:start + 8 + length])  # type + data
    if body[:4] == b"IHDR" and r.random() < 0.7:
        k = r.choice((4, 8, 12, 13, 14, 15, 16))
        if k in (4, 8):
            body[k:k + 4] = r.choice((0, 1, 20000, 65535, 2**31 - 1, 2**32 - 1)).to_bytes(4, "big")
        else:
            body[k] = r.randrange(256)
    else:
        body[4:] = _raw(bytes(body[4:]), r)
        body = body[:4 + length] if len(body) >= 4 + length else body + bytes(4 + length - len(body))
    crc = zlib.crc32(bytes(body)).to_bytes(4, "big")
    return b[:start + 4] + bytes(body) + crc + b[start + 8 + length + 4:]


def _zip_member(b: bytes, r: random.Random) -> bytes:
    """Mutate one member of a zip (an .npy inside an .npz) and re-zip it, CRCs right."""
    try:
        with zipfile.ZipFile(io.BytesIO(b)) as z:
            members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    except Exception:  # noqa: BLE001
        return _raw(b, r)
    k = r.randrange(len(members))
    name, data = members[k]
    if r.random() < 0.5 and data[:6] == b"\x93NUMPY":  # the .npy header dict: shape/dtype/order
        hl = int.from_bytes(data[8:10], "little")
        head = data[10:10 + hl].decode("latin1")
        subs = [("'shape': (", r.choice(["'shape': (10000000000, ", "'shape': (0, ", "'shape': (-1, ",
                                         "'shape': (3, 3, 3, 3, 3, "])),
                ("'descr': '", r.choice(["'descr': '|O", "'descr': '<c16", "'descr': '>f8", "'descr': '|b1",
                                         "'descr': '<U3", "'descr': '|V8"])),
                ("'fortran_order': False", "'fortran_order': True")]
        a, bb = r.choice(subs)
        new = head.replace(a, bb, 1)
        new = new.rstrip(" \n")
        new += " " * (-(10 + len(new) + 1) % 64) + "\n"
        data = data[:8] + len(new).to_bytes(2, "little") + new.encode("latin1") + data[10 + hl:]
    else:
        data = _raw(data, r)
    members[k] = (name, data)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=r.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED))) as z:
        for n, dat in members:
            z.writestr(n, dat)
    return out.getvalue()


def _text(b: bytes, r: random.Random) -> bytes:
    """Line and token edits of a TOML file (numbers to extremes, values to other types, lines
    deleted or duplicated), sometimes raw bytes."""
    if r.random() < 0.25:
        return _raw(b, r)
    lines = b.decode("utf-8", "replace").split("\n")
    for _ in range(r.choice((1, 1, 2, 3))):
        i = r.randrange(len(lines))
        op = r.randrange(5)
        if op == 0 and "=" in lines[i]:
            k = lines[i].split("=", 1)[0]
            lines[i] = k + "= " + r.choice(["-1", "0", "1e308", "nan", "inf", "99999999999999999999", '"x"', "[]",
                                            "{}", "[[1]]", "true", "[" + ",".join(["1"] * 3000) + "]",
                                            '"' + "a" * 5000 + '"', "[" * 200 + "]" * 200, "1979-05-27"])
        elif op == 1:
            del lines[i]
        elif op == 2:
            lines.insert(i, lines[r.randrange(len(lines))])
        elif op == 3:
            lines.insert(i, r.choice(["[x]", "[[sweep]]", "a.b.c = 1", "[sweep.grid]", '"condense.ipc" = [' +
                                      ",".join(f"[{j}]" for j in range(1, 3001)) + "]",
                                      "seed = [" + ",".join(str(j) for j in range(3000)) + "]", "= 1", "[condense"]))
        else:
            lines[i] = lines[i][::-1]
    return "\n".join(lines).encode("utf-8")


def mutate(seed: dict, r: random.Random) -> bytes:
    b, kind = seed["bytes"], seed["kind"]
    x = r.random()
    if kind == "safetensors" and x < 0.45:
        return _safetensors_meta(b, r)
    if kind == "png" and x < 0.6:
        return _png_chunk(b, r)
    if kind == "zip" and x < 0.7:
        return _zip_member(b, r)
    if kind == "gzip" and x < 0.6:
        return gzip.compress(_raw(gzip.decompress(b), r), mtime=0)
    if kind == "bz2" and x < 0.6:
        inner = bz2.decompress(b)
        return bz2.compress(_text(inner, r) if r.random() < 0.5 else _raw(inner, r))
    if kind == "text":
        return _text(b, r)
    return _raw(b, r)


def input_for(seeds: dict, reader: str, i: int, campaign_seed: int) -> bytes:
    key = hashlib.sha256(f"{campaign_seed}/{reader}/{i}".encode()).digest()
    return mutate(seeds[reader], random.Random(int.from_bytes(key[:8], "little")))


# --------------------------------------------------------------------------- readers and checks


def _check_set(ds) -> str | None:
    import torch

    x, y = ds.images, ds.labels
    if x.ndim != 4 or x.shape[0] < 1 or x.shape[1] not in (1, 3) or min(x.shape[2:]) < 1:
        return f"images of shape {tuple(x.shape)}"
    if not torch.isfinite(x).all():
        return "non-finite pixels"
    if not ds.unbounded and (x.min() < 0 or x.max() > 1):
        return "pixels outside [0, 1] in a set not marked unbounded"
    if y.dtype != torch.int64 or y.ndim != 1 or y.shape[0] != x.shape[0]:
        return f"labels {y.dtype} {tuple(y.shape)} for {x.shape[0]} images"
    if y.min() < 0 or y.max() >= len(ds.classes):
        return "labels out of range"
    return None


def _check_model(model) -> str | None:
    import torch

    for name, t in list(model.state_dict().items()):
        if t.is_floating_point() and not torch.isfinite(t).all():
            return f"non-finite weight {name}"
    return None


def read_input(reader: str, path: Path) -> str | None:
    """Read ``path`` with ``reader``; returns None when the result is valid, else what is wrong."""
    import numpy as np

    if reader == "condensed":
        from simplebits.data.condensed import load_condensed

        ds = load_condensed(path)
        bad = _check_set(ds)
        f = int(ds.meta.get("factor", 1) or 1)
        if bad is None and ds.meta.get("ipc") is not None and ds.ipc is not None and int(ds.meta["ipc"]) * f * f != ds.ipc \
                and int(ds.meta["ipc"]) != ds.ipc:
            bad = f"metadata ipc {ds.meta['ipc']} (factor {f}) but {ds.ipc} images per class"
        return bad
    if reader == "classifier":
        import torch

        from simplebits.train.checkpoint import load_classifier

        model, info = load_classifier(path)
        bad = _check_model(model)
        if bad is None:
            with torch.no_grad():
                out = model(torch.zeros(2, info.channels, info.image_size, info.image_size))
            if tuple(out.shape) != (2, len(info.classes)):
                bad = f"outputs {tuple(out.shape)} for {len(info.classes)} classes"
        return bad
    if reader == "flow":
        from simplebits.density import load_flow

        return _check_model(load_flow(path))
    if reader == "dynamics":
        import torch

        from simplebits.prune.dynamics import load_dynamics

        dyn = load_dynamics(path)
        r, e, n = dyn.logits.shape[:3]
        if dyn.correct.shape[:3] != (r, e, n) or dyn.labels.shape != (n,) or dyn.final_probs.shape[:2] != (r, n):
            return "tensor shapes disagree"
        if not torch.isfinite(dyn.logits.float()).all() or not torch.isfinite(dyn.final_probs.float()).all():
            return "non-finite values"
        return None
    if reader in ("idx", "idx-gz"):
        from simplebits.data.idx import IMAGES_MAGIC, read_idx

        a = read_idx(path, expect_magic=IMAGES_MAGIC)
        return None if isinstance(a, np.ndarray) and a.ndim == 3 else f"array of shape {getattr(a, 'shape', None)}"
    if reader == "npz":
        from simplebits.data.npz import load_npz

        return _check_set(load_npz(path))
    if reader == "png-folder":
        from simplebits.data.folder import load_image_folder

        return _check_set(load_image_folder(path.parent.parent))
    if reader == "dc-pt":
        from simplebits.data.condensed import import_condensed

        return _check_set(import_condensed(path, format="dc", normalization="none"))
    if reader == "idc-pt":
        from simplebits.data.condensed import import_condensed

        return _check_set(import_condensed(path, format="idc", normalization="none"))
    if reader == "mtt-pt":
        from simplebits.data.condensed import import_condensed

        return _check_set(import_condensed(path, format="mtt", normalization="none"))
    if reader == "torchscript":  # without --trust-code: refused before any of its code runs, whatever the damage
        from simplebits.train.checkpoint import load_classifier

        load_classifier(path)
        return "a TorchScript file was loaded without trust_code"
    if reader == "cifar":
        from simplebits.data.cifar import read_cifar_batch

        x, y = read_cifar_batch(path)
        ok = x.dtype == np.uint8 and x.shape[1:] == (3, 32, 32) and y.shape == (x.shape[0],)
        return None if ok else "inconsistent arrays"
    if reader == "svhn":
        from simplebits.data.svhn import read_svhn_mat

        x, y = read_svhn_mat(path)
        ok = x.dtype == np.uint8 and x.ndim == 4 and y.shape == (x.shape[0],) and (y.size == 0 or (y.min() >= 0 and y.max() <= 9))
        return None if ok else "inconsistent arrays"
    if reader == "usps":
        from simplebits.data.usps import read_usps

        x, y = read_usps(path)
        ok = x.shape[1:] == (16, 16) and np.isfinite(x).all() and y.shape == (x.shape[0],) and x.min() >= 0 and x.max() <= 1
        return None if ok else "inconsistent arrays"
    if reader == "pipeline-toml":
        from simplebits.pipeline.config import load_config

        load_config(path)
        return None
    if reader == "sweep-toml":
        from simplebits.pipeline.sweeps import load_sweep

        load_sweep(path)
        return None
    raise KeyError(reader)


def _path_for(work: Path, reader: str, name: str) -> Path:
    if reader == "png-folder":  # a two-class folder; the mutated file is one of its images
        return work / "folder" / "b" / name
    return work / name


def _prepare(work: Path, seeds: dict) -> None:
    if "mtt-pt" in seeds and "labels_best.pt" in seeds:
        (work / "labels_best.pt").write_bytes(seeds["labels_best.pt"]["bytes"])
    if "png-folder" in seeds:
        for cls in ("a", "b"):
            (work / "folder" / cls).mkdir(parents=True, exist_ok=True)
        (work / "folder" / "a" / "ok.png").write_bytes(seeds["png-folder"]["bytes"])


def _worker(conn, seeds_dir: str, memory_mb: int) -> None:
    """Read inputs sent over ``conn`` until None; answer (outcome, detail) for each."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import resource

    import torch

    torch.set_num_threads(1)
    import simplebits  # noqa: F401 - import everything before measuring the start size
    from simplebits.errors import SimplebitsError
    from simplebits.pipeline import sweeps  # noqa: F401
    from simplebits.prune import dynamics  # noqa: F401

    import scipy.io  # noqa: F401
    from PIL import Image  # noqa: F401

    seeds = json.loads(Path(seeds_dir, "seeds.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="fuzzw."))
    files = {k: {"bytes": Path(seeds_dir, v["file"]).read_bytes()} for k, v in seeds.items()}
    files["labels_best.pt"] = {"bytes": Path(seeds_dir, "labels_best.pt").read_bytes()}
    _prepare(work, files)
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:")) * 1024
    limit = vm + memory_mb * 1024**2
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send(("ready", None))
    while True:
        msg = conn.recv()
        if msg is None:
            return
        reader, name, data = msg
        p = _path_for(work, reader, name)
        p.write_bytes(data)
        try:
            bad = read_input(reader, p)
            res = ("ok", None) if bad is None else ("silent", bad)
        except SimplebitsError as e:
            text = str(e)
            res = ("memory", text) if "MemoryError" in text else ("clean", None)
        except MemoryError:
            res = ("memory", "MemoryError")
        except Exception as e:  # noqa: BLE001 - this is what the campaign counts
            tb = traceback.extract_tb(e.__traceback__)
            ours = [f for f in tb if "simplebits" in f.filename] or tb
            where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
            res = ("traceback", f"{type(e).__name__} at {where}: {str(e)[:200]}")
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        if grown > memory_mb and res[0] != "memory":
            res = ("memory", f"peak RSS grew by {grown:.0f} MB")
            conn.send(res)
            return  # the high-water mark cannot be reset: the parent starts a fresh worker
        conn.send(res)


class Pool:
    """Worker processes with a per-input timeout; a hung or dead worker is replaced."""

    def __init__(self, n: int, seeds_dir: Path, memory_mb: int, timeout: float):
        self.ctx = mp.get_context("spawn")
        self.seeds_dir, self.memory_mb, self.timeout = str(seeds_dir), memory_mb, timeout
        self.workers = [self._start() for _ in range(n)]

    def _start(self):
        a, b = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(b, self.seeds_dir, self.memory_mb), daemon=True)
        proc.start()
        if not a.poll(120):
            raise RuntimeError("a fuzz worker did not start within 120 s")
        a.recv()
        return proc, a

    def run(self, jobs):
        """jobs: iterable of (key, reader, name, data); yields (key, outcome, detail)."""
        jobs = iter(jobs)
        busy: dict[int, tuple] = {}
        for w in range(len(self.workers)):
            job = next(jobs, None)
            if job is None:
                break
            self._send(w, job, busy)
        while busy:
            for w in list(busy):
                proc, conn = self.workers[w]
                key, t0 = busy[w][0], busy[w][1]
                outcome = None
                if conn.poll(0.002):
                    try:
                        outcome = conn.recv()
                    except (EOFError, OSError):
                        outcome = None
                    if outcome is not None and (not proc.is_alive() or outcome[0] == "memory"):
                        self._replace(w)  # a fresh worker: the peak-RSS mark and the heap start clean
                if outcome is None and not proc.is_alive():
                    code = proc.exitcode
                    self._replace(w)
                    outcome = ("crash", f"worker exit code {code}")
                if outcome is None and time.perf_counter() - t0 > self.timeout:
                    self._replace(w)
                    outcome = ("hang", f"no answer in {self.timeout:.0f} s")
                if outcome is not None:
                    del busy[w]
                    yield key, outcome[0], outcome[1]
                    job = next(jobs, None)
                    if job is not None:
                        self._send(w, job, busy)

    def _replace(self, w: int) -> None:
        proc, conn = self.workers[w]
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        conn.close()
        self.workers[w] = self._start()

    def _send(self, w: int, job, busy) -> None:
        key, reader, name, data = job
        self.workers[w][1].send((reader, name, data))
        busy[w] = (key, time.perf_counter())

    def close(self) -> None:
        for proc, conn in self.workers:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            proc.join(5)
            if proc.is_alive():
                proc.kill()


# ------------------------------------------------------------------------------------- campaign


def _atomic_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def campaign(readers: list[str], per_reader: int, *, workers: int = 2, timeout: float = 30.0, memory_mb: int = 1024,
             state_path: Path | None = None, examples: Path | None = None, seed: int = 0,
             progress: bool = True, seeds_dir: Path | None = None) -> dict:
    seeds_dir = Path(seeds_dir or tempfile.mkdtemp(prefix="fuzzseeds."))
    seeds = make_seeds(seeds_dir)
    unknown = [r for r in readers if r not in seeds]
    if unknown:
        raise SystemExit(f"unknown reader(s) {', '.join(unknown)}; known: {', '.join(seeds)}")
    (seeds_dir / "seeds.json").write_text(json.dumps({k: {"file": v["file"], "kind": v["kind"]} for k, v in seeds.items()}))
    state = {"seed": seed, "readers": {}}
    if state_path is not None and state_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("seed") != seed:
            raise SystemExit(f"{state_path} is a campaign with seed {state.get('seed')}; pass --seed {state.get('seed')}")
    for r in readers:
        state["readers"].setdefault(r, {"done": 0, "counts": dict.fromkeys(OUTCOMES, 0), "seconds": 0.0,
                                        "examples": {}})
    pool = Pool(workers, seeds_dir, memory_mb, timeout)
    try:
        for r in readers:
            st = state["readers"][r]
            start, t0, last_save = st["done"], time.perf_counter(), time.perf_counter()
            jobs = ((i, r, seeds[r]["file"], input_for(seeds, r, i, seed)) for i in range(start, per_reader))
            for i, outcome, detail in pool.run(jobs):
                st["done"] += 1
                st["counts"][outcome] += 1
                if outcome in BAD:
                    ex = st["examples"].setdefault(outcome, {})
                    key = (detail or "")[:120]
                    if key not in ex and len(ex) < 40:
                        ex[key] = i
                        if examples is not None:
                            examples.mkdir(parents=True, exist_ok=True)
                            (examples / f"{r}-{outcome}-{i}-{seeds[r]['file']}").write_bytes(input_for(seeds, r, i, seed))
                now = time.perf_counter()
                if now - last_save > 30 and state_path is not None:
                    st["seconds"] += now - t0
                    t0 = last_save = now
                    _atomic_json(state_path, state)
                if progress and st["done"] % 1000 == 0:
                    c = st["counts"]
                    print(f"{r}: {st['done']}/{per_reader} " + " ".join(f"{k} {c[k]}" for k in OUTCOMES if c[k]),
                          file=sys.stderr, flush=True)
            st["seconds"] += time.perf_counter() - t0
            if state_path is not None:
                _atomic_json(state_path, state)
    finally:
        pool.close()
    return state


def summary(state: dict, readers: list[str]) -> dict:
    rows = {r: {"inputs": state["readers"][r]["done"], **state["readers"][r]["counts"],
                "inputs_per_s": round(state["readers"][r]["done"] / max(state["readers"][r]["seconds"], 1e-9), 1)}
            for r in readers}
    total = {k: sum(rows[r][k] for r in readers) for k in ("inputs", *OUTCOMES)}
    return {"benchmark": "fuzz", "seed": state["seed"], "readers": rows, "total": total,
            "bad": {k: total[k] for k in BAD}, "target": "0 traceback, silent, hang, crash and memory outcomes",
            "met": all(total[k] == 0 for k in BAD),
            "examples": {r: state["readers"][r]["examples"] for r in readers if state["readers"][r]["examples"]}}


ALL = ["condensed", "classifier", "flow", "dynamics", "idx", "idx-gz", "npz", "png-folder", "dc-pt", "cifar", "svhn",
       "usps", "pipeline-toml", "sweep-toml", "idc-pt", "mtt-pt", "torchscript"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-reader", type=int, default=100_000)
    ap.add_argument("--readers", default=",".join(ALL))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--memory-mb", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--state", default=None, help="resumable state file (default: none, start fresh)")
    ap.add_argument("--examples", default=None, help="folder for the mutated files of bad outcomes")
    ap.add_argument("--out", default=None, help="write the summary JSON here too")
    a = ap.parse_args(argv)
    readers = [r for r in a.readers.split(",") if r]
    state = campaign(readers, a.per_reader, workers=a.workers, timeout=a.timeout, memory_mb=a.memory_mb,
                     state_path=Path(a.state) if a.state else None, examples=Path(a.examples) if a.examples else None,
                     seed=a.seed)
    doc = summary(state, readers)
    doc["per_reader_target"] = a.per_reader
    text = json.dumps(doc, indent=2, sort_keys=True)
    print(text)
    if a.out:
        _atomic_json(Path(a.out), doc)
    return 0 if doc["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
