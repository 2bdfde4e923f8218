"""What a model needs to be fed: input size and channels, value scaling, mean and std, resizing,
and the names of its classes.

Every export records it (``preprocessing:`` in ``subnet.yaml``, the export's README, the ONNX
file's metadata), derived from the data the supernet was trained on (:mod:`supernet.data`
computes it beside the splits). One formula, the same for every dataset::

    x = (raw / divide_by - mean) / std        per channel, float32, layout (N, C, H, W)

``raw`` is the image as the dataset stores it: scikit-learn's digits are 0..16 (``divide_by``
16), 8-bit images 0..255 (``divide_by`` 255). ``mean`` and ``std`` are those of the training
images after the division (timm's convention). ImageFolder data is first resized (shorter side
to ``resize``, with ``interpolation``) and centre-cropped to the input size; the others are used
at their native size.

    pre = supernet.load_preprocessing("runs/demo/best")
    x = pre(raw_images)                      # numpy / torch / PIL -> float32 (N, C, H, W)
    logits = model(x)
    model.pretrained_cfg                     # timm's data config: timm.data.resolve_data_config
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "FORMULA",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Preprocessing",
    "PreprocessingError",
]

#: The formula every export documents, in words a reader without this package can apply.
FORMULA = "x = (raw / divide_by - mean) / std, per channel; float32, layout (N, C, H, W)"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


class PreprocessingError(ValueError):
    """A preprocessing record that cannot be read, or images it cannot be applied to."""


def _floats(name: str, value: Any, count: int) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * count
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != count
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(float(v)) for v in value)
    ):
        raise PreprocessingError(f"{name} must be {count} finite number(s), got {value!r}")
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class Preprocessing:
    """How raw images become a model's input (see the module docstring)."""

    input_size: tuple[int, int, int]  # (channels, height, width)
    divide_by: float  # raw values / divide_by: values in [0, 1]
    mean: tuple[float, ...]  # per channel, of the divided values
    std: tuple[float, ...]
    resize: int | None = None  # shorter side resized to this, then centre-cropped; None: as is
    interpolation: str = "bilinear"  # of the resize
    class_names: tuple[str, ...] | None = None  # output index -> class, where the data names them
    dataset: str | None = None  # where the statistics come from

    def __post_init__(self) -> None:
        size = self.input_size
        if (
            not isinstance(size, Sequence)
            or len(size) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise PreprocessingError(f"input_size must be [channels, height, width], got {size!r}")
        object.__setattr__(self, "input_size", tuple(size))
        channels = size[0]
        divide_by = _floats("divide_by", self.divide_by, 1)[0]
        if divide_by <= 0:
            raise PreprocessingError(f"divide_by must be positive, got {self.divide_by!r}")
        object.__setattr__(self, "divide_by", divide_by)
        object.__setattr__(self, "mean", _floats("mean", self.mean, channels))
        std = _floats("std", self.std, channels)
        if min(std) <= 0:
            raise PreprocessingError(f"std must be positive, got {list(std)}")
        object.__setattr__(self, "std", std)
        if self.resize is not None and (
            not isinstance(self.resize, int) or self.resize < min(size[1:])
        ):
            raise PreprocessingError(
                f"resize must be null or an integer >= the input size, got {self.resize!r}"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise PreprocessingError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got "
                f"{self.interpolation!r}"
            )
        if self.class_names is not None:
            names = self.class_names
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise PreprocessingError(f"class_names must be a list of strings, got {names!r}")
            object.__setattr__(self, "class_names", tuple(names))

    # -- records -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples) for YAML, JSON and ``torch.load(weights_only=True)``."""
        return {
            "input_size": list(self.input_size),
            "divide_by": self.divide_by,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
            "interpolation": self.interpolation,
            "class_names": None if self.class_names is None else list(self.class_names),
            "dataset": self.dataset,
            "formula": FORMULA,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        if not isinstance(data, Mapping):
            raise PreprocessingError(f"preprocessing must be a mapping, got {type(data).__name__}")
        known = {
            "input_size",
            "divide_by",
            "mean",
            "std",
            "resize",
            "interpolation",
            "class_names",
            "dataset",
        }
        missing = sorted({"input_size", "divide_by", "mean", "std"} - set(data))
        if missing:
            raise PreprocessingError(f"preprocessing lacks {', '.join(missing)}")
        values = {k: v for k, v in data.items() if k in known}  # (formula: documentation)
        size = values["input_size"]
        if isinstance(size, Sequence) and not isinstance(size, str):
            values["input_size"] = tuple(size)
        return cls(**values)

    def onnx_metadata(self) -> dict[str, str]:
        """The ONNX file's ``metadata_props``: every field as JSON text, and the formula."""
        return {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in self.to_dict().items()
            if value is not None
        }

    @property
    def crop_pct(self) -> float:
        """timm's name for input size / resize (1.0: no resize)."""
        return 1.0 if self.resize is None else self.input_size[1] / self.resize

    def pretrained_cfg(self, num_classes: int | None = None) -> dict[str, Any]:
        """timm's data config (``model.pretrained_cfg``; ``timm.data.resolve_data_config``
        reads ``input_size``, ``interpolation``, ``mean``, ``std``, ``crop_pct`` and
        ``crop_mode``).

        timm's transforms divide every image by 255 (8-bit images). Where the data's raw
        values have another scale (digits: 0..16), ``mean`` and ``std`` here are rescaled so that
        timm's ``(raw / 255 - mean) / std`` is this preprocessing's ``(raw / divide_by - mean) /
        std``: an image holding the data's raw values goes through timm's transform unchanged.
        """
        scale = self.divide_by / 255.0
        cfg: dict[str, Any] = {
            "input_size": self.input_size,
            "interpolation": self.interpolation,
            "mean": tuple(m * scale for m in self.mean),
            "std": tuple(s * scale for s in self.std),
            "crop_pct": self.crop_pct,
            "crop_mode": "center",
        }
        if num_classes is not None:
            cfg["num_classes"] = num_classes
        if self.class_names is not None:
            cfg["label_names"] = self.class_names
        return cfg

    def describe(self) -> list[str]:
        """Lines for a README: what the model takes, in words."""
        c, h, w = self.input_size
        lines = [
            f"- input: float32 (N, {c}, {h}, {w}) — {c} channel(s), {h}x{w} pixels",
            f"- scaling: raw pixel values / {self.divide_by:g} (values in [0, 1])",
            f"- normalisation: mean {list(self.mean)}, std {list(self.std)} per channel"
            + (f" ({self.dataset} training images)" if self.dataset else ""),
        ]
        if self.resize is not None:
            lines.append(
                f"- resize: shorter side to {self.resize} ({self.interpolation}), then a centre "
                f"crop of {h}x{w}"
            )
        else:
            lines.append(f"- size: images are used at {h}x{w}, not resized")
        if self.class_names is not None:
            names = ", ".join(self.class_names[:20])
            more = f", … ({len(self.class_names)} in all)" if len(self.class_names) > 20 else ""
            lines.append(f"- classes (output index order): {names}{more}")
        return lines

    def readme_section(self, has_onnx: bool) -> list[str]:
        """The export README's section: the numbers, and how to apply them with and without
        this package."""
        lines = [
            "## Preprocessing",
            "",
            "What the model takes (the preprocessing of the data it was trained on; also in "
            "`subnet.yaml` under `preprocessing:`"
            + (" and in `model.onnx`'s metadata" if has_onnx else "")
            + "):",
            "",
            *self.describe(),
            "",
            f"    {FORMULA}",
            "",
            "```python",
            "from supernet import load_subnet",
            "",
            'model = load_subnet("<this directory>")',
            "x = model.preprocessing(raw_images)  # numpy, torch or PIL, values as the data "
            "stores them",
            "logits = model(x)  # model.pretrained_cfg: timm's data config",
            "```",
        ]
        if has_onnx:
            resize = (
                f"  # first: shorter side to {self.resize} ({self.interpolation}), centre crop"
                if self.resize is not None
                else ""
            )
            lines += [
                "",
                "With onnxruntime and numpy alone:",
                "",
                "```python",
                "import json",
                "",
                "import numpy as np",
                "import onnxruntime",
                "",
                'session = onnxruntime.InferenceSession("model.onnx")',
                "meta = session.get_modelmeta().custom_metadata_map",
                "c = json.loads(meta['input_size'])[0]",
                "mean = np.float32(json.loads(meta['mean'])).reshape(1, c, 1, 1)",
                "std = np.float32(json.loads(meta['std'])).reshape(1, c, 1, 1)",
                f"raw = ...  # (N, C, H, W) raw pixel values{resize}",
                "x = (np.float32(raw) / np.float32(meta['divide_by']) - mean) / std",
                '(logits,) = session.run(["logits"], {"images": x})',
                "```",
            ]
        return lines

    # -- applying it -------------------------------------------------------------------------------
    def __call__(self, images: Any) -> torch.Tensor:
        """Raw images → the model's input, a float32 ``(N, C, H, W)`` tensor.

        ``images``: a PIL image or a list of them; or a numpy array / torch tensor of raw values
        shaped ``(H, W)`` (one single-channel image), ``(N, H, W)`` (single-channel images),
        ``(C, H, W)`` or ``(H, W, C)`` (one image), ``(N, C, H, W)`` or ``(N, H, W, C)``.
        Images of another size are resized and cropped where the data was (ImageFolder); for
        datasets used at their native size they must have the input size.
        """
        x = self._tensor(images)
        c, h, w = self.input_size
        if tuple(x.shape[-2:]) != (h, w):
            if self.resize is None:
                raise PreprocessingError(
                    f"images of {x.shape[-2]}x{x.shape[-1]} pixels, but this model takes "
                    f"{h}x{w} (its data was used at that size, not resized); give {h}x{w} images"
                )
            x = self._resize_crop(x)
        mean = torch.tensor(self.mean, dtype=torch.float32).reshape(1, c, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).reshape(1, c, 1, 1)
        return ((x / self.divide_by - mean) / std).contiguous()

    def _tensor(self, images: Any) -> torch.Tensor:
        pil = _pil_images(images)
        if pil is not None:
            return torch.stack([self._from_pil(image) for image in pil])
        if isinstance(images, torch.Tensor):
            x = images.detach().cpu()
        else:
            x = torch.tensor(np.asarray(images))  # a copy: the array may be read-only
        if not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int16, torch.int32)):
            x = x.to(torch.int64)
        return self._nchw(x.to(torch.float32))

    def _nchw(self, x: torch.Tensor) -> torch.Tensor:
        c = self.input_size[0]
        shape = tuple(x.shape)
        if x.ndim == 2 and c == 1:
            return x[None, None]
        if x.ndim == 3:
            if c == 1 and shape[-1] == 1:  # (H, W, 1)
                return x.permute(2, 0, 1)[None]
            if c == 1:  # (N, H, W), or (1, H, W): the same
                return x[:, None]
            if shape[0] == c:
                return x[None]
            if shape[-1] == c:
                return x.permute(2, 0, 1)[None]
        if x.ndim == 4:
            if shape[1] == c:
                return x
            if shape[-1] == c:
                return x.permute(0, 3, 1, 2)
        raise PreprocessingError(
            f"cannot read images of shape {list(shape)} for a model with {c} channel(s); give "
            f"(N, {c}, H, W), (N, H, W, {c})" + (" or (N, H, W)" if c == 1 else "")
        )

    def _from_pil(self, image: Any) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        c, h, w = self.input_size
        image = image.convert("L" if c == 1 else "RGB")
        if self.resize is None and image.size != (w, h):
            raise PreprocessingError(
                f"an image of {image.size[0]}x{image.size[1]} pixels, but this model takes "
                f"{w}x{h} (its data was used at that size, not resized); give {w}x{h} images"
            )
        if self.resize is not None:  # as the data pipeline does it: PIL's resize
            mode = InterpolationMode(self.interpolation)
            image = TF.center_crop(TF.resize(image, self.resize, interpolation=mode), [h, w])
        array = np.asarray(image, dtype=np.float32)
        x = torch.from_numpy(array.copy())
        return x[None] if x.ndim == 2 else x.permute(2, 0, 1)

    def _resize_crop(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        _, h, w = self.input_size
        mode = InterpolationMode(self.interpolation)
        x = TF.resize(x, self.resize, interpolation=mode, antialias=True)  # type: ignore[arg-type]
        return TF.center_crop(x, [h, w])


def _pil_images(images: Any) -> list[Any] | None:
    """``images`` as a list of PIL images, or None when they are not PIL images."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - torchvision needs Pillow
        return None
    if isinstance(images, Image.Image):
        return [images]
    if (
        isinstance(images, (list, tuple))
        and images
        and all(isinstance(i, Image.Image) for i in images)
    ):
        return list(images)
    return None
