"""Calibration targets: ChArUco and checkerboard boards, their geometry and detection.

The board frame has its origin at the board's top-left outer corner, x along the
squares to the right, y down the printed page, z into the board (so a board
facing the camera has z pointing away from it), in metres.

ChArUco works with both OpenCV call styles (`charuco_api` picks one by feature detection):
OpenCV >= 4.7 (`CharucoBoard((x, y), ...)`, `CharucoDetector`) and the contrib aruco module of
OpenCV 3.x-4.6 (`CharucoBoard_create`, `detectMarkers`, `interpolateCornersCharuco`) that Ubuntu's
python3-opencv ships (4.5.4 on Jammy, 4.6 on Noble). The printed layout is OpenCV >= 4.6's (top-left
square black); OpenCV < 4.6 anchored boards at the bottom-left with y up, which changes the corner ids
always and the layout for an even row count: that is translated, so one printed board works with all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from .errors import BoardError

BOARD_KINDS = ("charuco", "checkerboard")
CHARUCO_STYLES = ("objdetect", "contrib")


@dataclass(frozen=True)
class CharucoApi:
    """The ChArUco calls an OpenCV offers: `module` is its `cv2.aruco` (or a stand-in with the same calls)."""

    module: Any
    style: str  # "objdetect": OpenCV >= 4.7; "contrib": the aruco module of OpenCV 3.x-4.6
    version: tuple[int, int]  # (major, minor) of the OpenCV it belongs to

    @property
    def bottom_origin(self) -> bool:
        """OpenCV < 4.6 laid boards out from the bottom-left square with y up (changed in 4.6.0)."""
        return self.style == "contrib" and self.version < (4, 6)


def _major_minor(version: str) -> tuple[int, int]:
    parts = (version.split(".") + ["0", "0"])[:2]
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except ValueError:
        raise BoardError(f"cannot read the OpenCV version {version!r}") from None


def charuco_api(aruco: Any = None, version: str | None = None) -> CharucoApi:
    """Which ChArUco call style `aruco` (default: this cv2's) offers; a clear error when neither."""
    version = cv2.__version__ if version is None else version
    module = getattr(cv2, "aruco", None) if aruco is None else aruco
    if module is not None and hasattr(module, "CharucoDetector") and hasattr(module, "CharucoBoard"):
        return CharucoApi(module, "objdetect", _major_minor(version))
    if module is not None and all(
        hasattr(module, name) for name in ("CharucoBoard_create", "detectMarkers", "interpolateCornersCharuco")
    ):
        return CharucoApi(module, "contrib", _major_minor(version))
    raise BoardError(
        f"OpenCV {version} offers no ChArUco API (neither CharucoDetector, OpenCV >= 4.7, nor "
        "CharucoBoard_create, the contrib aruco module): install python3-opencv (Ubuntu) or opencv-contrib-python"
    )


# The ArUco dictionaries a board may use, by name: an explicit allow-list, so a request naming
# any other cv2.aruco attribute (a class, a function) is refused instead of being looked up.
ARUCO_DICTIONARIES = (
    *(f"DICT_{n}X{n}_{count}" for n in (4, 5, 6, 7) for count in (50, 100, 250, 1000)),
    "DICT_ARUCO_ORIGINAL",
    "DICT_APRILTAG_16h5",
    "DICT_APRILTAG_25h9",
    "DICT_APRILTAG_36h10",
    "DICT_APRILTAG_36h11",
    "DICT_ARUCO_MIP_36h12",
)


class CharucoTarget:
    """A ChArUco board through one OpenCV call style: its printed image and its corners in an image,
    ids in `BoardSpec.corner_points` order whatever the style."""

    def __init__(self, spec: BoardSpec, api: CharucoApi | None = None) -> None:
        if spec.kind != "charuco":
            raise BoardError("a ChArUco target needs a charuco board")
        self.spec = spec
        self.api = charuco_api() if api is None else api
        aruco = self.api.module
        dict_id = getattr(aruco, spec.dictionary)
        sq, marker = spec.square_length_m, spec.marker_length_m
        # A pre-4.6 board with an even row count starts with a white square at the top; one with one
        # more row starts black and carries our layout and marker ids in its top rows (ids go top row
        # first in every version), so that board is used and its extra bottom row ignored.
        self.rows = spec.squares_y + (1 if self.api.bottom_origin and spec.squares_y % 2 == 0 else 0)
        if self.api.style == "objdetect":
            self.dictionary = aruco.getPredefinedDictionary(dict_id)
            self.board = aruco.CharucoBoard((spec.squares_x, self.rows), sq, marker, self.dictionary)
            if hasattr(self.board, "setLegacyPattern"):  # OpenCV >= 4.8: say which layout, never the pre-4.6 one
                self.board.setLegacyPattern(False)
            self._detector = aruco.CharucoDetector(self.board)
        else:
            get = aruco.Dictionary_get if hasattr(aruco, "Dictionary_get") else aruco.getPredefinedDictionary
            self.dictionary = get(dict_id)
            self.board = aruco.CharucoBoard_create(spec.squares_x, self.rows, sq, marker, self.dictionary)

    def image(self, px_per_square: int) -> np.ndarray:
        """The printed pattern (uint8, white = 255) at `px_per_square`, no margin."""
        w, h = self.spec.squares_x * px_per_square, self.spec.squares_y * px_per_square
        size = (w, self.rows * px_per_square)
        if self.api.style == "objdetect":
            img = self.board.generateImage(size, marginSize=0, borderBits=1)
        else:
            img = self.board.draw(size, marginSize=0, borderBits=1)
        return np.asarray(img, np.uint8)[:h]

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(N, 2) float32 corners and their (N,) ids, or None when no corner is found."""
        if self.api.style == "objdetect":
            corners, ids, _, _ = self._detector.detectBoard(gray)
        else:
            markers, marker_ids, _ = self.api.module.detectMarkers(gray, self.dictionary)
            if marker_ids is None or len(marker_ids) == 0:
                return None
            _, corners, ids = self.api.module.interpolateCornersCharuco(markers, marker_ids, gray, self.board)
        if ids is None or len(ids) == 0:
            return None
        corners = np.asarray(corners, np.float32).reshape(-1, 2)
        ids = np.asarray(ids).ravel().astype(int)
        if self.api.bottom_origin:  # pre-4.6 ids count corner rows from the bottom
            cols = self.spec.squares_x - 1
            row = (self.rows - 2) - ids // cols
            ids = row * cols + ids % cols
            keep = row < self.spec.squares_y - 1  # the added row's corners lie on the printed edge
            corners, ids = corners[keep], ids[keep]
        return corners, ids


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
            aruco = charuco_api().module  # a clear error naming the OpenCV version when it has no ChArUco
            if self.dictionary not in ARUCO_DICTIONARIES or not hasattr(aruco, self.dictionary):
                raise BoardError(
                    f"unknown ArUco dictionary {self.dictionary!r}: one of {', '.join(ARUCO_DICTIONARIES)}"
                    + (f" (OpenCV {cv2.__version__} lacks this one)" if self.dictionary in ARUCO_DICTIONARIES else "")
                )

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

    def cv_charuco_board(self) -> Any:
        """The OpenCV board object (of whichever call style this OpenCV offers)."""
        return CharucoTarget(self).board

    def texture(self, px_per_square: int, api: CharucoApi | None = None) -> np.ndarray:
        """The printed pattern (uint8, white = 255) at `px_per_square`, no margin."""
        w, h = self.squares_x * px_per_square, self.squares_y * px_per_square
        if self.kind == "charuco":
            return CharucoTarget(self, api).image(px_per_square)
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
    """Finds a board's corners (sub-pixel) in grayscale or RGB images; `api` picks a ChArUco call
    style (default: what this OpenCV offers)."""

    def __init__(self, spec: BoardSpec, api: CharucoApi | None = None) -> None:
        self.spec = spec
        if spec.kind == "charuco":
            self._charuco = CharucoTarget(spec, api)

    def detect(self, image: np.ndarray) -> BoardDetection | None:
        """Return the detected corners, or None when fewer than 4 are found."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self.spec.kind == "charuco":
            hit = self._charuco.detect(gray)
            if hit is None or len(hit[1]) < 4:
                return None
            return BoardDetection(hit[0], hit[1])
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
