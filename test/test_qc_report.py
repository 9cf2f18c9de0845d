"""The QC report files: they exist, parse, and hold the per-frame numbers."""

import json

import numpy as np
import pytest

from depth_annotation.qc import BAD_ENCODING, CoverageAnalyzer, CoverageConfig, QCSession, error_quality


def cell_coverage(depth: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Valid fraction per cell by counting, for sizes the grid divides exactly."""
    h, w = depth.shape[0] // rows, depth.shape[1] // cols
    return np.array(
        [
            [np.count_nonzero(depth[r * h : (r + 1) * h, c * w : (c + 1) * w]) / (h * w) for c in range(cols)]
            for r in range(rows)
        ]
    )


def test_report_json_and_html(tmp_path):
    cfg = CoverageConfig(noise_window=3)
    a, session = CoverageAnalyzer(cfg), QCSession(cfg, source="/camera/aligned_depth_to_color/image_raw")
    results, cells, coverage = [], [], []
    for i in range(30):
        d = np.full((120, 160), 900, np.uint16)
        y0, x0 = (i * 13) % 113, (i * 29) % 150  # a small hole that moves and crosses cell edges: still GOOD
        d[y0 : y0 + 7, x0 : x0 + 3 + i % 10] = 0
        if i in (7, 19):
            d[20:100, 30:130] = 0  # FLAGGED
        q = a.analyze_mm(d, stamp_ns=1_000_000_000 + i * 33_333_333)
        session.add(q)
        results.append(q)
        cells.append(cell_coverage(d, 4, 4))
        coverage.append(np.count_nonzero(d) / d.size)
    # a frame that could not be analysed: counted, but not part of the coverage statistics
    session.add(error_quality(2_000_000_000, BAD_ENCODING, 160, 120, 4, 4))
    json_path, html_path = session.write(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["frames"] == 31
    assert data["status_counts"] == {"GOOD": 28, "WARN": 0, "FLAGGED": 2, "ERROR": 1}
    assert data["flagged_stamps_ns"] == [results[7].stamp_ns, results[19].stamp_ns]
    assert data["reason_counts"] == {"bad_encoding": 1, "low_coverage": 2, "roi_hole": 2}
    for rec, q in zip(data["per_frame"][:30], results, strict=True):
        assert rec["stamp_ns"] == q.stamp_ns and rec["valid_fraction"] == q.valid_fraction
    assert data["valid_fraction"]["mean"] == pytest.approx(np.mean(coverage))
    # the heat map is the mean over the 30 analysed frames, cell by cell, of counted coverage
    heat = np.array(data["mean_grid_valid_fraction"])
    assert heat.shape == (4, 4)
    assert np.allclose(heat, np.mean(cells, axis=0), atol=1e-6), heat - np.mean(cells, axis=0)
    page = html_path.read_text()
    assert page.count("<img") == 3 and "data:image/png;base64," in page
    assert str(results[7].stamp_ns) in page
    assert not list(tmp_path.glob("*.partial"))


def test_empty_session_still_writes(tmp_path):
    json_path, html_path = QCSession(CoverageConfig()).write(tmp_path)
    assert json.loads(json_path.read_text())["frames"] == 0
    assert "no flagged frames" in html_path.read_text()
