"""sensor_msgs/Image <-> numpy, without cv_bridge.

The PyPI `cv-bridge` is a ROS 1 port that maps 16UC1 to CV_8UC1, and ROS 2's
cv_bridge is not installable from PyPI, so the conversion lives here. Reading is
duck-typed: anything with the Image fields (an rclpy message, a `rosbags`
message, a dataclass) converts, so the live nodes and the offline exporter share
one code path.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ImageConversionError

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "16UC1": (np.dtype(np.uint16), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
}

_HOST_BIG_ENDIAN = sys.byteorder == "big"


@dataclass
class ImageFields:
    """The data fields of a sensor_msgs/Image (everything but the header)."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes


def _layout(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        supported = ", ".join(sorted(ENCODINGS))
        raise ImageConversionError(f"unsupported image encoding {encoding!r}; supported: {supported}") from None


def image_to_array(msg: Any, *, copy: bool = True) -> np.ndarray:
    """Return the pixels of an Image-like message as an (H, W) or (H, W, C) array.

    Checks the encoding, that `step` holds a full row, and that `data` holds
    `step * height` bytes; honours `is_bigendian`. Rows padded past
    `width * pixel_size` are cropped. The result is a native-order copy, unless
    `copy=False`: then it may be a (possibly read-only) view of `msg.data`, for
    callers that own the buffer and only read it (the exporter: a bag's bytes).

    Raises:
        ImageConversionError: unknown encoding or inconsistent size fields.
    """
    encoding = str(msg.encoding)
    dtype, channels = _layout(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageConversionError(f"{encoding} image is empty ({width}x{height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"{encoding} image {width}x{height}: step {step} is shorter than a row "
            f"({width} px x {channels * dtype.itemsize} B = {row_bytes} B)"
        )
    if step % dtype.itemsize:
        raise ImageConversionError(
            f"{encoding} image: step {step} is not a multiple of the {dtype.itemsize}-byte element"
        )
    try:  # bytes, array.array('B') from rclpy, uint8 ndarray from rosbags
        raw = np.frombuffer(msg.data, dtype=np.uint8)
    except TypeError:  # a plain list of ints
        raw = np.asarray(msg.data, dtype=np.uint8)
    if raw.size != step * height:
        raise ImageConversionError(
            f"{encoding} image {width}x{height}: data holds {raw.size} B, expected step x height = "
            f"{step} x {height} = {step * height} B"
        )
    shape = (height, width) if channels == 1 else (height, width, channels)
    swap = dtype.itemsize > 1 and bool(msg.is_bigendian) != _HOST_BIG_ENDIAN
    rows = raw.reshape(height, step)[:, :row_bytes]
    if copy and not swap:  # by default copy: the message buffer may be read-only or reused by the middleware
        rows = rows.copy()
    elif step != row_bytes:  # padded rows: the element view below needs contiguous rows
        rows = np.ascontiguousarray(rows)
    arr = rows.view(dtype).reshape(shape)
    return arr.byteswap() if swap else arr


def image_to_rgb(msg: Any, *, copy: bool = True) -> np.ndarray:
    """The pixels of an rgb8 or bgr8 image as (H, W, 3) RGB (`copy` as in `image_to_array`).

    Raises:
        ImageConversionError: any other encoding, or inconsistent size fields.
    """
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ImageConversionError(f"colour images must be rgb8 or bgr8, got {msg.encoding!r}")
    if msg.encoding == "bgr8":  # the channel flip makes the copy
        return image_to_array(msg, copy=False)[..., ::-1].copy()
    return image_to_array(msg, copy=copy)


def array_to_fields(array: np.ndarray, encoding: str) -> ImageFields:
    """Pack an array into Image fields with a tight step, in host byte order.

    Raises:
        ImageConversionError: unknown encoding, or an array whose dtype or shape
            does not match it (e.g. float depth given as 16UC1).
    """
    dtype, channels = _layout(encoding)
    arr = np.asarray(array)
    if arr.dtype != dtype:
        raise ImageConversionError(f"encoding {encoding} needs dtype {dtype}, got {arr.dtype}")
    if channels == 1:
        ok = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1)
    else:
        ok = arr.ndim == 3 and arr.shape[2] == channels
    if not ok:
        raise ImageConversionError(f"encoding {encoding} needs {channels} channel(s), got shape {arr.shape}")
    height, width = arr.shape[:2]
    if height == 0 or width == 0:
        raise ImageConversionError(f"refusing to pack an empty {encoding} image of shape {arr.shape}")
    arr = np.ascontiguousarray(arr)
    return ImageFields(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(_HOST_BIG_ENDIAN),
        step=width * channels * dtype.itemsize,
        data=arr.tobytes(),
    )


def depth_to_millimetres(depth: np.ndarray, encoding: str, *, max_mm: int = 65535) -> np.ndarray:
    """Depth as uint16 millimetres from 16UC1 (already mm) or 32FC1 metres.

    NaN, inf and non-positive metres become 0 (the "no depth" value); values
    beyond `max_mm` are clamped.
    """
    if encoding in ("16UC1", "mono16"):
        return np.asarray(depth, dtype=np.uint16)
    if encoding == "32FC1":
        mm = np.asarray(depth, dtype=np.float64) * 1000.0
        mm = np.where(np.isfinite(mm) & (mm > 0), mm, 0.0)
        return np.clip(np.rint(mm), 0, max_mm).astype(np.uint16)
    raise ImageConversionError(f"depth must be 16UC1 (mm) or 32FC1 (m), got {encoding!r}")


def depth_to_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """Depth as float32 metres with NaN where there is no depth (0, NaN or inf)."""
    if encoding in ("16UC1", "mono16"):
        m = np.asarray(depth, dtype=np.float32) * np.float32(0.001)
        m[np.asarray(depth) == 0] = np.nan
        return m
    if encoding == "32FC1":
        m = np.array(depth, dtype=np.float32, copy=True)
        m[~np.isfinite(m) | (m <= 0)] = np.nan
        return m
    raise ImageConversionError(f"depth must be 16UC1 (mm) or 32FC1 (m), got {encoding!r}")
