"""The monocular scale/shift fit is model-independent: known-answer tests on synthetic depth."""

import numpy as np
import pytest

from depth_annotation.calibration import (
    ScaleFitError,
    ScaleShift,
    evaluate,
    fit_scale_shift,
    fit_scale_shift_to_distances,
    holdout_split,
)
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


# --- value checks on every output (known answers worked by hand or from the model's definition) ---


def test_depth_is_the_inverse_of_the_affine_disparity_within_limits():
    fit = ScaleShift(scale=2.0, shift=0.5)
    # 1/Z = 2 d + 0.5: d = 0.25 -> Z = 1; d = 1.75 -> Z = 0.25; d = -0.25 -> 1/Z = 0 (no depth);
    # d = -1 -> negative; d = 0.0 -> Z = 2; d = 9.75 -> Z = 0.05 (the limit, kept); d = 9.8 -> < 0.05
    z = fit.depth(np.array([0.25, 1.75, -0.25, -1.0, 0.0, 9.75, 9.8]))
    assert z.dtype == np.float32
    assert np.allclose(z[[0, 1, 4, 5]], [1.0, 0.25, 2.0, 0.05], rtol=1e-6)
    assert np.isnan(z[[2, 3, 6]]).all()
    far = ScaleShift(scale=1.0, shift=0.0).depth(np.array([0.05, 0.04, 0.5]), min_depth_m=0.1, max_depth_m=20.0)
    assert far[0] == pytest.approx(20.0) and np.isnan(far[1]) and far[2] == pytest.approx(2.0)
    near = ScaleShift(scale=1.0, shift=0.0).depth(np.array([10.0, 9.0]), min_depth_m=0.1)
    assert near[0] == pytest.approx(0.1) and near[1] == pytest.approx(1 / 9)


def test_scale_shift_to_dict_names_every_field():
    d = ScaleShift(1.5, -0.25, inlier_ratio=0.75, n_pixels=12, shift_fitted=False).to_dict()
    assert d == {
        "model": "inverse_depth = scale * relative_disparity + shift",
        "scale": 1.5,
        "shift": -0.25,
        "inlier_ratio": 0.75,
        "n_pixels": 12,
        "shift_fitted": False,
    }
    assert ScaleShift(1.0, 0.0).inlier_ratio == 1.0 and ScaleShift(1.0, 0.0).n_pixels == 0
    assert ScaleShift(1.0, 0.0).shift_fitted is True


def test_exact_affine_data_is_fitted_exactly_and_bad_pixels_ignored():
    rng = np.random.default_rng(3)
    z = rng.uniform(0.4, 6.0, 500)
    d = (1.0 / z - 0.1) / 0.7  # 1/Z = 0.7 d + 0.1
    z_in = z.copy()
    z_in[:40] = 0.0  # no reference
    z_in[40:50] = -1.0
    z_in[50:60] = np.nan
    d_in = d.copy()
    d_in[60:70] = np.inf
    fit = fit_scale_shift(d_in, z_in)
    assert fit.scale == pytest.approx(0.7, rel=1e-9) and fit.shift == pytest.approx(0.1, rel=1e-9)
    assert fit.n_pixels == 430 and fit.inlier_ratio == 1.0 and fit.shift_fitted
    # exactly min_pixels usable pixels is enough; one fewer is not
    assert fit_scale_shift(d[:100], z[:100]).n_pixels == 100
    with pytest.raises(ScaleFitError, match="only 99 pixels"):
        fit_scale_shift(d[:99], z[:99])
    assert fit_scale_shift(d[:20], z[:20], min_pixels=20).scale == pytest.approx(0.7, rel=1e-9)
    with pytest.raises(ScaleFitError, match=r"relative \(3 px\) and reference \(4 px\)"):
        fit_scale_shift(np.ones(3), np.ones(4))
    with pytest.raises(ScaleFitError, match=r"^relative disparity is constant"):
        fit_scale_shift(np.full(200, 0.3), z[:200])


def test_large_inputs_are_subsampled_to_max_samples():
    n = 50_000  # step = 50000 // (4 * 4000) = 3 -> 16667 pixels, then 4000 drawn
    z = np.linspace(0.5, 5.0, n)
    d = (1.0 / z - 0.2) / 1.3
    fit = fit_scale_shift(d, z)
    assert fit.n_pixels == 4000 and fit.scale == pytest.approx(1.3, rel=1e-9)
    assert fit_scale_shift(d, z, max_samples=20_000).n_pixels == 20_000  # step 0 -> 1, then 20000 drawn
    assert fit_scale_shift(d[:3000], z[:3000]).n_pixels == 3000  # under max_samples: every pixel


