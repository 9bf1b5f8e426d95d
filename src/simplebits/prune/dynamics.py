"""Training dynamics of a condensed set: every sample's output, every epoch, R runs.

A fresh network is trained on the (decoded) condensed set under the evaluation augmentation
(the ``idc`` protocol: DSA + CutMix, 1000-epoch schedule). Each training step's outputs are
recorded for the samples in the batch (``record="train"``, as the reference's dynamics
logger does: the output on the augmented image, scored against the sample's own label), or
after each epoch on the clean images in eval mode (``record="clean"``).

Only the epochs that the chosen scores need are trained: LBPE needs ``stop_epoch`` (100 by
default; the reference trains all 1000 and reads the first 100), EL2N 10, the full-training
rules (AUM, forgetting, entropy, SSP) the whole schedule. The learning-rate schedule is
always the full one, so a run stopped early is bit-for-bit the first epochs of the full run.

Storage (safetensors + JSON settings; float16 outputs):

- ``logits``  (R, E, N, C) float16 - network outputs;
- ``correct`` (R, E, N) uint8 - argmax == label;
- ``final_probs`` (R, N, C) float16 - softmax of the last epoch's model on the clean images;
- ``embeddings`` (R, N, D) float16 - that model's penultimate features (SSP);
- ``labels`` (N,) int64.

Softmax outputs are computed from the stored logits in float32 when a score needs them.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from ..data import ImageSet, fingerprint
from ..data.condensed import decode
from ..errors import BadInputError, CorruptFileError, MismatchError, NotFoundError
from ..io import load_tensors, save_tensors
from ..models import create_model
from ..progress import progress_bar
from ..settings import setting
from ..train import derive_seed, get_protocol, list_protocols, predict_logits, train_classifier
from ..runtime import PRECISIONS, autocast_to, resolve_device, resolve_precision

__all__ = ["DynamicsConfig", "Dynamics", "record_dynamics", "load_dynamics", "fingerprint", "FORMAT"]

FORMAT = "simplebits.dynamics/1"
RECORDS = ("train", "clean")


@dataclass(frozen=True)
class DynamicsConfig:
    """How the dynamics are recorded.

    ``protocol`` sets optimiser, schedule length, batch size and augmentation (default
    ``idc``: 1000 epochs, DSA + CutMix, as the reference); ``epochs`` overrides its schedule
    length. ``stop_epoch`` is the LBPE window (first epochs whose top-``top_k`` by training
    accuracy are summed). ``epochs_run`` is how many epochs are actually trained (set by
    :func:`epochs_needed` from the rules; ``None`` = the whole schedule).
    """

    runs: int = setting(3, "independent dynamics runs", metavar="R")
    protocol: str = setting("idc", "optimiser, schedule and augmentation of the dynamics runs (idc: DSA + CutMix, "
                                   "1000 epochs)",
                            choices=lambda: [p.name for p in list_protocols()], flag="--dynamics-protocol")
    epochs: int | None = setting(None, "schedule length of the dynamics network", metavar="E",
                                 default_text="the protocol's, 1000 for idc")
    stop_epoch: int = setting(100, "LBPE window: the first epochs whose top-k by training accuracy are summed",
                              metavar="E")
    top_k: int = setting(10, "LBPE epochs summed", metavar="K")
    epochs_run: int | None = setting(None, "epochs actually trained (set from the rules' needs)", cli=False, toml=False)
    record: str = setting("train", "outputs recorded: on the augmented training batch (train, as the reference) or "
                                   "on clean images after each epoch (clean)", choices=RECORDS)
    precision: str = setting("fp32", "arithmetic of the dynamics runs: fp32; bf16 (autocast, float32 weights and "
                                     "gradients; faster where the CPU has AMX/AVX512-BF16; the recorded "
                                     "outputs and the selection change with rounding); auto (bf16 where the hardware "
                                     "has it)", choices=PRECISIONS, flag="--dynamics-precision")
    model: str = setting("convnet", "network of the dynamics runs", cli=False)
    model_options: dict[str, Any] = setting({}, "options of the dynamics network", cli=False)
    seed: int = setting(0, "base seed of the dynamics runs (the CLI's --seed, shared with the selection)", cli=False)

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise BadInputError(f"runs must be >= 1, got {self.runs}")
        if self.record not in RECORDS:
            raise BadInputError(f"record must be one of {', '.join(RECORDS)}, got {self.record!r}")
        if self.stop_epoch < 1 or self.top_k < 1:
            raise BadInputError(f"stop_epoch and top_k must be >= 1, got {self.stop_epoch}, {self.top_k}")
        if self.top_k > self.stop_epoch:
            raise BadInputError(f"top_k ({self.top_k}) cannot exceed stop_epoch ({self.stop_epoch})")
        if self.schedule_epochs < self.stop_epoch:
            raise BadInputError(
                f"stop_epoch ({self.stop_epoch}) is beyond the {self.schedule_epochs}-epoch schedule; "
                "lower --stop-epoch or raise --epochs"
            )
        if self.precision not in PRECISIONS:
            raise BadInputError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.epochs_run is not None and not 1 <= self.epochs_run <= self.schedule_epochs:
            raise BadInputError(f"epochs_run must be in [1, {self.schedule_epochs}], got {self.epochs_run}")

    @property
    def schedule_epochs(self) -> int:
        return int(self.epochs or get_protocol(self.protocol).epochs)

    @property
    def trained_epochs(self) -> int:
        return int(self.epochs_run or self.schedule_epochs)

    def train_protocol(self):
        p = get_protocol(self.protocol)
        over: dict[str, Any] = {"model": self.model, "model_options": dict(self.model_options),
                                "precision": self.precision}
        if self.epochs:
            over["epochs"] = int(self.epochs)
        return p.with_overrides(**over)

    def identity(self) -> dict[str, Any]:
        """The settings that must match for recorded dynamics to be reused (not runs or length)."""
        d = asdict(self)
        for k in ("runs", "epochs_run", "stop_epoch", "top_k"):
            d.pop(k)
        if self.precision == "fp32":  # every earlier version recorded in float32: their files stay reusable
            d.pop("precision")
        d["epochs"] = self.schedule_epochs
        return d

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schedule_epochs"] = self.schedule_epochs
        if self.precision == "fp32":  # likewise: the keys of earlier runs hold
            d.pop("precision")
        return d


@dataclass
class Dynamics:
    """Recorded dynamics (see module docstring for shapes); ``meta`` holds the settings."""

    logits: torch.Tensor
    correct: torch.Tensor
    final_probs: torch.Tensor
    embeddings: torch.Tensor
    labels: torch.Tensor
    meta: dict[str, Any]

    @property
    def runs(self) -> int:
        return int(self.logits.shape[0])

    @property
    def epochs(self) -> int:
        return int(self.logits.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.logits.shape[2])

    @property
    def complete(self) -> bool:
        """True when the whole schedule was trained (full-training rules need it)."""
        return self.epochs >= int(self.meta["config"]["schedule_epochs"])

    def probs(self, run: int | slice = slice(None), epochs: int | None = None) -> torch.Tensor:
        return self.logits[run, :epochs].float().softmax(-1)

    def train_accuracy(self) -> torch.Tensor:
        """(R, E) fraction of samples classified correctly at each epoch."""
        return self.correct.float().mean(-1)

    def truncated(self, epochs: int) -> "Dynamics":
        """The first ``epochs`` epochs (final-model outputs stay; ``complete`` says whether the cut
        dynamics still reach the end of the schedule)."""
        if epochs >= self.epochs:
            return self
        return replace(self, logits=self.logits[:, :epochs], correct=self.correct[:, :epochs])

    def subset_runs(self, runs: int) -> "Dynamics":
        return replace(self, logits=self.logits[:runs], correct=self.correct[:runs],
                       final_probs=self.final_probs[:runs], embeddings=self.embeddings[:runs])

    def save(self, path: str | os.PathLike) -> None:
        save_tensors(path, {
            "logits": self.logits.half().contiguous(), "correct": self.correct.to(torch.uint8).contiguous(),
            "final_probs": self.final_probs.half().contiguous(), "embeddings": self.embeddings.half().contiguous(),
            "labels": self.labels.long().contiguous(),
        }, {**self.meta, "format": FORMAT})


def load_dynamics(path: str | os.PathLike) -> Dynamics:
    """Read a dynamics file, checked against its schema before use: ``logits`` float16
    (R, E, N, C), ``correct`` uint8 (R, E, N) of 0/1, ``final_probs`` float16 (R, N, C) in [0, 1],
    ``embeddings`` float16 (R, N, D), ``labels`` int64 (N,) in [0, C); all finite; metadata
    ``config.schedule_epochs`` an integer >= E (and <= 100000), and where present ``runs`` == R,
    ``num_samples`` == N, ``classes`` C names, ``factor`` >= 1, ``seconds`` >= 0, ``fingerprint``
    a string, ``identity`` an object."""
    from ..errors import reading

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"dynamics file not found: {p}")
    tensors, meta = load_tensors(p)
    if meta.get("format") != FORMAT:
        raise CorruptFileError(f"{p} is not a training-dynamics file (format={str(meta.get('format'))[:60]!r})")
    missing = [k for k in _TENSORS if k not in tensors]
    if missing:
        raise CorruptFileError(f"{p} lacks {', '.join(missing)}; record the dynamics again")

    def bad(msg: str) -> CorruptFileError:
        return CorruptFileError(f"{p}: {msg}; record the dynamics again")

    extra = sorted(set(tensors) - set(_TENSORS))
    if extra:
        raise bad(f"unexpected tensors {extra[:4]}")
    lg, co, fp, em, lb = (tensors[k] for k in _TENSORS)
    _check_shapes(lg, co, fp, em, lb, bad)
    _check_values(lg, co, fp, em, lb, bad)
    _check_meta(meta, tuple(lg.shape), bad)
    with reading(p, "the dynamics"):
        return Dynamics(lg, co, fp, em, lb, meta)


_TENSORS = ("logits", "correct", "final_probs", "embeddings", "labels")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_shapes(lg: torch.Tensor, co: torch.Tensor, fp: torch.Tensor, em: torch.Tensor, lb: torch.Tensor,
                  bad: Callable[[str], CorruptFileError]) -> None:
    """The tensors' shapes agree with the logits' (R, E, N, C), and their dtypes are the schema's."""
    if lg.ndim != 4 or not lg.is_floating_point():
        raise bad(f"'logits' is {lg.dtype} of shape {tuple(lg.shape)}, expected float (runs, epochs, samples, classes)")
    r, e, n, c = lg.shape
    if min(r, e, n, c) < 1:
        raise bad(f"'logits' has shape {tuple(lg.shape)}, with an empty dimension")
    shapes = {"correct": (co, (r, e, n)), "final_probs": (fp, (r, n, c)), "labels": (lb, (n,))}
    for k, (t, want) in shapes.items():
        if tuple(t.shape) != want:
            raise bad(f"{k!r} has shape {tuple(t.shape)} but the logits say {want}")
    if em.ndim != 3 or tuple(em.shape[:2]) != (r, n) or em.shape[2] < 1:
        raise bad(f"'embeddings' has shape {tuple(em.shape)}, expected ({r}, {n}, D)")
    if co.dtype != torch.uint8 or lb.dtype != torch.int64 or not fp.is_floating_point() or not em.is_floating_point():
        raise bad(f"unexpected dtypes (correct {co.dtype}, labels {lb.dtype}, final_probs {fp.dtype}, "
                  f"embeddings {em.dtype})")


