"""The QC report files: they exist, parse, and hold the per-frame numbers."""

import json

import numpy as np

from depth_annotation.qc import CoverageAnalyzer, CoverageConfig, QCSession


def test_report_json_and_html(tmp_path):
    cfg = CoverageConfig(noise_window=3)
    a, session = CoverageAnalyzer(cfg), QCSession(cfg, source="/camera/aligned_depth_to_color/image_raw")
    results = []
    for i in range(30):
        d = np.full((120, 160), 900, np.uint16)
        if i in (7, 19):
            d[20:100, 30:130] = 0  # FLAGGED
        q = a.analyze_mm(d, stamp_ns=1_000_000_000 + i * 33_333_333)
        session.add(q)
        results.append(q)
    json_path, html_path = session.write(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["frames"] == 30
    assert data["status_counts"]["FLAGGED"] == 2 and data["status_counts"]["GOOD"] == 28
    assert data["flagged_stamps_ns"] == [results[7].stamp_ns, results[19].stamp_ns]
    assert data["reason_counts"]["low_coverage"] == 2
    for rec, q in zip(data["per_frame"], results):
        assert rec["stamp_ns"] == q.stamp_ns and rec["valid_fraction"] == q.valid_fraction
    assert data["valid_fraction"]["mean"] == np.mean([q.valid_fraction for q in results])
    assert len(data["mean_grid_valid_fraction"]) == 4
    page = html_path.read_text()
    assert page.count("<img") == 3 and "data:image/png;base64," in page
    assert str(results[7].stamp_ns) in page
    assert not list(tmp_path.glob("*.partial"))


def test_empty_session_still_writes(tmp_path):
    json_path, html_path = QCSession(CoverageConfig()).write(tmp_path)
    assert json.loads(json_path.read_text())["frames"] == 0
    assert "no flagged frames" in html_path.read_text()
