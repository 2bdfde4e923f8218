from __future__ import annotations

import gzip
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from supernet import SearchSpace
from supernet import data as data_mod
from supernet.data import AugmentConfig, BatchAugment, DataError, build_data, load_digits


def _indices(subset: torch.utils.data.Subset) -> set[int]:
    return set(subset.indices)


def test_digits_splits_are_disjoint_and_seeded() -> None:
    a = build_data({"name": "digits", "val_size": 0.2, "split_seed": 1})
    b = build_data({"name": "digits", "val_size": 0.2, "split_seed": 1})
    c = build_data({"name": "digits", "val_size": 0.2, "split_seed": 2})
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert not _indices(a.train) & _indices(a.val)
    assert _indices(a.val) == _indices(b.val) and _indices(a.val) != _indices(c.val)
    # The test split does not move with the validation seed.
    assert torch.equal(a.test.tensors[0], c.test.tensors[0])  # type: ignore[attr-defined]
    a.check_fits(SearchSpace.preset("digits"))
    x, y = a.train[0]
    assert x.shape == (1, 8, 8) and y.dtype == torch.long


def test_digits_are_scikit_learns() -> None:
    from sklearn.datasets import load_digits as sklearn_digits

    images, labels = load_digits()
    reference = sklearn_digits()
    assert images.shape == (1797, 8, 8) and labels.dtype == np.int64
    assert np.array_equal(images, reference.images) and np.array_equal(labels, reference.target)


def test_train_subset_and_counts() -> None:
    splits = build_data({"name": "digits", "val_size": 100, "train_subset": 50})
    assert len(splits.val) == 100 and len(splits.train) == 50
    with pytest.raises(DataError, match="cannot carve 5000 of 1438 training images"):
        build_data({"name": "digits", "val_size": 5000})


def test_bad_options() -> None:
    with pytest.raises(DataError, match="unknown dataset 'mnist'; choose one of digits"):
        build_data({"name": "mnist"})
    with pytest.raises(DataError, match="unknown data option"):
        build_data({"name": "digits", "valsize": 0.1})
    with pytest.raises(DataError, match="unknown augment option"):
        build_data({"name": "digits", "augment": {"flip": True}})


def test_space_mismatch_message() -> None:
    splits = build_data({"name": "digits"})
    with pytest.raises(DataError, match=r"gives 8x8 images with 1 channel.*expects 28x28"):
        splits.check_fits(SearchSpace.preset("fashion_mnist"))


def test_batch_augment_shifts_and_flips() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    same = BatchAugment(AugmentConfig())(x)
    assert torch.equal(same, x)
    out = BatchAugment(AugmentConfig(crop_padding=1), torch.Generator().manual_seed(0))(x)
    assert out.shape == x.shape
    # Each output is a translate of its input by at most one pixel, zero padded.
    for i in range(2):
        found = False
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                shifted = torch.roll(x[i], (dy, dx), (1, 2))
                inside = out[i] != 0
                if torch.equal(out[i][inside], shifted[inside]):
                    found = True
        assert found
    flipped = BatchAugment(AugmentConfig(hflip=True), torch.Generator().manual_seed(0))(x)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = {3: 0x0803, 1: 0x0801}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_debian_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Debian package's .gz files are unpacked where torchvision reads them."""
    debian = tmp_path / "debian"
    debian.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        _write_idx(debian / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(debian / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", debian)
    splits = build_data({"name": "fashion_mnist", "root": str(tmp_path / "root"), "val_size": 8})
    assert (len(splits.train), len(splits.val), len(splits.test)) == (32, 8, 10)
    splits.check_fits(SearchSpace.preset("fashion_mnist"))
    assert not list((tmp_path / "root" / "FashionMNIST" / "raw").glob(".*tmp"))


def test_missing_fashion_mnist_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    with pytest.raises(DataError) as info:
        build_data({"name": "fashion_mnist", "root": str(tmp_path)})
    message = str(info.value)
    assert "Fashion-MNIST not found" in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_missing_cifar_and_imagefolder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="CIFAR-10 not found under"):
        build_data({"name": "cifar10", "root": str(tmp_path)})
    with pytest.raises(DataError, match=r"needs data\.root"):
        build_data({"name": "imagefolder"})
    with pytest.raises(DataError, match="ImageFolder data needs"):
        build_data({"name": "imagefolder", "root": str(tmp_path)})
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="need one sub-folder of images per class"):
        build_data({"name": "imagefolder", "root": str(tmp_path)})


