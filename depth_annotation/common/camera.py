"""Camera models: pinhole intrinsics and rigid extrinsics, with CameraInfo and JSON forms.

CameraInfo follows REP-104: K is the intrinsic matrix of the raw (distorted)
image, D the distortion coefficients of `distortion_model`, R the rectification
rotation (identity for a monocular camera) and P the 3x4 projection of the
rectified image (K | 0 for a monocular camera). Points are in the camera's
optical frame (REP-103: x right, y down, z forward), in metres.

Reading a CameraInfo is duck-typed (rclpy or `rosbags` messages, or anything
with the lowercase fields), like `images.image_to_array`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .errors import CameraModelError

SCHEMA_VERSION = 1

# Number of coefficients OpenCV/ROS expect for each distortion model.
DISTORTION_MODELS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one image stream, in pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "plumb_bob"
    d: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise CameraModelError(f"image size must be positive, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise CameraModelError(f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")
        if self.distortion_model not in DISTORTION_MODELS:
            raise CameraModelError(
                f"unknown distortion model {self.distortion_model!r}; known: {', '.join(DISTORTION_MODELS)}"
            )
        object.__setattr__(self, "d", tuple(float(v) for v in self.d))

    # --- matrices -------------------------------------------------------------------
    @property
    def k(self) -> np.ndarray:
        """3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def dist_coeffs(self) -> np.ndarray:
        """Distortion coefficients as OpenCV wants them (float64 vector)."""
        return np.asarray(self.d, dtype=np.float64)

    @property
    def is_distorted(self) -> bool:
        return any(v != 0.0 for v in self.d)

    def as_vector(self) -> np.ndarray:
        """float32[4] (fx, fy, cx, cy): the dataset's `camera_intrinsics` layout."""
        return np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float32)

    def scaled(self, factor: float) -> Intrinsics:
        """Intrinsics of the image resized by `factor` (e.g. 0.5 after decimation by 2)."""
        return Intrinsics(
            width=int(round(self.width * factor)),
            height=int(round(self.height * factor)),
            fx=self.fx * factor,
            fy=self.fy * factor,
            cx=(self.cx + 0.5) * factor - 0.5,
            cy=(self.cy + 0.5) * factor - 0.5,
            distortion_model=self.distortion_model,
            d=self.d,
        )

    # --- geometry (ignores distortion: use on undistorted / rectified images) ----------
    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame points -> (N, 2) pixel coordinates (u, v)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        z = p[:, 2]
        return np.stack([self.fx * p[:, 0] / z + self.cx, self.fy * p[:, 1] / z + self.cy], axis=1)

    def backproject(self, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Pixels and depth (metres) -> (N, 3) points: X = (u - cx) Z / fx, Y = (v - cy) Z / fy."""
        u, v, z = (np.asarray(a, dtype=np.float64).ravel() for a in (u, v, z))
        return np.stack([(u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z], axis=1)

    def pixel_rays(self) -> np.ndarray:
        """(H, W, 3) ray directions with z = 1 through every pixel centre."""
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], axis=-1)

    # --- CameraInfo (REP-104) ----------------------------------------------------------
    def to_camera_info_fields(self) -> dict[str, Any]:
        """The CameraInfo fields (lowercase names) of this monocular camera."""
        k = self.k
        p = np.zeros((3, 4))
        p[:, :3] = k
        return {
            "width": int(self.width),
            "height": int(self.height),
            "distortion_model": self.distortion_model,
            "d": list(self.d),
            "k": k.ravel().tolist(),
            "r": np.eye(3).ravel().tolist(),
            "p": p.ravel().tolist(),
        }

    @classmethod
    def from_camera_info(cls, msg: Any) -> Intrinsics:
        """Intrinsics from a CameraInfo-like object (K and D; R and P are not needed)."""
        k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            raise CameraModelError("CameraInfo has no intrinsics (K is zero): the camera is uncalibrated")
        model = str(msg.distortion_model) or "plumb_bob"
        d = tuple(float(x) for x in msg.d)
        if not d:
            d = (0.0,) * DISTORTION_MODELS.get(model, 5)
        return cls(
            width=int(msg.width),
            height=int(msg.height),
            fx=float(k[0, 0]),
            fy=float(k[1, 1]),
            cx=float(k[0, 2]),
            cy=float(k[1, 2]),
            distortion_model=model,
            d=d,
        )

    # --- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "width": int(self.width),
            "height": int(self.height),
            "fx": float(self.fx),
            "fy": float(self.fy),
            "cx": float(self.cx),
            "cy": float(self.cy),
            "distortion_model": self.distortion_model,
            "d": [float(v) for v in self.d],
            "k": self.k.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Intrinsics:
        try:
            return cls(
                width=int(data["width"]),
                height=int(data["height"]),
                fx=float(data["fx"]),
                fy=float(data["fy"]),
                cx=float(data["cx"]),
                cy=float(data["cy"]),
                distortion_model=str(data.get("distortion_model", "plumb_bob")),
                d=tuple(data.get("d", (0.0,) * 5)),
            )
        except KeyError as exc:
            raise CameraModelError(f"intrinsics JSON lacks field {exc.args[0]!r}") from None


@dataclass(frozen=True)
class Extrinsics:
    """Rigid transform taking points from `source_frame` into `target_frame`: p_t = R p_s + t.

    Named like the SDK's `get_extrinsics_to`: `depth.to(color)` maps depth-frame
    points into the color frame.
    """

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    source_frame: str = ""
    target_frame: str = ""

    def __post_init__(self) -> None:
        r = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        t = np.asarray(self.translation, dtype=np.float64).reshape(3)
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
            raise CameraModelError("rotation is not a proper rotation matrix")
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "translation", t)

    @property
    def matrix(self) -> np.ndarray:
        """4x4 homogeneous transform."""
        m = np.eye(4)
        m[:3, :3] = self.rotation
        m[:3, 3] = self.translation
        return m

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 3) points from the source frame to the target frame."""
        out: np.ndarray = np.asarray(points, dtype=np.float64).reshape(-1, 3) @ self.rotation.T + self.translation
        return out

    def inverse(self) -> Extrinsics:
        r_inv = self.rotation.T
        return Extrinsics(r_inv, -r_inv @ self.translation, self.target_frame, self.source_frame)

    def then(self, other: Extrinsics) -> Extrinsics:
        """The transform that applies self, then other (source of self -> target of other)."""
        return Extrinsics(
            other.rotation @ self.rotation,
            other.rotation @ self.translation + other.translation,
            self.source_frame,
            other.target_frame,
        )

    def quaternion_xyzw(self) -> np.ndarray:
        """Rotation as a unit quaternion (x, y, z, w) with w >= 0, for geometry_msgs/Transform.

        Shepperd's method: the largest component comes from the diagonal, the other three from
        off-diagonal sums and differences divided by it. (Signs taken from the differences alone are
        all + for a half-turn, w = 0, which turned e.g. a half-turn about (1, -1, 0) into one about (1, 1, 0).)
        """
        r = self.rotation
        wx, wy, wz = r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]  # 4wx, 4wy, 4wz
        xy, xz, yz = r[0, 1] + r[1, 0], r[0, 2] + r[2, 0], r[1, 2] + r[2, 1]  # 4xy, 4xz, 4yz
        d = r.diagonal()
        four_sq = 1.0 + np.array([d.sum(), d[0] - d[1] - d[2], d[1] - d[0] - d[2], d[2] - d[0] - d[1]])  # 4w^2, 4x^2..
        k = int(np.argmax(four_sq))
        s = 2.0 * np.sqrt(four_sq[k])  # 4 times the largest component
        rows = [[wx, wy, wz, s * s / 4], [s * s / 4, xy, xz, wx], [xy, s * s / 4, yz, wy], [xz, yz, s * s / 4, wz]]
        q: np.ndarray = np.array(rows[k]) / s
        q /= np.linalg.norm(q)
        return q if q[3] >= 0 else -q

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "source_frame": self.source_frame,
            "target_frame": self.target_frame,
            "rotation": self.rotation.tolist(),
            "translation_m": self.translation.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Extrinsics:
        try:
            return cls(
                np.asarray(data["rotation"], dtype=np.float64),
                np.asarray(data["translation_m"], dtype=np.float64),
                str(data.get("source_frame", "")),
                str(data.get("target_frame", "")),
            )
        except KeyError as exc:
            raise CameraModelError(f"extrinsics JSON lacks field {exc.args[0]!r}") from None


