"""The driver's runtime-tunable parameters: filter options and sensor controls.

Core: `CapturePipeline.update_filter` and `SdkWorkers.update_filters` change the chain from
the next frame on, whole, in-process and in the worker processes (checked bit for bit
against the SDK blocks run in-process); `set_device_control` sets exposure through the SDK
(a software_device with the exposure option). Node: `param set` over DDS on the real
realsense_node process changes the next frames the way the filter says, a value outside
the declared range or a read-only parameter is refused and changes nothing, and exposure
on the synthetic camera is refused with the reason.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pyrealsense2 as rs
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.qos import qos_profile_sensor_data
from ros_harness import WATCHED
from sensor_msgs.msg import Image
from test_capture_pipeline import VGA, Collector

from depth_annotation.capture import (
    CaptureConfig,
    CapturePipeline,
    ControlError,
    ControlSettings,
    FilterChain,
    FilterConfigError,
    SdkWorkers,
    StreamGeometry,
    SyntheticFaults,
    SyntheticSource,
    apply_device_controls,
    default_settings,
    set_device_control,
    updated_settings,
)
from depth_annotation.nodes.messages import stamp_to_ns

ALL_FRAMES = frozenset(range(1, 20000))  # every synthetic frame gets the central glare hole


def hole_fraction(height: int, width: int) -> float:
    """The synthetic glare hole (rows and columns 20 % .. 80 %), as the fault is defined, over the image."""
    rows = int(0.8 * height) - int(0.2 * height)
    cols = int(0.8 * width) - int(0.2 * width)
    return rows * cols / (height * width)


def zero_fraction(depth: np.ndarray) -> float:
    return float((depth == 0).mean())


# --- core: worker processes, bit for bit --------------------------------------------------------
@pytest.fixture(scope="module")
def holed_framesets():
    """Eight consecutive framesets of the synthetic camera, each with the central hole."""
    src = SyntheticSource(VGA, VGA, seed=5, faults=SyntheticFaults(hole_frames=ALL_FRAMES))
    out = []
    try:
        while len(out) < 8:
            fs = src.wait(2000)
            if fs is not None and fs.size() == 2:
                fs.keep()
                out.append(fs)
        yield out
    finally:
        src.close()


def test_worker_filter_update_applies_between_frames_bit_for_bit(holed_framesets):
    """Frames submitted before `update_filters` (still in flight) get the old chain, later ones all of the new."""
    before = default_settings()
    after = updated_settings(before, "hole_filling", enabled=True)
    after = updated_settings(after, "spatial", options={"filter_smooth_alpha": 0.9})
    # The in-process reference: the same SDK blocks, the change made between frames 3 and 4.
    chain, align = FilterChain(before), rs.align(rs.stream.color)
    expected = []
    for i, fs in enumerate(holed_framesets):
        if i == 3:
            chain = chain.reconfigured(after)
        filtered = chain.process(fs).as_frameset()
        expected.append(
            (
                np.array(np.asanyarray(filtered.get_depth_frame().get_data())),
                np.array(np.asanyarray(align.process(filtered).get_depth_frame().get_data())),
            )
        )
    hole = hole_fraction(480, 640)
    assert all(zero_fraction(d) >= hole for d, _ in expected[:3])  # hole filling off: the hole stays
    assert all(zero_fraction(d) < 0.01 for d, _ in expected[3:])  # on: every hole pixel gets a neighbour's value

    workers = SdkWorkers(before, disparity_domain=True, align=True)
    workers.start()
    got: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def drain(n: int) -> None:
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            r = workers.receive(0.5)
            if r is not None:
                got[r.tag] = (r.depth, r.aligned)

    def submit(i: int) -> None:
        depth = holed_framesets[i].get_depth_frame()
        arr = np.asanyarray(depth.get_data())
        assert workers.submit(arr, depth.get_frame_number(), depth.get_timestamp(), i, timeout=10)

    try:
        assert workers.wait_ready(30) is None
        workers.configure(StreamGeometry.from_frames(holed_framesets[0]))
        for i in range(3):  # three frames in flight (all three slots) when the settings change
            submit(i)
        workers.update_filters(after)
        drain(3)
        for i in range(3, len(holed_framesets)):
            submit(i)
            drain(i + 1)
    finally:
        workers.close()
    assert sorted(got) == list(range(len(holed_framesets)))
    for i, (want_depth, want_aligned) in enumerate(expected):
        np.testing.assert_array_equal(got[i][0], want_depth, err_msg=f"frame {i}")
        np.testing.assert_array_equal(got[i][1], want_aligned, err_msg=f"frame {i}")


def test_workers_started_with_every_filter_off_can_switch_one_on(holed_framesets):
    """With every block off the filter stage still runs (it copies), so a block switched on has a process."""
    off = updated_settings(updated_settings(default_settings(), "spatial", enabled=False), "temporal", enabled=False)
    workers = SdkWorkers(off, disparity_domain=True, align=True)
    assert workers.stages == ["filter", "align"]
    workers.start()
    results = []
    try:
        assert workers.wait_ready(30) is None
        workers.configure(StreamGeometry.from_frames(holed_framesets[0]))
        for i, fs in enumerate(holed_framesets[:4]):
            if i == 2:
                workers.update_filters(updated_settings(off, "decimation", enabled=True))
            depth = fs.get_depth_frame()
            assert workers.submit(np.asanyarray(depth.get_data()), depth.get_frame_number(), 0.0, i, timeout=10)
            r = None
            deadline = time.monotonic() + 20
            while r is None and time.monotonic() < deadline:
                r = workers.receive(0.5)
            assert r is not None
            results.append(r)
    finally:
        workers.close()
    raw = np.asanyarray(holed_framesets[0].get_depth_frame().get_data())
    np.testing.assert_array_equal(results[0].depth, raw)  # no block on: the stage passes depth through
    assert [r.depth.shape for r in results] == [(480, 640), (480, 640), (240, 320), (240, 320)]


# --- core: the pipeline, both paths -------------------------------------------------------------
@pytest.mark.parametrize("sdk_processes", [True, False], ids=["processes", "threads"])
def test_pipeline_update_filter_changes_the_next_frames(sdk_processes):
    out = Collector()
    faults = SyntheticFaults(hole_frames=ALL_FRAMES)
    pipe = CapturePipeline(
        lambda: SyntheticSource(VGA, VGA, faults=faults), CaptureConfig(sdk_processes=sdk_processes), out
    )
    pipe.start()
    try:
        assert (pipe.workers is not None) == sdk_processes
        assert out.wait_for(5, 30)
        assert zero_fraction(out.frames[-1].depth_mm) >= hole_fraction(480, 640)

        with pytest.raises(FilterConfigError, match=r"hole_filling.holes_fill=5 is outside \[0, 2\]"):
            pipe.update_filter("hole_filling", enabled=True, options={"holes_fill": 5})
        assert not next(s for s in pipe.filter_settings if s.name == "hole_filling").enabled  # nothing changed

        new = pipe.update_filter("hole_filling", enabled=True)
        assert new.enabled and new.options == {"holes_fill": 1}
        n = len(out.frames)
        # The frames already past the chain come out as they were; then every frame is filled.
        assert out.wait_for(n + 15, 30)
        zeros = [zero_fraction(f.depth_mm) for f in out.frames[n:]]
        first = next(i for i, z in enumerate(zeros) if z < 0.01)
        assert first <= 6, zeros
        assert all(z < 0.01 for z in zeros[first:]), zeros

        # A block switched on that changes the frame size for the blocks after it (which keep state).
        pipe.update_filter("decimation", enabled=True, options={"filter_magnitude": 4})
        n = len(out.frames)
        assert out.wait_for(n + 15, 30)
        shapes = [f.depth_mm.shape for f in out.frames[n:]]
        first = shapes.index((480 // 4, 640 // 4)) if (120, 160) in shapes else None
        assert first is not None and first <= 6 and set(shapes[first:]) == {(120, 160)}, shapes
        assert all(zero_fraction(f.depth_mm) < 0.01 for f in out.frames[n + first :])
    finally:
        pipe.stop()
    if pipe.workers is not None:
        assert pipe.workers.restarts == 0  # no worker crashed on the way


# --- core: exposure through the SDK -------------------------------------------------------------
def software_camera() -> rs.software_device:
    """A software_device with a depth and a colour sensor carrying exposure, gain and auto exposure options,
    and the D435's projector options (emitter on/off, laser power 0-360 mW in steps of 30) on the depth sensor."""
    dev = rs.software_device()
    depth = dev.add_sensor("Stereo Module")
    depth.add_read_only_option(rs.option.depth_units, 0.001)
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = 640, 480, 600.0, 600.0, 320.0, 240.0
    for sensor, kind, fmt, bpp in ((depth, rs.stream.depth, rs.format.z16, 2),):
        vs = rs.video_stream()
        vs.type, vs.uid, vs.width, vs.height, vs.fps, vs.bpp, vs.fmt, vs.intrinsics = (
            kind,
            0,
            640,
            480,
            30,
            bpp,
            fmt,
            intr,
        )
        sensor.add_video_stream(vs)
    color = dev.add_sensor("RGB Camera")
    vs = rs.video_stream()
    vs.type, vs.uid, vs.width, vs.height, vs.fps, vs.bpp, vs.fmt, vs.intrinsics = (
        rs.stream.color,
        1,
        640,
        480,
        30,
        3,
        rs.format.rgb8,
        intr,
    )
    color.add_video_stream(vs)

    def rng(low: float, high: float, default: float, step: float = 1.0) -> rs.option_range:
        r = rs.option_range()  # set by field: the (min, max, step, default) constructor swaps step and default
        r.min, r.max, r.step, r.default = low, high, step, default
        return r

    for sensor, exposure, gain in (
        (depth, rng(1, 165000, 8500), rng(16, 248, 16)),
        (color, rng(1, 10000, 166), rng(0, 128, 64)),
    ):
        sensor.add_option(rs.option.exposure, exposure, True)
        sensor.add_option(rs.option.gain, gain, True)
        sensor.add_option(rs.option.enable_auto_exposure, rng(0, 1, 1), True)
    depth.add_option(rs.option.emitter_enabled, rng(0, 1, 1), True)
    depth.add_option(rs.option.laser_power, rng(0, 360, 150, step=30), True)
    return dev


