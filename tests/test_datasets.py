"""Dataset sources: CIFAR-10 (folder and tar.gz), LSUN (LMDB + export), folders, npz/npy, specs."""

from __future__ import annotations

import io
import os
import pickle
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dggan.data import (
    CIFAR10,
    DATASET_KINDS,
    BatchSampler,
    DatasetError,
    DatasetWarning,
    FolderSource,
    NpySource,
    open_dataset,
    parse_spec,
    to_float,
)
from dggan.data.cifar import TEST_BATCHES, TRAIN_BATCHES

# ---------------------------------------------------------------------------------------------- CIFAR-10


def _cifar_batch(n: int, seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"batch", b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img{i}.png".encode() for i in range(n)]}


@pytest.fixture
def cifar_dir(tmp_path: Path) -> tuple[Path, dict[str, dict]]:
    """A real-format 'cifar-10-batches-py' folder: 5 train batches of 4 images, a test batch of 3."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {name: _cifar_batch(4, i) for i, name in enumerate(TRAIN_BATCHES)}
    batches[TEST_BATCHES[0]] = _cifar_batch(3, 99)
    for name, batch in batches.items():
        # Protocol 2, as the original Python 2 pickles use.
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"]}, protocol=2))
    return folder, batches


def _make_tar(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return out


def test_cifar_folder_and_tar_give_the_same_images(cifar_dir, tmp_path):
    folder, batches = cifar_dir
    expected = np.concatenate([batches[n][b"data"] for n in TRAIN_BATCHES]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([batches[n][b"labels"] for n in TRAIN_BATCHES])
    tar = _make_tar(folder, tmp_path / "cifar-10-python.tar.gz")
    for path in (folder, folder.parent, tar):  # the folder, the folder holding it, the archive
        src = CIFAR10(path)
        assert len(src) == 20 and src.resolution == 32
        np.testing.assert_array_equal(src.get(np.arange(20)), expected)
        np.testing.assert_array_equal(src.labels, labels)
    test = open_dataset(f"cifar10:{tar}?split=test")
    expected_test = batches["test_batch"][b"data"].reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(test.get(np.arange(3)), expected_test)
    # Train and test have different fingerprints (reference stats must not mix them).
    assert test.fingerprint() != CIFAR10(folder).fingerprint()


def test_cifar_plane_layout_is_rgb_planes():
    # Row = 1024 R then 1024 G then 1024 B: a row whose G plane is 255 must give a green image.
    from dggan.data.cifar import _parse_batch

    row = np.zeros((1, 3072), dtype=np.uint8)
    row[0, 1024:2048] = 255
    images, _ = _parse_batch({b"data": row, b"labels": [3]}, "x")
    assert images[0, 1].min() == 255 and images[0, 0].max() == 0 and images[0, 2].max() == 0


def test_cifar_served_at_lower_resolutions_is_area_average(cifar_dir):
    src = CIFAR10(cifar_dir[0])
    images = src.get(np.arange(4)).astype(np.float64) / 127.5 - 1
    for res in (32, 16, 8):
        k = 32 // res
        expected = images.reshape(4, 3, res, k, res, k).mean(axis=(3, 5))
        got = to_float(src.get(np.arange(4)), res).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert got.min() >= -1 and got.max() <= 1
    batch = BatchSampler(src, 8, batch_size=5, seed=0).next()
    assert batch.shape == (5, 3, 8, 8) and batch.min() >= -1 and batch.max() <= 1


def test_cifar_errors_name_the_file(cifar_dir, tmp_path):
    folder, _ = cifar_dir
    with pytest.raises(DatasetError, match="does not exist"):
        CIFAR10(tmp_path / "nope")
    with pytest.raises(DatasetError, match="unknown split"):
        CIFAR10(folder, split="valid")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3"):
        CIFAR10(folder)
    good = pickle.dumps(_cifar_batch(4, 0), protocol=2)
    (folder / "data_batch_3").write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match=r"data_batch_3.*(truncated|corrupt)"):
        CIFAR10(folder)
    wrong_shape = {b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}
    (folder / "data_batch_3").write_bytes(pickle.dumps(wrong_shape))
    with pytest.raises(DatasetError, match=r"\[N, 3072\]"):
        CIFAR10(folder)


def test_cifar_bad_and_truncated_tar(cifar_dir, tmp_path):
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(DatasetError, match="garbage.tar.gz"):
        CIFAR10(garbage)
    tar = _make_tar(cifar_dir[0], tmp_path / "full.tar.gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    with pytest.raises(DatasetError, match="cut.tar.gz"):
        CIFAR10(cut)


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_never_unpickles_code(cifar_dir, tmp_path):
    folder, _ = cifar_dir
    marker = tmp_path / "pwned"
    evil = {b"data": _Evil(str(marker)), b"labels": []}
    (folder / "data_batch_1").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        CIFAR10(folder)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- LSUN


def _encode(array_hwc: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array_hwc).save(buf, format=fmt)
    return buf.getvalue()


def _column_image(h: int, w: int) -> np.ndarray:
    """Each pixel's red value is its column index, green its row index: crops are easy to check."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[..., 0] = np.arange(w)[None, :]
    img[..., 1] = np.arange(h)[:, None]
    return img


@pytest.fixture
def lsun_lmdb(tmp_path: Path) -> Path:
    lmdb = pytest.importorskip("lmdb")
    path = tmp_path / "bedroom_train_lmdb"
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"0000", _encode(_column_image(32, 48), "PNG"))  # landscape: crop columns 8..39
        txn.put(b"0001", b"\x00garbage, not an image")
        txn.put(b"0002", _encode(np.full((40, 40, 3), 200, np.uint8), "JPEG"))
        txn.put(b"0003", _encode(_column_image(48, 32), "PNG"))  # portrait: crop rows 8..39
    env.close()
    return path