def rotation_from_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Rotation matrix of a unit quaternion (geometry_msgs order x, y, z, w)."""
    n = np.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_from_euler_xyz(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix R = Rz @ Ry @ Rx from angles in radians."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    r_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    r_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return np.asarray(r_z @ r_y @ r_x)


def look_at(eye: ArrayLike, target: ArrayLike, up: ArrayLike = (0.0, 0.0, 1.0)) -> Extrinsics:
    """World -> optical-camera transform for a camera at `eye` looking at `target`.

    The optical frame is REP-103's: z forward, x right, y down. `up` is the world's up.
    """
    eye_w, target_w, up_w = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target_w - eye_w
    z /= np.linalg.norm(z)
    x = np.cross(z, up_w)
    if np.linalg.norm(x) < 1e-9:
        raise CameraModelError("look_at: viewing direction is parallel to 'up'")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    r_cw = np.stack([x, y, z])  # rows: camera axes in world coordinates
    return Extrinsics(r_cw, -r_cw @ eye_w, "world", "camera_optical")


def to_camera_info_yaml(intr: Intrinsics, camera_name: str) -> str:
    """camera_info_manager's YAML format (what `camera_calibration` writes and drivers load)."""
    import yaml

    f = intr.to_camera_info_fields()

    def mat(rows: int, cols: int, data: list[float]) -> dict[str, Any]:
        return {"rows": rows, "cols": cols, "data": [float(v) for v in data]}

    doc = {
        "image_width": f["width"],
        "image_height": f["height"],
        "camera_name": camera_name,
        "camera_matrix": mat(3, 3, f["k"]),
        "distortion_model": f["distortion_model"],
        "distortion_coefficients": mat(1, len(f["d"]), f["d"]),
        "rectification_matrix": mat(3, 3, f["r"]),
        "projection_matrix": mat(3, 4, f["p"]),
    }
    return yaml.safe_dump(doc, sort_keys=False)


def from_camera_info_yaml(text: str) -> Intrinsics:
    """Intrinsics from camera_info_manager YAML."""
    import yaml

    doc = yaml.safe_load(text)
    try:
        k = np.asarray(doc["camera_matrix"]["data"], dtype=np.float64).reshape(3, 3)
        return Intrinsics(
            width=int(doc["image_width"]),
            height=int(doc["image_height"]),
            fx=float(k[0, 0]),
            fy=float(k[1, 1]),
            cx=float(k[0, 2]),
            cy=float(k[1, 2]),
            distortion_model=str(doc.get("distortion_model", "plumb_bob")),
            d=tuple(doc.get("distortion_coefficients", {}).get("data", [0.0] * 5)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CameraModelError(f"not a camera_info YAML: {exc}") from None