def test_set_device_control_sets_the_sdk_option_and_keeps_it_for_a_reconnect():
    dev = software_camera()
    controls = ControlSettings()
    depth, color = dev.first_depth_sensor(), dev.query_sensors()[1]
    assert set_device_control(dev, controls, "depth", "exposure", 5000.0) == 5000.0
    assert depth.get_option(rs.option.exposure) == 5000.0 and color.get_option(rs.option.exposure) == 166.0
    assert controls.depth_exposure_us == 5000.0
    assert set_device_control(dev, controls, "color", "gain", 40.0) == 40.0
    assert color.get_option(rs.option.gain) == 40.0 and controls.color_gain == 40.0
    assert set_device_control(dev, controls, "color", "enable_auto_exposure", 0.0) == 0.0
    assert controls.color_auto_exposure is False and depth.get_option(rs.option.enable_auto_exposure) == 1.0
    with pytest.raises(ControlError, match="refused depth exposure=1e\\+06"):
        set_device_control(dev, controls, "depth", "exposure", 1e6)  # outside the sensor's own range
    assert depth.get_option(rs.option.exposure) == 5000.0 and controls.depth_exposure_us == 5000.0
    with pytest.raises(ControlError, match=r"no control depth\.brightness"):
        set_device_control(dev, controls, "depth", "brightness", 1.0)
    # the projector: on the depth sensor only
    assert set_device_control(dev, controls, "depth", "emitter_enabled", 0.0) == 0.0
    assert depth.get_option(rs.option.emitter_enabled) == 0.0 and controls.emitter_enabled == 0
    assert type(controls.emitter_enabled) is int  # the SDK's 0/1/2, as applied again on a reconnect
    assert set_device_control(dev, controls, "depth", "laser_power", 240.0) == 240.0
    assert depth.get_option(rs.option.laser_power) == 240.0 and controls.laser_power_mw == 240.0
    with pytest.raises(ControlError, match="refused depth laser_power=400"):
        set_device_control(dev, controls, "depth", "laser_power", 400.0)
    assert controls.laser_power_mw == 240.0
    with pytest.raises(ControlError, match=r"no control color\.emitter_enabled"):
        set_device_control(dev, controls, "color", "emitter_enabled", 1.0)
    # A D400 switches its emitter on when the laser power is set (librealsense's auto-disabling
    # control; a software_device has no such coupling, so the test switches it as the camera would):
    # the emitter is set back to what was asked.
    depth.set_option(rs.option.emitter_enabled, 1.0)
    assert set_device_control(dev, controls, "depth", "laser_power", 180.0) == 180.0
    assert depth.get_option(rs.option.emitter_enabled) == 0.0 and controls.emitter_enabled == 0


