"""Known-answer tests of the coverage core: exact fractions, thresholds at their boundaries."""

import numpy as np
import pytest

from depth_annotation.common import QcStatus
from depth_annotation.qc import (
    FRAME_GAP,
    HIGH_NOISE,
    LOW_COVERAGE,
    OUT_OF_RANGE,
    RESOLUTION_CHANGE,
    ROI_HOLE,
    TOO_CLOSE,
    CoverageAnalyzer,
    CoverageConfig,
    CoverageConfigError,
    grid_fractions,
    median_mm,
)

GOOD, WARN, FLAGGED = QcStatus.GOOD, QcStatus.WARN, QcStatus.FLAGGED
H, W = 480, 640


def frame(value=1000):
    return np.full((H, W), value, np.uint16)


def analyze(d, **cfg):
    return CoverageAnalyzer(CoverageConfig(noise_window=0, **cfg)).analyze_mm(d)


def test_full_frame_is_good():
    q = analyze(frame())
    assert (q.status, q.reasons) == (GOOD, [])
    assert q.valid_fraction == q.in_range_fraction == q.roi_valid_fraction == 1.0
    assert q.median_depth_m == pytest.approx(1.0)
    assert np.all(q.grid_valid_fraction == 1.0)


def test_exact_fractions_for_a_constructed_hole():
    d = frame()
    d[0:120, 0:160] = 0  # exactly grid cell (0, 0) of a 4x4 grid
    q = analyze(d)
    assert q.valid_fraction == 1 - (120 * 160) / (H * W)
    expected = np.ones((4, 4), np.float32)
    expected[0, 0] = 0.0
    assert np.array_equal(q.grid_valid_fraction, expected)
    # ROI (0.15..0.85) starts at x=96, y=72: the hole covers x 96..159, y 72..119 of it
    roi_area = (408 - 72) * (544 - 96)
    assert q.roi_valid_fraction == 1 - (120 - 72) * (160 - 96) / roi_area


def test_grid_handles_sizes_that_do_not_divide():
    # 7 x 10 pixels in 2 x 3 cells, edges at round(i * size / n), written out by hand:
    # rows 0-3 | 4-6, columns 0-2 | 3-6 | 7-9 (the leftover pixels go to the last row and column).
    row_cells, col_cells = [range(0, 4), range(4, 7)], [range(0, 3), range(3, 7), range(7, 10)]
    for y in range(7):  # one valid pixel at every position: exactly its own cell sees it
        for x in range(10):
            valid = np.zeros((7, 10), bool)
            valid[y, x] = True
            i = next(k for k, r in enumerate(row_cells) if y in r)
            j = next(k for k, c in enumerate(col_cells) if x in c)
            expected = np.zeros((2, 3))
            expected[i, j] = 1 / (len(row_cells[i]) * len(col_cells[j]))
            assert np.allclose(grid_fractions(valid, 2, 3), expected), (y, x)
    # dead right column and bottom row: the cells holding the leftover pixels, counted by hand
    valid = np.ones((7, 10), bool)
    valid[:, 9] = False
    valid[6, :] = False
    expected = np.array([[1.0, 1.0, 8 / 12], [6 / 9, 8 / 12, 4 / 9]])
    assert np.allclose(grid_fractions(valid, 2, 3), expected)


def test_roi_hole_with_good_overall_coverage():
    d = frame()
    d[200:280, 260:380] = 0  # 3.1 % of the frame, 6.4 % of the ROI... make it big in the ROI:
    d[100:380, 150:490] = 0  # 31 % of the frame, inside the ROI
    q = analyze(d, roi=(0.2, 0.2, 0.8, 0.8))
    assert q.valid_fraction == pytest.approx(1 - 280 * 340 / (H * W))
    assert ROI_HOLE in q.reasons and q.status == FLAGGED


