"""Render a calibration board as a camera with known intrinsics and distortion sees it.

Inverse mapping: every (super-sampled) pixel of the distorted image is undistorted
to a ray with OpenCV's own model, intersected with the board plane and coloured
from the printed pattern; the super-samples are then area-averaged. Because the
forward model is OpenCV's, `cv2.projectPoints` of the board corners lands on the
rendered corners, which is what the calibration tests need.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from depth_annotation.common import Extrinsics, Intrinsics

from .board import BoardSpec


@dataclass
class BoardView:
    """One rendered view with its ground truth."""

    image: np.ndarray  # uint8 (H, W), grayscale
    board_to_camera: Extrinsics
    corners_px: np.ndarray  # (N, 2) projected interior corners (with distortion), row-major ids
    visible: np.ndarray  # (N,) bool: corner inside the image and the board faces the camera


@lru_cache(maxsize=8)
def _undistorted_rays(intr: Intrinsics, supersample: int) -> np.ndarray:
    """(H*ss, W*ss, 2) normalised (x/z, y/z) coordinates of every super-sample."""
    ss = supersample
    offs = (np.arange(ss) + 0.5) / ss - 0.5
    u = (np.arange(intr.width)[:, None] + offs[None, :]).ravel()
    v = (np.arange(intr.height)[:, None] + offs[None, :]).ravel()
    uu, vv = np.meshgrid(u, v)
    pts = np.stack([uu.ravel(), vv.ravel()], axis=1).astype(np.float64).reshape(-1, 1, 2)
    if intr.is_distorted:
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
        norm = cv2.undistortPoints(pts, intr.k, intr.dist_coeffs, R=None, P=None, criteria=criteria)
    else:
        norm = (pts - [intr.cx, intr.cy]) / [intr.fx, intr.fy]
    return norm.reshape(intr.height * ss, intr.width * ss, 2)


def project_corners(spec: BoardSpec, intr: Intrinsics, board_to_camera: Extrinsics) -> np.ndarray:
    """(N, 2) pixel positions of the interior corners, through OpenCV's distortion model."""
    rvec, _ = cv2.Rodrigues(board_to_camera.rotation)
    px, _ = cv2.projectPoints(spec.corner_points(), rvec, board_to_camera.translation, intr.k, intr.dist_coeffs)
    return px.reshape(-1, 2)


def render_board(
    spec: BoardSpec,
    intr: Intrinsics,
    board_to_camera: Extrinsics,
    *,
    supersample: int = 3,
    px_per_square: int = 120,
    margin_squares: float = 0.75,
    background: int = 110,
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
) -> BoardView:
    """Render the board (with a white paper margin) over a flat grey background.

    Args:
        board_to_camera: pose of the board frame in the camera's optical frame.
        supersample: samples per pixel along each axis (anti-aliasing, sub-pixel corners).
        noise_sigma: standard deviation of additive Gaussian image noise (grey levels).
    """
    tex = spec.texture(px_per_square)
    margin_px = int(round(margin_squares * px_per_square))
    tex = cv2.copyMakeBorder(tex, margin_px, margin_px, margin_px, margin_px, cv2.BORDER_CONSTANT, value=255)
    px_per_m = px_per_square / spec.square_length_m

    norm = _undistorted_rays(intr, supersample)
    d = np.concatenate([norm, np.ones(norm.shape[:2] + (1,))], axis=-1)  # rays, z = 1
    r, t = board_to_camera.rotation, board_to_camera.translation
    n = r[:, 2]  # board normal in the camera frame
    denom = d @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (n @ t) / denom
        p_cam = d * s[..., None]
        p_board = (p_cam - t) @ r  # R^T (p - t)
    valid = np.isfinite(s) & (s > 0)
    # Texture coordinates: texel (i, j) centre sits at board ((j + 0.5), (i + 0.5)) / px_per_m.
    map_x = np.where(valid, p_board[..., 0] * px_per_m + margin_px - 0.5, -1e6).astype(np.float32)
    map_y = np.where(valid, p_board[..., 1] * px_per_m + margin_px - 0.5, -1e6).astype(np.float32)
    hi = cv2.remap(
        tex, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=background
    )
    img = cv2.resize(hi, (intr.width, intr.height), interpolation=cv2.INTER_AREA)
    if noise_sigma > 0:
        rng = rng or np.random.default_rng(0)
        img = np.clip(img + rng.normal(0.0, noise_sigma, img.shape), 0, 255).astype(np.uint8)

    corners = project_corners(spec, intr, board_to_camera)
    inside = (
        (corners[:, 0] >= 0)
        & (corners[:, 0] <= intr.width - 1)
        & (corners[:, 1] >= 0)
        & (corners[:, 1] <= intr.height - 1)
    )
    facing = (n @ t) > 0  # camera on the printed side: the board normal points away from it
    return BoardView(img, board_to_camera, corners, inside & facing)


