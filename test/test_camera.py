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


# --- every value and message, as the mutation run asks (`./dev.sh mutate camera`) ---------------------------


def test_intrinsics_refusals_name_the_values():
    for w, h in ((0, 480), (640, 0), (-1, 480)):
        with pytest.raises(CameraModelError) as err:
            Intrinsics(w, h, 600, 600, 320, 240)
        assert str(err.value) == f"image size must be positive, got {w}x{h}"
    for fx, fy in ((600, 0), (0, 600), (600, -1)):
        with pytest.raises(CameraModelError) as err:
            Intrinsics(640, 480, fx, fy, 320, 240)
        assert str(err.value) == f"focal lengths must be positive, got fx={fx} fy={fy}"
    with pytest.raises(CameraModelError) as err:
        Intrinsics(640, 480, 600, 600, 320, 240, "fisheye42")
    assert str(err.value) == "unknown distortion model 'fisheye42'; known: plumb_bob, rational_polynomial, equidistant"


def test_intrinsics_store_distortion_as_a_tuple_of_floats_and_give_opencv_forms():
    intr = Intrinsics(4, 3, 2.0, 3.0, 1.5, 1.0, d=[1, 0, 0, 0, 2])
    assert type(intr.d) is tuple and intr.d == (1.0, 0.0, 0.0, 0.0, 2.0) and all(type(v) is float for v in intr.d)
    assert intr.dist_coeffs.dtype == np.float64 and intr.dist_coeffs.tolist() == [1.0, 0.0, 0.0, 0.0, 2.0]
    assert intr.is_distorted and not Intrinsics(4, 3, 2.0, 3.0, 1.5, 1.0).is_distorted
    assert Intrinsics(4, 3, 2.0, 3.0, 1.5, 1.0, d=(0, 0, 0, 0, 1e-12)).is_distorted
    v = intr.as_vector()
    assert v.dtype == np.float32 and v.tolist() == [2.0, 3.0, 1.5, 1.0]
    assert intr.k.tolist() == [[2.0, 0.0, 1.5], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0]]


def test_pixel_rays_pass_through_every_pixel_centre():
    intr = Intrinsics(4, 3, 2.0, 4.0, 1.5, 1.0)
    rays = intr.pixel_rays()
    assert rays.shape == (3, 4, 3) and rays.dtype == np.float64
    for v in range(3):
        for u in range(4):
            assert rays[v, u].tolist() == [(u - 1.5) / 2.0, (v - 1.0) / 4.0, 1.0]


def test_geometry_is_computed_in_double_precision_whatever_the_input():
    pts32 = np.array([[0.123456, -0.0654321, 0.777777], [1.1, 2.2, 3.3]], np.float32)
    uv = INTR.project(pts32)
    p = pts32.astype(np.float64)
    expected = np.stack([INTR.fx * p[:, 0] / p[:, 2] + INTR.cx, INTR.fy * p[:, 1] / p[:, 2] + INTR.cy], axis=1)
    assert uv.dtype == np.float64 and np.array_equal(uv, expected)
    u32, v32, z32 = (np.array(a, np.float32) for a in ([100.7, 3.3], [200.1, 7.9], [1.25, 0.3]))
    back = INTR.backproject(u32, v32, z32)
    u, v, z = (a.astype(np.float64) for a in (u32, v32, z32))
    assert back.dtype == np.float64
    assert np.array_equal(back, np.stack([(u - INTR.cx) * z / INTR.fx, (v - INTR.cy) * z / INTR.fy, z], axis=1))
    ext = Extrinsics(rotation_from_euler_xyz(0.1, 0.2, 0.3), [0.5, -0.25, 1.0])
    out = ext.apply(pts32)
    assert out.dtype == np.float64 and np.array_equal(out, p @ ext.rotation.T + ext.translation)


def test_scaled_keeps_the_distortion():
    intr = Intrinsics(640, 480, 600.0, 600.0, 320.0, 240.0, "rational_polynomial", tuple(range(1, 9)))
    half = intr.scaled(0.5)
    assert half.distortion_model == "rational_polynomial" and half.d == tuple(float(v) for v in range(1, 9))
    assert (half.fx, half.cx) == (300.0, (320.0 + 0.5) * 0.5 - 0.5)


