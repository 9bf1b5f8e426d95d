"""Patches of natural photographs: a stand-in for "natural images" (CIFAR / Tiny Images).

CIFAR and 80M Tiny Images cannot be obtained on the machines this project runs on, but
scikit-image and scikit-learn ship a few dozen real photographs inside their packages. This
module crops many small square patches from them at several scales.

What a patch is
---------------
1. A photo is drawn (every photo of the split about equally often: a seeded shuffle of
   ``0, 1, ..., n_photos-1, 0, 1, ...``, so every photo appears once ``n >= n_photos``).
2. A crop side is drawn uniformly from :data:`CROP_SIDES` (32 ... 192 px), limited to the
   sides that fit in that photo, and a uniformly random position.
3. The crop is resized to ``size x size`` with Pillow's ``Image.BOX`` filter (the exact
   area average of the source pixels each output pixel covers, so a 4x reduction averages
   4x4 blocks and no aliasing is introduced; a crop *smaller* than ``size``, possible only for
   ``size > 32``, is enlarged with ``Image.BICUBIC`` instead).
4. Half of the patches are flipped left-right.

Colour: for ``channels=3`` gray photos (camera, moon, coins, brick, grass, gravel) are
repeated to RGB; for ``channels=1`` colour photos are converted with Pillow's ``"L"`` mode
(ITU-R 601-2 luma, ``L = R*299/1000 + G*587/1000 + B*114/1000``). Both conversions happen
once per photo, before cropping.

Splits never share a photo: :data:`TEST_PHOTOS` (coffee, rocket, flower) are the test split,
the rest the train split.

Labels: **not a classification task; labels name the source photo** (``classes`` are the
names of the split's photos, so train and test have different class lists). They are there
for provenance and to satisfy :class:`ImageSet`; do not train a classifier on them.

Only real photographs are used. Drawings, text, binary and synthetic images shipped next to
them (page, text, horse, logo, chessboards, phantom, cell, ...) are not. Files are found
through ``importlib.util.find_spec`` and read with Pillow: ``skimage.data`` is never imported
(it may try to fetch files over the network).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import BadInputError, NotFoundError
from .folder import checked_image
from .imageset import ImageSet

__all__ = ["photo_patches", "photo_files", "PHOTOS", "TEST_PHOTOS", "CROP_SIDES", "MIN_PHOTOS",
           "WALLPAPER_PHOTOS", "wallpaper_files", "PatchStream", "photo_stream"]

#: (name, package, file name inside the package's image folder), in class order.
PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "skimage", "astronaut.png"),
    ("camera", "skimage", "camera.png"),
    ("chelsea", "skimage", "chelsea.png"),
    ("coffee", "skimage", "coffee.png"),
    ("rocket", "skimage", "rocket.jpg"),
    ("motorcycle_left", "skimage", "motorcycle_left.png"),
    ("motorcycle_right", "skimage", "motorcycle_right.png"),
    ("brick", "skimage", "brick.png"),
    ("grass", "skimage", "grass.png"),
    ("gravel", "skimage", "gravel.png"),
    ("moon", "skimage", "moon.png"),
    ("coins", "skimage", "coins.png"),
    ("hubble_deep_field", "skimage", "hubble_deep_field.jpg"),
    ("retina", "skimage", "retina.jpg"),
    ("china", "sklearn", "china.jpg"),
    ("flower", "sklearn", "flower.jpg"),
)
#: Photos held out for the test split (never used for train patches).
TEST_PHOTOS = frozenset({"coffee", "rocket", "flower"})
#: Crop sides in pixels, drawn uniformly (among those that fit in the photo).
CROP_SIDES = (32, 48, 64, 96, 128, 192)
#: Fewest photos (both splits together) accepted before refusing to build the source.
MIN_PHOTOS = 6
DEFAULT_N = {"train": 20000, "test": 2000}
_IMAGE_DIRS = {"skimage": ("data",), "sklearn": ("datasets", "images")}


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc).joinpath(*_IMAGE_DIRS[package])
        if d.is_dir():
            return d
    return None


def photo_files() -> dict[str, Path]:
    """Name -> path of every bundled photo that is present (missing ones are skipped)."""
    dirs = {pkg: _package_dir(pkg) for pkg in _IMAGE_DIRS}
    out: dict[str, Path] = {}
    for name, pkg, fname in PHOTOS:
        d = dirs[pkg]
        if d is not None and (d / fname).is_file():
            out[name] = d / fname
    if len(out) < MIN_PHOTOS:
        raise NotFoundError(
            f"photo-patches: found only {len(out)} of the bundled photographs "
            f"({', '.join(out) or 'none'}); at least {MIN_PHOTOS} are needed. "
            "Fix: pip install scikit-image scikit-learn (they ship the photos)"
        )
    return out


@functools.lru_cache(maxsize=8)
def _load_photos(split: str, mode: str) -> tuple[tuple[str, ...], tuple[Image.Image, ...], tuple[str, ...]]:
    """Names, decoded Pillow images (in ``mode``) and paths of the split's photos. Cached."""
    files = photo_files()
    names = [n for n, _, _ in PHOTOS if n in files and ((n in TEST_PHOTOS) == (split == "test"))]
    if not names:
        raise NotFoundError(f"photo-patches: none of the {split} photos is installed; reinstall scikit-image / scikit-learn")
    imgs = []
    for n in names:
        with checked_image(files[n]) as im:  # size-checked before decoding; failures name the file
            im.load()
            imgs.append(im.convert(mode))  # L -> RGB repeats the gray; RGB -> L is ITU-R 601 luma
    return tuple(names), tuple(imgs), tuple(str(files[n]) for n in names)