def test_inlier_ratio_counts_the_outliers_the_fit_rejects():
    rng = np.random.default_rng(4)
    z = rng.uniform(0.5, 4.0, 2000)
    d = (1.0 / z - 0.05) / 0.9 + rng.normal(0, 1e-4, z.size)
    bad = np.zeros(z.size, bool)
    bad[::4] = True  # 25 % far off the line
    d[bad] += rng.uniform(0.5, 2.0, bad.sum())
    fit = fit_scale_shift(d, z)
    assert fit.scale == pytest.approx(0.9, rel=1e-3) and fit.shift == pytest.approx(0.05, abs=1e-3)
    assert fit.inlier_ratio == pytest.approx(0.75, abs=0.01)


def test_evaluate_known_numbers():
    # |p - r| / r: 0, 1, 0.25; max(p/r, r/p): 1, 2, 1.25 (not < 1.25)
    q = evaluate(np.array([1.0, 2.0, 5.0, np.nan, 1.0, 3.0]), np.array([1.0, 1.0, 4.0, 1.0, 0.0, -1.0]))
    assert q.n_pixels == 3
    assert q.abs_rel == pytest.approx((0 + 1 + 0.25) / 3)
    assert q.delta_1_25 == pytest.approx(1 / 3)
    # a prediction too near counts like one too far: 0.5 against 1 is a ratio of 2
    assert evaluate(np.array([0.5, 0.9]), np.array([1.0, 1.0])).delta_1_25 == pytest.approx(0.5)
    assert evaluate(np.array([0.0, 1.0]), np.array([1.0, 1.0])).n_pixels == 1
    none = evaluate(np.array([np.nan]), np.array([1.0]))
    assert none.n_pixels == 0 and np.isnan(none.abs_rel) and np.isnan(none.delta_1_25)


def test_holdout_split_partitions_the_mask():
    mask = np.zeros((60, 80), bool)
    mask[10:50, 5:75] = True
    fit, held = holdout_split(mask, 0.25, seed=2)
    assert not (fit & held).any() and np.array_equal(fit | held, mask)
    assert held.sum() / mask.sum() == pytest.approx(0.25, abs=0.03)
    again = holdout_split(mask, 0.25, seed=2)
    assert np.array_equal(again[1], held)  # a fixed pattern
    assert not np.array_equal(holdout_split(mask, 0.25, seed=3)[1], held)
    fit0, held0 = holdout_split(mask, 0.0)
    assert not held0.any() and np.array_equal(fit0, mask)
    assert holdout_split(mask)[1].sum() / mask.sum() == pytest.approx(0.2, abs=0.03)  # the default


def _pairs(scale, shift, n=40, seed=0, depths=(0.6, 3.0)):
    """Point pairs in front of a camera with known (scale, shift): rays (z = 1), disparities, distances."""
    rng = np.random.default_rng(seed)
    za = rng.uniform(*depths, n)
    zb = za + rng.uniform(-0.3, 0.3, n) if depths[0] != depths[1] else za
    xa = np.column_stack([rng.uniform(-0.5, 0.5, (n, 2)) * za[:, None], za])
    xb = np.column_stack([rng.uniform(-0.5, 0.5, (n, 2)) * zb[:, None], zb])
    rays_a, rays_b = xa / za[:, None], xb / zb[:, None]
    return rays_a, rays_b, (1 / za - shift) / scale, (1 / zb - shift) / scale, np.linalg.norm(xa - xb, axis=1)


def test_known_distances_give_scale_and_shift():
    ra, rb, da, db, length = _pairs(0.8, 0.06)
    fit = fit_scale_shift_to_distances(ra, rb, da, db, length)
    assert fit.scale == pytest.approx(0.8, rel=1e-6) and fit.shift == pytest.approx(0.06, abs=1e-6)
    assert fit.shift_fitted and fit.n_pixels == 40 and fit.inlier_ratio == 1.0
    # a few wrong lengths (a mis-clicked point) are voted out
    wrong = length.copy()
    wrong[[3, 17, 29]] *= 1.6
    robust = fit_scale_shift_to_distances(ra, rb, da, db, wrong)
    assert robust.scale == pytest.approx(0.8, rel=1e-4) and robust.shift == pytest.approx(0.06, abs=1e-4)
    assert robust.inlier_ratio == pytest.approx(37 / 40)
    # pairs with a non-positive disparity or length are dropped before the fit
    da2, length2 = da.copy(), length.copy()
    da2[0], length2[1] = -1.0, 0.0
    assert fit_scale_shift_to_distances(ra, rb, da2, db, length2).n_pixels == 38


