"""The image processor's preprocessing, reproduced so it can run on the model's device.

Depth Anything's processor (transformers' DPT processor) resizes with Pillow: the target
keeps the aspect ratio (the side that changes least fixes the scale) and each side is rounded
to a multiple of the patch size (14); Pillow then resamples the uint8 image in two passes,
horizontal then vertical, each with fixed-point (22-bit) filter weights and rounding back to
uint8; finally the image is rescaled to [0, 1] and normalised by mean and std.

`resample_taps` computes Pillow's integer weights; `TensorPreprocessor` applies them with
integer arithmetic in torch (index_select, multiply, sum, shift), so its output equals
Pillow's bit for bit on any device, and the normalisation follows in float. The uint8 image
is what travels to the device: 4x less than float pixels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MonoModelError

if TYPE_CHECKING:
    import torch

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed point for 8-bit images (Resample.c)


def _box(x: np.ndarray) -> np.ndarray:
    return ((x > -0.5) & (x <= 0.5)).astype(np.float64)


def _bilinear(x: np.ndarray) -> np.ndarray:
    w: np.ndarray = np.maximum(0.0, 1.0 - np.abs(x))
    return w


def _hamming(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        px = ax * math.pi
        w = np.sin(px) / px * (np.float32(0.54) + np.float32(0.46) * np.cos(px))
    return np.where(ax == 0.0, 1.0, np.where(ax >= 1.0, 0.0, w))


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5
    ax = np.abs(x)
    inner = ((a + 2.0) * ax - (a + 3.0)) * ax * ax + 1
    outer = (((ax - 5) * ax + 8) * ax - 4) * a
    return np.where(ax < 1.0, inner, np.where(ax < 2.0, outer, 0.0))


def _sinc(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        px = x * math.pi
        return np.where(x == 0.0, 1.0, np.sin(px) / px)


def _lanczos(x: np.ndarray) -> np.ndarray:
    return np.where((x >= -3.0) & (x < 3.0), _sinc(x) * _sinc(x / 3), 0.0)


# Pillow's resampling filters by its enum value (PIL.Image.Resampling): (filter, support).
FILTERS: dict[int, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    1: (_lanczos, 3.0),
    2: (_bilinear, 1.0),
    3: (_bicubic, 2.0),
    4: (_box, 0.5),
    5: (_hamming, 1.0),
}


def resample_taps(in_size: int, out_size: int, resample: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's resampling of one axis as (source index, integer weight) per output pixel.

    Both arrays are (out_size, taps); unused taps point at pixel 0 with weight 0. An output
    pixel is clip(floor((sum(pixel * weight) + 2**21) / 2**22), 0, 255), as in Resample.c."""
    if resample not in FILTERS:
        raise MonoModelError(f"resampling filter {resample} is not supported on the device (use preprocess:=processor)")
    if in_size < 1 or out_size < 1:
        raise MonoModelError(f"cannot resample {in_size} pixels to {out_size}")
    filt, filter_support = FILTERS[resample]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = filter_support * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    centers = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum(np.trunc(centers - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(centers + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    used = taps[None, :] < xmax[:, None]
    index = xmin[:, None] + taps[None, :]
    w = np.where(used, filt((index - centers[:, None] + 0.5) / filterscale), 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=w, where=total != 0.0)
    fixed = np.trunc(w * (1 << PRECISION_BITS) + np.where(w < 0, -0.5, 0.5)).astype(np.int32)
    return np.where(used, index, 0).astype(np.int64), np.where(used, fixed, 0).astype(np.int32)


def _resample_code(value: Any) -> int:
    """Pillow's filter number from what a processor stores (Pillow's enum, an int, or a name)."""
    names = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
    try:
        return int(value)
    except (TypeError, ValueError):
        return names.get(str(getattr(value, "name", value)).lower(), -1)  # -1: not reproduced on the device


@dataclass(frozen=True)
class ProcessorSettings:
    """What the image processor does to an image (read from it, or from an exported ONNX model)."""

    height: int = 518
    width: int = 518
    keep_aspect_ratio: bool = True
    ensure_multiple_of: int = 14
    resample: int = 3  # Pillow's BICUBIC
    do_resize: bool = True
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @classmethod
    def from_processor(cls, processor: Any) -> ProcessorSettings:
        size = getattr(processor, "size", None) or {}

        def get(key: str, default: Any) -> Any:
            value = size.get(key) if isinstance(size, Mapping) else getattr(size, key, None)
            return default if value is None else value

        def triple(value: Any, default: tuple[float, float, float]) -> tuple[float, float, float]:
            if value is None:
                return default
            v = [float(x) for x in (value if isinstance(value, list | tuple) else [value] * 3)]
            return (v[0], v[1], v[2])

        return cls(
            height=int(get("height", 518)),
            width=int(get("width", 518)),
            keep_aspect_ratio=bool(getattr(processor, "keep_aspect_ratio", True)),
            ensure_multiple_of=int(getattr(processor, "ensure_multiple_of", 1) or 1),
            resample=_resample_code(getattr(processor, "resample", 3)),
            do_resize=bool(getattr(processor, "do_resize", True)),
            do_rescale=bool(getattr(processor, "do_rescale", True)),
            rescale_factor=float(getattr(processor, "rescale_factor", 1 / 255)),
            do_normalize=bool(getattr(processor, "do_normalize", True)),
            image_mean=triple(getattr(processor, "image_mean", None), cls.image_mean),
            image_std=triple(getattr(processor, "image_std", None), cls.image_std),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProcessorSettings:
        d = json.loads(text)
        d["image_mean"] = tuple(d["image_mean"])
        d["image_std"] = tuple(d["image_std"])
        return cls(**d)


def network_input_size(
    height: int, width: int, target: tuple[int, int], *, keep_aspect_ratio: bool, multiple: int
) -> tuple[int, int]:
    """The (height, width) the processor resizes an image to (transformers' DPT rule)."""
    scale_h, scale_w = target[0] / height, target[1] / width
    if keep_aspect_ratio:  # scale as little as possible
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h

    def constrain(value: float) -> int:
        x = round(value / multiple) * multiple
        return int(math.ceil(value / multiple) * multiple) if x < 0 else int(x)

    return constrain(scale_h * height), constrain(scale_w * width)


class TensorPreprocessor:
    """uint8 RGB images (B, H, W, 3) on any torch device -> the processor's pixel values (B, 3, h, w).

    Weights are cached per shape on the tensor's device, so a fixed camera pays once."""

    def __init__(self, settings: ProcessorSettings) -> None:
        if settings.do_resize and settings.resample not in FILTERS:
            raise MonoModelError(
                f"resampling filter {settings.resample} is not supported on the device (use preprocess:=processor)"
            )
        self.settings = settings
        self._taps: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._affine: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _axis(self, n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        key = (n_in, n_out, str(device))
        if key not in self._taps:
            index, weight = resample_taps(n_in, n_out, self.settings.resample)
            self._taps[key] = (torch.from_numpy(index).to(device), torch.from_numpy(weight).to(device))
        return self._taps[key]

    def _scale_offset(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel a, b with pixel values = a * uint8 + b (rescale, then normalise)."""
        import torch

        key = str(device)
        if key not in self._affine:
            s = self.settings
            a = np.full(3, s.rescale_factor if s.do_rescale else 1.0, np.float64)
            b = np.zeros(3, np.float64)
            if s.do_normalize:
                mean, std = np.asarray(s.image_mean, np.float64), np.asarray(s.image_std, np.float64)
                a, b = a / std, -mean / std
            self._affine[key] = (
                torch.tensor(a, dtype=torch.float32, device=device).view(1, 3, 1, 1),
                torch.tensor(b, dtype=torch.float32, device=device).view(1, 3, 1, 1),
            )
        return self._affine[key]

    def resize_uint8(self, chw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, 3, H, W) integer pixels -> (B, 3, h, w) int32 pixels, as Pillow resizes them."""
        import torch

        x = chw.to(torch.int32)
        b, c, h_in, w_in = x.shape
        h_out, w_out = size
        half = 1 << (PRECISION_BITS - 1)
        if w_out != w_in:  # horizontal pass first, rounded to uint8 (Pillow's intermediate image)
            index, weight = self._axis(w_in, w_out, x.device)
            taps = index.shape[1]
            g = x.index_select(3, index.reshape(-1)).view(b, c, h_in, w_out, taps)
            s = (g * weight).sum(-1, dtype=torch.int32) + half
            x = torch.bitwise_right_shift(s, PRECISION_BITS).clamp_(0, 255)
        if h_out != h_in:
            index, weight = self._axis(h_in, h_out, x.device)
            taps = index.shape[1]
            g = x.index_select(2, index.reshape(-1)).view(b, c, h_out, taps, x.shape[3])
            s = (g * weight.view(h_out, taps, 1)).sum(3, dtype=torch.int32) + half
            x = torch.bitwise_right_shift(s, PRECISION_BITS).clamp_(0, 255)
        return x

    def __call__(self, images: torch.Tensor, size: tuple[int, int], dtype: torch.dtype | None = None) -> torch.Tensor:
        """`images`: uint8 (B, H, W, 3); `size`: the network input (h, w); returns pixel values in `dtype`."""
        import torch

        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise MonoModelError(f"expected uint8 images (B, H, W, 3), got {images.dtype} {tuple(images.shape)}")
        chw = images.permute(0, 3, 1, 2)
        pixels = self.resize_uint8(chw, size) if self.settings.do_resize else chw
        a, b = self._scale_offset(images.device)
        out = torch.addcmul(b, pixels.to(torch.float32), a)
        return out if dtype is None or dtype == torch.float32 else out.to(dtype)


def pil_preprocess(image: np.ndarray, size: tuple[int, int], settings: ProcessorSettings) -> np.ndarray:
    """The processor's pixel values (1, 3, h, w) float32 for one uint8 RGB image, with Pillow itself
    (the CPU backends: no torch needed)."""
    from PIL import Image

    pixels = image
    if settings.do_resize and (image.shape[0], image.shape[1]) != size:
        resized = Image.fromarray(image).resize((size[1], size[0]), resample=settings.resample)
        pixels = np.asarray(resized)
    x = pixels.astype(np.float32)
    if settings.do_rescale:
        x *= np.float32(settings.rescale_factor)
    if settings.do_normalize:
        x -= np.asarray(settings.image_mean, np.float32)
        x /= np.asarray(settings.image_std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
