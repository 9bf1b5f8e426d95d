"""One entry point for "whatever the user points at": a data set spec, an image file, a
folder, an ``.npz`` or a condensed-set file (ours or another tool's)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import BadInputError, NotFoundError
from .condensed import import_condensed
from .folder import IMAGE_EXTENSIONS, load_image_files, load_image_folder
from .imageset import ImageSet
from .npz import load_npz
from .registry import is_dataset_spec, load_dataset, parse_spec

__all__ = ["load_images", "is_path_like", "is_condensed_path", "default_test_spec"]

_SET_SUFFIXES = (".safetensors", ".pt", ".pth")


def is_path_like(arg: str) -> bool:
    """True when ``arg`` names a file or folder rather than a data set spec."""
    from .registry import list_sources

    head, sep, _ = arg.partition(":")
    if sep and head in {src.name for src in list_sources()}:
        return False
    p = Path(arg)
    return p.exists() or p.suffix.lower() in _SET_SUFFIXES + (".npz",) + IMAGE_EXTENSIONS or os.sep in arg and ":" not in arg


def is_condensed_path(arg: str | os.PathLike, format: str | None = None) -> bool:  # noqa: A002
    """True when :func:`load_images` reads the path ``arg`` as a condensed set (ours, another tool's
    .pt, a KIP .npz with ``format="kip"``) rather than as real images (a folder, an ``.npz`` of
    images and labels, image files)."""
    suffix = Path(arg).suffix.lower()
    return suffix in _SET_SUFFIXES or (suffix == ".npz" and format == "kip")


def default_test_spec(spec: str | os.PathLike | None) -> str | None:
    """The test set that goes with the training set ``spec`` when the user names none, or None
    when that cannot be told (the commands then ask for ``--test``):

    - a registered data set with a test split: that split (``fashion-mnist``,
      ``fashion-mnist:train`` -> ``fashion-mnist:test``);
    - a folder with ``train/`` and ``test/`` subfolders, given as ``DIR`` or ``image-folder:DIR``:
      ``DIR/test`` (the training side reads ``DIR/train``);
    - None for anything else: a file (``.npz``, a condensed set), a flat class folder, ``idx:``,
      an unknown name, and a spec that already names another split than ``train``
      (``fashion-mnist:test``), so that no command tests on its own training images.
    """
    if not spec:
        return None
    s = str(spec)
    p = Path(s.split(":", 1)[1] if s.startswith("image-folder:") else s)
    if p.is_dir():  # read as a folder whatever its name, as load_images does
        return str(p / "test") if (p / "train").is_dir() and (p / "test").is_dir() else None
    if not is_dataset_spec(s):
        return None
    info, split, _ = parse_spec(s)
    if info.takes_path or "test" not in info.splits or split not in (None, "train"):
        return None
    return f"{info.name}:test"


def _images_only(paths: Sequence[Path], name: str, size: Any, channels: int | None) -> ImageSet:
    x = load_image_files(paths, channels=channels, size=size)
    return ImageSet.create(x, [0] * x.shape[0], ["image"], {"name": name, "found_at": name})


def load_images(
    arg: str | os.PathLike,
    *,
    split: str = "train",
    root: str | os.PathLike | None = None,
    size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    **import_options: Any,
) -> ImageSet:
    """Load ``arg`` as an :class:`ImageSet`.

    - a folder of class subfolders -> :func:`load_image_folder`; a flat folder of images ->
      all its images (one class); a folder with neither -> error;
    - ``*.npz`` -> ``images``/``labels`` arrays; ``*.safetensors|*.pt`` -> condensed set
      (``import_options`` go to :func:`import_condensed`); an image file -> that image;
    - anything else -> a data set spec for :func:`load_dataset`. An ``image-folder:DIR`` spec reads
      like the folder's path: a folder without ``train/`` and ``test/`` subfolders is one set, read
      whole whatever ``split`` (``--test image-folder:DIR`` names the test set itself).
      :func:`load_dataset` itself keeps refusing ``split="test"`` for such a folder, so that code
      which derives a test split from a training spec never tests on the training images.
    """
    s = str(arg)
    p = Path(s)
    if p.is_dir():
        subdirs = [d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if subdirs:
            ds = load_image_folder(p, split=None if not (p / "train").is_dir() else split, channels=channels, size=size)
            # named by the folder it was read from (DIR, or DIR/test for a train/test layout), not "data"
            return ds if "name" in ds.meta else ds.with_meta(name=str(ds.meta.get("found_at", s)))
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        if not files:
            raise BadInputError(f"folder {p} holds no images")
        return _images_only(files, s, size, channels)
    if p.is_file():
        suf = p.suffix.lower()
        if suf == ".npz":
            if import_options.get("format") == "kip":
                return import_condensed(p, **import_options)
            ds = load_npz(p)
            return ds if "name" in ds.meta else ds.with_meta(name=s)
        if suf in _SET_SUFFIXES:
            return import_condensed(p, **import_options)
        return _images_only([p], s, size, channels)
    if is_path_like(s):
        raise NotFoundError(f"{s} not found (no such file or folder)")
    if s.startswith("image-folder:"):
        folder = Path(s.split(":", 1)[1])
        if folder.is_dir() and not (folder / "train").is_dir() and not (folder / "test").is_dir():
            split = "train"  # the image-folder source's name for "the folder as it is"
        if folder.is_dir():  # what load_dataset's source reads, with the size and channels a path is read with
            ds = load_image_folder(folder, split=split, channels=channels, size=size)
            return ds.with_meta(name=s, source="image-folder", split=ds.meta.get("split", split))
    return load_dataset(s, split=split, root=root)
