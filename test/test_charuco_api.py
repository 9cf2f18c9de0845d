"""ChArUco through both OpenCV call styles: OpenCV >= 4.7 (`CharucoBoard((x, y), ...)`, `CharucoDetector`) and
the contrib aruco module of OpenCV 3.x-4.6 that Ubuntu's python3-opencv ships (4.5.4 on Jammy, 4.6 on Noble).

The installed OpenCV has only the new calls, so the old call style is a stand-in module (`ContribAruco`) that
offers exactly the old calls, implemented with real OpenCV underneath. Its `bottom_origin` reproduces what
OpenCV < 4.6 did (read in opencv_contrib 4.5.4 `modules/aruco/src/charuco.cpp`, changed in 4.6.0): boards laid
out from the bottom-left square with y up, so an even row count starts with a white square at the top (what
OpenCV >= 4.8 calls the legacy pattern) and chessboard corner ids count rows from the bottom.
"""

from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from depth_annotation.calibration import (
    BoardDetector,
    BoardError,
    BoardSpec,
    charuco_api,
    place_board,
    render_board,
)
from depth_annotation.common import Intrinsics

INTR = Intrinsics(640, 480, 600.0, 603.0, 322.5, 237.8, d=(-0.15, 0.08, 0.001, -0.0007, -0.01))


class _ContribBoard:
    """A board object as `CharucoBoard_create` returned it: `draw` instead of `generateImage`."""

    def __init__(self, x: int, y: int, square: float, marker: float, dictionary: Any, bottom_origin: bool) -> None:
        self.size, self.bottom_origin = (x, y), bottom_origin
        self.cv = cv2.aruco.CharucoBoard((x, y), square, marker, dictionary)
        self.cv.setLegacyPattern(bottom_origin)  # only changes even row counts, as 4.5 differs only there

    def draw(self, out_size: tuple[int, int], marginSize: int = 0, borderBits: int = 1) -> np.ndarray:
        return np.asarray(self.cv.generateImage(out_size, marginSize=marginSize, borderBits=borderBits))


class ContribAruco:
    """`cv2.aruco` with the OpenCV 3.x-4.6 call style only (no CharucoDetector, no CharucoBoard class)."""

    def __init__(self, bottom_origin: bool) -> None:
        self.bottom_origin = bottom_origin
        for name in dir(cv2.aruco):
            if name.startswith("DICT_"):
                setattr(self, name, getattr(cv2.aruco, name))

    def Dictionary_get(self, dict_id: int) -> Any:
        return cv2.aruco.getPredefinedDictionary(dict_id)

    def CharucoBoard_create(self, x: int, y: int, square: float, marker: float, dictionary: Any) -> _ContribBoard:
        return _ContribBoard(x, y, square, marker, dictionary, self.bottom_origin)

    def detectMarkers(self, image: np.ndarray, dictionary: Any) -> tuple[Any, Any, Any]:
        corners, ids, rejected = cv2.aruco.ArucoDetector(dictionary).detectMarkers(image)
        return corners, ids, rejected

    def interpolateCornersCharuco(
        self,
        markerCorners: Any,
        markerIds: Any,
        image: np.ndarray,
        board: _ContribBoard,
    ) -> tuple[int, Any, Any]:
        detector = cv2.aruco.CharucoDetector(board.cv)
        corners, ids, _, _ = detector.detectBoard(image, markerCorners=markerCorners, markerIds=markerIds)
        if ids is None:
            return 0, None, None
        if self.bottom_origin:  # OpenCV < 4.6: corner id 0 is the bottom-left inner corner
            cols, rows = board.size[0] - 1, board.size[1] - 1
            ids = (rows - 1 - ids // cols) * cols + ids % cols
        return len(ids), corners, ids


STYLES = {"4.5.4": ContribAruco(bottom_origin=True), "4.6.0": ContribAruco(bottom_origin=False)}
SPECS = [BoardSpec(squares_x=7, squares_y=5), BoardSpec(squares_x=7, squares_y=6, dictionary="DICT_4X4_50")]


def test_feature_detection_picks_the_call_style():
    real = charuco_api()
    assert real.style == "objdetect" and real.module is cv2.aruco
    assert real.version == tuple(int(v) for v in cv2.__version__.split(".")[:2])
    old = charuco_api(STYLES["4.5.4"], "4.5.4")
    assert (old.style, old.version, old.bottom_origin) == ("contrib", (4, 5), True)
    assert not charuco_api(STYLES["4.6.0"], "4.6.0").bottom_origin
    with pytest.raises(BoardError, match=r"OpenCV 4\.2\.0 offers no ChArUco API"):
        charuco_api(SimpleNamespace(DICT_5X5_100=5), "4.2.0")


def test_opencv_without_aruco_fails_at_start_up_naming_the_version(monkeypatch):
    monkeypatch.delattr(cv2, "aruco")
    with pytest.raises(BoardError, match=f"OpenCV {cv2.__version__} offers no ChArUco API"):
        BoardSpec()
    assert BoardSpec(kind="checkerboard").inner_corners == (6, 4)  # a checkerboard needs no aruco


def test_the_legacy_layout_is_real():
    """The stand-in's pre-4.6 board of 6 rows starts white at the top; ours (OpenCV >= 4.6) black."""
    px = 40
    legacy = STYLES["4.5.4"].CharucoBoard_create(7, 6, 0.04, 0.03, cv2.aruco.getPredefinedDictionary(0))
    assert legacy.draw((7 * px, 6 * px))[3, 3] == 255
    assert BoardSpec(squares_x=7, squares_y=6).texture(px)[3, 3] == 0


@pytest.mark.parametrize("version", sorted(STYLES))
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.squares_x}x{s.squares_y}")
def test_both_styles_print_the_same_board(spec, version):
    px = 80
    api = charuco_api(STYLES[version], version)
    old, new = spec.texture(px, api=api), spec.texture(px)
    assert old.shape == new.shape == (spec.squares_y * px, spec.squares_x * px)
    assert np.array_equal(old, new)
    # the layout itself: square (row, col) is black when row + col is even; a marker sits in each white one,
    # leaving a white rim of (square - marker) / 2 = px / 8
    for r in range(spec.squares_y):
        for c in range(spec.squares_x):
            assert new[r * px + 3, c * px + 3] == (0 if (r + c) % 2 == 0 else 255), (r, c)


