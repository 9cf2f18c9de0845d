"""The board renderer: OpenCV finds the corners where the camera model projects them."""

import numpy as np
import pytest

from depth_annotation.calibration import BoardDetector, BoardError, BoardSpec, place_board, render_board
from depth_annotation.common import Intrinsics

INTR = Intrinsics(640, 480, 600.0, 603.0, 322.5, 237.8, d=(-0.15, 0.08, 0.001, -0.0007, -0.01))
POSES = [(0, 0, 0, 0.45), (28, -12, 8, 0.5), (-15, 30, -20, 0.55)]


@pytest.mark.parametrize("kind", ["charuco", "checkerboard"])
@pytest.mark.parametrize("tilt", POSES)
def test_detected_corners_match_projection(kind, tilt):
    spec = BoardSpec(kind=kind, squares_x=7, squares_y=5)
    tx, ty, roll, dist = tilt
    view = render_board(
        spec,
        INTR,
        place_board(spec, dist, tilt_x_deg=tx, tilt_y_deg=ty, roll_deg=roll),
        noise_sigma=1.0,
        rng=np.random.default_rng(0),
    )
    assert view.visible.all()
    det = BoardDetector(spec).detect(view.image)
    assert det is not None
    assert det.count == len(spec.corner_points())
    err = np.linalg.norm(det.corners_px - view.corners_px[det.ids], axis=1)
    assert err.max() < 0.3, err.max()  # sub-pixel
    assert err.mean() < 0.15


def test_distortion_is_rendered():
    """The same pose without distortion puts the corners measurably elsewhere."""
    spec = BoardSpec()
    pose = place_board(spec, 0.4, offset_m=(0.08, 0.05))
    pinhole = Intrinsics(640, 480, 600.0, 603.0, 322.5, 237.8)
    a = render_board(spec, INTR, pose).corners_px
    b = render_board(spec, pinhole, pose).corners_px
    assert np.abs(a - b).max() > 3.0


def test_board_seen_from_behind_is_not_visible():
    spec = BoardSpec()
    view = render_board(spec, INTR, place_board(spec, 0.5, tilt_x_deg=180))
    assert not view.visible.any()


def test_bad_board_specs():
    with pytest.raises(BoardError, match="marker_length_m"):
        BoardSpec(square_length_m=0.03, marker_length_m=0.04)
    with pytest.raises(BoardError, match="dictionary"):
        BoardSpec(dictionary="DICT_NOPE")
    with pytest.raises(BoardError, match="kind"):
        BoardSpec(kind="circles")


def test_boards_named_as_the_service_names_them():
    """The calibrate service and the offline command count a checkerboard's inner corners, ChArUco's squares."""
    checker = BoardSpec.from_counts("checkerboard", 9, 6, 0.025)
    assert (checker.squares_x, checker.squares_y, checker.inner_corners) == (10, 7, (9, 6))
    charuco = BoardSpec.from_counts("charuco", 7, 5, 0.04, 0.03, "DICT_4X4_50")
    assert charuco == BoardSpec("charuco", 7, 5, 0.04, 0.03, "DICT_4X4_50")