def _check_values(lg: torch.Tensor, co: torch.Tensor, fp: torch.Tensor, em: torch.Tensor, lb: torch.Tensor,
                  bad: Callable[[str], CorruptFileError]) -> None:
    """Finite outputs, 0/1 correctness, probabilities in [0, 1], labels among the C classes."""
    for k, t in (("logits", lg), ("final_probs", fp), ("embeddings", em)):
        if not bool(torch.isfinite(t).all()):
            raise bad(f"{k!r} holds NaN or infinite values")
    if bool((co > 1).any()):
        raise bad("'correct' holds values other than 0 and 1")
    if bool((fp < 0).any()) or bool((fp > 1).any()):
        raise bad("'final_probs' holds values outside [0, 1]")
    c = lg.shape[-1]
    if int(lb.min()) < 0 or int(lb.max()) >= c:
        raise bad(f"labels span {int(lb.min())}..{int(lb.max())}, outside 0..{c - 1}")


def _check_meta(meta: dict[str, Any], shape: tuple[int, int, int, int], bad: Callable[[str], CorruptFileError]) -> None:
    """The settings fit the tensors of ``shape`` (R, E, N, C); see :func:`load_dynamics`."""
    r, e, n, c = shape
    cfg = meta.get("config")
    if not isinstance(cfg, dict):
        raise bad("'config' is missing or not an object")
    sched = cfg.get("schedule_epochs")
    if not _is_int(sched) or not e <= sched <= 100_000:
        raise bad(f"config 'schedule_epochs' is {str(sched)[:30]!r}, not an integer in {e}..100000 "
                  f"(the file holds {e} epochs)")
    checks = {
        "runs": lambda v: _is_int(v) and v == r,
        "num_samples": lambda v: _is_int(v) and v == n,
        "classes": lambda v: isinstance(v, list) and len(v) == c and all(isinstance(x, str) for x in v),
        "factor": lambda v: _is_int(v) and 1 <= v <= 64,
        "seconds": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
        "fingerprint": lambda v: isinstance(v, str),
        "source": lambda v: v is None or isinstance(v, str),
        "identity": lambda v: isinstance(v, dict),
    }
    for k, ok in checks.items():
        if k in meta and not ok(meta[k]):
            raise bad(f"{k!r} is {str(meta[k])[:40]!r}, which does not fit the tensors or is of the wrong type")


