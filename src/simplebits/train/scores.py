"""DD-Ranking's scores: what a reduced set is worth once labels and augmentation are accounted for.

Definitions (DD-Ranking, Li et al. 2025, arXiv:2505.13300, and its documentation), with every
accuracy a fraction in [0, 1] of the same test set, and each evaluation seed scored on its own
before the mean ± std over seeds is taken (as DD-Ranking does per evaluation round):

- **HLR**, hard-label recovery: ``Acc(full data, hard labels) - Acc(set, hard labels)``. How much
  of the whole data set's accuracy the set fails to recover without any help from a teacher.
  Lower is better; 0 means the set trains as well as all the data.
- **IOR**, improvement over random: ``Acc(set, any) - Acc(random real, any)``, where "any" is the
  evaluation the user chose (hard or soft labels, with or without augmentation), applied to a
  random real subset of the same size in the same way. Higher is better; 0 means a random real
  subset does as well under that evaluation.
- **LRS**, label-robust score: ``alpha = w * IOR - (1 - w) * HLR`` (``w`` = 0.5 by default), then
  ``LRS = 100 * (e^alpha - e^-1) / (e - e^-1)``, in [0, 100] since alpha is in [-1, 1].
- **ARS**, augmentation-robust score: ``beta = g * (Acc(set, aug) - Acc(random, aug)) +
  (1 - g) * (Acc(set, no aug) - Acc(random, no aug))`` (``g`` = 0.5 by default), with the chosen
  labels on both sides, normalised as LRS.

How this differs from DD-Ranking's code, and why: DD-Ranking searches the learning rate of each
evaluation over five values and keeps the best test accuracy over the last epochs; here every
evaluation uses the protocol's own learning rate and the final network (one training per seed
instead of five, on a CPU; the test set is never used to choose anything). The "augmentation"
side is the protocol's own (DSA and/or CutMix) when it has one, else DSA
``color_crop_cutout_flip_scale_rotate`` (the DSA protocol's); "no augmentation" turns off both
DSA and CutMix.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..data import ImageSet, fingerprint
from ..errors import BadInputError, CorruptFileError
from ..io import atomic_write_json, parse_json_object
from .evaluate import _seed_list, evaluate, evaluate_real_subset, mean_std
from .fulldata import full_data
from .protocols import Protocol, get_protocol
from ..runtime import resolve_device

__all__ = [
    "DEFAULT_AUGMENTATION",
    "EvaluationMemo",
    "RankingReport",
    "augmentation_robust_score",
    "hard_label_recovery",
    "improvement_over_random",
    "label_robust_score",
    "normalise_score",
    "ranking_scores",
]

DEFAULT_AUGMENTATION = "color_crop_cutout_flip_scale_rotate"
_E_LOW, _E_HIGH = math.exp(-1.0), math.e


def _frac(name: str, v: float) -> float:
    v = float(v)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise BadInputError(f"{name} must be an accuracy in [0, 1], got {v!r}")
    return v


def _weight(name: str, w: float) -> float:
    w = float(w)
    if not (math.isfinite(w) and 0.0 <= w <= 1.0):
        raise BadInputError(f"{name} must be a weight in [0, 1], got {w!r}")
    return w


def normalise_score(a: float) -> float:
    """DD-Ranking's normalisation of a weighted accuracy difference ``a`` in [-1, 1] to [0, 100]."""
    return 100.0 * (math.exp(a) - _E_LOW) / (_E_HIGH - _E_LOW)


def hard_label_recovery(full_hard: float, set_hard: float) -> float:
    """HLR = full-data accuracy minus the set's, both with hard labels (fractions; lower is better)."""
    return _frac("full-data accuracy", full_hard) - _frac("set accuracy", set_hard)


def improvement_over_random(set_any: float, random_any: float) -> float:
    """IOR = the set's accuracy minus a same-size random real subset's, same evaluation (higher is better)."""
    return _frac("set accuracy", set_any) - _frac("random-real accuracy", random_any)