def test_lsun_source_decodes_crops_and_replaces_bad_entries(lsun_lmdb):
    src = open_dataset(f"lsun:{lsun_lmdb}?res=32")
    assert len(src) == 4 and src.resolution == 32
    with pytest.warns(DatasetWarning, match=r"b'0001'.*1 bad entries"):
        images = src.get(np.arange(4))
    assert images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(images[0, 0, 0], np.arange(8, 40))  # centre crop of a 48-wide image
    np.testing.assert_array_equal(images[3, 1, :, 0], np.arange(8, 40))  # of a 48-high image
    np.testing.assert_array_equal(images[1], images[2])  # the bad entry is replaced by the next one
    assert abs(int(images[2].mean()) - 200) <= 3  # JPEG, Lanczos-resized 40 -> 32
    assert src.fingerprint() == open_dataset(f"lsun:{lsun_lmdb}?res=32").fingerprint()
    assert to_float(images, 16).shape == (4, 3, 16, 16)


def test_export_lsun_writes_npy_skipping_garbage(lsun_lmdb, tmp_path):
    from dggan.data import export_lsun

    out = tmp_path / "out" / "bedroom32.npy"
    with pytest.warns(DatasetWarning, match=r"skipped 1 undecodable entry.*wrote 3 images, fewer than the 4"):
        export_lsun(lsun_lmdb, out, resolution=32, progress=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["bedroom32.npy"]  # no temp files left
    src = open_dataset(f"npz:{out}")
    assert isinstance(src.array, np.memmap) and src.array.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(src.get(np.array([0]))[0, 0, 0], np.arange(8, 40))
    # The first entry is good, so exporting one image skips nothing and warns nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_lsun(lsun_lmdb, tmp_path / "one.npy", max_images=1, resolution=32, progress=False)
    assert np.load(tmp_path / "one.npy").shape == (1, 3, 32, 32)
    with pytest.raises(DatasetError, match="fewer than max_images=9"):
        export_lsun(lsun_lmdb, tmp_path / "x.npy", max_images=9, resolution=32, progress=False)
    with pytest.raises(DatasetError, match=r"\.npy"):
        export_lsun(lsun_lmdb, tmp_path / "x.npz", resolution=32, progress=False)


def test_lsun_errors(tmp_path, monkeypatch):
    pytest.importorskip("lmdb")
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(f"lsun:{tmp_path / 'missing_lmdb'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty LMDB|not a readable LMDB"):
        open_dataset(f"lsun:{tmp_path / 'empty'}")
    monkeypatch.setitem(sys.modules, "lmdb", None)  # as if the optional extra were not installed
    with pytest.raises(DatasetError, match=r"pip install 'dggan\[lsun\]'"):
        open_dataset(f"lsun:{tmp_path}")


# ---------------------------------------------------------------------------------------------- folders


def test_folder_recursive_default_resolution_and_skips(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(_column_image(24, 20)).save(root / "a.png")  # smallest side 20 -> 16
    Image.fromarray(np.full((40, 33, 3), 90, np.uint8)).save(root / "sub" / "b.jpg")
    Image.fromarray(_column_image(64, 64)).save(root / "sub" / "deeper" / "c.PNG")
    (root / "sub" / "broken.png").write_bytes(b"not a png")
    (root / "notes.txt").write_text("hello")
    with pytest.warns(DatasetWarning) as record:
        src = FolderSource(root, progress=False)
    messages = " | ".join(str(w.message) for w in record)
    assert "ignored 1 file" in messages and "skipped 1 of 4 image files" in messages
    assert src.resolution == 16 and len(src) == 3
    assert [p.name for p in src.files] == ["a.png", "b.jpg", "c.PNG"]
    x = to_float(src.get(np.arange(3)), 8)
    assert x.shape == (3, 3, 8, 8) and x.min() >= -1 and x.max() <= 1
    with pytest.warns(DatasetWarning) as record:
        big = open_dataset(f"folder:{root}?res=32", progress=False)
    assert any("1 image(s) are smaller than 32px and were upscaled" in str(w.message) for w in record)
    assert big.resolution == 32 and len(big) == 3


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        FolderSource(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        FolderSource(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DatasetError, match="none of the 1 image files"):
        FolderSource(tmp_path / "bad", resolution=8, progress=False)
    with pytest.raises(DatasetError, match="power of two"):
        FolderSource(tmp_path / "bad", resolution=12)


# ---------------------------------------------------------------------------------------------- npz / npy


def test_npz_and_npy_layouts(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / "nhwc.npz", images=images.transpose(0, 2, 3, 1), labels=np.arange(5))
    np.savez(tmp_path / "single.npz", arr_0=images)
    np.save(tmp_path / "nchw.npy", images)
    for spec in (f"npz:{tmp_path / 'nhwc.npz'}", f"npz:{tmp_path / 'single.npz'}",
                 f"npy:{tmp_path / 'nchw.npy'}"):
        src = open_dataset(spec)
        assert (len(src), src.resolution, src.channels) == (5, 16, 3)
        np.testing.assert_array_equal(src.get(np.array([4, 1])), images[[4, 1]])
    assert isinstance(NpySource(tmp_path / "nchw.npy").array, np.memmap)
    grey = np.zeros((2, 8, 8), np.uint8)
    np.save(tmp_path / "grey.npy", grey)
    assert open_dataset(f"npz:{tmp_path / 'grey.npy'}").channels == 1


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 3, 8, 8), np.uint8), b=np.zeros(2))
    with pytest.raises(DatasetError, match="name the image array 'images'"):
        NpySource(tmp_path / "two.npz")
    np.save(tmp_path / "float.npy", np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(DatasetError, match="must be uint8"):
        NpySource(tmp_path / "float.npy")
    np.save(tmp_path / "rect.npy", np.zeros((2, 3, 8, 16), np.uint8))
    with pytest.raises(DatasetError, match="layout"):
        NpySource(tmp_path / "rect.npy")
    np.save(tmp_path / "odd.npy", np.zeros((2, 3, 12, 12), np.uint8))
    with pytest.raises(DatasetError, match=r"odd\.npy.*power-of-two"):
        NpySource(tmp_path / "odd.npy")
    np.save(tmp_path / "cut.npy", np.zeros((50, 3, 8, 8), np.uint8))
    data = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut\.npy.*truncated"):
        NpySource(tmp_path / "cut.npy")
    with pytest.raises(DatasetError, match="does not exist"):
        NpySource(tmp_path / "missing.npz")


# ---------------------------------------------------------------------------------------------- specs


def test_parse_and_open_specs(tmp_path):
    assert parse_spec("synthetic") == ("synthetic", None, {})
    assert parse_spec("synthetic:n=2048,res=32,seed=1") == (
        "synthetic", None, {"num_images": 2048, "resolution": 32, "seed": 1})
    assert parse_spec("cifar10:/data/c?split=test") == ("cifar10", "/data/c", {"split": "test"})
    assert parse_spec("lsun:/x/bedroom_train_lmdb?res=128&max=10") == (
        "lsun", "/x/bedroom_train_lmdb", {"resolution": 128, "max_images": 10})
    src = open_dataset("synthetic:n=64,res=16,seed=1")
    assert (len(src), src.resolution) == (64, 16)
    assert len(open_dataset("synthetic:n=64", num_images=32)) == 32  # keywords override the spec
    assert set(DATASET_KINDS) >= {"synthetic", "cifar10", "lsun", "folder", "npz"}


def test_spec_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"kind 'imagenet'.*synthetic, cifar10, lsun, folder, npz"):
        open_dataset("imagenet:/data")
    with pytest.raises(DatasetError, match="needs a path"):
        open_dataset("cifar10")
    with pytest.raises(DatasetError, match=r"unknown option\(s\) \['colour'\]"):
        open_dataset("synthetic:colour=red")
    with pytest.raises(DatasetError, match="KEY=VALUE"):
        open_dataset("synthetic?n")