def check_compatible(dyn: Dynamics, ds: ImageSet, config: DynamicsConfig, *, where: str = "dynamics") -> None:
    """Refuse dynamics recorded on another set or with other settings (say which)."""
    meta = dyn.meta
    fp = fingerprint(ds)
    if meta.get("fingerprint") != fp:
        raise MismatchError(
            f"{where} were recorded on a different set (fingerprint {meta.get('fingerprint')} != {fp}); "
            "record them again for this file (leave out --dynamics or point it at a new path)"
        )
    had = meta.get("identity", {})
    want = config.identity()
    diff = [f"{k}: recorded {had.get(k)!r}, asked {want[k]!r}" for k in want if had.get(k) != want[k]]
    if diff:
        raise MismatchError(f"{where} were recorded with different settings ({'; '.join(diff)}); "
                            "record them again or ask for the recorded settings")


def sufficient(dyn: Dynamics, config: DynamicsConfig) -> bool:
    """True when ``dyn`` holds at least the runs and epochs ``config`` asks for."""
    return dyn.runs >= config.runs and dyn.epochs >= config.trained_epochs


def check_reusable(dyn: Dynamics, ds: ImageSet, config: DynamicsConfig, *, where: str = "dynamics") -> None:
    """Refuse dynamics recorded on another set, with other settings, or too short for ``config``."""
    check_compatible(dyn, ds, config, where=where)
    if dyn.runs < config.runs:
        raise MismatchError(f"{where} hold {dyn.runs} run(s), {config.runs} asked; record them again with --runs {config.runs}")
    if dyn.epochs < config.trained_epochs:
        raise MismatchError(
            f"{where} hold {dyn.epochs} epoch(s) but the chosen rules need {config.trained_epochs}; "
            "record them again (full-training rules such as aum, forgetting, entropy and ssp need the whole schedule)"
        )


