"""The evaluation protocol: train fresh networks on a training set, test them, mean ± std.

Every report of a reduced set (condensed, pruned, or a real subset) carries the random-real-
subset baseline at the same images-per-class under the same protocol, because protocols move
accuracies by 5-10 points and a number without its baseline cannot be read.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch

from ..data import ImageSet, real_subset
from ..data.condensed import decode
from ..errors import BadInputError, MismatchError
from ..models import create_model
from .distributed import local_device, warn_once, world
from .loop import accuracy, train_classifier
from .protocols import Protocol, get_protocol
from .seeding import derive_seed
from ..runtime import precision_name, resolve_device, resolve_precision

__all__ = ["EvalReport", "evaluate", "evaluate_real_subset", "check_compatible", "check_teacher"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof = 0, as the DC/DSA/IDC papers report; 0 for one value)."""
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


class Accuracies:
    """``mean`` and ``std`` (ddof = 0) of a result's ``accuracies``: one definition for every report."""

    accuracies: list[float]

    @property
    def mean(self) -> float:
        return mean_std(self.accuracies)[0]

    @property
    def std(self) -> float:
        return mean_std(self.accuracies)[1]


@dataclass
class EvalReport(Accuracies):
    """Accuracies (fractions) of fresh networks, one per seed, and their summary.

    ``std`` is the population standard deviation (ddof = 0), as in the DC/DSA/IDC papers.
    """

    train: str
    test: str
    protocol: str
    model: str
    n_train: int
    ipc: int | None
    seeds: list[int]
    accuracies: list[float]
    seconds: float
    baseline: "EvalReport | None" = None
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = self.mean, self.std
        d["baseline"] = self.baseline.to_dict() if self.baseline is not None else None
        return d


def check_compatible(train: ImageSet, test: ImageSet) -> None:
    """Raise :class:`MismatchError` when a network trained on ``train`` cannot be tested on ``test``."""
    if train.channels != test.channels:
        raise MismatchError(
            f"training set {train.name!r} has {train.channels} channel(s), test set {test.name!r} has {test.channels}"
        )
    if train.shape[1:] != test.shape[1:]:
        raise MismatchError(
            f"training images are {train.shape[1]}x{train.shape[2]}, test images {test.shape[1]}x{test.shape[2]}; "
            "resize one of them"
        )
    if train.num_classes != test.num_classes:
        raise MismatchError(
            f"training set has {train.num_classes} classes, test set {test.num_classes}; they must share a label space"
        )


def _run_seeds(
    make_train: Callable[[int], ImageSet],
    test: ImageSet,
    *,
    protocol: Protocol,
    seeds: Sequence[int],
    device: str | torch.device,
    progress: bool | None,
    label: str,
    compile: bool = False,
    teacher: torch.nn.Module | None = None,
) -> tuple[list[float], float, ImageSet]:
    accs: list[float] = []
    t0 = time.perf_counter()
    first: ImageSet | None = decode(make_train(seeds[0]))
    check_compatible(first, test)
    w = world(device)
    device = local_device(device)
    if teacher is not None:
        check_teacher(teacher, first)
        teacher = teacher.to(device).eval()
    if w.distributed:  # under torchrun: a contiguous block of the seeds per rank, gathered in seed order
        warn_once(w, w.idle_note(len(seeds), "seeds"))
        progress = progress if w.is_main else False
    for s in [seeds[i] for i in w.mine(len(seeds))]:
        train = first if s == seeds[0] else decode(make_train(s))
        check_compatible(train, test)
        net = create_model(
            protocol.model,
            channels=train.channels,
            num_classes=train.num_classes,
            image_size=tuple(train.shape[1:]),
            seed=derive_seed(s, "init"),
            **protocol.model_options,
        ).to(device)
        train_classifier(net, train, protocol=protocol, seed=s, progress=progress, desc=f"{label} seed {s}",
                         compile=compile, teacher=teacher)
        accs.append(accuracy(net, test, autocast=resolve_precision(protocol.precision, device)))
    if w.distributed:
        accs = [a for part in w.gather_objects(accs) for a in part]
    return accs, time.perf_counter() - t0, first


