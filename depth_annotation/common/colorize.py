"""Depth -> colour images for people: fixed-range TURBO so colours compare across frames."""

from __future__ import annotations

import cv2
import numpy as np


def colorize_depth(
    depth_mm: np.ndarray,
    *,
    min_mm: float = 300.0,
    max_mm: float = 2000.0,
    invalid_rgb: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """RGB uint8 image of uint16-mm depth over a FIXED range [min_mm, max_mm].

    A per-frame range would make the same distance a different colour in each
    frame; annotators compare frames, so the range is fixed. Zero depth is drawn
    in `invalid_rgb`; depth outside the range saturates.
    """
    if max_mm <= min_mm:
        raise ValueError(f"colorize range is empty: min_mm={min_mm} >= max_mm={max_mm}")
    d = np.asarray(depth_mm, dtype=np.float32)
    scaled = np.clip((d - min_mm) * (255.0 / (max_mm - min_mm)), 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)
    rgb: np.ndarray = bgr[..., ::-1].copy()
    rgb[d == 0] = invalid_rgb
    return rgb