def _one_run(train: ImageSet, config: DynamicsConfig, run: int, device: torch.device,
             progress: bool | None) -> dict[str, torch.Tensor]:
    proto = config.train_protocol()
    seed = derive_seed(config.seed, f"dynamics-run-{run}")
    n, c = len(train), train.num_classes
    e_run = config.trained_epochs
    net = create_model(proto.model, channels=train.channels, num_classes=c, image_size=tuple(train.shape[1:]),
                       seed=derive_seed(seed, "init"), **proto.model_options).to(device)
    logits = torch.zeros(e_run, n, c, dtype=torch.float16)
    dtype = resolve_precision(proto.precision, device)

    def on_batch(epoch: int, idx: torch.Tensor, out: torch.Tensor) -> None:
        if config.record == "train":
            logits[epoch, idx.cpu()] = out.float().cpu().half()

    def on_epoch(epoch: int, model: torch.nn.Module) -> None:
        if config.record == "clean":
            logits[epoch] = predict_logits(model, train.images, autocast=dtype).half()
            model.train()

    train_classifier(net, train, protocol=proto, seed=seed, progress=progress, desc=f"dynamics run {run + 1}",
                     on_batch=on_batch, on_epoch=on_epoch, stop_epoch=e_run)
    correct = (logits.float().argmax(-1) == train.labels.view(1, -1)).to(torch.uint8)
    net.eval()
    with torch.inference_mode():
        final = predict_logits(net, train.images, autocast=dtype).softmax(-1)
        with autocast_to(dtype, device.type):
            emb = torch.cat([net.embed(train.images[i:i + 500].to(device)).flatten(1).float().cpu()
                             for i in range(0, n, 500)]) if hasattr(net, "embed") else final.clone()
    return {"logits": logits, "correct": correct, "final_probs": final.half(), "embeddings": emb.half()}