def test_known_distances_at_one_depth_hold_the_shift():
    ra, rb, da, db, length = _pairs(1.25, 0.0, depths=(2.0, 2.0))
    fit = fit_scale_shift_to_distances(ra, rb, da, db, length)
    assert not fit.shift_fitted and fit.shift == 0.0 and fit.scale == pytest.approx(1.25, rel=1e-6)
    # a given shift is held, at depths that would allow fitting it
    ra, rb, da, db, length = _pairs(0.5, 0.1, seed=1)
    held = fit_scale_shift_to_distances(ra, rb, da, db, length, shift=0.1)
    assert not held.shift_fitted and held.shift == 0.1 and held.scale == pytest.approx(0.5, rel=1e-6)
    one = fit_scale_shift_to_distances(ra[:1], rb[:1], da[:1], db[:1], length[:1])  # one pair: scale only
    assert not one.shift_fitted and one.n_pixels == 1


def test_known_distances_bad_input():
    ra, rb, da, db, length = _pairs(1.0, 0.0, n=3)
    with pytest.raises(ScaleFitError, match=r"^rays, disparities and distances must have one entry per pair$"):
        fit_scale_shift_to_distances(ra, rb[:2], da, db, length)
    with pytest.raises(ScaleFitError, match=r"^no reference pair with a positive relative disparity at both ends$"):
        fit_scale_shift_to_distances(ra, rb, -da, db, length)


def test_depth_computes_in_float64_and_warns_about_nothing():
    import warnings

    d16 = np.array([0.3, 0.7, 1.3], np.float16)
    expected = 1.0 / (2.0 * d16.astype(np.float64) + 0.5)
    assert np.allclose(ScaleShift(2.0, 0.5).depth(d16), expected, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1/0 where the inverse depth is exactly 0 is expected, not a warning
        z = ScaleShift(2.0, 0.5).depth(np.array([-0.25, 0.25]))
    assert np.isnan(z[0]) and z[1] == 1.0
    # a negative inverse depth is no depth even when the limits would allow a negative value
    assert np.isnan(ScaleShift(1.0, 0.0).depth(np.array([-2.0]), min_depth_m=-10.0))[0]


def test_fit_defaults_and_seed_are_deterministic():
    rng = np.random.default_rng(8)
    z = rng.uniform(0.5, 4.0, 30_000)
    d = (1.0 / z - 0.05) / 0.9 + rng.normal(0, 2e-3, z.size)
    d[::5] += rng.uniform(0.5, 2.0, d[::5].size)
    default = fit_scale_shift(d, z)
    assert default == fit_scale_shift(
        d, z, min_pixels=100, ransac_iters=48, ransac_samples=1000, max_samples=4000, seed=0
    )
    assert default != fit_scale_shift(d, z, seed=1)  # the random subsample follows the seed
    # exactly max_samples pixels: every one is used once (no draw)
    exact = fit_scale_shift(d[:4000], z[:4000], max_samples=4000)
    assert exact == fit_scale_shift(d[:4000], z[:4000], max_samples=4001)


def test_the_regular_subsample_takes_every_step_th_pixel():
    # 40000 pixels, max_samples 5000: step 40000 // 20000 = 2 keeps the even indices; the reference is valid
    # only at odd ones, so no usable pixel is left
    z = np.where(np.arange(40_000) % 2 == 1, 2.0, 0.0)
    with pytest.raises(ScaleFitError, match="only 0 pixels"):
        fit_scale_shift(np.linspace(0.1, 1.0, z.size), z, max_samples=5000)


def test_without_ransac_the_plain_least_squares_start_is_used():
    z = np.linspace(0.5, 5.0, 300)
    d = (1.0 / z - 0.1) / 70.0  # a small disparity range: sum (x - mean)^2 is about 0.02
    fit = fit_scale_shift(d, z, ransac_iters=0)
    assert fit.scale == pytest.approx(70.0, rel=1e-9) and fit.shift == pytest.approx(0.1, rel=1e-9)


def _tukey(r, sigma):
    u = r / (4.685 * sigma)
    return np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)


