"""`mono export-onnx` and the CPU backends: the tiny model exported by our CLI, run by ONNX Runtime and
OpenVINO, against the same model in torch."""

import subprocess
import sys

import numpy as np
import pytest
from ros_harness import VENV_BIN
from test_cli_mono import spread_tiny_model

from depth_annotation.mono import DepthAnything, MonoModelConfig, MonoModelError, load_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny model (output spread over ~0.27..0.33) and its export for 160x120 images at 518."""
    tmp = tmp_path_factory.mktemp("onnx")
    model = spread_tiny_model(tmp / "tiny")
    out = tmp / "tiny_518.onnx"
    res = subprocess.run(
        [str(VENV_BIN / "depth-annotation"), "mono", "export-onnx", str(model), str(out), "--image-size", "160x120"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "network input 392x518 for 160x120 images" in res.stdout  # 120 -> 392 (x3.27), 160 -> 518
    return model, out


def frames():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(2)]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_cpu_backends_equal_torch(exported, backend):
    model_dir, onnx_file = exported
    reference = DepthAnything(MonoModelConfig(model=str(model_dir)))
    runtime = load_model(MonoModelConfig(model=str(onnx_file), backend=backend, fp16=False, threads=1))
    assert runtime.untrained and not runtime.is_metric and runtime.parameters == reference.parameters
    assert "network input 392x518" in runtime.describe()
    if backend == "openvino":
        assert runtime.precision == "f32"  # fp16=False: full precision asked of OpenVINO, whatever the CPU offers
    for img in frames():
        ref = reference.predict(img)[0]
        got, ms = runtime.predict(img)
        assert got.shape == ref.shape == (120, 160) and got.dtype == np.float32 and ms > 0
        assert np.ptp(ref) > 0.01  # a spread-out output, so the comparison means something
        assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()


def test_openvino_reduced_precision_stays_close(exported):
    _, onnx_file = exported
    runtime = load_model(MonoModelConfig(model=str(onnx_file), backend="openvino", threads=1))  # fp16: bf16 if any
    full = load_model(MonoModelConfig(model=str(onnx_file), backend="openvino", fp16=False, threads=1))
    img = frames()[0]
    a, b = runtime.predict(img)[0], full.predict(img)[0]
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95


def test_exported_size_is_enforced_with_one_line(exported):
    _, onnx_file = exported
    runtime = load_model(MonoModelConfig(model=str(onnx_file), backend="onnxruntime"))
    with pytest.raises(MonoModelError, match=r"needs 322x518: export again with --image-size 160x100 --size 518"):
        runtime.predict(np.zeros((100, 160, 3), np.uint8))


def test_smaller_input_sizes_export_their_network_shape(exported, tmp_path):
    from depth_annotation.mono import export_onnx

    model_dir, _ = exported
    for size, shape in ((392, (392, 518)), (266, (266, 350))):  # 640x480 camera: the height sets the scale
        info = export_onnx(model_dir, tmp_path / f"m{size}.onnx", input_size=size, image_size=(640, 480))
        assert (info.network_height, info.network_width) == shape
        runtime = load_model(MonoModelConfig(model=str(tmp_path / f"m{size}.onnx"), backend="onnxruntime"))
        assert runtime.predict(np.zeros((480, 640, 3), np.uint8))[0].shape == (480, 640)


def test_backend_errors_are_one_clear_line(exported, tmp_path, monkeypatch):
    model_dir, onnx_file = exported
    with pytest.raises(MonoModelError, match=r"needs an exported \.onnx file.*mono export-onnx"):
        load_model(MonoModelConfig(model=str(model_dir), backend="onnxruntime"))
    with pytest.raises(MonoModelError, match="backend must be one of torch, onnxruntime, openvino"):
        load_model(MonoModelConfig(model=str(onnx_file), backend="tensorrt"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(MonoModelError, match=r"needs the onnxruntime package.*pip install onnxruntime==") as err:
        load_model(MonoModelConfig(model=str(onnx_file), backend="onnxruntime"))
    assert "\n" not in str(err.value)
    not_ours = tmp_path / "plain.onnx"
    not_ours.write_bytes(b"not a model")
    monkeypatch.delitem(sys.modules, "onnxruntime")
    with pytest.raises(MonoModelError, match="ONNX Runtime cannot load it"):
        load_model(MonoModelConfig(model=str(not_ours), backend="onnxruntime"))
