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


# --- every output and every boundary, known answers worked by hand ---


def test_to_dict_and_error_quality_carry_every_field():
    d = frame()
    d[:96, :] = 0  # 20 % of the rows
    q = CoverageAnalyzer(CoverageConfig(noise_window=0, grid_rows=2, grid_cols=1)).analyze_mm(d, stamp_ns=7)
    assert q.status_name == "WARN"
    assert q.to_dict() == {
        "stamp_ns": 7,
        "status": "WARN",
        "reasons": [LOW_COVERAGE],
        "width": W,
        "height": H,
        "valid_fraction": pytest.approx(0.8),
        "in_range_fraction": pytest.approx(0.8),
        "roi_valid_fraction": pytest.approx(1 - 24 / 336),  # the ROI is rows 72..407
        "near_fraction": 0.0,
        "median_depth_m": 1.0,
        "temporal_noise_m": pytest.approx(float("nan"), nan_ok=True),
        "frame_gap_s": 0.0,
        "grid_valid_fraction": [[pytest.approx(0.6)], [1.0]],
    }
    from depth_annotation.qc import error_quality

    e = error_quality(5, "bad_encoding", 640, 480, rows=2, cols=3)
    assert (e.status, e.reasons, e.width, e.height, e.stamp_ns) == (QcStatus.ERROR, ["bad_encoding"], 640, 480, 5)
    assert (e.valid_fraction, e.in_range_fraction, e.roi_valid_fraction, e.near_fraction, e.frame_gap_s) == (0,) * 5
    assert np.isnan(e.median_depth_m) and np.isnan(e.temporal_noise_m)
    assert e.grid_valid_fraction.shape == (2, 3) and e.grid_valid_fraction.dtype == np.float32
    assert not e.grid_valid_fraction.any()
    e0 = error_quality(0, "x")
    assert (e0.width, e0.height, e0.grid_valid_fraction.shape) == (0, 0, (1, 1))


def test_roi_edges_round_to_the_nearest_pixel():
    # roi 0.1..0.9 of 10 x 10 is rows/cols 1..8 (64 px); 0.25..0.75 of 10 rounds 2.5 -> 2 and 7.5 -> 8
    d = np.full((10, 10), 1000, np.uint16)
    d[0, :] = 0
    d[:, 9] = 0
    q = analyze(d, roi=(0.1, 0.1, 0.9, 0.9), grid_rows=1, grid_cols=1)
    assert q.roi_valid_fraction == 1.0
    d[1, 1] = 0
    assert analyze(d, roi=(0.1, 0.1, 0.9, 0.9)).roi_valid_fraction == 63 / 64
    d2 = np.full((10, 10), 1000, np.uint16)
    d2[2, 2] = 0  # inside rows/cols 2..7
    assert analyze(d2, roi=(0.25, 0.25, 0.75, 0.75)).roi_valid_fraction == 35 / 36
    d3 = np.full((10, 10), 1000, np.uint16)
    d3[8, 8] = 0  # rows/cols 8 are outside
    assert analyze(d3, roi=(0.25, 0.25, 0.75, 0.75)).roi_valid_fraction == 1.0


@pytest.mark.parametrize(
    ("value_mm", "in_range", "near"),
    [(299, 0, 0), (300, 1, 0), (2000, 1, 0), (2001, 0, 0), (279, 0, 1), (280, 0, 0)],
)
def test_range_and_near_edges(value_mm, in_range, near):
    """Working range [0.3, 2.0] m inclusive; near: valid and below 0.28 m (280 mm)."""
    d = frame(1000)
    d[:, :64] = value_mm  # a tenth of the frame
    q = analyze(d)
    assert q.in_range_fraction == pytest.approx(0.9 + 0.1 * in_range)
    assert q.near_fraction == pytest.approx(0.1 * near)


@pytest.mark.parametrize(
    ("field", "value", "reason"), [("max_near_fraction", 0.1, TOO_CLOSE), ("max_frame_gap_s", 0.1, FRAME_GAP)]
)
def test_warn_limits_are_exclusive(field, value, reason):
    a = CoverageAnalyzer(CoverageConfig(noise_window=0, **{field: value}))
    d = frame(1000)
    d[:, :64] = 100  # exactly 10 % too close
    a.analyze_mm(frame(), stamp_ns=1_000_000_000)
    q = a.analyze_mm(d if reason == TOO_CLOSE else frame(), stamp_ns=1_100_000_000)
    assert reason not in q.reasons and q.status == GOOD


def test_in_range_limit_and_noise_limit_are_exclusive():
    d = frame(1000)
    d[:, :320] = 5000  # exactly half in range
    assert OUT_OF_RANGE not in analyze(d, min_in_range_fraction=0.5).reasons
    assert OUT_OF_RANGE in analyze(d, min_in_range_fraction=0.51).reasons
    a = CoverageAnalyzer(CoverageConfig(noise_window=2, max_noise_m=0.003))
    q = [a.analyze_mm(frame(1000 + (3 if i % 2 else -3))) for i in range(2)][-1]
    assert q.temporal_noise_m == pytest.approx(0.003) and HIGH_NOISE not in q.reasons


def test_roi_status_thresholds():
    for hole_rows, status in ((0, GOOD), (60, WARN), (120, FLAGGED)):
        d = frame()
        d[100 : 100 + hole_rows, 96:544] = 0  # inside the ROI only (rows 72..407, cols 96..543)
        q = analyze(d, good_fraction=0.85, flag_fraction=0.7)
        roi = 1 - hole_rows / 336
        assert q.roi_valid_fraction == pytest.approx(roi)
        assert q.status == max(status, GOOD if q.valid_fraction >= 0.85 else WARN)
        assert (ROI_HOLE in q.reasons) == (status != GOOD)


