"""3D keypoints from clicks on the depth image: the guide's back-projection with a robust depth.

A click at pixel (u, v) becomes `X = (u - cx) Z / fx, Y = (v - cy) Z / fy` in the
camera frame (the frame's intrinsics; RealSense colour streams report no
distortion, and where a camera has it the click is undistorted first).

Z is not the single pixel under the click: it is a robust mean of the valid depth
values in the **5x5 window** around it (at least 3 of the 25), the mean of their
middle half (25 % trimmed each side). One pixel carries the sensor's full noise
(2 mm at 1 m, growing with Z^2) and may be an edge dropout; the trimmed mean
ignores dropouts and the far or near quarter of a window that straddles an edge,
and unlike the median of integer millimetres it is not quantised to 1 mm. With
fewer valid pixels the keypoint is NaN, with the reason.

Pixel convention: Label Studio stores a keypoint as x, y in percent of the image
size, with (0, 0) the image's top-left corner; OpenCV's (and our intrinsics')
pixel centres are integers, so u = x/100 * W - 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import h5py
import numpy as np

from depth_annotation.common import Intrinsics

RADIUS_PX = 2  # 5x5 window
MIN_VALID = 3

KEYPOINT_DTYPE = np.dtype(
    [
        ("frame_index", "<i8"),
        ("stamp_ns", "<i8"),
        ("annotator", h5py.string_dtype()),
        ("name", h5py.string_dtype()),
        ("u", "<f4"),  # pixel column (pixel centres are integers)
        ("v", "<f4"),
        ("xyz", "<f4", (3,)),  # camera frame, metres; NaN when there is no depth
        ("valid_pixels", "<u1"),  # pixels with depth in the window
        ("reason", h5py.string_dtype()),  # "" when xyz is valid
    ]
)


def percent_to_pixel(x_percent: float, y_percent: float, width: int, height: int) -> tuple[float, float]:
    return x_percent / 100.0 * width - 0.5, y_percent / 100.0 * height - 0.5


def pixel_to_percent(u: float, v: float, width: int, height: int) -> tuple[float, float]:
    return (u + 0.5) / width * 100.0, (v + 0.5) / height * 100.0


@dataclass(frozen=True)
class Keypoint3D:
    name: str
    u: float
    v: float
    xyz: np.ndarray  # float64 (3,), NaN without depth
    valid_pixels: int
    reason: str


def robust_depth_mm(values: np.ndarray) -> float:
    """Mean of the middle half of the values (25 % trimmed each side): robust like the median,
    but not quantised to whole millimetres as the median of uint16 millimetres is."""
    v = np.sort(values.astype(np.float64).ravel())
    cut = v.size // 4
    return float(v[cut : v.size - cut].mean())


def backproject_click(
    name: str,
    u: float,
    v: float,
    depth_mm: np.ndarray,
    intr: Intrinsics,
    *,
    radius: int = RADIUS_PX,
    min_valid: int = MIN_VALID,
) -> Keypoint3D:
    """The 3D keypoint of a click: median depth of the (2r+1)^2 window, back-projected through the intrinsics."""
    h, w = depth_mm.shape
    col, row = int(round(u)), int(round(v))
    nan = np.full(3, np.nan)
    if not (0 <= col < w and 0 <= row < h):
        return Keypoint3D(name, u, v, nan, 0, f"outside the {w}x{h} image")
    window = depth_mm[max(row - radius, 0) : row + radius + 1, max(col - radius, 0) : col + radius + 1]
    valid = window[window > 0]
    side = 2 * radius + 1
    if valid.size < min_valid:
        return Keypoint3D(
            name,
            u,
            v,
            nan,
            int(valid.size),
            f"no depth: {valid.size} of the {side}x{side} pixels around the click have depth (need {min_valid})",
        )
    z = robust_depth_mm(valid) / 1000.0
    ux, vx = u, v
    if intr.is_distorted:  # the depth window is read in the image as recorded; the ray needs the ideal pixel
        ideal = cv2.undistortPoints(np.array([[[u, v]]], np.float64), intr.k, intr.dist_coeffs, P=intr.k)
        ux, vx = float(ideal[0, 0, 0]), float(ideal[0, 0, 1])
    xyz = intr.backproject(np.array([ux]), np.array([vx]), np.array([z]))[0]
    return Keypoint3D(name, u, v, xyz, int(valid.size), "")


def keypoint_rows(frame_index: int, stamp_ns: int, annotator: str, keypoints: Sequence[Keypoint3D]) -> np.ndarray:
    rows = np.zeros(len(keypoints), KEYPOINT_DTYPE)
    for i, k in enumerate(keypoints):
        rows[i] = (frame_index, stamp_ns, annotator, k.name, k.u, k.v, k.xyz, min(k.valid_pixels, 255), k.reason)
    return rows


@dataclass(frozen=True)
class KeypointPair:
    name: str
    first: int | None  # row in the first annotator's list (None: that annotator has no such keypoint)
    second: int | None
    distance_mm: float  # NaN when one side is missing or has no depth


def match_keypoints(a: Sequence[Keypoint3D], b: Sequence[Keypoint3D]) -> list[KeypointPair]:
    """Pair two annotators' keypoints of one frame: same name, nearest first (two mugs each have a handle_top)."""
    pairs: list[KeypointPair] = []
    for name in sorted({k.name for k in a} | {k.name for k in b}):
        ia = [i for i, k in enumerate(a) if k.name == name]
        ib = [i for i, k in enumerate(b) if k.name == name]
        cand = []
        for i in ia:
            for j in ib:
                d = float(np.linalg.norm(a[i].xyz - b[j].xyz)) * 1000.0
                pix = float(np.hypot(a[i].u - b[j].u, a[i].v - b[j].v))
                cand.append((d if np.isfinite(d) else np.inf, pix, i, j))
        used_a, used_b = set(), set()
        for d, _pix, i, j in sorted(cand):
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            pairs.append(KeypointPair(name, i, j, d if np.isfinite(d) else float("nan")))
        pairs += [KeypointPair(name, i, None, float("nan")) for i in ia if i not in used_a]
        pairs += [KeypointPair(name, None, j, float("nan")) for j in ib if j not in used_b]
    return pairs