def record_dynamics(
    ds: ImageSet,
    config: DynamicsConfig = DynamicsConfig(),
    *,
    path: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device = "auto",
    progress: bool | None = None,
) -> Dynamics:
    """Train ``config.runs`` fresh networks on ``ds`` (decoded) and record their dynamics.

    With ``path``, the dynamics are saved there (atomically) after every finished run; with
    ``resume`` the runs already in ``path`` are kept (after checking they match this set and
    these settings) and only the missing ones are trained. Same seed, same dynamics on CPU.
    """
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    train = decode(ds)
    if len(train) == 0:
        raise BadInputError("cannot record dynamics on an empty set")
    dev = torch.device(device)
    runs: list[dict[str, torch.Tensor]] = []
    meta = {
        "config": config.to_dict(), "identity": config.identity(), "fingerprint": fingerprint(train),
        "source": ds.name, "num_samples": len(train), "factor": int(ds.meta.get("factor", 1)),
        "classes": list(train.classes), "seconds": 0.0,
    }
    if resume and path is not None and Path(path).exists():
        old = load_dynamics(path)
        short = replace(config, runs=min(config.runs, old.runs))
        check_reusable(old, train, short, where=str(path))
        for r in range(min(old.runs, config.runs)):
            runs.append({"logits": old.logits[r, :config.trained_epochs], "correct": old.correct[r, :config.trained_epochs],
                         "final_probs": old.final_probs[r], "embeddings": old.embeddings[r]})
        meta["seconds"] = float(old.meta.get("seconds", 0.0))
    t0 = time.perf_counter()
    bar = progress_bar(config.runs, desc="dynamics runs", enabled=progress if config.runs > 1 else False, unit="run")
    bar.update(len(runs))
    dyn: Dynamics | None = None
    for r in range(len(runs), config.runs):
        runs.append(_one_run(train, config, r, dev, progress))
        bar.update(1)
        meta["seconds"] = meta["seconds"] + (time.perf_counter() - t0)
        t0 = time.perf_counter()
        dyn = _stack(runs, train, meta)
        if path is not None:
            dyn.save(path)
    bar.close()
    return dyn if dyn is not None and dyn.runs == config.runs else _stack(runs, train, meta)


def _stack(runs: list[dict[str, torch.Tensor]], train: ImageSet, meta: dict[str, Any]) -> Dynamics:
    return Dynamics(
        logits=torch.stack([r["logits"] for r in runs]), correct=torch.stack([r["correct"] for r in runs]),
        final_probs=torch.stack([r["final_probs"] for r in runs]),
        embeddings=torch.stack([r["embeddings"] for r in runs]), labels=train.labels.clone(),
        meta={**meta, "runs": len(runs)},
    )

