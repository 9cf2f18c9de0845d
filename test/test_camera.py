"""Intrinsics / extrinsics: CameraInfo (REP-104) and JSON round trips, geometry."""

import json

import numpy as np
import pytest

from depth_annotation.common import (
    CameraModelError,
    Extrinsics,
    Intrinsics,
    look_at,
    rotation_from_euler_xyz,
    rotation_from_quaternion,
)

INTR = Intrinsics(640, 480, 606.1, 605.3, 321.4, 240.2, "plumb_bob", (0.1, -0.2, 0.001, 0.002, 0.05))


def test_camera_info_round_trip_through_real_message():
    from sensor_msgs.msg import CameraInfo

    from depth_annotation.nodes.messages import camera_info_msg, make_header

    msg = camera_info_msg(INTR, make_header(5, "camera_color_optical_frame"))
    assert isinstance(msg, CameraInfo)
    assert list(msg.p) == [606.1, 0, 321.4, 0, 0, 605.3, 240.2, 0, 0, 0, 1, 0]
    assert list(msg.r) == [1, 0, 0, 0, 1, 0, 0, 0, 1]
    assert Intrinsics.from_camera_info(msg) == INTR


def test_json_round_trip():
    data = json.loads(json.dumps(INTR.to_dict()))
    assert data["schema_version"] == 1
    assert Intrinsics.from_dict(data) == INTR
    with pytest.raises(CameraModelError, match="lacks field 'fx'"):
        Intrinsics.from_dict({k: v for k, v in data.items() if k != "fx"})


def test_uncalibrated_camera_info_is_rejected():
    class Msg:
        k = (0.0,) * 9
        d = ()
        width, height, distortion_model = 640, 480, ""

    with pytest.raises(CameraModelError, match="uncalibrated"):
        Intrinsics.from_camera_info(Msg())


def test_invalid_intrinsics_rejected():
    with pytest.raises(CameraModelError, match="focal"):
        Intrinsics(640, 480, 0, 600, 320, 240)
    with pytest.raises(CameraModelError, match="distortion model"):
        Intrinsics(640, 480, 600, 600, 320, 240, "fisheye42")


def test_project_backproject_inverse():
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(-0.3, 0.3, 50), rng.uniform(-0.2, 0.2, 50), rng.uniform(0.3, 2.0, 50)])
    uv = INTR.project(pts)
    back = INTR.backproject(uv[:, 0], uv[:, 1], pts[:, 2])
    assert np.allclose(back, pts, atol=1e-12)


def test_scaled_intrinsics_keep_pixel_geometry():
    half = INTR.scaled(0.5)
    assert (half.width, half.height) == (320, 240)
    # a point seen at pixel (u, v) at full size is at ((u + .5) / 2 - .5) at half size
    p = np.array([[0.1, -0.05, 1.0]])
    u_full = INTR.project(p)[0]
    assert np.allclose(half.project(p)[0], (u_full + 0.5) / 2 - 0.5)


def test_extrinsics_compose_inverse_and_quaternion():
    r = rotation_from_euler_xyz(0.1, -0.2, 0.3)
    a = Extrinsics(r, [0.015, 0.001, -0.002], "depth", "color")
    pts = np.random.default_rng(2).normal(size=(10, 3))
    assert np.allclose(a.inverse().apply(a.apply(pts)), pts)
    ident = a.then(a.inverse())
    assert np.allclose(ident.matrix, np.eye(4)) and ident.source_frame == "depth" and ident.target_frame == "depth"
    assert np.allclose(rotation_from_quaternion(*a.quaternion_xyzw()), r)
    assert np.allclose(rotation_from_quaternion(0, 0, np.sin(0.25), np.cos(0.25)), rotation_from_euler_xyz(0, 0, 0.5))
    assert Extrinsics.from_dict(json.loads(json.dumps(a.to_dict()))).translation.tolist() == a.translation.tolist()


def test_non_rotation_rejected():
    with pytest.raises(CameraModelError, match="rotation"):
        Extrinsics(np.diag([1.0, 1.0, -1.0]))


def test_look_at_uses_optical_axes():
    pose = look_at(np.array([0.0, -1.0, 0.5]), np.array([0.0, 0.0, 0.5]))
    # target straight ahead on +z; world up (+z) appears as image up (-y optical)
    assert np.allclose(pose.apply(np.array([0.0, 0.0, 0.5]))[0], [0, 0, 1.0])
    assert pose.apply(np.array([0.0, 0.0, 0.6]))[0][1] < 0
    assert pose.apply(np.array([0.1, 0.0, 0.5]))[0][0] > 0  # world +x is image right from this side