def _check_int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < lo:
        raise BadInputError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _draw_crops(photos: tuple[Image.Image, ...], n: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1, 2 and 4 of the module doc, in this order from ``rng`` (the order fixes which
    patches a seed gives): the photo of each patch, its crop box ``(x, y, side)`` and whether it
    is flipped."""
    which = rng.permutation(np.arange(n) % len(photos))
    boxes = np.empty((n, 3), dtype=np.int64)  # x, y, side
    for p, im in enumerate(photos):
        sel = np.flatnonzero(which == p)
        w, h = im.size
        fit = np.array([s for s in CROP_SIDES if s <= min(w, h)] or [min(w, h)])
        s = fit[rng.integers(0, len(fit), size=sel.size)]
        boxes[sel, 2] = s
        boxes[sel, 0] = rng.integers(0, w - s + 1)  # high is exclusive: positions 0 .. w - s
        boxes[sel, 1] = rng.integers(0, h - s + 1)
    flip = rng.random(n) < 0.5
    return which, boxes, flip


def _crop_and_resize(photos: tuple[Image.Image, ...], which: np.ndarray, boxes: np.ndarray, size: int,
                     channels: int) -> np.ndarray:
    """Step 3 of the module doc: each crop resized to ``size``, as uint8 (n, size, size, channels)."""
    out = np.empty((len(which), size, size, channels), dtype=np.uint8)
    view = out[..., 0] if channels == 1 else out
    for i, (x, y, s) in enumerate(boxes.tolist()):
        resample = Image.BOX if s >= size else Image.BICUBIC
        view[i] = np.asarray(photos[which[i]].resize((size, size), resample, box=(x, y, x + s, y + s)))
    return out


def photo_patches(*, split: str = "train", n: int | None = None, size: int = 32, channels: int = 3,
                  seed: int = 0) -> ImageSet:
    """Crop ``n`` square patches from the bundled natural photographs (see the module doc).

    Parameters
    ----------
    split : ``"train"`` (13 photos) or ``"test"`` (coffee, rocket, flower); no photo is in both.
    n : number of patches; default 20000 for train, 2000 for test.
    size : side of the output patches in pixels (default 32).
    channels : 3 (RGB; gray photos repeated) or 1 (Pillow "L" luma).
    seed : the same (seed, split, n, size, channels) always gives identical patches.

    Returns an :class:`ImageSet` of float32 (n, channels, size, size) in [0, 1]. Labels index
    the source photo; this is not a classification task.
    """
    if split not in DEFAULT_N:
        raise BadInputError(f"photo-patches has no split {split!r}; valid: train, test")
    n = DEFAULT_N[split] if n is None else _check_int("n", n, 1)
    size = _check_int("size", size, 1)
    seed = _check_int("seed", seed, 0)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise BadInputError(f"channels must be 1 or 3, got {channels!r}")
    names, photos, paths = _load_photos(split, "L" if channels == 1 else "RGB")

    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    which, boxes, flip = _draw_crops(photos, n, rng)
    out = _crop_and_resize(photos, which, boxes, size, channels)
    out[flip] = out[flip, :, ::-1]

    images = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
    meta = {
        "name": f"photo-patches{'-gray' if channels == 1 else ''}:{split}",
        "found_at": str(Path(paths[0]).parent),
        "photos": list(names),
        "split": split,
        "seed": seed,
        "patch_size": size,
        "crop_sides": list(CROP_SIDES),
        "resample": "box (area average); bicubic when enlarging",
        "flip_ok": True,
        "note": "not a classification task; labels name the source photo",
    }
    return ImageSet.create(images, torch.from_numpy(which), names, meta=meta, allow_empty_class=True,
                           where=f"photo-patches:{split}")


# -- many large photographs, streamed ---------------------------------------------------------------

#: Real photographs in Debian's desktop-background packages (checked by eye: the packages also hold
#: drawings, renders and gradients, which are left out). (name, Debian package, path, held out).
#: Held-out photos give test patches only.
WALLPAPER_PHOTOS: tuple[tuple[str, str, str, bool], ...] = tuple(
    (name, "mate-backgrounds", f"/usr/share/backgrounds/mate/nature/{name}.jpg", name in ("LadyBird", "Storm"))
    for name in ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
                 "Storm", "TwoWings", "Wood", "YellowFlower")
) + (
    ("Kleiber", "lomiri-wallpapers-20.04", "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg", False),
    ("Infinite-Sea", "lomiri-wallpapers-20.04", "/usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg", False),
) + tuple(  # the photographs of lomiri-wallpapers-16.04 (left out: umang, a render; analogpattern, a texture)
    (stem.split("_by_")[0], "lomiri-wallpapers-16.04", f"/usr/share/backgrounds/{stem}.jpg", False)
    for stem in ("Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace", "Picture_1A_by_freespace",
                 "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi", "free_by_Peter_Nerlich",
                 "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi",
                 "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi")
)


def wallpaper_files(split: str = "train", *, require: bool = True) -> dict[str, Path]:
    """Name -> path of the installed :data:`WALLPAPER_PHOTOS` of ``split`` ("train" or "test").

    With ``require`` a missing package is an error that names the ``apt-get`` line to fix it."""
    if split not in DEFAULT_N:
        raise BadInputError(f"no split {split!r}; valid: train, test")
    out, missing = {}, set()
    for name, pkg, path, held_out in WALLPAPER_PHOTOS:
        if held_out != (split == "test"):
            continue
        if Path(path).is_file():
            out[name] = Path(path)
        else:
            missing.add(pkg)
    if missing and require:
        raise NotFoundError(f"the wallpaper photographs are not installed (missing: {', '.join(sorted(missing))}). "
                            f"Fix: sudo apt-get install {' '.join(sorted(missing))}")
    return out


def _stream_sides(w: int, h: int, size: int) -> np.ndarray:
    """Crop sides for a photo of w x h: 8 sides spaced evenly in log scale from ``size`` to half
    the shorter side (a 2560 px photo gives 32 ... 800 px crops: textures to whole objects)."""
    hi = max(size, min(w, h) // 2)
    return np.unique(np.round(np.geomspace(size, hi, 8)).astype(np.int64))


class PatchStream:
    """Fresh natural patches every epoch from many large photographs, one photo decoded at a time.

    ``stream.epoch(e)`` returns an :class:`ImageSet` of ``per_epoch`` patches for epoch ``e``: each
    photo gets an equal share (a seeded shuffle as in :func:`photo_patches`); the photo is opened,
    its patches are cut at random positions and at 8 scales from ``size`` to half its shorter side
    (:func:`_stream_sides`, area-average resampling), half flipped, and the photo is closed before the
    next is opened. Memory: one decoded photo plus the epoch's patches as uint8 (30,000 RGB 32x32
    patches are 92 MB), never all photos. The same (paths, seed, epoch) give identical patches, so
    a resumed training run sees the same data.
    """

    def __init__(self, paths: dict[str, Path] | list[Path], *, per_epoch: int = 30000, size: int = 32,
                 channels: int = 3, seed: int = 0, name: str = "photo-stream"):
        self.paths = {Path(p).stem: Path(p) for p in paths} if isinstance(paths, list) else dict(paths)
        if not self.paths:
            raise BadInputError("a patch stream needs at least one photograph")
        for k, p in self.paths.items():
            if not p.is_file():
                raise NotFoundError(f"photo {k}: {p} does not exist")
        self.per_epoch = _check_int("per_epoch", per_epoch, 1)
        self.size = _check_int("size", size, 1)
        if channels not in (1, 3) or isinstance(channels, bool):
            raise BadInputError(f"channels must be 1 or 3, got {channels!r}")
        self.channels, self.seed, self._name = channels, _check_int("seed", seed, 0), name

    @property
    def name(self) -> str:
        return self._name

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def __len__(self) -> int:
        return self.per_epoch

    def epoch(self, e: int) -> ImageSet:
        names = sorted(self.paths)
        k, n, size = len(names), self.per_epoch, self.size
        rng = np.random.default_rng([self.seed, 7, int(e)])
        which = rng.permutation(np.arange(n) % k)
        flip = rng.random(n) < 0.5
        out = np.empty((n, size, size, self.channels), dtype=np.uint8)
        view = out[..., 0] if self.channels == 1 else out
        mode = "L" if self.channels == 1 else "RGB"
        for p, nm in enumerate(names):
            sel = np.flatnonzero(which == p)
            if sel.size == 0:
                continue
            try:
                with checked_image(self.paths[nm]) as src:  # size-checked before decoding
                    im = src.convert(mode)
            except BadInputError as err:
                raise BadInputError(f"photo {nm} cannot be read: {err}") from None
            w, h = im.size
            fit = _stream_sides(w, h, size)
            sides = fit[rng.integers(0, len(fit), size=sel.size)]
            xs = rng.integers(0, w - sides + 1)
            ys = rng.integers(0, h - sides + 1)
            for i, s, x, y in zip(sel, sides, xs, ys):
                s, x, y = int(s), int(x), int(y)
                view[i] = np.asarray(im.resize((size, size), Image.BOX, box=(x, y, x + s, y + s)))
            del im
        out[flip] = out[flip, :, ::-1]
        images = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
        meta = {"name": self._name, "photos": names, "epoch": int(e), "seed": self.seed,
                "note": "not a classification task; labels name the source photo"}
        return ImageSet.create(images, torch.from_numpy(which), tuple(names), meta=meta, allow_empty_class=True,
                               where=self._name)


def photo_stream(split: str = "train", *, per_epoch: int = 30000) -> PatchStream:
    """The RGB photographs of ``split`` as ``rgb32`` trains and is scored on them: for "train" the
    bundled training photos and the wallpaper training photos (seed 0), for "test" the held-out
    wallpaper photos alone (seed 1; the bundled test photos are ``photo-patches:test``). A missing
    wallpaper package is an error that names the ``apt-get`` line."""
    wall = wallpaper_files(split)
    bundled = {n: p for n, p in photo_files().items() if n not in TEST_PHOTOS} if split == "train" else {}
    return PatchStream({**bundled, **wall}, per_epoch=per_epoch, channels=3, seed=0 if split == "train" else 1,
                       name=f"photo-stream:{split}")
