"""Per-frame depth quality: how much of the frame has usable depth, where, and how stable.

The default thresholds are the usual rule for tabletop-manipulation depth: the
fraction of valid (non-zero) pixels should exceed 85 %; below 70 % the frame is
flagged for review (missing depth comes from reflective or transparent surfaces,
objects closer than the D435's 0.28 m minimum range, and sunlight washing out
the infrared pattern). Beyond the overall fraction this module
reports coverage per grid cell and inside a workspace ROI (a hole over the
objects matters more than one in the background), the fraction inside the
working range, the fraction closer than the sensor's minimum range, temporal
noise on static scenes, and gaps between frame stamps, each with a
machine-readable reason when it degrades the frame.

Fractions are exact at full resolution. Median depth and temporal noise are
statistics of regular subsamples (every 4th and every 8th pixel each way by
default), which keeps a 640x480 frame under a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_annotation.common import QcStatus

from .errors import CoverageConfigError

# Machine-readable reasons.
LOW_COVERAGE = "low_coverage"
ROI_HOLE = "roi_hole"
OUT_OF_RANGE = "out_of_range"
TOO_CLOSE = "too_close"
HIGH_NOISE = "high_noise"
FRAME_GAP = "frame_gap"
BAD_ENCODING = "bad_encoding"
RESOLUTION_CHANGE = "resolution_change"


@dataclass(frozen=True)
class CoverageConfig:
    good_fraction: float = 0.85  # valid coverage at or above: GOOD
    flag_fraction: float = 0.70  # below: FLAGGED (between: WARN)
    range_min_m: float = 0.3
    range_max_m: float = 2.0
    min_in_range_fraction: float = 0.5  # of all pixels; below: out_of_range (WARN)
    near_m: float = 0.28  # sensor minimum range
    max_near_fraction: float = 0.02  # above: too_close (WARN)
    grid_rows: int = 4
    grid_cols: int = 4
    roi: tuple[float, float, float, float] = (0.15, 0.15, 0.85, 0.85)  # x0, y0, x1, y1 as image fractions
    noise_window: int = 10  # frames in the temporal-noise window (0 disables)
    max_noise_m: float = 0.01  # median per-pixel std above this: high_noise (WARN)
    max_frame_gap_s: float = 0.1  # stamp gap above this: frame_gap (WARN)
    stat_stride: int = 4  # median depth on every 4th pixel each way
    noise_stride: int = 8  # temporal noise on every 8th pixel each way

    def validate(self) -> None:
        if not 0.0 <= self.flag_fraction <= self.good_fraction <= 1.0:
            raise CoverageConfigError(
                f"need 0 <= flag_fraction ({self.flag_fraction}) <= good_fraction ({self.good_fraction}) <= 1"
            )
        if not 0.0 <= self.range_min_m < self.range_max_m:
            raise CoverageConfigError(f"working range [{self.range_min_m}, {self.range_max_m}] m is empty")
        x0, y0, x1, y1 = self.roi
        if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
            raise CoverageConfigError(f"roi {self.roi} must be x0 < x1, y0 < y1 within [0, 1]")
        if self.grid_rows < 1 or self.grid_cols < 1:
            raise CoverageConfigError("grid_rows and grid_cols must be at least 1")
        if self.stat_stride < 1 or self.noise_stride < 1:
            raise CoverageConfigError("stat_stride and noise_stride must be at least 1")


@dataclass
class FrameQuality:
    status: QcStatus
    reasons: list[str]
    width: int
    height: int
    valid_fraction: float
    in_range_fraction: float
    roi_valid_fraction: float
    near_fraction: float
    median_depth_m: float
    temporal_noise_m: float
    frame_gap_s: float
    grid_valid_fraction: np.ndarray  # (rows, cols)
    stamp_ns: int = 0

    @property
    def status_name(self) -> str:
        return self.status.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "stamp_ns": self.stamp_ns,
            "status": self.status_name,
            "reasons": list(self.reasons),
            "width": self.width,
            "height": self.height,
            "valid_fraction": self.valid_fraction,
            "in_range_fraction": self.in_range_fraction,
            "roi_valid_fraction": self.roi_valid_fraction,
            "near_fraction": self.near_fraction,
            "median_depth_m": self.median_depth_m,
            "temporal_noise_m": self.temporal_noise_m,
            "frame_gap_s": self.frame_gap_s,
            "grid_valid_fraction": self.grid_valid_fraction.tolist(),
        }


def error_quality(
    stamp_ns: int, reason: str, width: int = 0, height: int = 0, rows: int = 1, cols: int = 1
) -> FrameQuality:
    """A frame that could not be analysed (e.g. an unsupported encoding)."""
    nan = float("nan")
    return FrameQuality(
        QcStatus.ERROR,
        [reason],
        width,
        height,
        0.0,
        0.0,
        0.0,
        0.0,
        nan,
        nan,
        0.0,
        np.zeros((rows, cols), np.float32),
        stamp_ns,
    )


def roi_slices(cfg: CoverageConfig, height: int, width: int) -> tuple[slice, slice]:
    x0, y0, x1, y1 = cfg.roi
    return slice(int(round(y0 * height)), int(round(y1 * height))), slice(
        int(round(x0 * width)), int(round(x1 * width))
    )


def grid_fractions(valid: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Valid fraction per cell; cell edges at round(i * H / rows), so cells differ by at most one pixel."""
    h, w = valid.shape
    ys = np.linspace(0, h, rows + 1).round().astype(int)
    xs = np.linspace(0, w, cols + 1).round().astype(int)
    out = np.empty((rows, cols), np.float32)
    for i in range(rows):
        for j in range(cols):
            cell = valid[ys[i] : ys[i + 1], xs[j] : xs[j + 1]]
            out[i, j] = np.count_nonzero(cell) / cell.size if cell.size else 0.0
    return out