def test_fit_is_a_fixed_point_of_tukey_reweighting():
    """The M-estimate's defining condition: weighting the residuals of the returned line with Tukey's
    biweight (c = 4.685 MAD sigmas) and solving weighted least squares gives the same line back."""
    rng = np.random.default_rng(9)
    z = rng.uniform(0.5, 4.0, 3000)
    x = (1.0 / z - 0.05) / 0.9 + rng.normal(0, 0.01, z.size)
    x[::6] += rng.uniform(0.3, 2.0, x[::6].size)
    fit = fit_scale_shift(x, z, ransac_iters=200)
    y = 1.0 / z
    r = y - (fit.scale * x + fit.shift)
    sigma = 1.4826 * np.median(np.abs(r - np.median(r)))
    w = _tukey(r, sigma)
    a, b = np.polyfit(x, y, 1, w=np.sqrt(w))
    assert a == pytest.approx(fit.scale, rel=1e-5) and b == pytest.approx(fit.shift, rel=1e-4, abs=1e-6)
    assert fit.inlier_ratio == pytest.approx((w > 0).mean(), abs=2e-3)


def test_known_distances_closed_form_start():
    """With no iterations the closed form is returned: shift 0 data gives the scale exactly; at one depth Z with
    disparity d0 and a held shift b the start is |r_a - r_b| / (d0 L) - b / d0 = 1 / (d0 Z) - b / d0 = scale."""
    ra, rb, da, db, length = _pairs(0.8, 0.0)
    assert fit_scale_shift_to_distances(ra, rb, da, db, length, iterations=0).scale == pytest.approx(0.8, rel=1e-9)
    ra, rb, da, db, length = _pairs(0.5, 0.2, depths=(1.5, 1.5))
    start = fit_scale_shift_to_distances(ra, rb, da, db, length, shift=0.2, iterations=0)
    assert start.scale == pytest.approx(0.5, rel=1e-9) and start.shift == 0.2
    two = fit_scale_shift_to_distances(*_pairs(0.8, 0.06, n=2))  # two pairs at two depths: both fitted
    assert two.shift_fitted and two.scale == pytest.approx(0.8, rel=1e-6)


def test_known_distances_with_noise_are_a_tukey_fixed_point():
    ra, rb, da, db, length = _pairs(0.8, 0.06, n=60, seed=4)
    noisy = length * (1 + np.random.default_rng(1).normal(0, 0.01, length.size))
    noisy[::10] *= 1.5
    fit = fit_scale_shift_to_distances(ra, rb, da, db, noisy, iterations=200)
    za, zb = 1 / (fit.scale * da + fit.shift), 1 / (fit.scale * db + fit.shift)
    f = (np.linalg.norm(ra * za[:, None] - rb * zb[:, None], axis=1) - noisy) / noisy
    w = _tukey(f, 1.4826 * np.median(np.abs(f - np.median(f))))
    assert fit.inlier_ratio == pytest.approx((w > 0).mean())
    assert 54 / 60 - 0.05 <= fit.inlier_ratio <= 54 / 60  # the six stretched pairs are out

    # stationary: the weighted gradient of sum w f^2 vanishes (numerical derivative)
    def cost(a, b):
        za, zb = 1 / (a * da + b), 1 / (a * db + b)
        g = (np.linalg.norm(ra * za[:, None] - rb * zb[:, None], axis=1) - noisy) / noisy
        return float(np.sum(w * g * g))

    h = 1e-7
    ga = (cost(fit.scale + h, fit.shift) - cost(fit.scale - h, fit.shift)) / (2 * h)
    gb = (cost(fit.scale, fit.shift + h) - cost(fit.scale, fit.shift - h)) / (2 * h)
    assert abs(ga) < 1e-6 and abs(gb) < 1e-6


def test_low_precision_inputs_are_computed_in_float64():
    p16 = np.array([1.1, 2.3, 0.7, 3.3], np.float16)
    r16 = np.array([1.0, 2.0, 0.75, 3.0], np.float16)
    p, r = p16.astype(np.float64), r16.astype(np.float64)
    q = evaluate(p16, r16)
    assert q.abs_rel == pytest.approx(np.mean(np.abs(p - r) / r), rel=1e-12)
    ra, rb, da, db, length = _pairs(0.8, 0.06)
    as32 = [np.asarray(v, np.float32) for v in (ra, rb, da, db, length)]
    fit32 = fit_scale_shift_to_distances(*as32)
    fit64 = fit_scale_shift_to_distances(*[v.astype(np.float64) for v in as32])
    assert fit32.scale == pytest.approx(fit64.scale, rel=1e-12) and fit32.shift == pytest.approx(fit64.shift, rel=1e-9)
