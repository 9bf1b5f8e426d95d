"""Networks trained on the whole real training set: the full-data accuracy and the teacher.

DD-Ranking's hard-label recovery needs the accuracy of networks trained on all the real data
under the evaluation protocol, and soft-label evaluation needs a teacher trained on that data.
One computation serves both: :func:`full_data` trains one network per seed on the whole training
set with hard labels under the protocol (its soft-label settings ignored), tests each, and keeps
the first seed's network as the teacher. Both are cached on disk by content (the data's and test
set's fingerprints, the protocol, the seeds, the device type), so a table of many sets on one data
set pays for them once.

The cache lives in ``$SIMPLEBITS_CACHE/full-data`` (default ``~/.cache/simplebits/full-data``), one
entry per seed: ``KEY.json`` (accuracy, settings) and ``KEY.safetensors`` (the network, a classifier
file, :func:`~simplebits.train.checkpoint.save_classifier`). Deleting it only costs the retraining.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..data import ImageSet, fingerprint
from ..errors import BadInputError
from ..io import atomic_write_json
from ..models import create_model
from .checkpoint import load_classifier, save_classifier
from .evaluate import Accuracies, _seed_list, check_compatible, resolved_protocol
from .distributed import local_device
from .loop import accuracy, train_classifier
from .protocols import Protocol
from .seeding import derive_seed
from ..runtime import resolve_device, resolve_precision

__all__ = ["FullData", "full_data", "cache_root"]

FORMAT = "simplebits.full-data/1"


def cache_root(cache: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache`` if given, else ``$SIMPLEBITS_CACHE``, else ``~/.cache/simplebits``."""
    if cache is not None:
        return Path(cache)
    env = os.environ.get("SIMPLEBITS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "simplebits"


@dataclass
class FullData(Accuracies):
    """Accuracies (fractions) of networks trained on the whole training set, and the teacher."""

    key: str
    train: str
    test: str
    protocol: dict[str, Any]
    n_train: int
    seeds: list[int]
    accuracies: list[float]
    seconds: float
    teacher_path: Path
    cached: bool = False

    def teacher(self, device: str | torch.device = "cpu") -> nn.Module:
        """The first seed's network (eval mode, frozen), read back from the cache."""
        model, _ = load_classifier(self.teacher_path, device=device)
        for q in model.parameters():
            q.requires_grad_(False)
        return model

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "key": self.key, "train": self.train, "test": self.test,
                "protocol": self.protocol, "n_train": self.n_train, "seeds": self.seeds,
                "accuracies": self.accuracies, "mean": self.mean, "std": self.std, "seconds": self.seconds,
                "teacher": str(self.teacher_path), "cached": self.cached}


def _key(real: ImageSet, test: ImageSet, p: Protocol, seed: int, device: torch.device) -> str:
    doc = {"format": FORMAT, "train": fingerprint(real), "test": fingerprint(test), "protocol": p.to_dict(),
           "seed": seed, "device": device.type}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


def _read(path: Path, weights: Path) -> float | None:
    """The cached accuracy of one seed's network, or None when the entry is missing or damaged."""
    if not (path.is_file() and weights.is_file()):
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a damaged cache entry is recomputed
    a = doc.get("accuracy") if isinstance(doc, dict) and doc.get("format") == FORMAT else None
    return float(a) if isinstance(a, (int, float)) and 0 <= a <= 1 else None


def full_data(
    real: ImageSet,
    test: ImageSet,
    *,
    protocol: str | Protocol = "quick",
    seeds: int | Sequence[int] = 3,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    cache: str | os.PathLike | None = None,
    refresh: bool = False,
) -> FullData:
    """Train (or read from the cache) one network per seed on all of ``real``; test each on ``test``.

    The protocol's hard-label version is used (DD-Ranking's ``Acc.real-hard``). Each seed's network
    is cached on its own (``KEY.json`` + ``KEY.safetensors``, the key from the data, test set,
    protocol, seed and device type), so a one-seed teacher and a three-seed score share the first
    network; the first seed's network is the teacher. ``refresh`` retrains even when cached.
    """
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    p = resolved_protocol(protocol, device).with_overrides(labels="hard", temperature=1.0)
    seed_list = _seed_list(seeds)
    check_compatible(real, test)
    dev = torch.device(local_device(device))
    folder = cache_root(cache) / "full-data"
    t0 = time.perf_counter()
    accs: list[float] = []
    paths: list[Path] = []
    all_cached = True
    for s in seed_list:
        key = _key(real, test, p, s, dev)
        json_path, weights = folder / f"{key}.json", folder / f"{key}.safetensors"
        paths.append(weights)
        acc = None if refresh else _read(json_path, weights)
        if acc is None:
            all_cached = False
            acc = _train_one(real, test, p, s, dev, progress, folder, key, json_path, weights)
        accs.append(acc)
    return FullData(paths[0].stem, real.name, test.name, p.to_dict(), len(real), seed_list, accs,
                    time.perf_counter() - t0, paths[0], cached=all_cached)


def _train_one(real: ImageSet, test: ImageSet, p: Protocol, seed: int, dev: torch.device, progress: bool | None,
               folder: Path, key: str, json_path: Path, weights: Path) -> float:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(f"cannot create the cache folder {folder} ({e.strerror}); set SIMPLEBITS_CACHE "
                            "to a writable folder") from None
    t0 = time.perf_counter()
    net = create_model(p.model, channels=real.channels, num_classes=real.num_classes,
                       image_size=tuple(real.shape[1:]), seed=derive_seed(seed, "init"), **p.model_options).to(dev)
    train_classifier(net, real, protocol=p, seed=seed, progress=progress, desc=f"full data seed {seed}")
    acc = accuracy(net, test, autocast=resolve_precision(p.precision, dev))
    save_classifier(weights, net, name=p.model, channels=real.channels, image_size=int(real.shape[1]),
                    classes=real.classes, options=dict(p.model_options),
                    extra={"full_data_key": key, "trained_on": fingerprint(real), "protocol": p.to_dict(),
                           "seed": seed, "test_accuracy": acc})
    atomic_write_json(json_path, {"format": FORMAT, "key": key, "train": real.name, "test": test.name,
                                  "n_train": len(real), "protocol": p.to_dict(), "seed": seed, "accuracy": acc,
                                  "seconds": time.perf_counter() - t0})  # written last: marks a complete entry
    return acc