def resolved_protocol(protocol: str | Protocol, device: str | torch.device) -> Protocol:
    """``protocol`` with ``precision="auto"`` replaced by what it computes in on ``device`` (bf16 or
    fp32), so that a report says which arithmetic its networks trained in."""
    p = get_protocol(protocol)
    return p if p.precision != "auto" else p.with_overrides(precision=precision_name("auto", device))


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise BadInputError(f"seeds must be >= 1, got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out:
        raise BadInputError("seeds: empty list")
    return out


def evaluate_real_subset(
    real: ImageSet,
    test: ImageSet,
    *,
    ipc: int,
    protocol: str | Protocol = "quick",
    seeds: int | Sequence[int] = 3,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    compile: bool = False,
    teacher: torch.nn.Module | None = None,
) -> EvalReport:
    """Random real subsets at ``ipc`` (a different subset per seed), each trained and tested.

    ``compile``, ``teacher``: as in :func:`evaluate`."""
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    p = resolved_protocol(protocol, device)
    seed_list = _seed_list(seeds)
    real_subset(real, ipc, seed=0)  # validate ipc against the class sizes before any training
    accs, secs, first = _run_seeds(
        lambda s: real_subset(real, ipc, seed=derive_seed(s, "subset")), test,
        protocol=p, seeds=seed_list, device=device, progress=progress, label=f"random ipc{ipc}", compile=compile,
        teacher=_teacher_for(p, teacher),
    )
    return EvalReport(
        train=f"random-real({real.name}, ipc={ipc})", test=test.name, protocol=p.label(), model=p.model,
        n_train=len(first), ipc=ipc, seeds=seed_list, accuracies=accs, seconds=secs,
        settings={"protocol": p.to_dict()},
    )


def evaluate(
    train: ImageSet,
    test: ImageSet,
    *,
    protocol: str | Protocol = "quick",
    seeds: int | Sequence[int] = 3,
    baseline_from: ImageSet | None = None,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    compile: bool = False,
    teacher: torch.nn.Module | None = None,
) -> EvalReport:
    """Train one fresh network per seed on ``train`` and report test accuracy.

    Parameters
    ----------
    train : the training set (condensed, pruned or real). A multi-formation set
        (``meta['factor'] > 1``) is decoded first.
    test : the test set (original images).
    protocol : name (``dc``, ``dsa``, ``idc``, ``quick``) or a :class:`Protocol`.
    seeds : number of seeds (0..n-1) or an explicit list.
    baseline_from : the real training set; when given, the random-real-subset baseline at
        the same images per class (stored images per class × f²) is evaluated under the same
        protocol and seeds and attached as ``report.baseline``. The protocol's ``precision`` (fp32,
        the default; bf16; auto) sets the arithmetic of training and the test pass: bf16 autocast
        trains and tests 1.6-1.9x faster on a CPU with AMX/AVX512-BF16 (``benchmarks/eval_precision.py``) and
        its accuracies agree with fp32 statistically, not bit for bit; the report's protocol label
        names it (``quick@bf16``).
    compile : train through ``torch.compile`` (one compile serves every network of the evaluation).
        Off by default: on a 2-core CPU a cold compile costs tens of seconds, small evaluations lose
        (IPC 1, 5 seeds: 0.69x) and long ones gained 0.86x-1.41x in two runs
        (``benchmarks/eval_compile.py``). Compiled and eager training agree up to float rounding,
        so accuracies agree statistically, not in every bit.
    teacher : the network whose outputs label each training batch when the protocol's ``labels`` is
        a soft-label loss (``protocol.with_overrides(labels="kl")``; :mod:`simplebits.train.soft`);
        required then, and the random-real baseline is labelled by the same teacher. It must take
        the set's images and have its classes. :func:`simplebits.train.full_data` trains one on the
        whole real training set and caches it.
    """
    device = resolve_device(device, setting="device")  # "auto" (the default): cuda when available
    p = resolved_protocol(protocol, device)
    seed_list = _seed_list(seeds)
    teacher = _teacher_for(p, teacher)
    accs, secs, decoded = _run_seeds(lambda s: train, test, protocol=p, seeds=seed_list, device=device,
                                     progress=progress, label=train.name, compile=compile, teacher=teacher)
    report = EvalReport(
        train=train.name, test=test.name, protocol=p.label(), model=p.model, n_train=len(decoded),
        ipc=decoded.ipc(), seeds=seed_list, accuracies=accs, seconds=secs, settings={"protocol": p.to_dict()},
    )
    if baseline_from is not None:
        ipc = decoded.ipc()
        if ipc is None:
            raise BadInputError(
                f"{train.name!r} holds unequal numbers of images per class {decoded.counts()}; "
                "a random-real baseline needs a fixed images-per-class"
            )
        report.baseline = evaluate_real_subset(baseline_from, test, ipc=ipc, protocol=p, seeds=seed_list,
                                               device=device, progress=progress, compile=compile, teacher=teacher)
    return report


def _teacher_for(p: Protocol, teacher: torch.nn.Module | None) -> torch.nn.Module | None:
    """The teacher when the protocol uses soft labels; a clear error when one is missing or not used."""
    if p.soft and teacher is None:
        raise BadInputError(f"protocol {p.label()} trains on soft labels: pass a teacher network (e.g. "
                            "full_data(...).teacher(), or --teacher FILE on the command line)")
    if not p.soft and teacher is not None:
        raise BadInputError(f"a teacher was given but protocol {p.label()} trains on hard labels; "
                            "use soft labels (kl, sce or mse) or leave the teacher out")
    return teacher


def check_teacher(teacher: torch.nn.Module, train: ImageSet) -> None:
    """Raise :class:`MismatchError` unless ``teacher`` takes ``train``'s images and scores its classes."""
    try:
        p = next(iter(teacher.parameters()), None)
        was = teacher.training
        teacher.eval()
        with torch.no_grad():
            out = teacher(train.images[:2].to(p.device if p is not None else "cpu"))
        teacher.train(was)
    except RuntimeError as e:
        raise MismatchError(f"the teacher cannot take {train.name!r}'s {train.channels}x{train.shape[1]}x"
                            f"{train.shape[2]} images ({str(e).splitlines()[0]}); use a teacher trained on "
                            "images of this size") from None
    if out.ndim != 2 or out.shape[1] != train.num_classes:
        raise MismatchError(f"the teacher scores {tuple(out.shape[1:])} classes but {train.name!r} has "
                            f"{train.num_classes}; use a teacher trained on the same label space")