def place_board(
    spec: BoardSpec,
    distance_m: float,
    *,
    tilt_x_deg: float = 0.0,
    tilt_y_deg: float = 0.0,
    roll_deg: float = 0.0,
    offset_m: tuple[float, float] = (0.0, 0.0),
) -> Extrinsics:
    """Board -> camera pose with the board centre at `distance_m` on the optical axis (plus offset).

    Tilts rotate the board about its own centre, so views stay centred while
    their angle varies, which is how a person waves a board for calibration.
    """
    from depth_annotation.common import rotation_from_euler_xyz

    w, h = spec.size_m
    r = rotation_from_euler_xyz(np.radians(tilt_x_deg), np.radians(tilt_y_deg), np.radians(roll_deg))
    centre_board = np.array([w / 2, h / 2, 0.0])
    centre_cam = np.array([offset_m[0], offset_m[1], distance_m])
    return Extrinsics(r, centre_cam - r @ centre_board, "board", "camera_optical")


def varied_board_poses(
    spec: BoardSpec,
    intr: Intrinsics,
    n: int,
    *,
    seed: int = 0,
    distance_m: tuple[float, float] = (0.35, 0.75),
    max_tilt_deg: float = 35.0,
    margin_px: float = 12.0,
) -> list[Extrinsics]:
    """`n` board poses spread over the image, distances and angles, every corner in view.

    What a person waving a board in front of the camera aims for; used for the
    calibration tests, the demo and the benchmarks.
    """
    rng = np.random.default_rng(seed)
    poses: list[Extrinsics] = []
    tries = 0
    while len(poses) < n:
        tries += 1
        if tries > 200 * n:
            raise RuntimeError(f"could not place {n} board views in a {intr.width}x{intr.height} image")
        dist = rng.uniform(*distance_m)
        u = rng.uniform(0.25, 0.75) * intr.width
        v = rng.uniform(0.25, 0.75) * intr.height
        offset = ((u - intr.cx) / intr.fx * dist, (v - intr.cy) / intr.fy * dist)
        pose = place_board(
            spec,
            dist,
            tilt_x_deg=rng.uniform(-max_tilt_deg, max_tilt_deg),
            tilt_y_deg=rng.uniform(-max_tilt_deg, max_tilt_deg),
            roll_deg=rng.uniform(-20, 20),
            offset_m=offset,
        )
        w, h = spec.size_m
        outline = np.array([[0, 0, 0], [w, 0, 0], [w, h, 0], [0, h, 0]], np.float64)
        rvec, _ = cv2.Rodrigues(pose.rotation)
        px, _ = cv2.projectPoints(outline, rvec, pose.translation, intr.k, intr.dist_coeffs)
        px = px.reshape(-1, 2)
        inside = (
            (px[:, 0] > margin_px).all()
            and (px[:, 0] < intr.width - margin_px).all()
            and (px[:, 1] > margin_px).all()
            and (px[:, 1] < intr.height - margin_px).all()
        )
        if inside and pose.rotation[:, 2] @ pose.translation > 0:
            poses.append(pose)
    return poses
