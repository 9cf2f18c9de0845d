"""The QC session report: JSON for machines, an HTML page with plots for people.

Every per-frame result is kept (a stamp, a status, its reasons and numbers), so
the report's numbers are the numbers the node published, and a flagged frame
can be found again by its stamp.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from depth_annotation.common import QcStatus, atomic_io

from .coverage import CoverageConfig, FrameQuality

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SCHEMA_VERSION = 1
JSON_NAME, HTML_NAME = "qc_report.json", "qc_report.html"


class QCSession:
    """Accumulates frame results; `write` renders the report."""

    def __init__(self, config: CoverageConfig, *, source: str = "") -> None:
        self.config = config
        self.source = source
        self.frames: list[dict[str, Any]] = []
        self._grid_sum: np.ndarray | None = None
        self._grid_n = 0
        self.errors = 0

    def add(self, q: FrameQuality) -> None:
        rec = q.to_dict()
        del rec["grid_valid_fraction"]  # summarised as the mean heat map
        self.frames.append(rec)
        if q.status == QcStatus.ERROR:
            self.errors += 1
            return
        g = q.grid_valid_fraction.astype(np.float64)
        if self._grid_sum is None or self._grid_sum.shape != g.shape:
            self._grid_sum, self._grid_n = np.zeros_like(g), 0
        self._grid_sum += g
        self._grid_n += 1

    def mean_grid(self) -> np.ndarray:
        """Mean valid fraction per grid cell over the frames that could be analysed (zeros if none)."""
        if self._grid_sum is None or not self._grid_n:
            rows, cols = self.config.grid_rows, self.config.grid_cols
            return np.zeros((rows, cols))
        return self._grid_sum / self._grid_n

    def summary(self) -> dict[str, Any]:
        ok = [f for f in self.frames if _status(f) != QcStatus.ERROR]
        valid = np.array([f["valid_fraction"] for f in ok]) if ok else np.zeros(0)
        status_counts = Counter(f["status"] for f in self.frames)
        reason_counts = Counter(r for f in self.frames for r in f["reasons"])

        def stats(a: np.ndarray) -> dict[str, float] | None:
            a = a[np.isfinite(a)]
            if a.size == 0:
                return None
            return {
                "mean": float(a.mean()),
                "min": float(a.min()),
                "p5": float(np.percentile(a, 5)),
                "median": float(np.median(a)),
                "max": float(a.max()),
            }

        stamps = [f["stamp_ns"] for f in self.frames]
        return {
            "schema_version": SCHEMA_VERSION,
            "source": self.source,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()},
            "frames": len(self.frames),
            "first_stamp_ns": min(stamps) if stamps else None,
            "last_stamp_ns": max(stamps) if stamps else None,
            "status_counts": {name: status_counts.get(name, 0) for name in QcStatus.__members__},
            "reason_counts": dict(sorted(reason_counts.items())),
            "valid_fraction": stats(valid),
            "roi_valid_fraction": stats(np.array([f["roi_valid_fraction"] for f in ok])),
            "in_range_fraction": stats(np.array([f["in_range_fraction"] for f in ok])),
            "temporal_noise_m": stats(np.array([f["temporal_noise_m"] for f in ok], dtype=float)),
            "mean_grid_valid_fraction": self.mean_grid().tolist() if self._grid_n else None,
            "flagged_stamps_ns": [f["stamp_ns"] for f in self.frames if _status(f) == QcStatus.FLAGGED],
            "per_frame": self.frames,
        }

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """Write qc_report.json and qc_report.html atomically; returns both paths."""
        directory = Path(directory)
        data = self.summary()
        json_path = atomic_io.write_json(directory / JSON_NAME, data)
        html_path = atomic_io.write_text(directory / HTML_NAME, render_html(data))
        return json_path, html_path


def _status(record: dict[str, Any]) -> QcStatus:
    """The status of a per-frame record (stored by name in the JSON)."""
    return QcStatus[record["status"]]


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(data: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = data["config"]
    frames = [f for f in data["per_frame"] if _status(f) != QcStatus.ERROR]
    out: list[tuple[str, str]] = []
    if not frames:
        return out
    t0 = frames[0]["stamp_ns"]
    t = np.array([(f["stamp_ns"] - t0) / 1e9 for f in frames])
    valid = np.array([f["valid_fraction"] for f in frames]) * 100
    roi = np.array([f["roi_valid_fraction"] for f in frames]) * 100
    flagged = np.array([_status(f) == QcStatus.FLAGGED for f in frames])

    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(t, valid, lw=1, label="valid coverage")
    ax.plot(t, roi, lw=1, alpha=0.7, label="ROI coverage")
    ax.axhline(cfg["good_fraction"] * 100, color="tab:green", ls="--", lw=1, label="good")
    ax.axhline(cfg["flag_fraction"] * 100, color="tab:red", ls="--", lw=1, label="flag")
    if flagged.any():
        ax.scatter(t[flagged], valid[flagged], color="tab:red", s=12, zorder=3, label="flagged")
    ax.set(xlabel="time since first frame (s)", ylabel="% of pixels", ylim=(0, 100.5), title="Coverage over time")
    ax.legend(loc="lower left", fontsize=8, ncol=5)
    out.append(("Coverage timeline", _png(fig)))

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(valid, bins=50, range=(0, 100), color="tab:blue")  # 2 % bins
    ax.axvline(cfg["good_fraction"] * 100, color="tab:green", ls="--")
    ax.axvline(cfg["flag_fraction"] * 100, color="tab:red", ls="--")
    ax.set(xlabel="valid coverage (%)", ylabel="frames", title="Coverage histogram")
    out.append(("Coverage histogram", _png(fig)))

    grid = data.get("mean_grid_valid_fraction")
    if grid:
        g = np.asarray(grid) * 100
        fig, ax = plt.subplots(figsize=(5, 3.8))
        im = ax.imshow(g, vmin=0, vmax=100, cmap="viridis")
        for (i, j), v in np.ndenumerate(g):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="white" if v < 60 else "black", fontsize=9)
        ax.set(title="Mean coverage per image cell (%)", xticks=[], yticks=[])
        fig.colorbar(im, ax=ax, fraction=0.046)
        out.append(("Per-cell coverage", _png(fig)))
    return out


def render_html(data: dict[str, Any]) -> str:
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in data["status_counts"].items())
    reasons = "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in data["reason_counts"].items()) or (
        "<tr><td colspan=2>none</td></tr>"
    )
    vf = data["valid_fraction"] or {}
    flagged = [f for f in data["per_frame"] if _status(f) == QcStatus.FLAGGED]
    flagged_rows = (
        "".join(
            f"<tr><td>{f['stamp_ns']}</td><td>{f['valid_fraction'] * 100:.1f}</td>"
            f"<td>{f['roi_valid_fraction'] * 100:.1f}</td><td>{esc(', '.join(f['reasons']))}</td></tr>"
            for f in flagged
        )
        or "<tr><td colspan=4>no flagged frames</td></tr>"
    )
    plots = "".join(
        f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{b64}'>"
        for title, b64 in _plots(data)
    )
    mean_cov = f"{vf['mean'] * 100:.1f} %" if vf else "n/a"
    good, flag = data["config"]["good_fraction"] * 100, data["config"]["flag_fraction"] * 100
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Depth QC report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px}}img{{max-width:100%}}</style></head><body>
<h1>Depth QC report</h1>
<p>Source: {esc(str(data["source"]))}. Frames: {data["frames"]}. Mean valid coverage: {mean_cov}.
Thresholds: good &ge; {good:.0f} %, flagged &lt; {flag:.0f} %.</p>
<h2>Status</h2><table><tr><th>status</th><th>frames</th></tr>{rows}</table>
<h2>Reasons</h2><table><tr><th>reason</th><th>frames</th></tr>{reasons}</table>
{plots}
<h2>Flagged frames ({len(flagged)})</h2>
<table><tr><th>stamp (ns)</th><th>valid %</th><th>ROI %</th><th>reasons</th></tr>{flagged_rows}</table>
</body></html>
"""