def test_sampler_over_memmap_at_lower_resolution(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    np.save(tmp_path / "d.npy", images)
    sampler = BatchSampler(open_dataset(f"npz:{tmp_path / 'd.npy'}"), 8, batch_size=8, seed=3)
    batch = sampler.next()
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(images).float() / 127.5 - 1, 4)
    # The batch is a permutation of all 8 images: match each row to one expected image.
    dists = torch.cdist(batch.flatten(1), expected.flatten(1))
    assert torch.allclose(dists.min(dim=1).values, torch.zeros(8), atol=1e-5)


def test_export_lsun_command(lsun_lmdb, tmp_path):
    from typer.testing import CliRunner

    from dggan.cli import app

    out = tmp_path / "b.npy"
    result = CliRunner().invoke(app, ["export-lsun", str(lsun_lmdb), str(out), "--max-images", "1",
                                      "--resolution", "32", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"data=npz:{out}" in result.output and np.load(out).shape == (1, 3, 32, 32)
    result = CliRunner().invoke(app, ["export-lsun", str(tmp_path / "missing"), str(out)])
    assert result.exit_code == 2 and "missing" in result.output


def test_digits_are_real_images_with_a_held_out_split():
    from dggan.data import Digits, open_dataset, to_float
    from dggan.data.digits import load_digits_uint8

    train, test = open_dataset("digits"), open_dataset("digits:split=test")
    assert (len(train), len(test), train.resolution, train.channels) == (1438, 359, 16, 1)
    assert len(open_dataset("digits:split=all")) == 1797
    original = load_digits_uint8()
    assert original.shape == (1797, 1, 8, 8) and original.max() == 255 and original.min() == 0
    # The two splits never share an image, and served at 8px the 16px images are close to the originals.
    small = open_dataset("digits:res=8,split=all").array
    assert np.array_equal(small, original)
    trained = {bytes(x) for x in open_dataset("digits:res=8").array}
    assert not trained & {bytes(x) for x in open_dataset("digits:res=8,split=test").array}
    back = (to_float(open_dataset("digits:split=all").array, 8) + 1) * 127.5
    assert float((back - torch.from_numpy(original).float()).abs().mean()) < 25  # a mild blur
    assert train.fingerprint() != test.fingerprint() and Digits(16).fingerprint() == train.fingerprint()
    with pytest.raises(DatasetError, match="unknown split"):
        Digits(split="val")


def test_digits_without_scikit_learn_say_how_to_get_it(monkeypatch):
    import builtins

    from dggan.data.digits import load_digits_uint8

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(DatasetError, match=r"pip install 'dggan\[digits\]'"):
        load_digits_uint8()
