"""One picture of one frame: RGB, colorized depth with its QC status, depth histogram, point cloud.

The guide's "single-command visualization": the first thing a downstream user
does is load one sample and look at it. Rendered with matplotlib's Agg backend
(headless), so it works over SSH and in CI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_annotation.common import Intrinsics, colorize_depth, status_name


def render_frame(
    color: np.ndarray,
    depth_mm: np.ndarray,
    intr: Intrinsics,
    out_png: str | Path,
    *,
    title: str = "",
    qc: str = "",
    depth_range_m: tuple[float, float] = (0.3, 2.0),
    max_points: int = 6000,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = depth_range_m
    fig = plt.figure(figsize=(13, 9))
    ax = fig.add_subplot(2, 2, 1)
    ax.imshow(color)
    ax.set_title("RGB")
    ax.axis("off")
    ax = fig.add_subplot(2, 2, 2)
    ax.imshow(colorize_depth(depth_mm, min_mm=lo * 1000, max_mm=hi * 1000))
    valid = depth_mm > 0
    ax.set_title(
        f"depth (TURBO {lo:.1f}-{hi:.1f} m, black = none) — valid {valid.mean() * 100:.1f} %"
        + (f" — QC {qc}" if qc else "")
    )
    ax.axis("off")
    ax = fig.add_subplot(2, 2, 3)
    ax.hist(depth_mm[valid] / 1000.0, bins=100, color="tab:blue")
    ax.set(xlabel="depth (m)", ylabel="pixels", title="depth histogram")
    ax = fig.add_subplot(2, 2, 4, projection="3d")
    v, u = np.nonzero(valid)
    if u.size:
        pick = np.random.default_rng(0).choice(u.size, min(max_points, u.size), replace=False)
        pts = intr.backproject(u[pick], v[pick], depth_mm[v[pick], u[pick]] / 1000.0)
        ax.scatter(pts[:, 0], pts[:, 2], -pts[:, 1], c=color[v[pick], u[pick]] / 255.0, s=1.5, depthshade=False)
    ax.set(xlabel="x (m)", ylabel="z (m)", zlabel="-y (m)", title="point cloud (camera frame)")
    ax.view_init(elev=20, azim=-70)
    fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def render_h5_frame(h5_path: str | Path, out_png: str | Path, *, episode: int = 0, frame: int = 0) -> Path:
    import json

    from .chunk_codecs import open_h5

    with open_h5(h5_path) as f:
        name = f"episode_{episode}"
        if name not in f:
            raise KeyError(
                f"{h5_path} has no {name} (episodes: {', '.join(sorted(k for k in f if k.startswith('episode_')))})"
            )
        g = f[name]
        n = g["depth"].shape[0]
        if not 0 <= frame < n:
            raise IndexError(f"{name} has {n} frames; --frame must be 0..{n - 1}")
        fx, fy, cx, cy = (float(v) for v in g["camera_intrinsics"][:])
        intr = Intrinsics(int(g.attrs["width"]), int(g.attrs["height"]), fx, fy, cx, cy)
        qc = ""
        if "qc" in g:
            status = status_name(int(g["qc/status"][frame]))
            reasons = json.loads(g["qc/reasons"][frame]) if "reasons" in g["qc"] else []
            qc = status + (f" ({', '.join(reasons)})" if reasons else "")
        stamp = int(g["timestamps_ns"][frame])
        title = f"{Path(h5_path).name} {name} frame {frame}/{n} stamp {stamp} scene {g.attrs.get('scene_id', '')}"
        return render_frame(g["color"][frame], g["depth"][frame], intr, out_png, title=title, qc=qc)