def label_robust_score(hlr: float, ior: float, w: float = 0.5) -> float:
    """LRS in [0, 100] from HLR and IOR (fractions) with weight ``w`` on IOR."""
    w = _weight("the LRS weight", w)
    return normalise_score(w * float(ior) - (1.0 - w) * float(hlr))


def augmentation_robust_score(set_aug: float, random_aug: float, set_no_aug: float, random_no_aug: float,
                              gamma: float = 0.5) -> float:
    """ARS in [0, 100]: the set's gain over random real with and without augmentation, weighted by ``gamma``."""
    g = _weight("the ARS weight", gamma)
    beta = g * improvement_over_random(set_aug, random_aug) + (1 - g) * improvement_over_random(set_no_aug,
                                                                                                random_no_aug)
    return normalise_score(beta)


@dataclass
class RankingReport:
    """Per-seed accuracies of every evaluation the scores need, and the scores per seed.

    ``accuracies`` keys: ``full_hard``, ``set_hard``, ``set_any``, ``random_any``, ``set_aug``,
    ``random_aug``, ``set_no_aug``, ``random_no_aug`` (lists in seed order, fractions).
    """

    train: str
    protocol: str
    labels: str
    temperature: float
    seeds: list[int]
    accuracies: dict[str, list[float]]
    lrs_weight: float = 0.5
    ars_weight: float = 0.5
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def per_seed(self) -> dict[str, list[float]]:
        a = self.accuracies
        hlr = [hard_label_recovery(f, s) for f, s in zip(a["full_hard"], a["set_hard"])]
        ior = [improvement_over_random(s, r) for s, r in zip(a["set_any"], a["random_any"])]
        lrs = [label_robust_score(h, i, self.lrs_weight) for h, i in zip(hlr, ior)]
        ars = [augmentation_robust_score(sa, ra, sn, rn, self.ars_weight)
               for sa, ra, sn, rn in zip(a["set_aug"], a["random_aug"], a["set_no_aug"], a["random_no_aug"])]
        return {"hlr": hlr, "ior": ior, "lrs": lrs, "ars": ars}

    def scores(self) -> dict[str, dict[str, float]]:
        """mean and std over seeds: HLR and IOR in accuracy points (percent), LRS and ARS in [0, 100]."""
        out = {}
        for k, v in self.per_seed.items():
            scale = 100.0 if k in ("hlr", "ior") else 1.0
            m, s = mean_std([scale * x for x in v])
            out[k] = {"mean": m, "std": s}
        return out

    def to_dict(self) -> dict[str, Any]:
        acc = {k: {"per_seed": v, "mean": mean_std(v)[0], "std": mean_std(v)[1]} for k, v in self.accuracies.items()}
        return {"train": self.train, "protocol": self.protocol, "labels": self.labels,
                "temperature": self.temperature, "seeds": self.seeds, "accuracies": acc,
                "scores": self.scores(), "per_seed": self.per_seed,
                "weights": {"lrs_w": self.lrs_weight, "ars_gamma": self.ars_weight},
                "units": {"hlr": "accuracy points", "ior": "accuracy points", "lrs": "0-100", "ars": "0-100",
                          "accuracies": "fractions"},
                "definitions": "DD-Ranking (arXiv:2505.13300); see docs/evaluate.md", "seconds": self.seconds,
                "settings": self.settings}


