"""A task sequence: data sets brought to one image format, their heads, their replay sets.

Format: every task's images (and its replay set's) are converted to ``channels`` (gray repeated
to RGB, RGB to luma) and resized to ``image_size`` with antialiased bilinear interpolation
(USPS 16x16 and sklearn's 8x8 digits are upscaled, as Zhao & Bilen bring USPS to the SVHN size).

Heads: when every task has the same class names (the digit domains: SVHN, MNIST, USPS all
name their classes 0-9) the network has one shared 10-way head, so an old task is tested with
the same outputs a new task trains. Otherwise each task gets its own block of outputs in one
linear layer (a multi-head network, the usual task-incremental setting): a task's images are
trained and tested on its block only, with the task known at test time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..data import ImageSet, fingerprint, flip_allowed, load_dataset, real_subset, resize, to_channels
from ..data.condensed import decode
from ..data.inputs import load_images
from ..errors import BadInputError, MismatchError
from .config import ContinualConfig

__all__ = ["Task", "TaskSequence", "build_tasks", "load_replay", "fingerprint"]


@dataclass
class Task:
    name: str  # the data set spec the user gave
    train: ImageSet
    test: ImageSet
    native_shape: tuple[int, int, int]  # (C, H, W) before conversion
    offset: int  # first output of this task's head
    num_classes: int


@dataclass
class TaskSequence:
    tasks: list[Task]
    head: str  # "shared" | "per-task"
    channels: int
    image_size: int
    flip_ok: bool

    @property
    def num_outputs(self) -> int:
        return max(t.offset + t.num_classes for t in self.tasks)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def mask(self, device: torch.device | None = None) -> torch.Tensor:
        """(T, K) bool: which outputs belong to each task's head."""
        m = torch.zeros(len(self.tasks), self.num_outputs, dtype=torch.bool)
        for i, t in enumerate(self.tasks):
            m[i, t.offset : t.offset + t.num_classes] = True
        return m.to(device) if device is not None else m


def _convert(ds: ImageSet, channels: int, size: int) -> ImageSet:
    return resize(to_channels(ds, channels), size, mode="bilinear")


def build_tasks(
    specs: Sequence[str],
    config: ContinualConfig,
    *,
    root: str | os.PathLike | None = None,
    seed: int = 0,
) -> TaskSequence:
    """Load each task's train and test split and bring them to one format."""
    specs = [s.strip() for s in specs if s and s.strip()]
    if len(specs) < 2:
        raise BadInputError(f"continual learning needs at least two tasks (--tasks A,B[,C...]); got {len(specs)}: "
                            f"{','.join(specs) or '(none)'}")
    if len(set(specs)) != len(specs):
        raise BadInputError(f"a task appears twice in {','.join(specs)}; give each data set once")
    loaded = []
    for s in specs:
        train = load_dataset(s, split="train", root=root)
        test = load_dataset(s, split="test", root=root)
        if train.shape != test.shape or train.classes != test.classes:
            raise MismatchError(f"{s}: train and test splits differ in shape or classes ({train.shape} vs {test.shape})")
        if config.max_train is not None and len(train) > config.max_train:
            per = max(1, config.max_train // train.num_classes)
            train = real_subset(train, min(per, min(train.counts())), seed=seed)
        loaded.append((s, train, test))
    channels = config.channels or (3 if any(tr.channels == 3 for _, tr, _ in loaded) else 1)
    size = config.image_size or max(max(tr.shape[1:]) for _, tr, _ in loaded)
    same = all(tr.classes == loaded[0][1].classes for _, tr, _ in loaded)
    head = config.head if config.head != "auto" else ("shared" if same else "per-task")
    if head == "shared" and not all(tr.num_classes == loaded[0][1].num_classes for _, tr, _ in loaded):
        raise MismatchError("--head shared needs every task to have the same number of classes; "
                            + ", ".join(f"{s}: {tr.num_classes}" for s, tr, _ in loaded) + "; use --head per-task")
    tasks, offset = [], 0
    for s, train, test in loaded:
        tasks.append(Task(s, _convert(train, channels, size), _convert(test, channels, size), train.shape,
                          0 if head == "shared" else offset, train.num_classes))
        offset += train.num_classes
    flip_ok = all(flip_allowed(tr) for _, tr, _ in loaded)
    return TaskSequence(tasks, head, channels, size, flip_ok)


def load_replay(path: str | os.PathLike, task: Task, seq: TaskSequence) -> tuple[ImageSet, float | None]:
    """Read the condensed set of ``task``, check it belongs to it, convert it to the sequence's
    format. Returns the set and the bpd stored in its metadata (None if it has none)."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"replay file not found: {p}; give the condensed set of task {task.name} "
                            f"(simplebits condense {task.name} --ipc 10 --out FILE)")
    ds = load_images(p)
    factor = int(ds.meta.get("factor", 1) or 1)
    ds = decode(ds) if factor > 1 else ds
    if ds.shape != task.native_shape:
        raise MismatchError(f"replay file {p} holds {'x'.join(map(str, ds.shape))} images but task {task.name} is "
                            f"{'x'.join(map(str, task.native_shape))}: pass the condensed sets in task order "
                            "(one per earlier task)")
    if ds.num_classes != task.num_classes or (ds.classes and task.train.classes and ds.classes != task.train.classes):
        raise MismatchError(f"replay file {p} has classes {list(ds.classes) or ds.num_classes} but task {task.name} "
                            f"has {list(task.train.classes)}: it is not a condensed set of this task")
    cond = ds.meta.get("condensed") or {}
    bpd = cond.get("bpd")
    return _convert(ds, seq.channels, seq.image_size), (float(bpd) if bpd is not None else None)