@pytest.mark.parametrize("version", sorted(STYLES))
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.squares_x}x{s.squares_y}")
@pytest.mark.parametrize("tilt", [(0, 0, 0, 0.45), (25, -15, 10, 0.5), (0, 0, 180, 0.45)])
def test_both_styles_detect_the_same_corners(spec, version, tilt):
    """On a rendered board (the pattern OpenCV >= 4.6 prints), both call styles find every corner at its
    projected position with the ids of `BoardSpec.corner_points`, also upside down."""
    tx, ty, roll, dist = tilt
    view = render_board(
        spec,
        INTR,
        place_board(spec, dist, tilt_x_deg=tx, tilt_y_deg=ty, roll_deg=roll),
        noise_sigma=1.0,
        rng=np.random.default_rng(0),
    )
    assert view.visible.all()
    found = {}
    for name, api in (("new", None), ("old", charuco_api(STYLES[version], version))):
        det = BoardDetector(spec, api=api).detect(view.image)
        assert det is not None, name
        assert sorted(det.ids.tolist()) == list(range(len(spec.corner_points()))), name
        err = np.linalg.norm(det.corners_px - view.corners_px[det.ids], axis=1)
        assert err.max() < 0.3, (name, err.max())
        found[name] = det.corners_px[np.argsort(det.ids)]
    assert np.abs(found["old"] - found["new"]).max() < 1e-3


def test_pre_4_6_ids_are_translated_and_the_added_row_dropped():
    """A 7x6 board on OpenCV 4.5 is a 7x7 board to it (6x6 inner corners, id 0 bottom-left); an id on its
    lowest inner row lies on the printed board's bottom edge. By hand: id 6 (second row from the bottom,
    first column) is our row 4, so id 4 * 6 = 24; id 35 (top right) is our id 5."""
    every = np.arange(36)

    class Everything(ContribAruco):  # reports every corner of the board it was given, at (id, id)
        def detectMarkers(self, image, dictionary):
            return [np.zeros((1, 4, 2), np.float32)], np.array([[0]]), []

        def interpolateCornersCharuco(self, markerCorners, markerIds, image, board):
            assert board.size == (7, 7)
            return 36, np.repeat(every, 2).reshape(-1, 1, 2).astype(np.float32), every.reshape(-1, 1)

    spec = BoardSpec(squares_x=7, squares_y=6)
    det = BoardDetector(spec, api=charuco_api(Everything(bottom_origin=True), "4.5.4")).detect(
        np.zeros((8, 8), np.uint8)
    )
    assert det is not None and det.count == 30
    got = dict(zip(det.corners_px[:, 0].astype(int).tolist(), det.ids.tolist(), strict=True))
    assert set(got) == set(range(6, 36))  # ids 0-5, the added bottom row, dropped
    assert (got[6], got[11], got[30], got[35]) == (24, 29, 0, 5)
