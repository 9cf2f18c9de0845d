"""The monocular scale/shift fit is model-independent: known-answer tests on synthetic depth."""

import numpy as np
import pytest

from depth_annotation.calibration import ScaleFitError, evaluate, fit_scale_shift
from depth_annotation.common import SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.mono import MetricAligner, MetricConfigError, load_scale_file


@pytest.fixture(scope="module")
def truth():
    f = SyntheticScene(seed=1).render(default_intrinsics(), orbit_pose(2.0))
    return f.depth_gt_m.astype(np.float64)


def disparity(z, a=0.8, b=0.05, noise=0.004, outliers=0.2, seed=0):
    rng = np.random.default_rng(seed)
    d = a / z + b + rng.normal(0, noise, z.shape)
    bad = rng.random(z.shape) < outliers
    d[bad] = rng.uniform(0, 3, bad.sum())  # garbage, like reflections or sky
    return d.astype(np.float32), bad


def test_fit_recovers_metric_depth_with_20_percent_outliers(truth):
    d, bad = disparity(truth)
    ok = np.isfinite(truth)
    fit = fit_scale_shift(d[ok], truth[ok])
    assert fit.scale == pytest.approx(1 / 0.8, rel=0.02)
    assert fit.shift == pytest.approx(-0.05 / 0.8, abs=0.01)
    z = fit.depth(d)
    q = evaluate(z[ok & ~bad], truth[ok & ~bad])
    assert q.abs_rel < 0.02 and q.delta_1_25 > 0.99


def test_sensor_fit_mode_survives_outliers_in_the_sensor_too(truth):
    d, _ = disparity(truth, outliers=0.0)
    rng = np.random.default_rng(5)
    sensor = truth * (1 + rng.normal(0, 0.005, truth.shape))
    wrong = rng.random(truth.shape) < 0.2
    sensor[wrong] = rng.uniform(0.3, 5.0, wrong.sum())  # 20 % of the sensor pixels are wrong
    aligner = MetricAligner("sensor_fit")
    depth, valid, rep = aligner.align(d, sensor.astype(np.float32))
    assert rep.fitted and rep.fit_pixels > 1000 and rep.eval_pixels > 1000
    q = evaluate(depth[valid], truth[valid])
    assert q.abs_rel < 0.02
    assert rep.inlier_ratio > 0.7
    # the held-out score sees the wrong sensor pixels, so it is worse than the truth score
    assert rep.abs_rel > q.abs_rel
    # no sensor frame: the previous fit is reused, not refitted
    again, _, rep2 = aligner.align(d, None)
    assert not rep2.fitted and rep2.scale == rep.scale and np.allclose(again[valid], depth[valid], equal_nan=True)


def test_scale_file_and_metric_modes(tmp_path, truth):
    path = tmp_path / "calibration.json"
    path.write_text('{"schema_version": 1, "mono_scale": {"scale": 1.25, "shift": -0.0625}}')
    d, _ = disparity(truth, noise=0.0, outliers=0.0)
    depth, valid, rep = MetricAligner("scale_file", scale=load_scale_file(path)).align(d)
    ok = valid & np.isfinite(truth)
    assert np.allclose(depth[ok], truth[ok], rtol=1e-4)
    assert rep.mode == "scale_file" and np.isnan(rep.abs_rel)
    # metric_model: the model's metres are the output, and the sensor only scores them. A model that reads
    # 10 % far: its depth comes out unchanged, AbsRel against the sensor is 0.1, every ratio 1.1 < 1.25.
    model_m = (truth * 1.1).astype(np.float32)
    metric, valid_m, rep_m = MetricAligner("metric_model").align(model_m, truth.astype(np.float32))
    in_range = np.isfinite(model_m) & (model_m >= 0.1) & (model_m <= 10.0)  # the aligner's default limits
    assert np.array_equal(valid_m, in_range) and in_range.sum() > 0.5 * truth.size
    assert np.array_equal(metric[valid_m], model_m[valid_m]) and np.isnan(metric[~valid_m]).all()
    assert rep_m.abs_rel == pytest.approx(0.1, abs=1e-6) and rep_m.delta_1_25 == 1.0
    assert rep_m.eval_pixels > 1000 and not rep_m.fitted and (rep_m.scale, rep_m.shift) == (0.0, 0.0)
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(MetricConfigError, match="no mono_scale"):
        load_scale_file(tmp_path / "empty.json")
    with pytest.raises(MetricConfigError, match="needs a scale"):
        MetricAligner("scale_file")


def test_too_few_pixels_and_size_mismatch():
    with pytest.raises(ScaleFitError, match="only 10 pixels"):
        fit_scale_shift(np.ones(10), np.ones(10))
    with pytest.raises(MetricConfigError, match="does not match"):
        MetricAligner("sensor_fit").align(np.ones((4, 4), np.float32), np.ones((2, 2), np.float32))