def test_noise_window_slides_and_ignores_pixels_that_leave():
    """Window 3: frames 1000, 1006, 1000, 1006 -> the last three are 1006, 1000, 1006: std sqrt(8) mm."""
    a = CoverageAnalyzer(CoverageConfig(noise_window=3))
    qs = [a.analyze_mm(frame(v)) for v in (1000, 1006, 1000, 1006, 1006, 1006)]
    assert np.isnan(qs[0].temporal_noise_m) and np.isnan(qs[1].temporal_noise_m)
    assert qs[2].temporal_noise_m == pytest.approx(np.sqrt(8) / 1000)
    assert qs[3].temporal_noise_m == pytest.approx(np.sqrt(8) / 1000)
    assert qs[5].temporal_noise_m == 0.0  # 1006 three times
    b = CoverageAnalyzer(CoverageConfig(noise_window=2))
    b.analyze_mm(frame(0))
    assert np.isnan(b.analyze_mm(frame(1000)).temporal_noise_m)  # no pixel valid in the whole window
    assert b.analyze_mm(frame(1004)).temporal_noise_m == pytest.approx(0.002)  # the 0 frame has left
    b.reset()
    assert np.isnan(b.analyze_mm(frame(1000)).temporal_noise_m)
    assert b.analyze_mm(frame(1000), stamp_ns=5).frame_gap_s == 0.0


def test_noise_and_median_use_their_strides():
    d = frame(1000)
    d[::4, ::4] = 2000  # exactly the stat_stride samples
    assert analyze(d).median_depth_m == 2.0
    assert analyze(d, stat_stride=1).median_depth_m == 1.0
    a = CoverageAnalyzer(CoverageConfig(noise_window=2, noise_stride=8))
    for v in (1000, 1010):
        e = frame(1000)
        e[1::8, :] = v  # rows the stride-8 subsample never reads
        q = a.analyze_mm(e)
    assert q.temporal_noise_m == 0.0
    assert np.isnan(analyze(np.zeros((4, 4), np.uint16)).median_depth_m)


def test_frame_gap_needs_two_stamps():
    a = CoverageAnalyzer(CoverageConfig(noise_window=0))
    assert a.analyze_mm(frame(), stamp_ns=2_000_000_000).frame_gap_s == 0.0
    assert a.analyze_mm(frame(), stamp_ns=0).frame_gap_s == 0.0  # no stamp: no gap, and it is not kept
    assert a.analyze_mm(frame(), stamp_ns=2_500_000_000).frame_gap_s == pytest.approx(0.5)


def test_bad_input_and_every_config_check():
    with pytest.raises(ValueError, match=r"non-empty 2-D image, got shape \(4,\)"):
        CoverageAnalyzer().analyze_mm(np.ones(4, np.uint16))
    with pytest.raises(ValueError, match="non-empty"):
        CoverageAnalyzer().analyze_mm(np.ones((0, 4), np.uint16))
    for cfg, match in [
        (CoverageConfig(good_fraction=1.1, flag_fraction=0.7), "flag_fraction"),
        (CoverageConfig(flag_fraction=-0.1), "flag_fraction"),
        (CoverageConfig(range_min_m=1.0, range_max_m=1.0), r"working range \[1.0, 1.0\] m is empty"),
        (CoverageConfig(range_min_m=-0.1), "working range"),
        (CoverageConfig(roi=(0.0, 0.2, 1.0, 0.2)), "roi"),
        (CoverageConfig(roi=(-0.1, 0.0, 1.0, 1.0)), "roi"),
        (CoverageConfig(roi=(0.0, 0.0, 1.0, 1.1)), "roi"),
        (CoverageConfig(grid_rows=0), "grid_rows and grid_cols must be at least 1"),
        (CoverageConfig(grid_cols=0), "grid_rows and grid_cols"),
        (CoverageConfig(stat_stride=0), "stat_stride and noise_stride must be at least 1"),
        (CoverageConfig(noise_stride=0), "stat_stride and noise_stride"),
    ]:
        with pytest.raises(CoverageConfigError, match=match):
            CoverageAnalyzer(cfg)
    # the edges themselves are allowed
    for ok in [
        CoverageConfig(good_fraction=1.0, flag_fraction=1.0),
        CoverageConfig(good_fraction=0.0, flag_fraction=0.0),
        CoverageConfig(range_min_m=0.0),
        CoverageConfig(roi=(0.0, 0.0, 1.0, 1.0)),
        CoverageConfig(grid_rows=1, grid_cols=1, stat_stride=1, noise_stride=1),
    ]:
        CoverageAnalyzer(ok)


def test_one_millimetre_is_valid_depth_and_counters_accumulate():
    d = frame(1)  # 1 mm: valid (0 is the only no-depth value), too close, out of range
    q = CoverageAnalyzer(CoverageConfig(noise_window=1)).analyze_mm(d)
    assert q.valid_fraction == 1.0 and q.near_fraction == 1.0 and q.median_depth_m == 0.001
    assert q.temporal_noise_m == 0.0  # a window of one frame: every pixel's std is 0
    a = CoverageAnalyzer(CoverageConfig(noise_window=0))
    for shape in ((480, 640), (240, 320), (480, 640)):
        a.analyze_mm(np.full(shape, 1000, np.uint16))
    assert a.resolution_changes == 2
    a.reset()
    assert RESOLUTION_CHANGE not in a.analyze_mm(np.full((10, 10), 1000, np.uint16)).reasons
    a.analyze_mm(frame(), stamp_ns=1_000_000_000)
    assert a.analyze_mm(frame(), stamp_ns=2_000_000_000).frame_gap_s == 1.0
