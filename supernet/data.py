"""Datasets and splits: train, a seeded validation split carved from train, and test.

Search evaluates on ``val`` only; ``test`` is for final reports and is never seen by training or
search. Small datasets (digits, Fashion-MNIST, CIFAR) are held in memory as normalised float
tensors and augmented a batch at a time (:class:`BatchAugment`), which is far faster on a few CPU
cores than per-image PIL transforms; ImageFolder data uses torchvision transforms per image.

    splits = build_data({"name": "digits"})
    splits.check_fits(space)          # image size, channels and classes must match the space
    x, y = next(iter(DataLoader(splits.train, batch_size=64)))
    x = splits.augment(x)              # training batches only
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset, TensorDataset

from .common.atomic import atomic_write
from .common.config import option
from .common.errors import UserError
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from .space import Space

__all__ = [
    "DATASETS",
    "AugmentConfig",
    "BatchAugment",
    "DataConfig",
    "DataError",
    "DataSplits",
    "ImageReadError",
    "build_data",
    "data_preprocessing",
    "digits_split",
    "imagefolder_preprocessing",
]

#: Where Debian's ``dataset-fashion-mnist`` package puts the four IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_ROOT = Path(os.environ.get("VITNAS_DATA", Path.home() / ".cache" / "vitnas" / "data"))
DATASETS = ("digits", "fashion_mnist", "cifar10", "cifar100", "imagefolder")
#: scikit-learn's digits are 8x8 images of integers 0..16.
DIGITS_MAX = 16.0


class DataError(UserError):
    """A dataset that cannot be found or does not fit the search space."""


class ImageReadError(DataError):
    """An image file that cannot be read (truncated, not an image). A DataLoader worker's error
    reaches the main process rebuilt from its traceback's text: the last line is kept."""

    def __init__(self, message: str) -> None:
        if "Original Traceback" in message:
            last = message.strip().splitlines()[-1]
            message = last.partition(f"{type(self).__name__}: ")[2] or last
        super().__init__(message)