def test_opening_a_device_applies_the_projector_settings_and_reads_them_back():
    dev = software_camera()
    applied = apply_device_controls(dev, ControlSettings(emitter_enabled=0, laser_power_mw=90.0))
    depth = dev.first_depth_sensor()
    assert depth.get_option(rs.option.emitter_enabled) == 0.0 and depth.get_option(rs.option.laser_power) == 90.0
    # what capture_metadata.json records, under the SDK's option names
    assert applied["depth"]["Emitter Enabled"] == 0.0 and applied["depth"]["Laser Power"] == 90.0
    assert "Emitter Enabled" not in applied["color"] and applied["color"]["Exposure"] == 166.0


def test_synthetic_source_refuses_controls():
    pipe = CapturePipeline(lambda: SyntheticSource(VGA, VGA), CaptureConfig(sdk_processes=False), lambda f: None)
    pipe.start()
    try:
        with pytest.raises(ControlError, match="synthetic camera has no exposure control"):
            pipe.set_control("depth", "exposure", 5000.0)
    finally:
        pipe.stop()


# --- the node, over DDS -------------------------------------------------------------------------
def value_msg(value) -> ParameterValue:
    if isinstance(value, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    if isinstance(value, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)


def call(ros, client, request, timeout=30):
    assert ros.spin_until(client.service_is_ready, timeout=60), client.srv_name
    fut = client.call_async(request)
    assert ros.spin_until(fut.done, timeout=timeout), client.srv_name
    return fut.result()


@pytest.mark.parametrize("sdk_processes", [True, False], ids=["processes", "threads"])
def test_param_set_tunes_filters_refuses_bad_and_read_only_values(ros, procs, tmp_path, sdk_processes):
    holes = "[" + ",".join(str(n) for n in range(1, 5000)) + "]"
    node_proc = procs.node(
        "realsense_node",
        namespace="camera",
        params={
            "output_dir": str(tmp_path),
            "session_id": "s",
            "sdk_processes": sdk_processes,
            "synthetic_hole_frames": holes,
        },
    )
    node = ros.node("tuner")
    depth: list[Image] = []
    node.create_subscription(Image, "/camera/depth/image_raw", depth.append, qos_profile_sensor_data)
    setter = node.create_client(SetParameters, "/camera/realsense_node/set_parameters")
    getter = node.create_client(GetParameters, "/camera/realsense_node/get_parameters")

    answered_ns = [0]  # host time just after the last set was answered

    def param_set(name: str, value):
        req = SetParameters.Request(parameters=[ParameterMsg(name=name, value=value_msg(value))])
        result = call(ros, setter, req).results[0]
        answered_ns[0] = time.time_ns()
        return result

    def frames(n: int) -> list[np.ndarray]:
        start = len(depth)
        assert ros.spin_until(lambda: len(depth) >= start + n, timeout=60), node_proc.output()[-3000:]
        return [np.frombuffer(bytes(m.data), np.uint16).reshape(m.height, m.width) for m in depth[start : start + n]]

    def settle(predicate, n: int = 8) -> list[np.ndarray]:
        """The frames after a set: from one frame on they all meet `predicate` (the change reaches one frame
        boundary whole), and every frame captured after the set was answered does. A frame's stamp is
        never later than the host clock when the driver took it in (hw_clock.py), before any filtering;
        the frames in flight at the set, however many a busy machine holds back, may go either way."""
        start, after = len(depth), answered_ns[0]

        def captured_after() -> list[Image]:
            return [m for m in depth[start:] if stamp_to_ns(m.header.stamp) > after]

        assert ros.spin_until(lambda: len(captured_after()) >= n, timeout=60), node_proc.output()[-3000:]
        got = [np.frombuffer(bytes(m.data), np.uint16).reshape(m.height, m.width) for m in depth[start:]]
        late = [i for i, m in enumerate(depth[start:]) if stamp_to_ns(m.header.stamp) > after]
        first = next((i for i, f in enumerate(got) if predicate(f)), None)
        shown = [(f.shape, zero_fraction(f)) for f in got]
        assert first is not None and first <= late[0], shown
        assert all(predicate(f) for f in got[first:]), shown
        return got[first:]

    hole = hole_fraction(480, 640)
    assert all(zero_fraction(f) >= hole for f in frames(5))  # hole filling is off by default

    result = param_set("hole_filling_filter.enable", True)
    assert result.successful, result.reason
    settle(lambda f: zero_fraction(f) < 0.01)  # every hole pixel filled from a neighbour

    for name, value in (
        ("hole_filling_filter.holes_fill", 5),  # declared [0, 2]
        ("spatial_filter.filter_smooth_alpha", 1.5),  # declared [0.25, 1.0]
        ("decimation_filter.filter_magnitude", 9),  # declared [2, 8]
    ):
        result = param_set(name, value)
        assert not result.successful, name
    result = param_set("color_profile", "1280x720x30")  # read-only
    assert not result.successful and "read-only" in result.reason.lower(), result.reason
    result = param_set("depth_module.exposure", 5000)  # no exposure on the synthetic camera
    assert not result.successful and "synthetic camera has no exposure control" in result.reason, result.reason
    got = call(ros, getter, GetParameters.Request(names=["hole_filling_filter.holes_fill", "depth_module.exposure"]))
    assert [v.integer_value for v in got.values] == [1, 8500]  # the refused values were not stored
    assert all(f.shape == (480, 640) and zero_fraction(f) < 0.01 for f in frames(10))  # nor applied

    # decimation: the output is 1/magnitude of the input in each direction
    result = param_set("decimation_filter.enable", True)
    assert result.successful, result.reason
    settle(lambda f: f.shape == (480 // 2, 640 // 2))
    result = param_set("decimation_filter.filter_magnitude", 4)
    assert result.successful, result.reason
    settle(lambda f: f.shape == (480 // 4, 640 // 4))

    result = param_set("hole_filling_filter.enable", False)
    assert result.successful, result.reason
    settle(lambda f: zero_fraction(f) >= hole - 0.02)  # the hole is back (decimated: its edges round)
    WATCHED.remove(node_proc)
    assert node_proc.stop(timeout=60) == 0
    meta = json.loads((tmp_path / "s" / "capture_metadata.json").read_text())
    assert [c["parameter"] for c in meta["parameter_changes"]] == [
        "hole_filling_filter.enable",
        "decimation_filter.enable",
        "decimation_filter.filter_magnitude",
        "hole_filling_filter.enable",
    ]
    filters = meta["processing"]["filters"]
    assert filters["decimation"] == {"enabled": True, "filter_magnitude": 4}
    assert filters["hole_filling"]["enabled"] is False and filters["hole_filling"]["holes_fill"] == 1


def test_old_control_names_still_start_the_node_under_realsense_ros_names(ros, procs, tmp_path):
    """`auto_exposure` (both sensors), `depth_exposure_us` (a float) map onto depth_module.* / rgb_camera.*."""
    node_proc = procs.node(
        "realsense_node",
        namespace="camera",
        params={
            "output_dir": str(tmp_path),
            "auto_exposure": True,
            "depth_exposure_us": 5000.0,
            "color_gain": 30.0,
            "emitter_enabled": False,
            "laser_power_mw": 120.0,
        },
    )
    node = ros.node("old_names")
    getter = node.create_client(GetParameters, "/camera/realsense_node/get_parameters")
    names = [
        "depth_module.enable_auto_exposure",
        "rgb_camera.enable_auto_exposure",
        "depth_module.exposure",
        "rgb_camera.gain",
        "rgb_camera.exposure",
        "depth_module.emitter_enabled",
        "depth_module.laser_power",
    ]
    got = call(ros, getter, GetParameters.Request(names=names)).values
    assert [got[0].bool_value, got[1].bool_value] == [True, True]
    # given under the old names (a float, a bool, a float), rgb_camera.exposure the default
    assert [v.integer_value for v in got[2:]] == [5000, 30, 166, 0, 120]
    out = node_proc.output()
    for old, new in (
        ("auto_exposure", "depth_module.enable_auto_exposure"),
        ("depth_exposure_us", "depth_module.exposure"),
        ("color_gain", "rgb_camera.gain"),
        ("emitter_enabled", "depth_module.emitter_enabled"),
        ("laser_power_mw", "depth_module.laser_power"),
    ):
        assert f"parameter '{old}' is deprecated: use '{new}'" in out, out