def camera_info(**kw):
    base = {"k": (600.0, 0, 320, 0, 610.0, 240, 0, 0, 1), "d": (), "width": 640, "height": 480, "distortion_model": ""}
    return type("Msg", (), {**base, **kw})()


def test_camera_info_defaults_and_refusals():
    plain = Intrinsics.from_camera_info(camera_info())
    assert plain.distortion_model == "plumb_bob" and plain.d == (0.0,) * 5
    assert (plain.fx, plain.fy, plain.cx, plain.cy) == (600.0, 610.0, 320.0, 240.0)
    rational = Intrinsics.from_camera_info(camera_info(distortion_model="rational_polynomial"))
    assert rational.d == (0.0,) * 8
    assert Intrinsics.from_camera_info(camera_info(distortion_model="equidistant")).d == (0.0,) * 4
    for k in ((0.0, 0, 320, 0, 610.0, 240, 0, 0, 1), (600.0, 0, 320, 0, 0.0, 240, 0, 0, 1)):
        with pytest.raises(CameraModelError) as err:
            Intrinsics.from_camera_info(camera_info(k=k))
        assert str(err.value) == "CameraInfo has no intrinsics (K is zero): the camera is uncalibrated"
    with pytest.raises(CameraModelError, match="unknown distortion model 'fisheye42'"):
        Intrinsics.from_camera_info(camera_info(distortion_model="fisheye42"))


def test_intrinsics_json_fields_and_defaults():
    assert INTR.to_dict() == {
        "schema_version": 1,
        "width": 640,
        "height": 480,
        "fx": 606.1,
        "fy": 605.3,
        "cx": 321.4,
        "cy": 240.2,
        "distortion_model": "plumb_bob",
        "d": [0.1, -0.2, 0.001, 0.002, 0.05],
        "k": [[606.1, 0.0, 321.4], [0.0, 605.3, 240.2], [0.0, 0.0, 1.0]],
    }
    bare = Intrinsics.from_dict({"width": 4, "height": 3, "fx": 2, "fy": 3, "cx": 1, "cy": 1})
    assert bare.distortion_model == "plumb_bob" and bare.d == (0.0,) * 5
    with pytest.raises(CameraModelError) as err:
        Intrinsics.from_dict({"width": 4, "height": 3, "fx": 2, "fy": 3, "cx": 1})
    assert str(err.value) == "intrinsics JSON lacks field 'cy'"


def test_extrinsics_store_float64_arrays_of_their_shapes():
    e = Extrinsics([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.array([[1], [2], [3]]))
    assert isinstance(e.rotation, np.ndarray) and e.rotation.dtype == np.float64 and e.rotation.shape == (3, 3)
    assert e.translation.dtype == np.float64 and e.translation.shape == (3,) and e.translation.tolist() == [1, 2, 3]
    assert (e.source_frame, e.target_frame) == ("", "")
    assert Extrinsics().matrix.tolist() == np.eye(4).tolist()


def test_extrinsics_accept_rounding_but_not_a_shear():
    r = rotation_from_euler_xyz(0.3, 0.2, 0.1)
    Extrinsics(r + 2e-6)  # float32-level error in every element: still a rotation
    shear = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    for bad in (shear, np.diag([1.0, -1.0, 1.0]), 2 * np.eye(3)):
        with pytest.raises(CameraModelError) as err:
            Extrinsics(bad)
        assert str(err.value) == "rotation is not a proper rotation matrix"


def test_extrinsics_inverse_names_and_json():
    e = Extrinsics(rotation_from_euler_xyz(0.1, 0, 0), [1.0, 2.0, 3.0], "depth", "color")
    inv = e.inverse()
    assert (inv.source_frame, inv.target_frame) == ("color", "depth")
    assert e.to_dict() == {
        "schema_version": 1,
        "source_frame": "depth",
        "target_frame": "color",
        "rotation": e.rotation.tolist(),
        "translation_m": [1.0, 2.0, 3.0],
    }
    bare = Extrinsics.from_dict({"rotation": np.eye(3).tolist(), "translation_m": [0, 0, 1]})
    assert (bare.source_frame, bare.target_frame) == ("", "")
    for missing in ("rotation", "translation_m"):
        data = e.to_dict()
        del data[missing]
        with pytest.raises(CameraModelError) as err:
            Extrinsics.from_dict(data)
        assert str(err.value) == f"extrinsics JSON lacks field {missing!r}"


@pytest.mark.parametrize(
    ("rotation", "expected"),
    [
        (rotation_from_euler_xyz(0, 0, 0.5), (0, 0, np.sin(0.25), np.cos(0.25))),
        (rotation_from_euler_xyz(-3.0, 0, 0), (np.sin(-1.5), 0, 0, np.cos(1.5))),  # x largest, w > 0 by sign flip
        (np.diag([-1.0, -1.0, 1.0]), (0, 0, 1, 0)),  # a half-turn about z: w = 0 exactly, kept as it comes
        (rotation_from_euler_xyz(0.3, -0.2, 0.1) + 1e-6, None),  # within the tolerance: still a unit quaternion
    ],
)
def test_quaternions_have_w_at_least_zero_and_unit_length(rotation, expected):
    q = Extrinsics(rotation).quaternion_xyzw()
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-12) and q[3] >= 0
    if expected is not None:
        assert q == pytest.approx(expected, abs=1e-12)