def _load_image(path: str) -> Any:
    """ImageFolder's loader (PIL, RGB), with a bad file named in one error line."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            return image.convert("RGB")
    except UnidentifiedImageError:
        detail = "not an image, or in a format PIL cannot read"
    except (OSError, SyntaxError, ValueError) as exc:  # truncated, damaged
        detail = " ".join(str(exc).split()) or type(exc).__name__
    raise ImageReadError(
        f"cannot read the image {path} ({detail}); replace or remove the file (every file in a "
        "class folder must be an image)"
    )


@dataclass
class AugmentConfig:
    """Training-batch augmentation: random translation by up to ``crop_padding`` pixels (a padded
    random crop), horizontal flips, and for ImageFolder a random-resized-crop scale range."""

    crop_padding: int = option(0, "random translation by up to this many pixels")
    hflip: bool = option(False, "random horizontal flips")
    scale_min: float = option(0.08, "imagefolder: RandomResizedCrop's smallest area fraction")


@dataclass
class DataConfig:
    """Which data, and how it is split (the ``data`` group's presets say what differs)."""

    name: str = option("digits", "digits | fashion_mnist | cifar10 | cifar100 | imagefolder")
    root: str | None = option(None, "where the data lies; null: $VITNAS_DATA or ~/.cache/...")
    val_size: float = option(0.1, "the validation split search uses: a fraction, or a count > 1")
    test_size: float = option(0.2, "digits only (no test split ships): fraction held out")
    train_subset: int | None = option(None, "keep this many training images (quick runs)")
    split_seed: int = option(0, "seed of the validation split")
    download: bool = option(False, "let torchvision download (where a network exists)")
    img_size: int | None = option(None, "imagefolder: resize to this; others: native size")
    augment: AugmentConfig = option(AugmentConfig(), "")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise DataError(f"unknown data option(s) {', '.join(unknown)}; known: {sorted(names)}")
        values = dict(data)
        if isinstance(values.get("augment"), Mapping):
            aug_names = {f.name for f in fields(AugmentConfig)}
            bad = sorted(set(values["augment"]) - aug_names)
            if bad:
                raise DataError(
                    f"unknown augment option(s) {', '.join(bad)}; known: {sorted(aug_names)}"
                )
            values["augment"] = AugmentConfig(**values["augment"])
        config = cls(**values)
        if config.name not in DATASETS:
            raise DataError(f"unknown dataset {config.name!r}; choose one of {', '.join(DATASETS)}")
        if config.val_size <= 0:
            raise DataError(f"data.val_size must be positive, got {config.val_size}")
        return config


class BatchAugment:
    """Augments a batch of normalised images (B, C, H, W) in place of per-image transforms.

    ``fill`` is the per-channel value the translation pads with: the normalised value of a black
    pixel (what a padded crop of the raw image shows), not 0, which after normalisation is the
    dataset's mean grey. ``generator`` makes the draws reproducible; trainers checkpoint it.
    """

    def __init__(
        self,
        config: AugmentConfig,
        generator: torch.Generator | None = None,
        fill: torch.Tensor | None = None,
    ) -> None:
        self.config = config
        self.generator = generator
        self.fill = fill

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.config.crop_padding
        b, c, h, w = x.shape
        if pad > 0:
            if self.fill is None:
                padded = F.pad(x, (pad, pad, pad, pad))
            else:
                fill = self.fill.to(x.device, x.dtype).reshape(1, c, 1, 1)
                padded = fill.expand(b, c, h + 2 * pad, w + 2 * pad).clone()
                padded[:, :, pad : pad + h, pad : pad + w] = x
            shifts = torch.randint(0, 2 * pad + 1, (2, b), generator=self.generator)
            rows = (torch.arange(h).unsqueeze(0) + shifts[0].unsqueeze(1)).to(x.device)
            cols = (torch.arange(w).unsqueeze(0) + shifts[1].unsqueeze(1)).to(x.device)
            batch = torch.arange(b, device=x.device)[:, None, None]
            x = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
            x = x.permute(0, 3, 1, 2).contiguous()
        if self.config.hflip:
            flip = torch.rand(b, generator=self.generator) < 0.5
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
        return x


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass
class DataSplits:
    name: str
    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]
    num_classes: int
    in_chans: int
    img_size: int
    augment: Callable[[torch.Tensor], torch.Tensor] = _identity
    #: How a raw image of this data becomes a model input (what exports record).
    preprocessing: Preprocessing | None = None

    def check_fits(self, space: Space) -> None:
        """Fail with one message if the images or classes do not fit ``space``."""
        have = (self.img_size, self.in_chans, self.num_classes)
        want = (space.img_size, space.in_chans, space.num_classes)
        if have != want:
            raise DataError(
                f"data {self.name!r} gives {self.img_size}x{self.img_size} images with "
                f"{self.in_chans} channel(s) and {self.num_classes} classes, but the search space "
                f"{space.name or ''} expects {space.img_size}x{space.img_size}, {space.in_chans} "
                f"channel(s), {space.num_classes} classes; use data and a search space that "
                "match (data= with the space= preset of the same name)"
            )


