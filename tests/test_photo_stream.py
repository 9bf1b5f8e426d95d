"""Training a density model on many large photographs: fresh patches streamed per epoch, one
photo decoded at a time, the same patches for the same epoch (so a resumed run is exact)."""

import numpy as np
import pytest
import torch
from PIL import Image

from simplebits.data import photos
from simplebits.data.photos import PatchStream, _stream_sides, wallpaper_files
from simplebits.density import FlowTrainConfig, GlowConfig, train_flow
from simplebits.errors import BadInputError, NotFoundError


def _photo(path, w, h, seed, fmt="JPEG"):
    """A smooth colour gradient with some texture, saved as a real JPEG/PNG file."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * (seed + 1) * 255 // w) % 256, (yy * 255 // h), rng.integers(0, 256, (h, w))], -1)
    Image.fromarray(img.astype(np.uint8)).save(path, fmt)
    return path


@pytest.fixture
def photo_dir(tmp_path):
    return {f"p{i}": _photo(tmp_path / f"p{i}.jpg", 320 + 40 * i, 240, i) for i in range(3)}


def test_stream_gives_fresh_but_reproducible_patches(photo_dir):
    s = PatchStream(photo_dir, per_epoch=60, size=16, channels=3, seed=0)
    a, a2, b = s.epoch(0), s.epoch(0), s.epoch(1)
    assert a.images.shape == (60, 3, 16, 16) and len(s) == 60 and s.shape == (3, 16, 16)
    assert 0.0 <= float(a.images.min()) and float(a.images.max()) <= 1.0
    assert torch.equal(a.images, a2.images)  # same epoch, same patches: resume is exact
    assert not torch.equal(a.images, b.images)  # a new epoch draws new patches
    assert torch.bincount(a.labels, minlength=3).tolist() == [20, 20, 20]  # every photo an equal share
    gray = PatchStream(photo_dir, per_epoch=10, size=16, channels=1).epoch(0)
    assert gray.images.shape == (10, 1, 16, 16)


def test_stream_uses_many_scales_up_to_half_the_photo():
    sides = _stream_sides(2560, 1600, 32)
    assert sides[0] == 32 and sides[-1] == 800 and len(sides) == 8
    assert (np.diff(sides) > 0).all()


def test_stream_bad_input_is_one_clear_error(tmp_path, photo_dir):
    with pytest.raises(NotFoundError, match="does not exist"):
        PatchStream({"gone": tmp_path / "gone.jpg"})
    with pytest.raises(BadInputError, match="at least one"):
        PatchStream({})
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(BadInputError, match="cannot be read"):
        PatchStream({"bad": bad}, per_epoch=4).epoch(0)
    with pytest.raises(BadInputError, match="channels"):
        PatchStream(photo_dir, channels=2)


def test_missing_wallpaper_packages_name_the_install_line(tmp_path, monkeypatch):
    monkeypatch.setattr(photos, "WALLPAPER_PHOTOS", (("A", "mate-backgrounds", str(tmp_path / "A.jpg"), False),))
    with pytest.raises(NotFoundError, match="apt-get install mate-backgrounds"):
        wallpaper_files("train")
    assert wallpaper_files("train", require=False) == {}
    _photo(tmp_path / "A.jpg", 100, 80, 0)
    assert list(wallpaper_files("train")) == ["A"] and wallpaper_files("test") == {}


def test_wallpaper_list_gives_every_photo_its_own_name_and_keeps_the_held_out_pair():
    # the stream is a name -> path dict: a repeated name would silently drop a photograph, and the
    # held-out pair is what rgb32's card and docs/density.md report as unseen photos
    names = [n for n, _, _, _ in photos.WALLPAPER_PHOTOS]
    paths = [p for _, _, p, _ in photos.WALLPAPER_PHOTOS]
    assert len(set(names)) == len(names) and len(set(paths)) == len(paths)
    assert sorted(n for n, _, _, held in photos.WALLPAPER_PHOTOS if held) == ["LadyBird", "Storm"]


def test_photo_stream_trains_on_training_photos_and_tests_on_held_out_wallpapers_only(tmp_path, monkeypatch):
    for name in ("W1", "W2", "H"):
        _photo(tmp_path / f"{name}.jpg", 120, 90, len(name))
    monkeypatch.setattr(photos, "WALLPAPER_PHOTOS", tuple(
        (n, "mate-backgrounds", str(tmp_path / f"{n}.jpg"), n == "H") for n in ("W1", "W2", "H")))
    train, test = photos.photo_stream("train", per_epoch=8), photos.photo_stream("test", per_epoch=8)
    assert {"W1", "W2"} <= set(train.paths) and "H" not in train.paths
    assert not set(train.paths) & photos.TEST_PHOTOS  # the bundled test photos never train
    assert list(test.paths) == ["H"] and test.epoch(0).images.shape == (8, 3, 32, 32)
    monkeypatch.setattr(photos, "WALLPAPER_PHOTOS", (("A", "mate-backgrounds", str(tmp_path / "A.jpg"), True),))
    with pytest.raises(NotFoundError, match="apt-get install mate-backgrounds"):
        photos.photo_stream("test")


class _CountingStream(PatchStream):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.asked = []

    def epoch(self, e):
        self.asked.append(e)
        return super().epoch(e)


def test_train_flow_on_a_stream_sees_new_data_each_epoch_and_resumes_exactly(tmp_path, photo_dir):
    cfg_m = GlowConfig(channels=3, image_size=8, levels=2, steps=1, width=8)
    cfg = FlowTrainConfig(epochs=3, batch_size=16, lr=3e-3, warmup_steps=2, init_batch=16, test_images=16, patience=0)
    test = PatchStream(photo_dir, per_epoch=16, size=8, seed=5).epoch(0)
    s = _CountingStream(photo_dir, per_epoch=32, size=8)
    ref, log = train_flow(s, test, model_config=cfg_m, config=cfg, out=tmp_path / "a.safetensors", progress=False)
    assert s.asked == [0, 1, 2] and len(log) == 3

    def kill(entry, model):
        if entry["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_flow(PatchStream(photo_dir, per_epoch=32, size=8), test, model_config=cfg_m, config=cfg,
                   out=tmp_path / "b.safetensors", progress=False, on_epoch=kill)
    resumed, _ = train_flow(PatchStream(photo_dir, per_epoch=32, size=8), test, model_config=cfg_m, config=cfg,
                            out=tmp_path / "b.safetensors", resume=True, progress=False)
    a, b = ref.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a stream of the wrong shape is refused before any training
    with pytest.raises(BadInputError, match="model takes"):
        train_flow(PatchStream(photo_dir, per_epoch=32, size=16), test, model_config=cfg_m, config=cfg,
                   out=tmp_path / "c.safetensors", progress=False)