def test_look_at_known_pose_frames_and_refusal():
    pose = look_at((0, -2, 1), (0, 0, 0))  # integers: a camera 2 m back and 1 m up, looking down at the origin
    assert (pose.source_frame, pose.target_frame) == ("world", "camera_optical")
    assert pose.apply(np.array([0.0, 0.0, 0.0]))[0] == pytest.approx([0, 0, np.sqrt(5)])
    assert pose.apply(np.array([1.0, 0.0, 0.0]))[0] == pytest.approx([1, 0, np.sqrt(5)])  # world +x: image right
    assert np.allclose(pose.rotation @ pose.rotation.T, np.eye(3))
    look_at((0, 0, 0), (0, 0, 1), up=(1e-9, 0, 1))  # |z x up| = 1e-9 exactly: not yet parallel
    with pytest.raises(CameraModelError) as err:
        look_at((0, 0, 0), (0, 0, 2))
    assert str(err.value) == "look_at: viewing direction is parallel to 'up'"


def test_camera_info_yaml_as_camera_info_manager_writes_it():
    import yaml

    from depth_annotation.common import from_camera_info_yaml, to_camera_info_yaml

    doc = yaml.safe_load(to_camera_info_yaml(INTR, "front"))
    k = [606.1, 0.0, 321.4, 0.0, 605.3, 240.2, 0.0, 0.0, 1.0]
    assert doc == {
        "image_width": 640,
        "image_height": 480,
        "camera_name": "front",
        "camera_matrix": {"rows": 3, "cols": 3, "data": k},
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.1, -0.2, 0.001, 0.002, 0.05]},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]},
        "projection_matrix": {"rows": 3, "cols": 4, "data": k[:3] + [0.0] + k[3:6] + [0.0] + k[6:] + [0.0]},
    }
    assert list(doc) == [
        "image_width",
        "image_height",
        "camera_name",
        "camera_matrix",
        "distortion_model",
        "distortion_coefficients",
        "rectification_matrix",
        "projection_matrix",
    ]
    bare = from_camera_info_yaml(
        "image_width: 4\nimage_height: 3\ncamera_matrix: {data: [2, 0, 1, 0, 3, 1, 0, 0, 1]}\n"
    )
    assert bare.distortion_model == "plumb_bob" and bare.d == (0.0,) * 5 and (bare.fx, bare.cy) == (2.0, 1.0)
    with pytest.raises(CameraModelError) as err:
        from_camera_info_yaml("image_width: 4\nimage_height: 3\n")
    assert str(err.value) == "not a camera_info YAML: 'camera_matrix'"
