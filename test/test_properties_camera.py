"""Properties of the camera models (common/camera.py): CameraInfo, JSON and YAML round trips,
projection and back-projection as inverses, rigid transforms and their quaternions.

Expected CameraInfo fields are written from REP-104 here (K row-major, R identity, P = [K | 0] for a
monocular camera); inverses are checked in both directions.
"""

import json
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from depth_annotation.common import (
    Extrinsics,
    Intrinsics,
    from_camera_info_yaml,
    rotation_from_quaternion,
    to_camera_info_yaml,
)

SETTINGS = settings(max_examples=80, deadline=None)
# coefficients per distortion model, as ROS and OpenCV define them
N_COEFFS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def intrinsics(draw):
    width, height = draw(st.integers(1, 8192)), draw(st.integers(1, 8192))
    model = draw(st.sampled_from(sorted(N_COEFFS)))
    return Intrinsics(
        width=width,
        height=height,
        fx=draw(st.floats(1.0, 1e5)),
        fy=draw(st.floats(1.0, 1e5)),
        cx=draw(st.floats(-width, 2.0 * width)),
        cy=draw(st.floats(-height, 2.0 * height)),
        distortion_model=model,
        d=tuple(draw(st.lists(finite, min_size=N_COEFFS[model], max_size=N_COEFFS[model]))),
    )


@st.composite
def rotations(draw):
    """Rotation matrices from unit quaternions, half-turns (w = 0) and axis-aligned quarter-turns included."""
    q = draw(
        st.one_of(
            st.tuples(*[st.floats(-1, 1)] * 4),
            st.tuples(*[st.floats(-1, 1)] * 3, st.just(0.0)),
            st.tuples(*[st.sampled_from([-1.0, 0.0, 1.0])] * 4),
        ).filter(lambda v: np.linalg.norm(v) > 0.1)
    )
    return rotation_from_quaternion(*q)


@SETTINGS
@given(intrinsics())
def test_camera_info_fields_follow_rep_104_and_read_back(intr):
    f = intr.to_camera_info_fields()
    k = [intr.fx, 0.0, intr.cx, 0.0, intr.fy, intr.cy, 0.0, 0.0, 1.0]
    assert f["k"] == k
    assert f["r"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert f["p"] == [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert (f["width"], f["height"], f["distortion_model"], f["d"]) == (
        intr.width,
        intr.height,
        intr.distortion_model,
        list(intr.d),
    )
    assert Intrinsics.from_camera_info(SimpleNamespace(**f)) == intr


@settings(max_examples=30, deadline=None)
@given(intrinsics())
def test_round_trip_through_a_real_camera_info_message(intr):
    from sensor_msgs.msg import CameraInfo

    from depth_annotation.nodes.messages import camera_info_msg, make_header

    msg = camera_info_msg(intr, make_header(1, "cam"))
    assert isinstance(msg, CameraInfo)
    assert Intrinsics.from_camera_info(msg) == intr


@SETTINGS
@given(intrinsics())
def test_json_and_camera_info_yaml_round_trips(intr):
    assert Intrinsics.from_dict(json.loads(json.dumps(intr.to_dict()))) == intr
    assert from_camera_info_yaml(to_camera_info_yaml(intr, "cam")) == intr


@SETTINGS
@given(intrinsics(), st.data())
def test_backproject_inverts_project(intr, data):
    n = data.draw(st.integers(1, 20), label="points")
    z = np.array(data.draw(st.lists(st.floats(0.01, 100.0), min_size=n, max_size=n), label="z"))
    # points anywhere within +-60 degrees of the optical axis
    tx = np.array(data.draw(st.lists(st.floats(-1.7, 1.7), min_size=n, max_size=n), label="x/z"))
    ty = np.array(data.draw(st.lists(st.floats(-1.7, 1.7), min_size=n, max_size=n), label="y/z"))
    points = np.stack([tx * z, ty * z, z], axis=1)
    uv = intr.project(points)
    assert uv.shape == (n, 2)
    # X = (u - cx) Z / fx, Y = (v - cy) Z / fy: how an annotated pixel and its depth become a 3-D point
    assert np.allclose(intr.backproject(uv[:, 0], uv[:, 1], z), points, rtol=1e-9, atol=1e-9 * z.max())


@SETTINGS
@given(intrinsics(), st.data())
def test_project_inverts_backproject(intr, data):
    n = data.draw(st.integers(1, 20), label="pixels")
    u = np.array(data.draw(st.lists(st.floats(0, intr.width), min_size=n, max_size=n), label="u"))
    v = np.array(data.draw(st.lists(st.floats(0, intr.height), min_size=n, max_size=n), label="v"))
    z = np.array(data.draw(st.lists(st.floats(0.01, 100.0), min_size=n, max_size=n), label="z"))
    p = intr.backproject(u, v, z)
    assert np.array_equal(p[:, 2], z)
    scale = max(intr.width, intr.height, abs(intr.cx), abs(intr.cy))
    assert np.allclose(intr.project(p), np.stack([u, v], axis=1), rtol=0, atol=1e-9 * scale)


@SETTINGS
@given(rotations(), st.tuples(finite, finite, finite), st.lists(st.tuples(finite, finite, finite), min_size=1))
def test_extrinsics_inverse_json_and_quaternion(r, t, pts):
    e = Extrinsics(r, np.array(t), "depth", "color")
    points = np.array(pts)
    moved = e.apply(points)
    assert np.allclose(moved, points @ r.T + np.array(t), atol=1e-9)
    assert np.allclose(e.inverse().apply(moved), points, atol=1e-9)
    assert np.allclose(e.then(e.inverse()).matrix, np.eye(4), atol=1e-9)
    back = Extrinsics.from_dict(json.loads(json.dumps(e.to_dict())))
    assert np.array_equal(back.matrix, e.matrix) and (back.source_frame, back.target_frame) == ("depth", "color")
    q = e.quaternion_xyzw()
    assert np.isclose(np.linalg.norm(q), 1.0)
    assert np.allclose(rotation_from_quaternion(*q), r, atol=1e-9), (q, r)