class EvaluationMemo(MutableMapping):
    """A ``memo`` for :func:`ranking_scores` kept in a JSON file, so that a killed run loses one evaluation at most.

    Each evaluation (one set or random-real side, one protocol, all seeds) is written to ``path``
    atomically as soon as it finishes; a new process given the same file skips every evaluation the
    file holds. The key is the one :func:`ranking_scores` uses: the set's fingerprint (or the real
    data's and the IPC), the protocol's settings, the seeds and, for soft labels, the teacher's
    weights' hash, so a different set, protocol, seed list or teacher is never served a stored
    result. The key does not hold the code's version: delete the file after changing how networks
    are trained. A file that is not one of these raises :class:`~simplebits.errors.CorruptFileError`
    naming the file (delete it to start afresh); it is never silently replaced.
    """

    FORMAT = "simplebits-evaluation-memo"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise BadInputError(f"cannot keep evaluations in {self.path}: the folder {self.path.parent} does not "
                                "exist; create it first")
        self._runs: dict[str, list[float]] = {}
        if self.path.is_file():
            self._runs = self._read()
        self._stored = set(self._runs)  # the evaluations earlier runs left in the file
        self.reused: set[str] = set()  # those this process was served instead of training networks

    def _read(self) -> dict[str, list[float]]:
        bad = f"{self.path} is not a simplebits evaluation memo"
        try:
            text = self.path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise CorruptFileError(f"{bad} ({e}); delete it to start afresh") from None
        doc = parse_json_object(text, self.path, "evaluation memo")  # the package's guarded JSON reader
        if not (doc.get("format") == self.FORMAT and isinstance(doc.get("runs"), list)):
            raise CorruptFileError(f"{bad} (no {self.FORMAT!r} header); delete it to start afresh")
        runs = {}
        for i, r in enumerate(doc["runs"]):
            ok = (isinstance(r, dict) and isinstance(r.get("key"), str) and isinstance(r.get("accuracies"), list)
                  and r["accuracies"] and all(isinstance(a, (int, float)) and not isinstance(a, bool)
                                              and math.isfinite(a) and 0.0 <= a <= 1.0 for a in r["accuracies"]))
            if not ok:
                raise CorruptFileError(f"{bad} (entry {i} is not a key with accuracies in [0, 1]); delete it to "
                                       "start afresh")
            runs[r["key"]] = [float(a) for a in r["accuracies"]]
        return runs

    @staticmethod
    def _key(k: Any) -> str:
        return json.dumps(k, sort_keys=True, default=list)

    def __getitem__(self, k: Any) -> list[float]:
        key = self._key(k)
        v = list(self._runs[key])
        if key in self._stored:
            self.reused.add(key)
        return v

    def __setitem__(self, k: Any, accuracies: Sequence[float]) -> None:
        key = self._key(k)
        self._runs[key] = [float(a) for a in accuracies]
        self._stored.discard(key)
        self._write()

    def __delitem__(self, k: Any) -> None:
        key = self._key(k)
        del self._runs[key]
        self._stored.discard(key)
        self._write()

    def _write(self) -> None:
        atomic_write_json(self.path, {"format": self.FORMAT, "version": 1,
                                      "runs": [{"key": key, "accuracies": v} for key, v in self._runs.items()]})

    def __iter__(self) -> Iterator[Any]:
        return iter([json.loads(key) for key in self._runs])  # keys as lists: they index the memo again

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, k: object) -> bool:
        return self._key(k) in self._runs


def _aug_sides(p: Protocol) -> tuple[Protocol, Protocol]:
    """(with augmentation, without) versions of ``p``: its own augmentation, or DSA when it has none."""
    aug = p if p.augments else p.with_overrides(dsa=DEFAULT_AUGMENTATION)
    return aug, p.with_overrides(dsa=None, dc_aug=None, cutmix_prob=0.0)


