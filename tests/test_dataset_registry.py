"""Dataset kinds by name: the built-in ones register where they are defined, and a user's kind opens like them."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dggan.data import (
    DATASET_KINDS,
    ArraySource,
    DatasetError,
    NpySource,
    dataset_kinds,
    open_dataset,
    parse_spec,
    register_dataset,
)
from dggan.data import kinds as kinds_module
from dggan.data.kinds import dataset_kind


class Checkers(ArraySource):
    """``n`` checkerboards of ``res`` pixels, one channel; board i has squares of 2**(i % log2(res)) pixels."""

    def __init__(self, num_images: int = 16, resolution: int = 8):
        y, x = np.indices((resolution, resolution))
        sizes = [1 << (i % resolution.bit_length()) for i in range(num_images)]
        boards = np.stack([((y // s + x // s) % 2) * 255 for s in sizes]).astype(np.uint8)
        super().__init__(boards[:, None], name=f"checkers ({num_images})")


class Boards(ArraySource):
    """Boards from a .npy file: a kind that takes a path."""

    def __init__(self, path: str, invert: bool = False):
        array = np.load(path)
        super().__init__(255 - array if invert else array, name=f"boards {path}")


class KeywordsOnly(ArraySource):
    def __init__(self, *, path: str = ""):
        super().__init__(np.zeros((1, 1, 4, 4), np.uint8))


class NotASource:
    def __init__(self, num_images: int = 1):
        self.num_images = num_images


@pytest.fixture
def registry():
    """Removes the names a test registers, so no other test sees them."""
    before = set(kinds_module._KINDS)
    yield
    for name in set(kinds_module._KINDS) - before - set(DATASET_KINDS):
        del kinds_module._KINDS[name]
    assert "checkers" not in dataset_kinds() and "boards" not in dataset_kinds()


def test_a_users_kind_opens_with_typed_options(registry):
    assert register_dataset("checkers", takes_path=False, example="checkers:n=8,res=8")(Checkers) is Checkers
    assert parse_spec("checkers:n=8,res=8") == ("checkers", None, {"num_images": 8, "resolution": 8})
    source = open_dataset("checkers:n=8,res=8")
    assert isinstance(source, Checkers) and (len(source), source.resolution, source.channels) == (8, 8, 1)
    assert source.spec == "checkers:n=8,res=8"
    assert set(np.unique(source.array)) == {0, 255}
    assert len(open_dataset("checkers?n=4")) == 4 and len(open_dataset("checkers", num_images=2)) == 2
    assert open_dataset("checkers:res=16").resolution == 16
    # Registering the same class again (a module imported twice) is fine.
    register_dataset("checkers", takes_path=False, example="checkers:n=8,res=8")(Checkers)
    assert dataset_kind("checkers").cls is Checkers


def test_a_users_kind_refuses_bad_options_as_the_built_ins_do(registry):
    register_dataset("checkers", takes_path=False, example="checkers:n=8,res=8")(Checkers)
    with pytest.raises(DatasetError, match=re.escape(
            "unknown option(s) ['colour'] for checkers; valid: ['num_images', 'resolution']")):
        open_dataset("checkers:colour=red")
    with pytest.raises(DatasetError, match=re.escape(
            "num_images (n)=abc must be a whole number, e.g. 'checkers:n=64'")):
        open_dataset("checkers:n=abc")
    with pytest.raises(DatasetError, match=re.escape("num_images (n)=0 must be in [1,")):
        open_dataset("checkers:n=0")
    with pytest.raises(DatasetError, match=re.escape("checkers takes options only, e.g. 'checkers:n=8,res=8'")):
        open_dataset("checkers:/data/boards")


def test_a_users_path_kind_needs_its_path(registry, tmp_path):
    register_dataset("boards", takes_path=True, example="boards:/path/to/boards.npy")(Boards)
    with pytest.raises(DatasetError, match=re.escape("boards needs a path, e.g. 'boards:/path/to/boards.npy'")):
        open_dataset("boards")
    with pytest.raises(DatasetError, match=re.escape("unknown option(s) ['path'] for boards; valid: ['invert']")):
        open_dataset("boards", path="x.npy")  # the path is the location, not an option
    with pytest.raises(DatasetError, match=re.escape("invert=maybe must be true or false")):
        open_dataset(f"boards:{tmp_path / 'b.npy'}?invert=maybe")
    np.save(tmp_path / "b.npy", Checkers(4, 8).array)
    source = open_dataset(f"boards:{tmp_path / 'b.npy'}?invert=true")
    assert isinstance(source, Boards) and len(source) == 4
    assert np.array_equal(source.array, 255 - Checkers(4, 8).array)


def test_the_unknown_kind_error_lists_the_users_kinds(registry):
    register_dataset("checkers", takes_path=False, example="checkers:n=8,res=8")(Checkers)
    assert dataset_kinds() == (*DATASET_KINDS, "checkers")
    with pytest.raises(DatasetError, match=re.escape(
            "unknown dataset kind 'chequers' in 'chequers:n=8'; valid kinds: synthetic, cifar10, lsun, folder, npz,"
            " npy, digits, checkers")):
        open_dataset("chequers:n=8")


def test_registering_refuses_what_it_cannot_open(registry):
    register_dataset("checkers", takes_path=False, example="checkers:n=8,res=8")(Checkers)

    class Other(Checkers):
        pass

    with pytest.raises(ValueError, match=r"dataset kind 'checkers' is already registered \(.*\.Checkers\); pick"):
        register_dataset("checkers", takes_path=False, example="checkers:n=8")(Other)
    with pytest.raises(ValueError, match=r"dataset kind 'synthetic' is already registered"):
        register_dataset("synthetic", takes_path=False, example="synthetic:n=8")(Other)
    with pytest.raises(ValueError, match=r"dataset kind 'npy' is already registered"):
        register_dataset("mine", takes_path=True, example="mine:/x", aliases=("npy",))(Boards)
    assert "mine" not in dataset_kinds()  # a refused registration adds none of its names
    with pytest.raises(TypeError, match="must be a subclass of dggan.data.ImageSource"):
        register_dataset("plain", takes_path=False, example="plain:n=1")(NotASource)
    with pytest.raises(TypeError, match="must take the path as its first argument"):
        register_dataset("nopath", takes_path=True, example="nopath:/x")(KeywordsOnly)
    with pytest.raises(ValueError, match="lower-case letters"):
        register_dataset("Checkers2", takes_path=False, example="Checkers2:n=1")
    with pytest.raises(ValueError, match="example must be a spec of the kind"):
        register_dataset("boards", takes_path=True, example="/path/to/boards.npy")
    assert "plain" not in dataset_kinds() and "nopath" not in dataset_kinds()


def test_the_built_in_kinds_register_where_they_are_defined():
    assert DATASET_KINDS == ("synthetic", "cifar10", "lsun", "folder", "npz", "npy", "digits")
    for name in DATASET_KINDS:
        kind = dataset_kind(name)
        assert kind is not None and kind.cls.__module__ == f"dggan.data.{kinds_module._BUILTIN_MODULES[name]}"
        assert parse_spec(kind.example_for(name))[0] == name
    assert dataset_kind("npy") is dataset_kind("npz") and dataset_kind("npy").cls is NpySource
    assert dataset_kind("npy").example_for("npy") == "npy:/path/to/data"
    assert [k for k in DATASET_KINDS if not dataset_kind(k).takes_path] == ["synthetic", "digits"]
    assert dataset_kind("imagenet") is None
