"""Hostile and damaged input files: every reader refuses them with one SimplebitsError, quickly,
before allocating what their headers ask for (docs/data.md, "Limits")."""

from __future__ import annotations

import bz2
import gzip
import io
import pickle
import random
import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from simplebits.data import ImageSet
from simplebits.data.cifar import MAX_NESTING, read_cifar_batch, read_cifar_meta, write_cifar_batch
from simplebits.data.folder import load_image_files, load_image_folder
from simplebits.data.idx import read_idx, write_idx
from simplebits.data.npz import load_npz, read_npz, save_npz
from simplebits.data.svhn import read_svhn_mat, write_svhn_mat
from simplebits.data.usps import read_usps, write_usps
from simplebits.errors import BadInputError, CorruptFileError, SimplebitsError

MB = 1 << 20


def _refused(fn, *, error=CorruptFileError, match=None, seconds=2.0, peak_mb=64):
    """Run ``fn``; it must raise ``error`` (one line naming the problem) within ``seconds``, and
    the memory Python and numpy allocate meanwhile must stay under ``peak_mb``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(error, match=match) as info:
            fn()
    finally:
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < peak_mb * MB, f"allocated {peak / MB:.0f} MB"
    assert "\n" not in str(info.value)
    return info.value


# --------------------------------------------------------------------------------------- IDX
def _idx(path: Path, n=4) -> Path:
    write_idx(path, np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8))
    return path


def _with_dims(raw: bytes, n: int) -> bytes:
    return raw[:4] + struct.pack(">I", n) + raw[8:]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("cap", [None, "1e15"])
def test_idx_header_asking_for_56_gib_is_refused_before_allocating(tmp_path, monkeypatch, gz, cap):
    if cap:  # the input cap raised: the file-length (plain) or deflate-ratio (gzip) rule still refuses
        monkeypatch.setenv("SIMPLEBITS_MAX_INPUT_BYTES", cap)
    raw = _idx(tmp_path / "plain").read_bytes()
    huge = _with_dims(raw, 56 * 1024**3 // 784)
    f = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    f.write_bytes(gzip.compress(huge) if gz else huge)
    e = _refused(lambda: read_idx(f))
    assert f.name in str(e) and any(w in str(e) for w in ("limit", "truncated", "MAX_EXPANSION"))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_data_short_or_beyond_header(tmp_path, gz):
    raw = _idx(tmp_path / "plain", n=6).read_bytes()
    f = tmp_path / "x-images-idx3-ubyte"
    for n, match in ((8, "truncated"), (3, "beyond")):
        body = _with_dims(raw, n)
        f.write_bytes(gzip.compress(body) if gz else body)
        _refused(lambda: read_idx(f), match=match)
    f.write_bytes(gzip.compress(raw)[:-6] if gz else raw)  # a cut gzip trailer
    if gz:
        _refused(lambda: read_idx(f), match="truncated")
    else:
        assert read_idx(f).shape == (6, 28, 28)


# --------------------------------------------------------------------------------------- npz
def _npy(header: dict, body: bytes) -> bytes:
    fh = io.BytesIO()
    np.lib.format.write_array_header_1_0(fh, header)
    return fh.getvalue() + body


def _zip(path: Path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _labels_npy(n=2) -> bytes:
    fh = io.BytesIO()
    np.save(fh, np.arange(n) % 2)
    return fh.getvalue()


def test_npz_member_header_claiming_a_huge_shape_is_refused(tmp_path):
    big = _npy({"descr": "|u1", "fortran_order": False, "shape": (10**9, 28, 28)}, bytes(2 * 784))
    p = _zip(tmp_path / "huge.npz", {"images.npy": big, "labels.npy": _labels_npy()})
    e = _refused(lambda: load_npz(p), match="images")
    assert "huge.npz" in str(e)
    small = _npy({"descr": "|u1", "fortran_order": False, "shape": (1, 28, 28)}, bytes(2 * 784))
    _refused(lambda: load_npz(_zip(p, {"images.npy": small, "labels.npy": _labels_npy()})), match="holds")


def test_npz_entry_declaring_more_than_deflate_can_expand_is_refused(tmp_path):
    p = tmp_path / "bomb.npz"
    save_npz(p, np.zeros((2, 4, 4), np.uint8), np.array([0, 1]))
    raw = bytearray(p.read_bytes())
    cd = raw.index(b"PK\x01\x02")  # first central-directory entry: uncompressed size at +24
    struct.pack_into("<I", raw, cd + 24, 0x7FFFFFFF)
    p.write_bytes(bytes(raw))
    _refused(lambda: read_npz(p), match="deflate|limit")


@pytest.mark.parametrize("images,labels,match", [
    (np.zeros((0, 4, 4), np.uint8), np.zeros(0, np.int64), "no images"),
    (np.zeros((2, 0, 4), np.uint8), np.array([0, 1]), "zero size"),
    (np.zeros((2, 4, 4), np.uint8), np.array(["a", "b"]), "integers"),
    (np.zeros((2, 4, 4), np.uint8), np.array([True, False]), "bool"),
    (np.zeros((2, 4, 4), np.uint8), np.array([[0, 1], [1, 0]]), "1-D"),
    (np.zeros((2, 4, 4), np.uint8), np.array([0.5, 1.0]), "integer"),
    (np.zeros((2, 4, 4), np.uint8), np.array([0, 1 + 1j]), "integers"),
    (np.zeros((2, 4, 4), np.uint8), np.array([0, 10**12]), "zero images"),
    (np.zeros((2, 4, 4), np.complex64), np.array([0, 1]), "dtype"),
    (np.array([["a"]]), np.array([0]), "dtype"),
])
def test_npz_empty_images_and_wrong_labels_are_one_clear_error(tmp_path, images, labels, match):
    p = tmp_path / "d.npz"
    np.savez(p, images=images, labels=labels)
    e = _refused(lambda: load_npz(p), error=BadInputError, match=match)
    assert "d.npz" in str(e)


def test_npz_fortran_order_and_big_endian_read_correctly(tmp_path):
    x = np.random.default_rng(0).random((3, 5, 6)).astype(">f4")
    y = np.array([0, 1, 1], dtype=">i2")
    p = tmp_path / "f.npz"
    np.savez(p, images=np.asfortranarray(x), labels=y)
    images, labels, _ = read_npz(p)
    assert np.array_equal(images, x) and images.dtype == np.float32 and labels.tolist() == [0, 1, 1]
    assert torch.equal(load_npz(p).images[:, 0], torch.from_numpy(x.astype(np.float32)))


def test_npz_object_member_is_refused_without_unpickling(tmp_path):
    p = tmp_path / "o.npz"
    np.savez(p, images=np.zeros((2, 4, 4), np.uint8), labels=np.array([0, 1], dtype=object))
    _refused(lambda: load_npz(p), error=BadInputError, match="Python objects")


# ------------------------------------------------------------------------------- ImageSet
@pytest.mark.parametrize("images", [np.zeros((0, 1, 4, 4), np.uint8), np.zeros((3, 1, 0, 4), np.uint8),
                                    np.zeros((3, 1, 4, 0), np.float32), torch.zeros(3, 0, 4)])
def test_imageset_refuses_empty_image_arrays(images):
    with pytest.raises(BadInputError, match="set images: .*(no images|zero size)"):
        ImageSet.create(images, [0, 1, 2][: images.shape[0]], where="set")


@pytest.mark.parametrize("labels,match", [
    (["a", "b", "c"], "cannot convert"), (np.array(["a", "b", "c"]), "not numeric"),
    (np.array([0, 1, None], dtype=object), "not numeric"), (np.array([True, False, True]), "bool"),
    (np.zeros((3, 2), np.int64), "1-D"), (np.array([0, 1.5, 1]), "non-integer"), (np.array([0, np.nan, 1]), "non-integer"),
    (np.array([0, 1, 2], complex), "integers"), ([[0], [1, 2], [0]], "cannot convert"), (None, "cannot convert"),
    (np.array([0, 1, 10**12]), "zero images"), (np.array([0, 1, 1e30]), "too large"), ({"a": 1}, "cannot convert"),
])
def test_imageset_wrong_labels_are_bad_input_naming_where(labels, match):
    with pytest.raises(BadInputError, match=match) as e:
        ImageSet.create(np.zeros((3, 4, 4), np.uint8), labels, where="mine")
    assert str(e.value).startswith("mine")


def test_imageset_integral_float_and_unsigned_labels_are_accepted():
    for labels in (np.array([0.0, 1.0, 1.0]), np.array([0, 1, 1], np.uint32), torch.tensor([0, 1, 1], dtype=torch.int16)):
        assert ImageSet.create(np.zeros((3, 4, 4), np.uint8), labels).labels.tolist() == [0, 1, 1]
    for classes in (10**12, 0, "ab", 2.5):
        with pytest.raises(BadInputError, match="classes"):
            ImageSet.create(np.zeros((3, 4, 4), np.uint8), [0, 1, 1], classes)


# ------------------------------------------------------------------------------------ CIFAR
def _cifar_pickle(body: bytes) -> bytes:
    return b"\x80\x02}(" + body + b"u."


def _key(name: str) -> bytes:
    return b"X" + struct.pack("<I", len(name)) + name.encode()


def _write(tmp_path: Path, data: bytes, name="data_batch_1") -> Path:
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


def test_cifar_memo_dag_finishes_fast_with_a_clear_error(tmp_path):
    # labels = a DAG of lists, each level the previous one twice: 2^80 leaves when walked
    dag = b"]" + b"".join(b"q\x00(h\x00h\x00l" for _ in range(80))
    f = _write(tmp_path, _cifar_pickle(_key("data") + b"N" + _key("labels") + dag))
    _refused(lambda: read_cifar_batch(f), match="shared references")
    # the same DAG of tuples as a dict key: the unpickler itself would hash it forever
    f = _write(tmp_path, _cifar_pickle(b")" + b"q\x00h\x00\x86" * 80 + b"K\x01"))
    _refused(lambda: read_cifar_batch(f), match="shared references")


def test_cifar_deep_nesting_and_memo_index_are_refused_before_unpickling(tmp_path):
    f = _write(tmp_path, _cifar_pickle(b")" + b"\x85" * 200_000 + b"K\x01"))  # would crash the hash
    _refused(lambda: read_cifar_batch(f), match=f"nested more than {MAX_NESTING}")
    f = _write(tmp_path, b"\x80\x02]r\xff\xff\xff\x7f.")  # memo index 2^31-1: a 16 GB memo table
    _refused(lambda: read_cifar_batch(f), match="memo index")


def test_cifar_small_file_cannot_build_a_million_image_array(tmp_path):
    recon = b"cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01"
    body = (_key("data") + recon + b"J\x40\x42\x0f\x00M\x00\x0c\x86C\x01b\x87R"  # shape (1e6, 3072), no data
            + _key("labels") + b"h\x00h\x01J\x40\x42\x0f\x00\x85C\x01b\x87R")
    f = _write(tmp_path, _cifar_pickle(body))
    assert f.stat().st_size < 120
    _refused(lambda: read_cifar_batch(f), match="without its data")
    # an array whose declared shape is larger than its data bytes
    state = b"(K\x01J\x40\x42\x0f\x00M\x00\x0c\x86cnumpy\ndtype\nX\x02\x00\x00\x00u1\x85R\x89C\x04abcdtb"
    f = _write(tmp_path, _cifar_pickle(_key("data") + recon + b"K\x00\x85C\x01b\x87R" + state))
    _refused(lambda: read_cifar_batch(f), match="does not match")


@pytest.mark.parametrize("payload,match", [
    (b"cnumpy\ndtype\nX\x02\x00\x00\x00O8\x85R", "not a plain numeric dtype"),
    (b"cnumpy\nndarray\nJ\x40\x42\x0f\x00\x85\x85R", "not callable"),
    (b"c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R", "latin1"),
    (b"cbuiltins\neval\nX\x01\x00\x00\x001\x85R", "refusing to unpickle global builtins.eval"),
])
def test_cifar_allowed_globals_accept_only_their_safe_forms(tmp_path, payload, match):
    f = _write(tmp_path, _cifar_pickle(_key("data") + payload + _key("labels") + b"]"))
    _refused(lambda: read_cifar_batch(f), match=match)


@pytest.mark.parametrize("labels,match", [
    ([0, 1.0], "list of integers"), ([0, [1]], "list of integers"), ([0, -1], "outside"), ([0], "2 images but 1"),
    ("ab", "list of integers"), (np.zeros((2, 1), np.int64), "1-D integer"),
])
def test_cifar_labels_are_checked_flat(tmp_path, labels, match):
    f = tmp_path / "b"
    with open(f, "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, fh, protocol=2)
    _refused(lambda: read_cifar_batch(f), error=BadInputError, match=match)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_genuine_forms_still_load(tmp_path, protocol):
    rng = np.random.default_rng(protocol)
    data = np.asfortranarray(rng.integers(0, 256, (3, 3072), dtype=np.uint8)) if protocol == 3 else \
        rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    labels = [np.int64(2), 0, 1] if protocol < 5 else np.array([2, 0, 1], dtype=">i4")
    f = tmp_path / "b"
    f.write_bytes(pickle.dumps({b"data": data, "labels": labels}, protocol=protocol))
    x, y = read_cifar_batch(f)
    assert np.array_equal(x.reshape(3, -1), data) and y.tolist() == [2, 0, 1] and x.flags.writeable
    f.write_bytes(pickle.dumps({b"label_names": [b"a", "b"]}, protocol=protocol))
    assert read_cifar_meta(f) == ["a", "b"]


# ------------------------------------------------------------------------------------- USPS
def _bz2_bomb(first: bytes, chunk: bytes, copies: int) -> bytes:
    """A multi-stream bzip2 file: cheap to make, ``copies`` x len(chunk) bytes when read."""
    one = bz2.compress(chunk, 9)
    return bz2.compress(first) + one * copies


def test_usps_bz2_bomb_is_refused_while_decompressing(tmp_path):
    f = tmp_path / "usps.bz2"
    f.write_bytes(_bz2_bomb(b"1 ", b"1:0 " * (MB // 4), 4096))  # ~0.3 MB expanding to 4 GB
    assert f.stat().st_size < MB
    e = _refused(lambda: read_usps(f), match="decompression bomb", seconds=5, peak_mb=200)
    assert "usps.bz2" in str(e)
    g = tmp_path / "usps.t"
    g.write_bytes(gzip.compress(b"1 ") + gzip.compress(b"1:0 " * (MB // 4)) * 128)  # 135 KB -> 128 MB
    _refused(lambda: read_usps(g), match="decompression bomb", seconds=5, peak_mb=200)


def test_usps_lines_are_bounded_before_parsing(tmp_path):
    f = tmp_path / "usps.bz2"
    f.write_bytes(_bz2_bomb(b"", b"1\n" * (MB // 2), 40))  # 20 M near-empty lines: 20 GB of images
    _refused(lambda: read_usps(f), match="lines in", peak_mb=200)
    g = tmp_path / "usps"
    g.write_bytes(b"1 " + b"1:0 " * 5000 + b"\n")
    _refused(lambda: read_usps(g), match="line 1 is")


def test_usps_non_text_is_refused(tmp_path):
    f = tmp_path / "usps"
    f.write_bytes(b"1 1:0.5\n\xff\xfe\n")
    _refused(lambda: read_usps(f), match="non-ASCII")


def test_usps_sparse_and_dense_lines_across_blocks(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((700, 16, 16)), np.arange(700) % 10
    write_usps(tmp_path / "usps", x, y)  # ~2.4 MB: three parse blocks
    text = (tmp_path / "usps").read_bytes()
    (tmp_path / "usps").write_bytes(b"# comment\n\n" + text + b"3 5:1\n")
    got, digits = read_usps(tmp_path / "usps")
    assert got.shape == (701, 16, 16) and np.allclose(got[:700], x, atol=1e-5) and digits.tolist() == [*y, 2]
    assert got[700].reshape(-1)[4] == 1.0 and got[700].reshape(-1)[5] == 0.5


# ------------------------------------------------------------------------------------- SVHN
def _svhn(path: Path, n=3, compress=False) -> Path:
    import scipy.io

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = np.where(np.arange(n) % 10 == 0, 10, np.arange(n) % 10).astype(np.float64).reshape(-1, 1)
    if compress:
        scipy.io.savemat(str(path), {"X": np.transpose(x, (2, 3, 1, 0)), "y": y}, do_compression=True)
    else:
        write_svhn_mat(path, x, np.arange(n) % 10)
    return path


def _elements(raw: bytes):
    """(offset, type, size) of each top-level element after the 128-byte header."""
    pos, out = 128, []
    while pos + 8 <= len(raw):
        t, n = struct.unpack_from("<II", raw, pos)
        out.append((pos, t, n))
        pos += 8 + n
    return out


def test_svhn_data_type_code_that_crashed_scipy_is_refused(tmp_path):
    # scipy.io.loadmat indexes a table with this code unchecked: codes 0, 8, 10, 11 or >= 20 in
    # a numeric element's data tag made the process die with SIGSEGV
    f = _svhn(tmp_path / "train_32x32.mat")
    raw = bytearray(f.read_bytes())
    pos = 128 + 8 + 16 + 24 + 8  # X: matrix tag, flags, dims (4 int32), name 'X' (small element)
    assert struct.unpack_from("<I", raw, pos)[0] == 2  # miUINT8
    for code in (0, 8, 10, 11, 25, 0xFFFF):
        struct.pack_into("<I", raw, pos, code)
        f.write_bytes(bytes(raw))
        _refused(lambda: read_svhn_mat(f), match="data type code")


@pytest.mark.parametrize("compress", [False, True])
def test_svhn_truncated_at_any_point_is_one_error(tmp_path, compress):
    f = _svhn(tmp_path / "train_32x32.mat", compress=compress)
    raw = f.read_bytes()
    for cut in list(range(0, 300, 7)) + list(range(300, len(raw), max(1, len(raw) // 97))):
        f.write_bytes(raw[:cut])
        with pytest.raises(CorruptFileError, match="train_32x32.mat"):
            read_svhn_mat(f)


def test_svhn_huge_dims_or_inflated_size_are_refused_before_allocating(tmp_path):
    f = _svhn(tmp_path / "train_32x32.mat")
    raw = bytearray(f.read_bytes())
    struct.pack_into("<i", raw, 128 + 8 + 16 + 8 + 12, 10**8)  # X: N = 1e8 images (300 GB)
    f.write_bytes(bytes(raw))
    _refused(lambda: read_svhn_mat(f), match="declares")
    g = _svhn(tmp_path / "c.mat", compress=True)
    raw = g.read_bytes()
    pos, t, n = _elements(raw)[0]
    assert t == 15  # miCOMPRESSED
    inner = bytearray(zlib.decompress(raw[pos + 8 : pos + 8 + n]))
    struct.pack_into("<I", inner, 4, 0x7FFFFFF0)  # the matrix claims 2 GB
    packed = zlib.compress(bytes(inner))
    g.write_bytes(raw[:pos] + struct.pack("<II", 15, len(packed)) + packed + raw[pos + 8 + n :])
    _refused(lambda: read_svhn_mat(g), match="MAX_EXPANSION|limit")


def test_svhn_compressed_and_plain_files_read_the_same(tmp_path):
    a, ya = read_svhn_mat(_svhn(tmp_path / "a.mat", n=12))
    b, yb = read_svhn_mat(_svhn(tmp_path / "b.mat", n=12, compress=True))
    assert np.array_equal(a, b) and ya.tolist() == yb.tolist() == (np.arange(12) % 10).tolist()
    (tmp_path / "h.mat").write_bytes(b"MATLAB 7.3 MAT-file".ljust(124) + b"\x00\x02IM")
    _refused(lambda: read_svhn_mat(tmp_path / "h.mat"), match="v7.3")


# ------------------------------------------------------------------------------------ images
def _png(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` (its pixel data is for 1 x 1)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    raw = bytearray(buf.getvalue())
    struct.pack_into(">II", raw, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", raw, 29, zlib.crc32(bytes(raw[12:29])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("side", [20000, 9000])  # 400 Mpx: Pillow's own bomb error; 81 Mpx: only our limit
def test_png_declaring_a_huge_size_is_refused_before_decoding(tmp_path, side):
    f = _png(tmp_path / "cls" / "big.png", side, side)
    assert f.stat().st_size < 100
    e = _refused(lambda: load_image_files([f]), match="pixel limit")
    assert "big.png" in str(e) and "SIMPLEBITS_MAX_IMAGE_PIXELS" in str(e)
    _refused(lambda: load_image_folder(tmp_path), match="pixel limit")


def test_image_pixel_limit_follows_the_environment(tmp_path, monkeypatch):
    from PIL import Image

    f = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(f)
    monkeypatch.setenv("SIMPLEBITS_MAX_IMAGE_PIXELS", "63")
    _refused(lambda: load_image_files([f]), match="8x8 = 64 pixels, more than the 63-pixel limit")
    monkeypatch.setenv("SIMPLEBITS_MAX_IMAGE_PIXELS", "64")
    assert load_image_files([f]).shape == (1, 3, 8, 8)


def test_truncated_png_is_one_error(tmp_path):
    from PIL import Image

    f = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(f)
    f.write_bytes(f.read_bytes()[:300])
    _refused(lambda: load_image_files([f]), match="t.png")


# ----------------------------------------------------------------------- seeded mutations
def _mutate(raw: bytes, rng: random.Random) -> bytes:
    b = bytearray(raw)
    if not b:
        return bytes(b)
    kind = rng.randrange(5)
    if kind == 0:  # truncate
        return bytes(b[: rng.randrange(len(b))])
    if kind == 1:  # flip a few bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == 2:  # insert bytes
        at = rng.randrange(len(b))
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif kind == 3:  # delete bytes
        at = rng.randrange(len(b))
        del b[at : at + rng.randint(1, 8)]
    else:  # a 4-byte field set to an extreme value, early fields (headers) more often
        at = min(rng.randrange(len(b)), rng.randrange(len(b)), rng.randrange(len(b))) & ~3
        b[at : at + 4] = rng.choice([b"\0\0\0\0", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\xff\xff\xff\x7f"])
    return bytes(b)


def _check_result(images, labels, lo=0, hi=None):
    images, labels = np.asarray(images), np.asarray(labels)
    assert images.shape[0] == labels.shape[0] and labels.ndim == 1
    if images.dtype.kind == "f":
        assert np.isfinite(images).all()
    if labels.size:
        assert labels.min() >= lo and (hi is None or labels.max() <= hi)


def _valid_idx(tmp_path):
    return _idx(tmp_path / "v", n=2).read_bytes(), "x-images-idx3-ubyte"


def _read_idx_any(f):
    x = read_idx(f)
    ImageSet.create(x if x.ndim in (3, 4) else x.reshape(1, 1, 1, -1), np.zeros(x.shape[0] if x.ndim in (3, 4) else 1, np.int64))


def _valid_npz(tmp_path):
    p = tmp_path / "v.npz"
    np.savez(p, images=np.arange(2 * 9, dtype=np.uint8).reshape(2, 3, 3), labels=np.array([0, 1]), classes=np.array(["a", "b"]))
    return p.read_bytes(), "m.npz"


def _valid_cifar(tmp_path):
    write_cifar_batch(tmp_path / "v", np.zeros((2, 3, 32, 32), np.uint8), [0, 1])
    return (tmp_path / "v").read_bytes(), "data_batch_1"


def _read_cifar(f):
    x, y = read_cifar_batch(f)
    _check_result(x, y)


def _valid_usps(tmp_path, ext):
    write_usps(tmp_path / f"v{ext}", np.full((2, 16, 16), 0.5), [3, 4])
    return (tmp_path / f"v{ext}").read_bytes(), f"usps{ext}"


def _read_usps(f):
    x, y = read_usps(f)
    _check_result(x, y, 0, 9)
    assert x.min() >= 0 and x.max() <= 1


def _read_svhn(f):
    x, y = read_svhn_mat(f)
    _check_result(x, y, 0, 9)


def _valid_png(tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(buf, format="PNG")
    return buf.getvalue(), "m.png"


def _read_png(f):
    x = load_image_files([f])
    assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1


FORMATS = {
    "idx": (_valid_idx, _read_idx_any),
    "idx-gz-inner": (lambda t: (gzip.compress(_valid_idx(t)[0]), "x-images-idx3-ubyte.gz"), _read_idx_any),
    "npz": (_valid_npz, lambda f: load_npz(f)),
    "cifar": (_valid_cifar, _read_cifar),
    "usps": (lambda t: _valid_usps(t, ""), _read_usps),
    "usps-bz2": (lambda t: _valid_usps(t, ".bz2"), _read_usps),
    "svhn": (lambda t: (_svhn(t / "v.mat", n=2).read_bytes(), "m.mat"), _read_svhn),
    "svhn-compressed": (lambda t: (_svhn(t / "v.mat", n=2, compress=True).read_bytes(), "m.mat"), _read_svhn),
    "png": (_valid_png, _read_png),
}
# formats whose container hides the interesting bytes: also mutate the inner bytes, then re-pack
INNER = {"idx-gz-inner": (gzip.decompress, gzip.compress), "usps-bz2": (bz2.decompress, bz2.compress)}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_seeded_mutations_give_a_valid_result_or_one_error(tmp_path, fmt):
    make, read = FORMATS[fmt]
    raw, name = make(tmp_path)
    f = tmp_path / name
    f.write_bytes(raw)
    read(f)  # the unmutated file is valid
    rng = random.Random(f"mutations-{fmt}")
    outcomes = {"valid": 0, "refused": 0}
    for i in range(150):
        if fmt in INNER and i % 2:
            unpack, pack = INNER[fmt]
            data = pack(_mutate(unpack(raw), rng))
        else:
            data = _mutate(raw, rng)
        f.write_bytes(data)
        t0 = time.perf_counter()
        try:
            read(f)
            outcomes["valid"] += 1
        except SimplebitsError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
        assert time.perf_counter() - t0 < 2.0
    assert outcomes["refused"] > 0


def test_a_valid_gzip_that_unpacks_more_than_100x_is_refused_before_inflating(tmp_path, monkeypatch):
    """A 1 MB gzip of zeros would be 1 GB of pixels (4 GB as float32): a compression bomb, even
    though its header is honest. Refused by the expansion cap; the env var lets such data in."""
    import gzip as _gzip

    from simplebits.data.idx import read_idx

    n = 80 * 1024 * 1024 // (32 * 32)  # 80 MiB of zero pixels, ~80 KB compressed
    header = bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + (32).to_bytes(4, "big") * 2
    path = tmp_path / "train-images-idx3-ubyte.gz"
    comp = _gzip.compress(header + bytes(n * 32 * 32), compresslevel=9)
    path.write_bytes(comp)
    assert len(comp) < 1024 * 1024
    with pytest.raises(CorruptFileError, match="SIMPLEBITS_MAX_EXPANSION"):
        read_idx(path)
    monkeypatch.setenv("SIMPLEBITS_MAX_EXPANSION", "2000")
    assert read_idx(path).shape == (n, 32, 32)