def ranking_scores(
    train: ImageSet,
    real: ImageSet,
    test: ImageSet,
    *,
    protocol: str | Protocol = "quick",
    labels: str = "hard",
    temperature: float = 1.0,
    seeds: int | Sequence[int] = 3,
    teacher: torch.nn.Module | None = None,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    cache: str | None = None,
    lrs_weight: float = 0.5,
    ars_weight: float = 0.5,
    memo: MutableMapping[Any, list[float]] | None = None,
) -> RankingReport:
    """HLR, IOR, LRS and ARS of ``train`` (a reduced set of ``real``), DD-Ranking's definitions.

    Runs, per seed: the set with hard labels (HLR), the set and a same-size random real subset
    with ``labels`` with and without augmentation (IOR under the protocol's own augmentation
    setting, ARS from both), and the full-data networks (:func:`~simplebits.train.full_data`,
    cached). With soft labels and no ``teacher``, the cached full-data network of the first seed is
    the teacher. Evaluations shared between the scores are run once; pass the same ``memo`` dict to
    several calls (sets of one size, hard and soft labels) and they share their random-real and
    hard-label evaluations too (keyed by the set's fingerprint, the protocol, the seeds and, for soft
    labels, the teacher's identity). An :class:`EvaluationMemo` keeps them in a file, so that a
    killed run resumes after the last evaluation it finished.
    """
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    base = get_protocol(protocol).with_overrides(labels=labels, temperature=float(temperature))
    _weight("the LRS weight", lrs_weight)
    _weight("the ARS weight", ars_weight)
    seed_list = _seed_list(seeds)
    decoded_ipc = _set_ipc(train)
    t0 = time.perf_counter()
    full = full_data(real, test, protocol=base, seeds=seed_list, device=device, progress=progress, cache=cache)
    teacher_note = None if not base.soft else ("given" if teacher is not None else
                                               f"full-data network of seed {seed_list[0]} (cached)")
    if base.soft and teacher is None:
        teacher = full.teacher(device)
    hard = base.with_overrides(labels="hard", temperature=1.0)
    aug, no_aug = _aug_sides(base)
    runs: dict[Any, list[float]] = {} if memo is None else memo
    used: set[Any] = set()
    who = {"set": fingerprint(train), "random": (fingerprint(real), decoded_ipc)}
    teacher_id = _module_key(teacher) if teacher is not None else None

    def run(side: str, p: Protocol) -> list[float]:
        k = (side, who[side], _json_key(p), tuple(seed_list), teacher_id if p.soft else None)
        used.add(k)
        if k not in runs:
            t = teacher if p.soft else None
            if side == "set":
                r = evaluate(train, test, protocol=p, seeds=seed_list, device=device, progress=progress, teacher=t)
            else:
                r = evaluate_real_subset(real, test, ipc=decoded_ipc, protocol=p, seeds=seed_list, device=device,
                                         progress=progress, teacher=t)
            runs[k] = r.accuracies
        return runs[k]

    acc = {
        "full_hard": list(full.accuracies),
        "set_hard": run("set", hard),
        "set_aug": run("set", aug), "random_aug": run("random", aug),
        "set_no_aug": run("set", no_aug), "random_no_aug": run("random", no_aug),
    }
    acc["set_any"] = run("set", base)
    acc["random_any"] = run("random", base)
    return RankingReport(
        train=train.name, protocol=base.label(), labels=labels, temperature=float(temperature), seeds=seed_list,
        accuracies=acc, lrs_weight=float(lrs_weight), ars_weight=float(ars_weight),
        seconds=time.perf_counter() - t0,
        settings={"protocol": base.to_dict(), "augmented": aug.to_dict(), "not_augmented": no_aug.to_dict(),
                  "full_data": full.to_dict(), "evaluations": len(used) * len(seed_list), "teacher": teacher_note},
    )


def _module_key(m: torch.nn.Module) -> str:
    """sha256 (16 hex digits) of a network's parameters and buffers: the same teacher, the same key."""
    h = hashlib.sha256()
    for name, t in sorted(m.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _json_key(p: Protocol) -> str:
    return json.dumps(p.to_dict(), sort_keys=True)


def _set_ipc(train: ImageSet) -> int:
    from ..data.condensed import decode

    d = decode(train)
    ipc = d.ipc()
    if ipc is None:
        raise BadInputError(f"{train.name!r} holds unequal numbers of images per class {d.counts()}; the scores "
                            "compare it with random real subsets of a fixed images-per-class")
    return ipc