@pytest.mark.parametrize(
    "valid_pixels,status",
    [(0.85, GOOD), (0.85 - 1 / (H * W), WARN), (0.70, WARN), (0.70 - 1 / (H * W), FLAGGED)],
)
def test_status_thresholds_at_their_boundaries(valid_pixels, status):
    d = frame().ravel()
    n_invalid = H * W - int(round(valid_pixels * H * W))
    d[:n_invalid] = 0  # holes at the top rows; ROI excluded from the decision below
    q = analyze(d.reshape(H, W), roi=(0.0, 0.0, 1.0, 1.0), good_fraction=0.85, flag_fraction=0.70)
    assert q.status == status
    assert (LOW_COVERAGE in q.reasons) == (status != GOOD)


def test_range_and_near():
    d = frame(2500)  # beyond the 2.0 m working range
    d[:, :64] = 200  # 10 % valid but closer than 0.28 m
    q = analyze(d)
    assert q.in_range_fraction == 0.0 and OUT_OF_RANGE in q.reasons
    assert q.near_fraction == pytest.approx(0.1) and TOO_CLOSE in q.reasons
    assert q.status == WARN


def test_metres_input_counts_nan_inf_and_nonpositive_as_invalid():
    m = np.full((H, W), 1.0, np.float32)
    m[0, :100] = np.nan
    m[1, :100] = np.inf
    m[2, :100] = -1.0
    m[3, :100] = 0.0
    q = CoverageAnalyzer(CoverageConfig(noise_window=0)).analyze_metres(m)
    assert q.valid_fraction == 1 - 400 / (H * W)


def test_temporal_noise_known_answer():
    a = CoverageAnalyzer(CoverageConfig(noise_window=4))
    qs = [a.analyze_mm(frame(1000 + (3 if i % 2 else -3))) for i in range(6)]
    assert np.isnan(qs[2].temporal_noise_m)  # window not yet full
    assert qs[-1].temporal_noise_m == pytest.approx(0.003)  # alternating +-3 mm: std 3 mm
    noisy = CoverageAnalyzer(CoverageConfig(noise_window=4, max_noise_m=0.002))
    q = [noisy.analyze_mm(frame(1000 + (3 if i % 2 else -3))) for i in range(4)][-1]
    assert HIGH_NOISE in q.reasons


def test_noise_ignores_pixels_that_were_not_always_valid():
    a = CoverageAnalyzer(CoverageConfig(noise_window=3))
    for i in range(3):
        d = frame(1000)
        d[:, : W // 2] = 0 if i == 1 else 3000  # flickering half: excluded
        q = a.analyze_mm(d)
    assert q.temporal_noise_m == 0.0


def test_frame_gap_from_stamps():
    a = CoverageAnalyzer(CoverageConfig(noise_window=0, max_frame_gap_s=0.1))
    a.analyze_mm(frame(), stamp_ns=1_000_000_000)
    q1 = a.analyze_mm(frame(), stamp_ns=1_033_000_000)
    q2 = a.analyze_mm(frame(), stamp_ns=1_333_000_000)
    assert q1.frame_gap_s == pytest.approx(0.033) and FRAME_GAP not in q1.reasons
    assert q2.frame_gap_s == pytest.approx(0.3) and FRAME_GAP in q2.reasons and q2.status == WARN


def test_resolution_change_resets_and_is_reported():
    a = CoverageAnalyzer(CoverageConfig(noise_window=2))
    a.analyze_mm(frame())
    a.analyze_mm(frame())
    q = a.analyze_mm(np.full((240, 320), 1000, np.uint16))
    assert RESOLUTION_CHANGE in q.reasons and q.status == WARN
    assert np.isnan(q.temporal_noise_m) and a.resolution_changes == 1


def test_median_is_exact():
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 1000, 1001):
        v = rng.integers(1, 5000, n).astype(np.uint16)
        assert median_mm(v) == np.median(v)


def test_bad_config_is_rejected():
    with pytest.raises(CoverageConfigError, match="flag_fraction"):
        CoverageAnalyzer(CoverageConfig(good_fraction=0.6, flag_fraction=0.7))
    with pytest.raises(CoverageConfigError, match="roi"):
        CoverageAnalyzer(CoverageConfig(roi=(0.5, 0.0, 0.4, 1.0)))
