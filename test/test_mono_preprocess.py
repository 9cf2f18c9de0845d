"""The device path's preprocessing and metric arithmetic, run on CPU tensors, against independent references:
transformers' own DPT image processor (Pillow backend) and the numpy aligner."""

import numpy as np
import pytest
import torch
from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

from depth_annotation.calibration import ScaleShift
from depth_annotation.mono import (
    DepthAnything,
    MetricAligner,
    MonoModelConfig,
    ProcessorSettings,
    TensorPreprocessor,
    network_input_size,
    pil_preprocess,
    resample_taps,
    save_tiny_model,
)

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def processor(resample=3):
    """Depth Anything V2's published preprocessor settings, in transformers' Pillow-backed DPT processor."""
    return DPTImageProcessorPil(
        do_resize=True,
        size={"height": 518, "width": 518},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=resample,
        image_mean=MEAN,
        image_std=STD,
    )


def scene_like(h, w, seed):
    """Noise on top of gradients and hard edges: every filter tap and the clipping at 0/255 matter."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3)).astype(np.float64)
    img[: h // 2] = np.linspace(0, 255, w)[None, :, None] + rng.normal(0, 25, (h // 2, w, 3))
    img[h // 3 : h // 2, : w // 3] = 255
    img[2 * h // 3 :, w // 2 :] = 0
    return np.clip(img, 0, 255).astype(np.uint8)


SIZES = [(480, 640), (720, 1280), (120, 160), (1080, 1920), (500, 333), (37, 901), (518, 686), (600, 600)]


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize("input_size", [518, 266])
def test_device_preprocessing_equals_the_image_processor(h, w, input_size):
    img = scene_like(h, w, h * w)
    proc = processor()
    target = {"height": input_size, "width": input_size}
    ref = proc(images=[img], return_tensors="pt", size=target, keep_aspect_ratio=True, ensure_multiple_of=14)
    ref = ref["pixel_values"].numpy()
    size = network_input_size(h, w, (input_size, input_size), keep_aspect_ratio=True, multiple=14)
    settings = ProcessorSettings.from_processor(proc)
    got = TensorPreprocessor(settings)(torch.from_numpy(img)[None], size).numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-3
    half = TensorPreprocessor(settings)(torch.from_numpy(np.stack([img, img[::-1].copy()])), size, torch.float16)
    assert half.dtype == torch.float16 and np.abs(half[0].float().numpy() - ref[0]).max() <= 2e-2  # fp16 spacing
    assert np.abs(pil_preprocess(img, size, settings) - ref).max() <= 1e-3


@pytest.mark.parametrize("resample", [1, 2, 4, 5])
def test_other_pillow_filters_match_too(resample):
    img = scene_like(300, 410, resample)
    proc = processor(resample)
    ref = proc(images=[img], return_tensors="pt")["pixel_values"].numpy()
    size = network_input_size(300, 410, (518, 518), keep_aspect_ratio=True, multiple=14)
    got = TensorPreprocessor(ProcessorSettings.from_processor(proc))(torch.from_numpy(img)[None], size).numpy()
    assert np.abs(got - ref).max() <= 1e-3


def test_network_input_size_follows_the_processor_rule():
    # 640x480: the height changes least, so it sets the scale; the width rounds to a multiple of 14
    assert network_input_size(480, 640, (518, 518), keep_aspect_ratio=True, multiple=14) == (518, 686)
    assert network_input_size(480, 640, (392, 392), keep_aspect_ratio=True, multiple=14) == (392, 518)
    assert network_input_size(480, 640, (266, 266), keep_aspect_ratio=True, multiple=14) == (266, 350)
    assert network_input_size(480, 640, (518, 518), keep_aspect_ratio=False, multiple=14) == (518, 518)


def test_resample_taps_are_pillow_fixed_point():
    index, weight = resample_taps(10, 10, 3)  # same size: each pixel is itself, weight 1.0 = 2**22
    assert (weight.sum(1) == 1 << 22).all() and (index[np.arange(10), weight.argmax(1)] == np.arange(10)).all()
    index, weight = resample_taps(4, 2, 4)  # box filter, halving: mean of pixel pairs
    pairs = {
        tuple(sorted(int(i) for i, wt in zip(ri, rw, strict=True) if wt)) for ri, rw in zip(index, weight, strict=True)
    }
    assert pairs == {(0, 1), (2, 3)} and set(weight[weight > 0].tolist()) == {1 << 21}


def test_metric_transform_on_the_device_equals_the_aligner():
    rng = np.random.default_rng(0)
    out = rng.uniform(-0.1, 2.0, (48, 64)).astype(np.float32)  # some invalid: inverse depth <= 0, beyond limits
    sensor = (1.0 / (1.5 * out + 0.2)) * rng.uniform(0.9, 1.1, out.shape)  # 5 % noise: a score to compare
    sensor[~np.isfinite(sensor) | (sensor < 0)] = np.nan
    aligner = MetricAligner("scale_file", scale=ScaleShift(1.5, 0.2))
    t = aligner.pixel_transform(sensor_available=True)
    assert (t.scale, t.shift, t.identity) == (1.5, 0.2, False)
    ref_depth, ref_valid, ref_rep = aligner.align(out, sensor)
    dev = t.apply_torch(torch.from_numpy(out)).numpy()
    z = 1.0 / (1.5 * out.astype(np.float64) + 0.2)
    near_limit = np.isclose(z, 0.1, rtol=1e-5) | np.isclose(z, 10.0, rtol=1e-5)
    assert np.array_equal(np.isfinite(dev)[~near_limit], ref_valid[~near_limit])
    ok = ref_valid & np.isfinite(dev)
    assert ok.sum() > 1000 and np.allclose(dev[ok], ref_depth[ok], rtol=1e-6)
    _, valid, rep = aligner.align(out, sensor, depth_m=dev.copy())
    assert np.array_equal(valid, np.isfinite(dev)) and ref_rep.abs_rel > 0.01
    assert rep.abs_rel == pytest.approx(ref_rep.abs_rel, rel=1e-5)
    # the aligner takes the given depth as it is (it is not recomputed): twice the depth comes back twice as deep
    doubled, _, _ = aligner.align(out, sensor, depth_m=dev * 2)
    inside = np.isfinite(dev) & (dev * 2 <= 10.0)
    assert inside.sum() > 1000 and np.array_equal(doubled[inside], dev[inside] * 2)

    metric = MetricAligner("metric_model", max_depth_m=1.0).pixel_transform(sensor_available=False)
    dev = metric.apply_torch(torch.from_numpy(out)).numpy()
    assert np.array_equal(np.isfinite(dev), (out >= 0.1) & (out <= 1.0))


def test_pixel_transform_only_when_the_scale_is_known_before_inference():
    fit = MetricAligner("sensor_fit")
    assert fit.pixel_transform(sensor_available=False) is None  # nothing fitted yet
    fit.scale = ScaleShift(2.0, 0.1)  # as after a fit
    assert fit.pixel_transform(sensor_available=True) is None  # this frame refits on its own output
    assert fit.pixel_transform(sensor_available=False).scale == 2.0  # no sensor frame: the last fit is reused
    with pytest.raises(ValueError, match="fitted on its own output"):
        fit.align(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32), depth_m=np.ones((4, 4), np.float32))


def test_cpu_device_path_equals_the_processor_path(tmp_path):
    tiny = save_tiny_model(tmp_path / "tiny")
    img = scene_like(120, 160, 1)
    new = DepthAnything(MonoModelConfig(model=str(tiny)))
    old = DepthAnything(MonoModelConfig(model=str(tiny), preprocess="processor"))
    a, b = new.predict(img)[0], old.predict(img)[0]
    assert a.shape == (120, 160) and np.abs(a - b).max() <= 1e-3 * np.abs(b).max()
    assert "device preprocessing" in new.describe() and "processor preprocessing" in old.describe()


def test_a_filter_not_reproduced_on_the_device_falls_back_to_the_processor(tmp_path):
    import json

    tiny = save_tiny_model(tmp_path / "tiny")
    cfg = json.loads((tiny / "preprocessor_config.json").read_text())
    cfg["resample"] = 0  # nearest: Pillow does it outside the resampling code we reproduce
    (tiny / "preprocessor_config.json").write_text(json.dumps(cfg))
    model = DepthAnything(MonoModelConfig(model=str(tiny)))
    assert model.device_preprocess is None and "processor (resample 0 not on the device)" in model.describe()
    assert model.predict(scene_like(60, 80, 2))[0].shape == (60, 80)