def median_mm(values: np.ndarray) -> float:
    """Exact median of non-empty uint16 values via a histogram (faster than sorting)."""
    counts = np.bincount(values)
    cum = np.cumsum(counts)
    n = int(cum[-1])
    lo = int(np.searchsorted(cum, (n - 1) // 2 + 1))
    hi = int(np.searchsorted(cum, n // 2 + 1))
    return (lo + hi) / 2.0


class _NoiseWindow:
    """Per-pixel depth std over the last N frames, on a subsample, with exact integer sums.

    Sums of millimetres and squared millimetres (int64) are updated as frames
    enter and leave a ring buffer, so each frame costs O(pixels) with no
    floating-point cancellation. Only pixels valid in every frame of the window
    count (a static scene is assumed, as the QC report says).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.ring: np.ndarray | None = None
        self.count = 0

    def push(self, mm: np.ndarray) -> float:
        if self.size <= 0:
            return float("nan")
        z = mm.astype(np.int64)
        if self.ring is None:
            self.ring = np.zeros((self.size,) + z.shape, np.int64)
            self.s1 = np.zeros(z.shape, np.int64)
            self.s2 = np.zeros(z.shape, np.int64)
            self.n = np.zeros(z.shape, np.int32)
        slot = self.count % self.size
        old = self.ring[slot]
        if self.count >= self.size:
            self.s1 -= old
            self.s2 -= old * old
            self.n -= old > 0
        self.ring[slot] = z
        self.s1 += z
        self.s2 += z * z
        self.n += z > 0
        self.count += 1
        if self.count < self.size:
            return float("nan")
        full = self.n == self.size
        if not full.any():
            return float("nan")
        # N^2 var = N s2 - s1^2, exact in integers; the median of the variance is the squared median std
        nvar = self.size * self.s2[full] - self.s1[full] ** 2
        return float(np.sqrt(max(np.median(nvar), 0.0))) / self.size / 1000.0


class CoverageAnalyzer:
    """Computes `FrameQuality` for a stream of depth frames (keeps the per-pixel noise window)."""

    def __init__(self, config: CoverageConfig | None = None) -> None:
        self.config = config or CoverageConfig()
        self.config.validate()
        self._noise = _NoiseWindow(self.config.noise_window)
        self._shape: tuple[int, int] | None = None
        self._last_stamp_ns: int | None = None
        self.resolution_changes = 0

    def reset(self) -> None:
        self._noise = _NoiseWindow(self.config.noise_window)
        self._shape = None
        self._last_stamp_ns = None

    def analyze_mm(self, depth_mm: np.ndarray, stamp_ns: int = 0) -> FrameQuality:
        """Quality of one uint16-millimetre depth frame (0 = no depth)."""
        d = np.asarray(depth_mm)
        if d.ndim != 2 or d.size == 0:
            raise ValueError(f"depth must be a non-empty 2-D image, got shape {d.shape}")
        cfg = self.config
        reasons: list[str] = []
        if self._shape is not None and d.shape != self._shape:
            self._noise = _NoiseWindow(cfg.noise_window)
            self.resolution_changes += 1
            reasons.append(RESOLUTION_CHANGE)
        self._shape = d.shape
        h, w = d.shape
        total = d.size

        valid = d > 0
        n_valid = np.count_nonzero(valid)
        lo, hi = int(round(cfg.range_min_m * 1000)), int(round(cfg.range_max_m * 1000))
        in_range = np.count_nonzero(d >= lo) - np.count_nonzero(d > hi)
        near = np.count_nonzero(d < int(round(cfg.near_m * 1000))) - (total - n_valid)  # valid and too close
        ry, rx = roi_slices(cfg, h, w)
        roi = valid[ry, rx]
        roi_fraction = np.count_nonzero(roi) / roi.size if roi.size else 0.0
        grid = grid_fractions(valid, cfg.grid_rows, cfg.grid_cols)

        sub = d[:: cfg.stat_stride, :: cfg.stat_stride]
        sub_values = sub[sub > 0]
        median = median_mm(sub_values) / 1000.0 if sub_values.size else float("nan")
        noise = self._noise.push(d[:: cfg.noise_stride, :: cfg.noise_stride])

        gap = 0.0
        if self._last_stamp_ns is not None and stamp_ns:
            gap = (stamp_ns - self._last_stamp_ns) / 1e9
        if stamp_ns:
            self._last_stamp_ns = stamp_ns

        q = FrameQuality(
            status=QcStatus.GOOD,
            reasons=reasons,
            width=w,
            height=h,
            valid_fraction=n_valid / total,
            in_range_fraction=in_range / total,
            roi_valid_fraction=float(roi_fraction),
            near_fraction=near / total,
            median_depth_m=median,
            temporal_noise_m=noise,
            frame_gap_s=gap,
            grid_valid_fraction=grid,
            stamp_ns=stamp_ns,
        )
        q.status = classify(q, cfg)
        return q

    def analyze_metres(self, depth_m: np.ndarray, stamp_ns: int = 0) -> FrameQuality:
        """32FC1 depth: NaN, inf and <= 0 count as invalid; converted to mm (clamped)."""
        from depth_annotation.common import depth_to_millimetres

        return self.analyze_mm(depth_to_millimetres(depth_m, "32FC1"), stamp_ns)


def classify(q: FrameQuality, cfg: CoverageConfig) -> QcStatus:
    """Status from the measurements; appends the reasons to `q.reasons`. Worst reason wins."""
    status = QcStatus.GOOD

    def degrade(level: QcStatus, reason: str) -> None:
        nonlocal status
        status = max(status, level)
        if reason not in q.reasons:
            q.reasons.append(reason)

    if q.valid_fraction < cfg.flag_fraction:
        degrade(QcStatus.FLAGGED, LOW_COVERAGE)
    elif q.valid_fraction < cfg.good_fraction:
        degrade(QcStatus.WARN, LOW_COVERAGE)
    if q.roi_valid_fraction < cfg.flag_fraction:
        degrade(QcStatus.FLAGGED, ROI_HOLE)
    elif q.roi_valid_fraction < cfg.good_fraction:
        degrade(QcStatus.WARN, ROI_HOLE)
    if q.in_range_fraction < cfg.min_in_range_fraction:
        degrade(QcStatus.WARN, OUT_OF_RANGE)
    if q.near_fraction > cfg.max_near_fraction:
        degrade(QcStatus.WARN, TOO_CLOSE)
    if np.isfinite(q.temporal_noise_m) and q.temporal_noise_m > cfg.max_noise_m:
        degrade(QcStatus.WARN, HIGH_NOISE)
    if q.frame_gap_s > cfg.max_frame_gap_s:
        degrade(QcStatus.WARN, FRAME_GAP)
    if RESOLUTION_CHANGE in q.reasons:
        degrade(QcStatus.WARN, RESOLUTION_CHANGE)
    return status
