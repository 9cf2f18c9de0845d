"""A synthetic tabletop RGB-D scene with ground truth, rendered with Open3D ray casting.

The embedded default camera for the demo, the tests and the benchmarks: a table
with boxes and mugs (one target, distractors, a reflective box, a transparent
glass), a gripper and an arm link, walls and floor. Each render gives

* colour (RGB, textured and shaded, with sensor noise),
* depth as uint16 millimetres with a stereo-like error model: Gaussian noise with
  sigma = `sigma_at_1m` * Z^2, holes on reflective / transparent surfaces,
  random dropouts at depth edges, nothing below the 0.28 m minimum range,
* the noiseless depth in metres, the taxonomy label image, instance ids, and
  3D keypoints of every mug in the camera frame.

World frame: z up, the table top is the plane z = 0, the camera looks at it from
the front (negative y). Everything is deterministic given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import open3d as o3d

from .camera import Extrinsics, Intrinsics, look_at, rotation_from_euler_xyz
from .taxonomy import LABEL_IDS

_TEXTURES = ("plain", "wood", "noise")

MIN_RANGE_M = 0.28  # D435 minimum depth
MAX_RANGE_M = 6.0

# D435-like depth-to-colour extrinsics: colour imager 15 mm to the right, slightly rotated.
DEFAULT_DEPTH_TO_COLOR = Extrinsics(
    rotation_from_euler_xyz(np.radians(0.15), np.radians(-0.25), np.radians(0.1)),
    np.array([0.0148, 0.0002, 0.0003]),
    "depth",
    "color",
)


@dataclass(frozen=True)
class DepthNoiseModel:
    """Errors of an active-stereo depth sensor, applied to ground-truth depth."""

    sigma_at_1m: float = 0.002  # metres of noise at 1 m; grows with Z^2
    min_range_m: float = MIN_RANGE_M
    max_range_m: float = MAX_RANGE_M
    edge_jump_m: float = 0.03  # a neighbour this much farther marks a depth edge
    edge_dropout: float = 0.5  # probability an edge pixel returns no depth
    enabled: bool = True

    def sigma(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.sigma_at_1m * np.square(z))


@dataclass
class SceneObject:
    name: str
    label: str  # taxonomy name
    mesh: o3d.geometry.TriangleMesh  # in world coordinates
    albedo: tuple[float, float, float]  # RGB in [0, 1]
    reflective: bool = False  # specular: the sensor returns no depth
    transparent: bool = False  # the sensor returns no depth
    texture: str = "plain"  # plain | wood | noise
    category: str = ""  # e.g. "mug" for keypoints
    keypoints_world: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class RGBDFrame:
    """One rendered view and its ground truth."""

    color: np.ndarray  # uint8 (H, W, 3) RGB
    depth_mm: np.ndarray  # uint16 (H, W); 0 = no depth
    depth_gt_m: np.ndarray  # float32 (H, W), noiseless; NaN where the ray hit nothing
    labels: np.ndarray  # uint8 (H, W) taxonomy ids of what is really there (never void)
    instances: np.ndarray  # int32 (H, W): index into scene.objects + 1; 0 = nothing
    keypoints: dict[str, dict[str, np.ndarray]]  # object name -> keypoint -> xyz in the camera frame
    intrinsics: Intrinsics
    world_to_camera: Extrinsics

    @property
    def void_mask(self) -> np.ndarray:
        """Pixels the annotation taxonomy labels `void`: the sensor returned no depth."""
        return np.asarray(self.depth_mm == 0)

    def annotation_labels(self) -> np.ndarray:
        """Label image as an annotator should produce it: void where there is no depth."""
        out: np.ndarray = self.labels.copy()
        out[self.void_mask] = LABEL_IDS["void"]
        return out


# --- meshes ---------------------------------------------------------------------------------


def _box(
    size: tuple[float, float, float], centre: tuple[float, float, float], yaw: float = 0.0
) -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh.create_box(*size)
    mesh.translate(-np.asarray(size) / 2)
    mesh.rotate(_rot_z(yaw), center=(0, 0, 0))
    mesh.translate(centre)
    return mesh


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _mug(
    x: float, y: float, yaw: float, radius: float = 0.04, height: float = 0.10
) -> tuple[o3d.geometry.TriangleMesh, dict[str, np.ndarray]]:
    """A mug body (cylinder on the table) with a torus-section handle; returns mesh and keypoints."""
    body = o3d.geometry.TriangleMesh.create_cylinder(radius=radius, height=height, resolution=40)
    body.translate((0, 0, height / 2))
    handle_r = height * 0.28
    tube = radius * 0.18
    handle = o3d.geometry.TriangleMesh.create_torus(
        torus_radius=handle_r, tube_radius=tube, radial_resolution=40, tubular_resolution=12
    )
    # torus lies in the xy plane; stand it up in the xz plane, centred beside the body
    handle.rotate(np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]), center=(0, 0, 0))
    handle.translate((radius + handle_r * 0.55, 0, height * 0.55))
    mesh = body + handle
    r = _rot_z(yaw)
    mesh.rotate(r, center=(0, 0, 0))
    mesh.translate((x, y, 0))
    attach_x = radius
    kp_local = {
        "handle_top": np.array([attach_x, 0.0, height * 0.55 + handle_r * 0.83]),
        "handle_bottom": np.array([attach_x, 0.0, height * 0.55 - handle_r * 0.83]),
        "rim_center": np.array([0.0, 0.0, height]),
        "base_center": np.array([0.0, 0.0, 0.0]),
    }
    keypoints = {k: r @ v + np.array([x, y, 0.0]) for k, v in kp_local.items()}
    return mesh, keypoints


# --- scene ------------------------------------------------------------------------------------


class SyntheticScene:
    """A deterministic tabletop scene; `render` views it from any camera pose."""

    def __init__(self, seed: int = 0, *, noise: DepthNoiseModel | None = None) -> None:
        self.seed = seed
        self.noise = noise or DepthNoiseModel()
        self.objects: list[SceneObject] = self._build(np.random.default_rng(seed))
        self._scene = o3d.t.geometry.RaycastingScene()
        for obj in self.objects:
            gid = self._scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(obj.mesh))
            assert gid == self.objects.index(obj)
        self._label_of = np.array([LABEL_IDS[o.label] for o in self.objects] + [LABEL_IDS["background"]], np.uint8)
        self._albedo = np.array([o.albedo for o in self.objects] + [(0.0, 0.0, 0.0)], np.float32)
        self._no_depth = np.array([o.reflective or o.transparent for o in self.objects] + [True])
        self._texture = np.array([_TEXTURES.index(o.texture) for o in self.objects] + [0], np.uint8)
        self._light = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])

    # Layout: fixed furniture, objects placed by seed on a jittered grid so they never overlap.
    def _build(self, rng: np.random.Generator) -> list[SceneObject]:
        objs = [
            SceneObject(
                "table", "table_surface", _box((1.2, 0.8, 0.04), (0, 0, -0.02)), (0.62, 0.45, 0.30), texture="wood"
            ),
            SceneObject("floor", "background", _box((6, 6, 0.02), (0, 0, -0.76)), (0.35, 0.35, 0.38), texture="noise"),
            SceneObject("wall", "background", _box((6, 0.02, 3), (0, 1.2, 0.75)), (0.80, 0.78, 0.72), texture="noise"),
        ]
        slots = [(-0.36, -0.12), (-0.12, 0.14), (0.12, -0.14), (0.34, 0.12), (-0.30, 0.20), (0.02, 0.0)]
        order = rng.permutation(len(slots))
        pos = [np.asarray(slots[i]) + rng.uniform(-0.03, 0.03, 2) for i in order]

        mesh, kp = _mug(pos[0][0], pos[0][1], yaw=rng.uniform(-np.pi, np.pi))
        objs.append(
            SceneObject("mug_target", "target_object", mesh, (0.85, 0.15, 0.12), category="mug", keypoints_world=kp)
        )
        mesh, kp = _mug(pos[1][0], pos[1][1], yaw=rng.uniform(-np.pi, np.pi), radius=0.035, height=0.09)
        objs.append(
            SceneObject(
                "mug_distractor", "distractor_object", mesh, (0.15, 0.35, 0.80), category="mug", keypoints_world=kp
            )
        )
        size = (rng.uniform(0.08, 0.14), rng.uniform(0.06, 0.10), rng.uniform(0.05, 0.12))
        objs.append(
            SceneObject(
                "box",
                "distractor_object",
                _box(size, (*pos[2], size[2] / 2), rng.uniform(0, np.pi)),
                (0.90, 0.75, 0.20),
                texture="noise",
            )
        )
        size = (0.10, 0.08, 0.06)
        objs.append(
            SceneObject(
                "metal_box",
                "distractor_object",
                _box(size, (*pos[3], size[2] / 2), rng.uniform(0, np.pi)),
                (0.75, 0.76, 0.80),
                reflective=True,
            )
        )
        glass = o3d.geometry.TriangleMesh.create_cylinder(radius=0.035, height=0.12, resolution=40)
        glass.translate((*pos[4], 0.06))
        objs.append(SceneObject("glass", "distractor_object", glass, (0.85, 0.92, 0.95), transparent=True))

        # Gripper hovering over the table, arm link rising to the back-right.
        g = np.array([pos[5][0], pos[5][1], 0.28])
        gripper = _box((0.08, 0.05, 0.03), tuple(g + [0, 0, 0.03]))
        gripper += _box((0.012, 0.03, 0.07), tuple(g + [-0.03, 0, -0.02]))
        gripper += _box((0.012, 0.03, 0.07), tuple(g + [0.03, 0, -0.02]))
        objs.append(SceneObject("gripper", "gripper", gripper, (0.25, 0.25, 0.27)))
        link = o3d.geometry.TriangleMesh.create_cylinder(radius=0.035, height=0.6, resolution=30)
        tilt = np.array([[1, 0, 0], [0, np.cos(0.6), -np.sin(0.6)], [0, np.sin(0.6), np.cos(0.6)]])
        link.rotate(tilt, center=(0, 0, 0))
        link.translate(tuple(g + [0, 0.3 * np.sin(0.6) * 0 + 0.17, 0.05 + 0.25]))
        objs.append(SceneObject("arm_link", "robot_arm", link, (0.92, 0.92, 0.90)))
        return objs

    @property
    def mug_names(self) -> list[str]:
        return [o.name for o in self.objects if o.category == "mug"]

    def object_index(self, name: str) -> int:
        return [o.name for o in self.objects].index(name)

    # --- rendering ------------------------------------------------------------------------
    def raycast(
        self, intr: Intrinsics, world_to_camera: Extrinsics
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Noiseless per-pixel (depth_m, object index or -1, world normal, world point).

        Depth is NaN where the ray hit nothing.
        """
        cam_to_world = world_to_camera.inverse()
        dirs_cam = intr.pixel_rays().reshape(-1, 3).astype(np.float32)  # z = 1: hit distance = depth Z
        dirs = dirs_cam @ cam_to_world.rotation.T.astype(np.float32)
        rays = np.empty((dirs.shape[0], 6), np.float32)
        rays[:, :3] = cam_to_world.translation
        rays[:, 3:] = dirs
        hit = self._scene.cast_rays(o3d.core.Tensor(rays))  # type: ignore[call-overload]  # open3d's stubs omit the one-argument form
        t = hit["t_hit"].numpy()
        gid = hit["geometry_ids"].numpy().astype(np.int64)
        miss = ~np.isfinite(t)
        gid[miss] = -1
        depth = np.where(miss, np.float32(np.nan), t)
        points = rays[:, :3] + dirs * np.where(miss, 0.0, t)[:, None]
        shape = (intr.height, intr.width)
        normals = hit["primitive_normals"].numpy()
        return depth.reshape(shape), gid.reshape(shape), normals.reshape(shape + (3,)), points.reshape(shape + (3,))

    def render(
        self,
        intr: Intrinsics,
        world_to_camera: Extrinsics,
        *,
        frame_seed: int = 0,
        noise: DepthNoiseModel | None = None,
    ) -> RGBDFrame:
        """Render colour, noisy depth and ground truth. `frame_seed` varies the noise only."""
        noise = noise or self.noise
        rng = np.random.default_rng([self.seed, frame_seed])
        depth_gt, gid, normals, points = self.raycast(intr, world_to_camera)
        idx = np.where(gid < 0, len(self.objects), gid)  # misses -> the sentinel slot

        color = self._shade(idx, normals, points, rng)
        depth_mm = self.sensor_depth(depth_gt, gid, rng, noise)
        labels = self._label_of[idx]
        instances = np.where(gid < 0, 0, gid + 1).astype(np.int32)
        keypoints = {
            o.name: {k: world_to_camera.apply(p)[0] for k, p in o.keypoints_world.items()}
            for o in self.objects
            if o.keypoints_world
        }
        return RGBDFrame(color, depth_mm, depth_gt, labels, instances, keypoints, intr, world_to_camera)

    def _shade(self, idx: np.ndarray, normals: np.ndarray, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        albedo = self._albedo[idx]
        lambert = np.clip(np.abs(normals @ self._light.astype(np.float32)), 0.0, 1.0)
        factor = 0.35 + 0.65 * lambert
        # Procedural textures in world coordinates, so they stick to surfaces as the camera moves.
        tex = self._texture[idx]
        x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
        wood = tex == _TEXTURES.index("wood")
        factor[wood] *= 0.9 + 0.08 * np.sin(x[wood] * 60.0 + 2.0 * np.sin(y[wood] * 9.0))
        grain = tex == _TEXTURES.index("noise")
        factor[grain] *= 0.9 + 0.1 * np.sin(x[grain] * 37.0) * np.cos(y[grain] * 53.0 + z[grain] * 41.0)
        rgb = albedo * factor[..., None]
        # Specular highlight on reflective objects (what makes them fail in IR stereo).
        refl = self._no_depth[idx] & (idx < len(self.objects))
        rgb[refl] += 0.25 * (lambert[refl] ** 8)[:, None]
        img = rgb * np.float32(255.0) + rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(1.5)
        return np.asarray(np.clip(img, 0, 255), dtype=np.uint8)

    def sensor_depth(
        self,
        depth_gt: np.ndarray,
        object_index: np.ndarray,
        rng: np.random.Generator,
        noise: DepthNoiseModel | None = None,
    ) -> np.ndarray:
        """Sensor depth (uint16 mm) from ground truth: noise, holes, edge dropouts, range limits.

        Split from `render` so a camera simulator can ray-cast a pose once and draw
        fresh sensor noise for every frame.
        """
        noise = noise or self.noise
        idx = np.where(object_index < 0, len(self.objects), object_index)
        z = np.nan_to_num(depth_gt, nan=0.0)
        if not noise.enabled:
            return np.asarray(np.clip(np.rint(z * 1000.0), 0, 65535), dtype=np.uint16)
        z_noisy = z + rng.standard_normal(z.shape, dtype=np.float32) * noise.sigma(z)
        invalid = self._no_depth[idx] | (z < noise.min_range_m) | (z > noise.max_range_m)
        # Depth edges: a pixel beside a markedly farther neighbour (the occlusion band).
        zp = np.pad(np.where(z > 0, z, np.inf), 1, mode="edge")
        farther = np.zeros(z.shape, bool)
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            nb = zp[1 + dy : 1 + dy + z.shape[0], 1 + dx : 1 + dx + z.shape[1]]
            farther |= (nb - z) > noise.edge_jump_m
        invalid |= farther & (rng.random(z.shape) < noise.edge_dropout)
        mm: np.ndarray = np.clip(np.rint(z_noisy * 1000.0), 0, 65535).astype(np.uint16)
        mm[invalid] = 0
        return mm


# --- cameras ------------------------------------------------------------------------------------


# A D435-like colour camera at 640x480 (pinhole; RealSense colour streams report no distortion).
def default_intrinsics(width: int = 640, height: int = 480) -> Intrinsics:
    """Intrinsics with a 69 x 42 degree-ish field of view at any resolution."""
    f = 0.947 * width  # fx = 606 at 640 px
    # A principal point slightly off-centre, as real units report (e.g. 321.5, 240.3).
    return Intrinsics(width, height, f, f, 0.5023 * width, 0.5006 * height)


def orbit_pose(t: float, *, radius: float = 0.85, height: float = 0.55, sweep_deg: float = 25.0) -> Extrinsics:
    """World -> colour-camera pose at time `t` seconds on a smooth orbit in front of the table.

    Azimuth, height and the look-at point vary sinusoidally with incommensurate
    periods, so the trajectory is smooth (infinitely differentiable) and never repeats exactly.
    """
    az = np.radians(-90.0 + sweep_deg * np.sin(2 * np.pi * t / 12.0))
    r = radius + 0.05 * np.sin(2 * np.pi * t / 7.0)
    eye = np.array([r * np.cos(az), r * np.sin(az), height + 0.06 * np.sin(2 * np.pi * t / 9.0)])
    target = np.array([0.04 * np.sin(2 * np.pi * t / 5.0), 0.03 * np.cos(2 * np.pi * t / 8.0), 0.04])
    return look_at(eye, target)
