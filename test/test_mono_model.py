"""The real from_pretrained path on a tiny randomly initialised Depth Anything saved by the test."""

import time

import numpy as np
import pytest

from depth_annotation.mono import DepthAnything, MonoModelConfig, MonoModelError, save_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_da"))


def test_tiny_model_loads_and_predicts_at_image_size(tiny):
    assert (tiny / "model.safetensors").exists() and not list(tiny.glob("*.bin"))
    model = DepthAnything(MonoModelConfig(model=str(tiny)))
    assert 1e5 < model.parameters < 2e5 and not model.is_metric
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    out, ms = model.predict(img)
    assert out.shape == (120, 160) and out.dtype == np.float32 and np.isfinite(out).all() and ms > 0
    native = DepthAnything(MonoModelConfig(model=str(tiny), input_size=0))
    assert native.predict(img)[0].shape == (120, 160)
    batch, _ = model.predict_batch([img, img[::-1].copy()])
    assert len(batch) == 2 and np.allclose(batch[0], out, atol=1e-5)


def test_missing_local_model_says_how_to_provide_it(tmp_path):
    with pytest.raises(MonoModelError, match=r"not available offline \(no such directory\).*local directory.*HF_HOME"):
        DepthAnything(MonoModelConfig(model=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MonoModelError, match=r"lacks config\.json, model\.safetensors"):
        DepthAnything(MonoModelConfig(model=str(tmp_path / "empty")))


def test_hub_id_offline_fails_fast_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    t0 = time.monotonic()
    with pytest.raises(MonoModelError, match="Depth-Anything-V2-Small-hf' is not available offline"):
        DepthAnything(MonoModelConfig())
    assert time.monotonic() - t0 < 10
    assert not (tmp_path / "hf" / "hub").exists() or not any((tmp_path / "hf" / "hub").iterdir())


def test_non_commercial_checkpoints_are_opt_in():
    with pytest.raises(MonoModelError, match="CC-BY-NC"):
        DepthAnything(MonoModelConfig(model="depth-anything/Depth-Anything-V2-Large-hf"))
