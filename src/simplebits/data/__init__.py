"""Data layer: the :class:`ImageSet` type, named sources, file formats, condensed-set files.

Imports nothing else from simplebits but ``errors`` (and ``io`` for condensed-set files).
"""

from .composites import clean_mnist, interpolated, mnist_base, mnist_noise, side_by_side, side_by_side_parts, stripes
from .imageset import ImageSet, combine, fingerprint, flip_allowed, is_mnist, real_subset, resize, stratified_split, to_channels
from .registry import SourceInfo, get_source, is_dataset_spec, list_sources, load_dataset, register_source

__all__ = [
    "ImageSet",
    "combine",
    "fingerprint",
    "flip_allowed",
    "is_mnist",
    "real_subset",
    "resize",
    "stratified_split",
    "to_channels",
    "SourceInfo",
    "get_source",
    "is_dataset_spec",
    "list_sources",
    "load_dataset",
    "register_source",
    "clean_mnist",
    "interpolated",
    "mnist_base",
    "mnist_noise",
    "side_by_side",
    "side_by_side_parts",
    "stripes",
]
