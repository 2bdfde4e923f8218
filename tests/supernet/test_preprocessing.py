"""Preprocessing: what the data pipeline does to raw images, recorded, re-applied outside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from sklearn.datasets import load_digits

from supernet import (
    CheckpointError,
    Preprocessing,
    SearchSpace,
    Supernet,
    load_preprocessing,
    load_subnet,
    save_subnet,
)
from supernet.data import build_data, digits_split
from supernet.preprocessing import IMAGENET_MEAN, PreprocessingError
from supernet.saved_model import CONFIG_FILE

DIGITS = SearchSpace.preset("digits")


def _raw_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as it ships them (8x8 arrays of 0..16), and the tool's split."""
    digits = load_digits()
    rest, test = digits_split(len(digits.target), 0.2)
    return digits.images, rest, test


def test_digits_preprocessing_reproduces_the_pipeline_bit_for_bit() -> None:
    splits = build_data({"name": "digits"})
    pre = splits.preprocessing
    assert pre is not None
    assert pre.input_size == (1, 8, 8) and pre.divide_by == 16.0 and pre.resize is None
    assert pre.class_names == tuple("0123456789") and pre.dataset == "digits"
    images, rest, test = _raw_digits()
    # The statistics are the training images' (after /16), not a guess such as 0.5 / 0.5.
    assert pre.mean[0] == pytest.approx(float((images[rest] / 16).mean()), rel=1e-5)
    assert pre.std[0] == pytest.approx(float((images[rest] / 16).std(ddof=1)), rel=1e-5)
    assert 0.2 < pre.mean[0] < 0.4 and 0.3 < pre.std[0] < 0.5
    # Raw test images through the recorded preprocessing: exactly the tool's test tensors.
    want = splits.test.tensors[0]  # type: ignore[attr-defined]
    assert torch.equal(pre(images[test]), want)
    assert torch.equal(pre(images[test].astype(np.uint8)), want)  # integer arrays too
    assert torch.equal(pre(torch.from_numpy(images[test])), want)
    assert torch.equal(pre(images[test][:, None]), want)  # (N, 1, H, W)
    assert torch.equal(pre(images[test][..., None]), want)  # (N, H, W, 1)
    assert torch.equal(pre(images[test][0]), want[:1])  # one (H, W) image
    from PIL import Image

    pil = Image.fromarray(images[test][0].astype(np.uint8), mode="L")
    assert torch.equal(pre(pil), want[:1])


def test_images_of_the_wrong_size_or_shape_are_refused_in_one_line() -> None:
    pre = build_data({"name": "digits"}).preprocessing
    assert pre is not None
    with pytest.raises(PreprocessingError, match=r"^images of 28x28 pixels, but this model takes"):
        pre(np.zeros((2, 28, 28)))
    with pytest.raises(PreprocessingError, match=r"cannot read images of shape \[2, 3, 8, 8\]"):
        pre(np.zeros((2, 3, 8, 8)))


def test_imagefolder_preprocessing_is_its_evaluation_transform(tmp_path: Path) -> None:
    """A raw image file through the recorded preprocessing gives what the pipeline's test split
    gives (resize, centre crop, /255, ImageNet's mean and std), from PIL and from an array."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            pixels = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "0.png")
    splits = build_data(
        {"name": "imagefolder", "root": str(tmp_path), "img_size": 16, "val_size": 0.5}
    )
    pre = splits.preprocessing
    assert pre is not None
    assert pre.input_size == (3, 16, 16) and pre.resize == int(16 * 256 / 224)
    assert pre.mean == IMAGENET_MEAN and pre.divide_by == 255.0
    assert pre.class_names == ("cat", "dog") and pre.interpolation == "bilinear"
    x, _ = splits.test[0]
    path = tmp_path / "val" / "cat" / "0.png"
    assert torch.allclose(pre(Image.open(path))[0], x, atol=1e-6)
    # An array is resized by torch (antialiased), close to PIL's resize but not bit-exact.
    array = np.asarray(Image.open(path).convert("RGB"))  # (H, W, 3) uint8
    assert (pre(array)[0] - x).abs().mean() < 0.05
    # timm reads the same numbers from the model (model.pretrained_cfg).
    timm_data = pytest.importorskip("timm.data")
    model = torch.nn.Identity()
    model.pretrained_cfg = pre.pretrained_cfg(2)  # type: ignore[assignment]
    config = timm_data.resolve_model_data_config(model)
    assert config["input_size"] == (3, 16, 16) and tuple(config["mean"]) == IMAGENET_MEAN
    assert config["interpolation"] == "bilinear" and config["crop_mode"] == "center"
    transform = timm_data.create_transform(**config)
    assert torch.allclose(transform(Image.open(path).convert("RGB")), x, atol=1e-6)


def test_record_round_trips_and_bad_records_fail() -> None:
    pre = build_data({"name": "digits"}).preprocessing
    assert pre is not None
    text = yaml.safe_dump(pre.to_dict())
    assert Preprocessing.from_dict(yaml.safe_load(text)) == pre
    assert "x = (raw / divide_by - mean) / std" in text
    record = pre.to_dict()
    for key, value, message in (
        ("std", [0.0], "std must be positive"),
        ("mean", [0.1, 0.2], r"mean must be 1 finite number\(s\)"),
        ("input_size", [8, 8], r"input_size must be \[channels, height, width\]"),
        ("divide_by", "16", "divide_by must be 1 finite number"),
    ):
        with pytest.raises(PreprocessingError, match=message):
            Preprocessing.from_dict({**record, key: value})


def test_exports_carry_it_and_old_exports_still_load(tmp_path: Path) -> None:
    pre = build_data({"name": "digits"}).preprocessing
    assert pre is not None
    model = Supernet(DIGITS).extract(DIGITS.smallest())
    new = save_subnet(model, DIGITS, tmp_path / "new", preprocessing=pre)
    saved = yaml.safe_load((new / CONFIG_FILE).read_text())
    assert list(saved) == ["space", "subnet", "preprocessing", "metadata"]
    loaded = load_subnet(new)
    assert loaded.preprocessing == pre == load_preprocessing(new)
    assert loaded.pretrained_cfg["num_classes"] == 10
    # timm's transforms divide by 255: its mean/std are rescaled so that digits' raw 0..16
    # values, as an 8-bit image, become exactly the model's input.
    assert loaded.pretrained_cfg["mean"] == tuple(m * 16 / 255 for m in pre.mean)
    timm_data = pytest.importorskip("timm.data")
    config = timm_data.resolve_model_data_config(loaded)
    transform = timm_data.create_transform(**config)
    raw = load_digits().images[:5]
    want = pre(raw)
    got = torch.stack([transform(Image.fromarray(img.astype(np.uint8))) for img in raw])
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
    old = save_subnet(model, DIGITS, tmp_path / "old")  # as exports were before
    assert "preprocessing" not in yaml.safe_load((old / CONFIG_FILE).read_text())
    assert load_subnet(old).preprocessing is None
    with pytest.raises(CheckpointError, match=r"records no preprocessing .* export it again"):
        load_preprocessing(old)
    broken = yaml.safe_load((new / CONFIG_FILE).read_text())
    broken["preprocessing"]["std"] = [-1.0]
    (new / CONFIG_FILE).write_text(yaml.safe_dump(broken))
    with pytest.raises(CheckpointError, match=r"its preprocessing: is invalid .*std must be"):
        load_subnet(new)