# -- splitting -------------------------------------------------------------------------------------
def _split_indices(n: int, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and cut off ``size`` (fraction or count) of it."""
    count = round(size * n) if size <= 1 else int(size)
    if not 0 < count < n:
        raise DataError(f"cannot carve {size} of {n} training images into a validation split")
    order = np.random.default_rng(seed).permutation(n)
    return order[count:], order[:count]


def _carve(
    full_train: Dataset[Any], eval_train: Dataset[Any], config: DataConfig
) -> tuple[Dataset[Any], Dataset[Any]]:
    """Train and val subsets: val uses ``eval_train`` (the same images without augmentation)."""
    train_idx, val_idx = _split_indices(len(full_train), config.val_size, config.split_seed)  # type: ignore[arg-type]
    if config.train_subset is not None:
        if config.train_subset < 1:
            raise DataError(f"data.train_subset must be positive, got {config.train_subset}")
        train_idx = train_idx[: config.train_subset]
    return Subset(full_train, train_idx.tolist()), Subset(eval_train, val_idx.tolist())


def _tensor_splits(
    name: str,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    config: DataConfig,
    divide_by: float,
    class_names: list[str] | None,
) -> DataSplits:
    """``train_x`` and ``test_x``: the raw images divided by ``divide_by`` (values in [0, 1])."""
    # Normalise with training-set statistics, applied to both splits.
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    preprocessing = Preprocessing(
        input_size=(train_x.shape[1], train_x.shape[2], train_x.shape[3]),
        divide_by=divide_by,
        mean=tuple(mean.reshape(-1).tolist()),
        std=tuple(std.reshape(-1).tolist()),
        class_names=None if class_names is None else tuple(class_names),
        dataset=name,
    )
    train_x = ((train_x - mean) / std).contiguous()
    test_x = ((test_x - mean) / std).contiguous()
    full = TensorDataset(train_x, train_y)
    train, val = _carve(full, full, config)
    generator = torch.Generator().manual_seed(config.split_seed)
    return DataSplits(
        name=name,
        train=train,
        val=val,
        test=TensorDataset(test_x, test_y),
        num_classes=num_classes,
        in_chans=train_x.shape[1],
        img_size=train_x.shape[-1],
        augment=BatchAugment(config.augment, generator, fill=(-mean / std).reshape(-1)),
        preprocessing=preprocessing,
    )


# -- datasets --------------------------------------------------------------------------------------
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: 1,797 images (8x8, integers 0..16) and their labels 0..9, read
    from the file scikit-learn ships as its ``load_digits`` reads it, without importing
    scikit-learn (3.5 s, scipy with it, in every search worker; tests/supernet/test_data.py
    checks both give the same arrays)."""
    spec = importlib.util.find_spec("sklearn")
    roots = spec.submodule_search_locations if spec is not None else None
    path = Path(roots[0]) / "datasets" / "data" / "digits.csv.gz" if roots else None
    if path is None or not path.is_file():  # another layout: let scikit-learn find it
        from sklearn.datasets import load_digits as sklearn_digits

        digits = sklearn_digits()
        return digits.images, digits.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def _digits(config: DataConfig) -> DataSplits:
    images, labels = load_digits()
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / DIGITS_MAX
    y = torch.tensor(labels, dtype=torch.long)
    rest, test = digits_split(len(y), config.test_size)
    names = [str(n) for n in range(10)]
    return _tensor_splits(
        "digits", x[rest], y[rest], x[test], y[test], 10, config, DIGITS_MAX, names
    )


def digits_split(n: int, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """The indices of scikit-learn's digits used for training (and validation) and for test.

    Digits ships no test split: one is held out with a fixed seed (independent of split_seed, so
    changing the validation seed never moves test images into training)."""
    return _split_indices(n, test_size, seed=12345)


def _root(config: DataConfig) -> Path:
    return Path(config.root).expanduser() if config.root else DEFAULT_ROOT


def _unpack(source: Path, target: Path) -> None:
    """Gunzip ``source`` into ``target`` through a temporary file of this process's own, renamed
    into place: processes that start on a fresh machine at once (a sweep, two benchmarks) each
    unpack whole files and the last rename wins, never a half-written or vanished file."""

    def write(tmp: str) -> None:
        with gzip.open(source, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)

    atomic_write(target, write)


def _fashion_mnist(config: DataConfig) -> DataSplits:
    from torchvision.datasets import FashionMNIST

    root = _root(config)
    raw = root / "FashionMNIST" / "raw"
    names = [
        f"{base}-idx{k}-ubyte"
        for base, k in (
            ("train-images", 3),
            ("train-labels", 1),
            ("t10k-images", 3),
            ("t10k-labels", 1),
        )
    ]
    if not all((raw / n).is_file() for n in names) and all(
        (DEBIAN_FASHION_MNIST / f"{n}.gz").is_file() for n in names
    ):
        try:
            raw.mkdir(parents=True, exist_ok=True)
            for n in names:  # torchvision reads the uncompressed files; unpack them atomically
                _unpack(DEBIAN_FASHION_MNIST / f"{n}.gz", raw / n)
        except OSError as exc:
            raise DataError(
                f"cannot unpack Fashion-MNIST from {DEBIAN_FASHION_MNIST} into {raw} ({exc}); "
                "set data.root (or VITNAS_DATA) to a writable folder"
            ) from None
    try:
        train = FashionMNIST(str(root), train=True, download=config.download)
        test = FashionMNIST(str(root), train=False, download=config.download)
    except RuntimeError as exc:
        raise DataError(
            f"Fashion-MNIST not found: looked for {', '.join(names)} in {raw} and for their .gz "
            f"files in {DEBIAN_FASHION_MNIST}. Install them with `apt-get install "
            f"dataset-fashion-mnist`, or pass data.download=true ({exc})"
        ) from None
    return _tensor_splits(
        "fashion_mnist",
        train.data.unsqueeze(1).float() / 255.0,
        train.targets.long(),
        test.data.unsqueeze(1).float() / 255.0,
        test.targets.long(),
        10,
        config,
        255.0,
        list(train.classes),
    )


def _cifar(config: DataConfig, classes: int) -> DataSplits:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if classes == 10 else CIFAR100
    root = _root(config)
    try:
        train = cls(str(root), train=True, download=config.download)
        test = cls(str(root), train=False, download=config.download)
    except RuntimeError as exc:
        raise DataError(
            f"CIFAR-{classes} not found under {root} ({exc}); set data.root to the folder holding "
            f"{'cifar-10-batches-py' if classes == 10 else 'cifar-100-python'}, or pass "
            "data.download=true"
        ) from None

    def images(ds: Any) -> torch.Tensor:
        return torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255.0

    return _tensor_splits(
        f"cifar{classes}",
        images(train),
        torch.tensor(train.targets),
        images(test),
        torch.tensor(test.targets),
        classes,
        config,
        255.0,
        list(train.classes),
    )


def _imagefolder(config: DataConfig) -> DataSplits:
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    if not config.root:
        raise DataError("data=imagefolder needs data.root=<folder with train/ and val/ (or test/)>")
    root = Path(config.root).expanduser()
    train_dir = root / "train"
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DataError(
            f"ImageFolder data needs {train_dir} and {root / 'val'} (or {root / 'test'}), "
            "each with one sub-folder of images per class"
        )
    size = config.img_size or 224
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = [transforms.RandomResizedCrop(size, scale=(config.augment.scale_min, 1.0))]
    if config.augment.hflip:
        train_tf.append(transforms.RandomHorizontalFlip())
    train_tf += [transforms.ToTensor(), normalize]
    eval_tf = transforms.Compose(
        [
            transforms.Resize(int(size * 256 / 224)),  # as imagefolder_preprocessing says
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            normalize,
        ]
    )
    try:
        full_train = ImageFolder(str(train_dir), transforms.Compose(train_tf), loader=_load_image)
        eval_train = ImageFolder(str(train_dir), eval_tf, loader=_load_image)
        test = ImageFolder(str(test_dir), eval_tf, loader=_load_image)
    except (FileNotFoundError, OSError) as exc:
        raise DataError(
            f"cannot read ImageFolder data under {root} ({exc}); train/ and val/ (or test/) need "
            "one sub-folder of images per class"
        ) from None
    if test.classes != full_train.classes:
        raise DataError(f"{test_dir} has other classes than {train_dir}")
    train, val = _carve(full_train, eval_train, config)
    return DataSplits(
        name="imagefolder",
        train=train,
        val=val,
        test=test,
        num_classes=len(full_train.classes),
        in_chans=3,
        img_size=size,
        preprocessing=imagefolder_preprocessing(size, full_train.classes),
    )


def imagefolder_preprocessing(
    size: int,
    class_names: Sequence[str] | None = None,
    interpolation: str = "bilinear",
    dataset: str = "imagefolder",
) -> Preprocessing:
    """ImageFolder's evaluation transform: shorter side to size x 256/224, centre crop, ToTensor
    (8-bit / 255), ImageNet's mean and std (DeiT's and AutoFormer's, with bicubic resizing)."""
    return Preprocessing(
        input_size=(3, size, size),
        divide_by=255.0,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        resize=int(size * 256 / 224),
        interpolation=interpolation,
        class_names=None if class_names is None else tuple(class_names),
        dataset=dataset,
    )


def build_data(config: DataConfig | Mapping[str, Any]) -> DataSplits:
    """Build the train / val / test splits a data config describes."""
    if not isinstance(config, DataConfig):
        config = DataConfig.from_dict(config)
    if config.name == "digits":
        return _digits(config)
    if config.name == "fashion_mnist":
        return _fashion_mnist(config)
    if config.name in ("cifar10", "cifar100"):
        return _cifar(config, int(config.name.removeprefix("cifar")))
    return _imagefolder(config)


def data_preprocessing(config: DataConfig | Mapping[str, Any]) -> Preprocessing:
    """How a raw image of the data ``config`` describes becomes a model input (its statistics
    are computed from the training images, so the data must be where the config says)."""
    splits = build_data(config)
    assert splits.preprocessing is not None  # every builder sets it
    return splits.preprocessing
