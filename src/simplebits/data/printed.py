"""Printed digits: house-number-like digit crops rendered from real fonts (an SVHN stand-in).

SVHN cannot be obtained on the machines this project runs on, but the continual-learning
experiment of the paper (S12) needs a first digit domain that differs from handwriting.
This source renders the ten digits from the TrueType fonts that ship inside matplotlib
(DejaVu Sans / Sans Mono / Serif and STIX General, each in regular, bold, italic and bold
italic: 16 faces) with the nuisances that make SVHN harder than MNIST:

1. a random font face, size (60-90 % of the crop height), rotation (±12°), shear-free
   offset (±12 % of the side) and stroke width (0-2 px at 4x resolution);
2. with probability 0.5, neighbouring digits on both sides, partly cut off by the crop, as
   in SVHN's "cropped digits" (the label is the centre digit);
3. random background and foreground intensities with a contrast of at least 0.3 (dark on
   light or light on dark), a horizontal or vertical intensity gradient, and Gaussian
   pixel noise (std 0-0.08);
4. rendering at 4x the output size, then Pillow's ``Image.BOX`` reduction (an exact area
   average, so the digit edges are antialiased as a camera's would be).

Everything is drawn from a generator seeded by the split, so a split is the same set of
images on every machine with the same fonts. Train and test use the same fonts and the
same nuisance distribution (different draws), as SVHN's splits do.

The fonts are found through ``importlib.util.find_spec("matplotlib")``; matplotlib itself
is not imported.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import BadInputError, NotFoundError
from .imageset import ImageSet

__all__ = ["printed_digits", "font_files", "FONTS", "SPLIT_SIZES"]

#: matplotlib's bundled faces that have the ten digits.
FONTS: tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
)
#: images per split (500/class train, 100/class test), like mnist-5k's train split.
SPLIT_SIZES = {"train": 5000, "test": 1000}
_SPLIT_SEEDS = {"train": 20211, "test": 20212}
_SCALE = 4


def font_files() -> list[Path]:
    """Paths of :data:`FONTS` inside the installed matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("printed-digits renders matplotlib's bundled fonts: pip install matplotlib")
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "mpl-data" / "fonts" / "ttf"
        found = [d / f for f in FONTS if (d / f).is_file()]
        if found:
            return found
    raise NotFoundError("printed-digits: matplotlib is installed but its mpl-data/fonts/ttf folder has none of "
                        "the DejaVu/STIX fonts; reinstall matplotlib")


def _render(rng: np.random.Generator, label: int, fonts: list[Path], size: int) -> np.ndarray:
    big = size * _SCALE
    font_path = fonts[int(rng.integers(len(fonts)))]
    font = ImageFont.truetype(str(font_path), int(big * rng.uniform(0.6, 0.9)))
    if rng.random() < 0.5:  # SVHN-like neighbours, partly cut off
        text = f"{int(rng.integers(10))}{label}{int(rng.integers(10))}"
    else:
        text = str(label)
    canvas = Image.new("L", (big * 3, big * 3), 0)
    draw = ImageDraw.Draw(canvas)
    stroke = int(rng.integers(0, 3)) * _SCALE // 2
    cx = big * 1.5 + rng.uniform(-0.12, 0.12) * big
    cy = big * 1.5 + rng.uniform(-0.12, 0.12) * big
    draw.text((cx, cy), text, fill=255, font=font, anchor="mm", stroke_width=stroke, stroke_fill=255)
    canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR, center=(cx, cy))
    crop = canvas.crop((int(cx - big / 2), int(cy - big / 2), int(cx - big / 2) + big, int(cy - big / 2) + big))
    mask = np.asarray(crop.resize((size, size), Image.BOX), dtype=np.float32) / 255.0
    bg = rng.uniform(0.0, 1.0)
    contrast = rng.uniform(0.3, 1.0) * (1 if rng.random() < 0.5 else -1)
    fg = bg + contrast if 0.0 <= bg + contrast <= 1.0 else bg - contrast
    fg = float(np.clip(fg, 0.0, 1.0))
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32) * rng.uniform(0.0, 0.15)
    grad = ramp[None, :] if rng.random() < 0.5 else ramp[:, None]
    img = bg + grad + (fg - bg) * mask + rng.normal(0.0, rng.uniform(0.0, 0.08), (size, size))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _generate(split: str, n: int, size: int, fonts: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_SPLIT_SEEDS[split])
    labels = np.arange(n, dtype=np.int64) % 10
    rng.shuffle(labels)
    paths = [Path(f) for f in fonts]
    images = np.stack([_render(rng, int(y), paths, size) for y in labels])[:, None]
    # 8-bit like every other source (the density models score 8-bit images)
    images = np.round(images * 255.0) / 255.0
    images.setflags(write=False)
    labels.setflags(write=False)
    return images.astype(np.float32), labels


def printed_digits(*, split: str = "train", n: int | None = None, size: int = 28) -> ImageSet:
    """``n`` printed digit images (default :data:`SPLIT_SIZES`), ``1 x size x size``, labels 0-9."""
    if split not in SPLIT_SIZES:
        raise BadInputError(f"printed-digits has splits {sorted(SPLIT_SIZES)}, not {split!r}")
    n = SPLIT_SIZES[split] if n is None else int(n)
    if n < 10 or size < 8:
        raise BadInputError(f"printed-digits needs n >= 10 and size >= 8; got n={n}, size={size}")
    fonts = tuple(str(p) for p in font_files())
    images, labels = _generate(split, n, int(size), fonts)
    return ImageSet.create(images.copy(), labels.copy(), tuple(str(i) for i in range(10)),
                           meta={"generated": "printed-digits", "fonts": len(fonts), "flip_ok": False},
                           where=f"printed-digits:{split}")