def test_fashion_mnist_unwritable_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    debian = tmp_path / "debian"
    debian.mkdir()
    for prefix, n in (("train", 4), ("t10k", 2)):
        _write_idx(debian / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)))
        _write_idx(debian / f"{prefix}-labels-idx1-ubyte.gz", np.zeros((n,)))
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", debian)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=r"cannot unpack Fashion-MNIST .* set data\.root"):
        build_data({"name": "fashion_mnist", "root": str(blocker / "sub")})


def test_materialize_and_accuracy() -> None:
    from supernet import Supernet
    from supernet.evaluation import accuracy, materialize

    splits = build_data({"name": "digits"})
    x, y = materialize(splits.val)
    assert x.shape == (len(splits.val), 1, 8, 8) and y.shape == (len(splits.val),)
    space = SearchSpace.preset("digits")
    net = Supernet(space).train()
    acc = accuracy(net, x, y, space.smallest(), batch_size=50)
    assert 0.0 <= acc <= 1.0 and net.training
    # An untrained net is near chance; labels it predicts by construction score 1.0.
    with torch.no_grad():
        predicted = net.eval()(x, space.smallest()).argmax(-1)
    assert accuracy(net, x, predicted, space.smallest(), batch_size=7) == 1.0
    model = net.extract(space.smallest())
    assert accuracy(model, x, predicted) == 1.0


def test_translation_pads_with_black_not_the_mean() -> None:
    """Digits are white on black: a shifted digit's new border must be black, as in raw pixels."""
    splits = build_data({"name": "digits", "augment": {"crop_padding": 2}})
    x = torch.stack([splits.train[i][0] for i in range(64)])
    black = float(splits.augment.fill[0])  # type: ignore[attr-defined]
    assert black == pytest.approx(float(x.min()))  # the normalised value of raw 0
    out = splits.augment(x)
    # Every output pixel is an input pixel of its own image or the black fill.
    for a, b in zip(x, out, strict=True):
        values = set(a.flatten().tolist()) | {black}
        assert set(b.flatten().tolist()) <= values
    assert (out == black).sum() > (x == black).sum()  # some padding came in


def test_evalset_streams_or_holds_and_scores_several_subnets() -> None:
    from supernet import Supernet
    from supernet.evaluation import EvalSet, accuracies, accuracy, in_memory, materialize

    splits = build_data({"name": "digits"})
    assert in_memory(splits.val) and in_memory(splits.test)
    held = EvalSet(splits.val, batch_size=50)
    streamed = EvalSet(splits.val, batch_size=50)
    streamed.tensors, streamed.loader = None, torch.utils.data.DataLoader(splits.val, 50)
    space = SearchSpace.preset("digits")
    net = Supernet(space)
    subnets = {"small": space.smallest(), "large": space.largest()}
    a = accuracies(net, held, subnets)
    assert a == accuracies(net, streamed, subnets)
    x, y = materialize(splits.val)
    assert a["small"] == accuracy(net, x, y, space.smallest())
    assert a["large"] == accuracy(net, x, y, space.largest())
    state = torch.get_rng_state()
    EvalSet(splits.val)
    assert torch.equal(state, torch.get_rng_state())  # evaluation draws no global random numbers


#: A process that unpacks Fashion-MNIST into argv[2] once every process is ready.
_AT_ONCE = """
import sys, time
from pathlib import Path
from supernet import data
data.DEBIAN_FASHION_MNIST = Path(sys.argv[1])
ready, go = Path(sys.argv[3]), Path(sys.argv[4])
ready.touch()
while not go.exists():
    time.sleep(0.005)
data.build_data({"name": "fashion_mnist", "root": sys.argv[2], "val_size": 8})
"""


def test_processes_unpacking_fashion_mnist_at_once_all_succeed(tmp_path: Path) -> None:
    """Runs started together on a fresh machine (two benchmarks, a sweep) unpack the Debian files
    at the same moment: they used one temporary name, and a rename of one made another's fail."""
    debian = tmp_path / "debian"
    debian.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20000), ("t10k", 2000)):  # large: the unpacks overlap
        _write_idx(debian / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(debian / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    root, go = tmp_path / "root", tmp_path / "go"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _AT_ONCE,
                str(debian),
                str(root),
                str(tmp_path / f"r{i}"),
                str(go),
            ]
        )
        for i in range(4)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("r?"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()  # all four unpack at the same moment
        assert [w.wait(120) for w in workers] == [0, 0, 0, 0]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    raw = root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        f"{p.name[:-3]}" for p in debian.iterdir()
    )  # every file whole, no temporary left
