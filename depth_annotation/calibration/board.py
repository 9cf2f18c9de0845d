"""Calibration targets: ChArUco and checkerboard boards, their geometry and detection.

The board frame has its origin at the board's top-left outer corner, x along the
squares to the right, y down the printed page, z into the board (so a board
facing the camera has z pointing away from it), in metres. OpenCV 5's
`CharucoBoard` / `CharucoDetector` API is used (the pre-4.7 aruco calls are gone).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from .errors import BoardError

BOARD_KINDS = ("charuco", "checkerboard")


@dataclass(frozen=True)
class BoardSpec:
    """A printed calibration target.

    For `charuco`, `squares_x` x `squares_y` are the squares; for `checkerboard`
    they are the squares too (inner corners are one fewer each way), so one spec
    describes the printed page either way.
    """

    kind: str = "charuco"
    squares_x: int = 7
    squares_y: int = 5
    square_length_m: float = 0.04
    marker_length_m: float = 0.03
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if self.kind not in BOARD_KINDS:
            raise BoardError(f"board kind must be one of {BOARD_KINDS}, got {self.kind!r}")
        if self.squares_x < 3 or self.squares_y < 3:
            raise BoardError(f"a board needs at least 3x3 squares, got {self.squares_x}x{self.squares_y}")
        if self.square_length_m <= 0:
            raise BoardError(f"square_length_m must be positive, got {self.square_length_m}")
        if self.kind == "charuco":
            if not 0 < self.marker_length_m < self.square_length_m:
                raise BoardError(
                    f"marker_length_m must be in (0, square_length_m={self.square_length_m}), "
                    f"got {self.marker_length_m}"
                )
            if not hasattr(cv2.aruco, self.dictionary):
                raise BoardError(f"unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_5X5_100)")

    @classmethod
    def from_counts(
        cls,
        kind: str,
        count_x: int,
        count_y: int,
        square_length_m: float,
        marker_length_m: float = 0.03,
        dictionary: str = "DICT_5X5_100",
    ) -> BoardSpec:
        """A board as the `calibrate` service and `depth-annotation calibrate` name it: ChArUco by its
        squares, a checkerboard by its inner corners (OpenCV's pattern size, what people count)."""
        extra = 1 if kind == "checkerboard" else 0
        return cls(kind, count_x + extra, count_y + extra, square_length_m, marker_length_m, dictionary)

    @property
    def size_m(self) -> tuple[float, float]:
        """Printed size of the squared area (width, height) in metres."""
        return self.squares_x * self.square_length_m, self.squares_y * self.square_length_m

    @property
    def inner_corners(self) -> tuple[int, int]:
        """(columns, rows) of interior chessboard corners."""
        return self.squares_x - 1, self.squares_y - 1

    def corner_points(self) -> np.ndarray:
        """(N, 3) interior corners in the board frame, row-major, id = index."""
        cols, rows = self.inner_corners
        j, i = np.mgrid[1 : rows + 1, 1 : cols + 1]
        pts = np.stack([i.ravel(), j.ravel(), np.zeros(i.size)], axis=1) * self.square_length_m
        return pts.astype(np.float64)

    def cv_charuco_board(self) -> cv2.aruco.CharucoBoard:
        if self.kind != "charuco":
            raise BoardError("cv_charuco_board() needs a charuco board")
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard(
            (self.squares_x, self.squares_y), self.square_length_m, self.marker_length_m, dictionary
        )

    def texture(self, px_per_square: int) -> np.ndarray:
        """The printed pattern (uint8, white = 255) at `px_per_square`, no margin."""
        w, h = self.squares_x * px_per_square, self.squares_y * px_per_square
        if self.kind == "charuco":
            return np.asarray(self.cv_charuco_board().generateImage((w, h), marginSize=0, borderBits=1), np.uint8)
        yy, xx = np.mgrid[0:h, 0:w] // px_per_square
        return np.where((xx + yy) % 2 == 0, 0, 255).astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoardSpec:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class BoardDetection:
    """Corners found in one image: pixel positions and the ids of `BoardSpec.corner_points`."""

    corners_px: np.ndarray  # (N, 2) float32
    ids: np.ndarray  # (N,) int, indices into BoardSpec.corner_points()

    @property
    def count(self) -> int:
        return int(self.ids.size)

    def object_points(self, spec: BoardSpec) -> np.ndarray:
        return np.asarray(spec.corner_points()[self.ids])


class BoardDetector:
    """Finds a board's corners (sub-pixel) in grayscale or RGB images."""

    def __init__(self, spec: BoardSpec) -> None:
        self.spec = spec
        if spec.kind == "charuco":
            self._charuco = cv2.aruco.CharucoDetector(spec.cv_charuco_board())

    def detect(self, image: np.ndarray) -> BoardDetection | None:
        """Return the detected corners, or None when fewer than 4 are found."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self.spec.kind == "charuco":
            corners, ids, _, _ = self._charuco.detectBoard(gray)
            if ids is None or len(ids) < 4:
                return None
            return BoardDetection(corners.reshape(-1, 2).astype(np.float32), ids.ravel().astype(int))
        pattern = self.spec.inner_corners
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
        found, corners = cv2.findChessboardCorners(gray, pattern, flags=flags)
        if not found:
            return None
        # camera_calibration's refinement window: half the smallest corner spacing, large enough
        # to snap to the corner and small enough to never reach the next one. A fixed 5x5 window
        # left real photographs (blur, JPEG) at twice the reprojection error.
        grid = corners.reshape(pattern[1], pattern[0], 2)
        spacing = min(
            float(np.linalg.norm(np.diff(grid, axis=0), axis=2).min()),
            float(np.linalg.norm(np.diff(grid, axis=1), axis=2).min()),
        )
        radius = max(2, int(np.ceil(0.5 * spacing)))
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
        corners = cv2.cornerSubPix(gray, corners, (radius, radius), (-1, -1), criteria).reshape(-1, 2)
        ids = np.arange(len(corners))
        # A checkerboard is symmetric under 180 degrees; OpenCV may report the
        # corners from either end. Order them so id 0 is nearest the first
        # corner's expected side: take the ordering whose first-to-last vector
        # points like the board's +x/+y in the image (top-left to bottom-right).
        if corners[0, 1] > corners[-1, 1] or (
            abs(corners[0, 1] - corners[-1, 1]) < 1 and corners[0, 0] > corners[-1, 0]
        ):
            corners = corners[::-1]
        return BoardDetection(corners.astype(np.float32), ids)
