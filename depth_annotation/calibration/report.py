"""A calibration report a person can look at: one PNG with what the numbers in the JSON mean.

Four panels: the reprojection error of every view (a bar each, the gate and the RMS as
lines, rejected views marked), where on the image the detected corners lie (the 8x6 grid
behind `corner_coverage`, empty cells shaded), the residual vector of every corner
(magnified, so a pattern — a mis-modelled lens, one bad view — shows), and the intrinsics
with their standard deviations, the coverage and the gates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_annotation.common import atomic_io

from .solver import CORNER_GRID, IntrinsicsResult


def write_report_png(path: Path, result: IntrinsicsResult, *, max_rms_px: float, title: str = "") -> Path:
    """Draw the report of `result` (which must carry its intrinsics) into `path` (crash-safe)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if result.intrinsics is None or result.image_size is None:
        raise ValueError("a calibration report needs a solved calibration")
    w, h = result.image_size
    fig, axes = plt.subplots(2, 2, figsize=(14, 10), dpi=80)
    ax_err, ax_cov, ax_res, ax_txt = axes.ravel()

    # 1. per-view reprojection error
    errs = np.asarray(result.per_view_error_px)
    ids = result.used_views or list(range(len(errs)))
    colors = ["tab:red" if e > max_rms_px else "tab:blue" for e in errs]
    ax_err.bar(range(len(errs)), errs, color=colors)
    ax_err.axhline(result.rms_px, color="k", lw=1, label=f"RMS {result.rms_px:.3f} px")
    ax_err.axhline(max_rms_px, color="tab:red", lw=1, ls="--", label=f"gate {max_rms_px} px")
    ax_err.set_xticks(range(len(errs)), [str(i) for i in ids], fontsize=7, rotation=90)
    ax_err.set_xlabel(
        "view (input index)" + (f"; rejected as outliers: {result.rejected_views}" if result.rejected_views else "")
    )
    ax_err.set_ylabel("reprojection error (px, RMS per view)")
    ax_err.set_title("Error per view")
    ax_err.legend(loc="upper right")

    # 2. corner coverage of the image
    gx, gy = CORNER_GRID
    seen = np.zeros((gy, gx), bool)
    for c in result.corners_px:
        col = np.clip((c[:, 0] / w * gx).astype(int), 0, gx - 1)
        row = np.clip((c[:, 1] / h * gy).astype(int), 0, gy - 1)
        seen[row, col] = True
    ax_cov.imshow(~seen, extent=(0, w, h, 0), cmap="Reds", vmin=0, vmax=3, alpha=0.6, aspect="equal")
    cmap = plt.get_cmap("viridis")
    for i, c in enumerate(result.corners_px):
        ax_cov.scatter(c[:, 0], c[:, 1], s=4, color=cmap(i / max(len(result.corners_px) - 1, 1)))
    for x in np.linspace(0, w, gx + 1):
        ax_cov.axvline(x, color="0.7", lw=0.5)
    for y in np.linspace(0, h, gy + 1):
        ax_cov.axhline(y, color="0.7", lw=0.5)
    ax_cov.set_xlim(0, w)
    ax_cov.set_ylim(h, 0)
    ax_cov.set_title(f"Detected corners: {result.corner_coverage * 100:.0f} % of the grid (shaded: none)")

    # 3. residual vectors
    corners = np.concatenate(result.corners_px) if result.corners_px else np.zeros((0, 2))
    res = np.concatenate(result.residuals_px) if result.residuals_px else np.zeros((0, 2))
    norm = np.linalg.norm(res, axis=1) if len(res) else np.zeros(0)
    gain = 0.04 * max(w, h) / max(float(np.percentile(norm, 95)) if len(norm) else 1.0, 1e-6)
    ax_res.quiver(
        corners[:, 0],
        corners[:, 1],
        res[:, 0] * gain,
        res[:, 1] * gain,
        norm,
        angles="xy",
        scale_units="xy",
        scale=1,
        cmap="plasma",
        width=0.002,
    )
    ax_res.set_xlim(0, w)
    ax_res.set_ylim(h, 0)
    ax_res.set_aspect("equal")
    ax_res.set_title(f"Residuals (detected - reprojected) x {gain:.0f}; max {norm.max() if len(norm) else 0:.2f} px")

    # 4. numbers
    intr = result.intrinsics
    sd = result.std_dev
    cov = result.coverage
    lines = [
        f"{'FORCED past failed gates' if result.forced else ('OK' if result.success else 'REFUSED')}",
        f"image {w}x{h}, {result.views_used} views, RMS {result.rms_px:.3f} px",
        "",
        f"fx {intr.fx:9.2f} +- {sd.get('fx', np.nan):.2f}   ({sd.get('fx', np.nan) / intr.fx * 100:.3f} %)",
        f"fy {intr.fy:9.2f} +- {sd.get('fy', np.nan):.2f}   ({sd.get('fy', np.nan) / intr.fy * 100:.3f} %)",
        f"cx {intr.cx:9.2f} +- {sd.get('cx', np.nan):.2f}   ({sd.get('cx', np.nan) / intr.cx * 100:.3f} %)",
        f"cy {intr.cy:9.2f} +- {sd.get('cy', np.nan):.2f}   ({sd.get('cy', np.nan) / intr.cy * 100:.3f} %)",
        "d  " + ", ".join(f"{v:+.4f}" for v in intr.d),
        "   +- " + ", ".join(f"{v:.4f}" for v in result.std_dev_d),
        "",
        "coverage " + "  ".join(f"{k} {v:.2f}" for k, v in cov.items()),
    ]
    if result.gates is not None:
        g = result.gates
        lines.append(
            f"gates    x {g.min_coverage_x:.2f}  y {g.min_coverage_y:.2f}  size {g.min_coverage_size:.2f}  "
            f"skew {g.min_coverage_skew:.2f}  std <= {g.max_std_fraction * 100:.2f} %"
        )
    lines += ["", *(f"failed: {f}" for f in result.failed_gates)]
    ax_txt.axis("off")
    ax_txt.text(0.0, 1.0, "\n".join(lines), va="top", family="monospace", fontsize=11, transform=ax_txt.transAxes)
    fig.suptitle(title or "Camera calibration")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_io.write_bytes(path, buf.getvalue())
