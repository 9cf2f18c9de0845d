"""Annotation-ready files for every k-th frame: RGB, raw 16-bit depth, colorized depth, Label Studio tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depth_annotation.common import NO_QC_NAME, QcStatus, Taxonomy, atomic_io, colorize_depth

from .labelstudio import label_config, task


def _png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    atomic_io.write_bytes(path, buf.tobytes())


class AnnotationExporter:
    """Writes `annotation/{rgb,depth16,depth_color}/<episode>_<stamp>.png` and the Label Studio files."""

    def __init__(
        self,
        out_dir: str | Path,
        taxonomy: Taxonomy,
        *,
        every_k: int = 10,
        exclude_flagged: bool = True,
        depth_range_m: tuple[float, float] = (0.3, 2.0),
        url_prefix: str = "/data/local-files/?d=",
    ) -> None:
        if every_k < 1:
            raise ValueError("every_k must be at least 1")
        self.root = Path(out_dir) / "annotation"
        self.taxonomy = taxonomy
        self.every_k, self.exclude_flagged = every_k, exclude_flagged
        self.depth_range_m = depth_range_m
        self.url_prefix = url_prefix
        self.tasks: list[dict[str, Any]] = []
        self.skipped_flagged = 0

    def consider(
        self,
        index: int,
        *,
        episode: str,
        scene_id: str,
        stamp_ns: int,
        color_rgb: np.ndarray,
        depth_mm: np.ndarray,
        intrinsics: list[float],
        qc_status: str = NO_QC_NAME,
    ) -> bool:
        """Export frame `index` of an episode if it is a k-th frame (and not flagged, unless kept)."""
        if index % self.every_k:
            return False
        flagged = qc_status == QcStatus.FLAGGED.name
        if flagged and self.exclude_flagged:
            self.skipped_flagged += 1
            return False
        name = f"{episode}_{stamp_ns}.png"
        lo, hi = self.depth_range_m
        _png(self.root / "rgb" / name, cv2.cvtColor(color_rgb, cv2.COLOR_RGB2BGR))
        _png(self.root / "depth16" / name, depth_mm)
        _png(
            self.root / "depth_color" / name,
            cv2.cvtColor(colorize_depth(depth_mm, min_mm=lo * 1000, max_mm=hi * 1000), cv2.COLOR_RGB2BGR),
        )

        def rel(sub: str) -> str:
            return f"{self.url_prefix}annotation/{sub}/{name}"

        self.tasks.append(
            task(
                image_url=rel("rgb"),
                depth_url=rel("depth_color"),
                depth16_url=rel("depth16"),
                episode=episode,
                stamp_ns=stamp_ns,
                qc_status=qc_status,
                qc_flagged=flagged,
                intrinsics=[float(v) for v in intrinsics],
                scene_id=scene_id,
                taxonomy_version=self.taxonomy.version,
            )
        )
        return True

    def drop_episode(self, episode: str) -> int:
        """Forget an episode's tasks and delete its PNGs (the episode was dropped from the HDF5 file);
        returns how many tasks went."""
        kept = [t for t in self.tasks if t["data"]["episode"] != episode]
        dropped = len(self.tasks) - len(kept)
        self.tasks = kept
        for sub in ("rgb", "depth16", "depth_color"):
            for png in (self.root / sub).glob(f"{episode}_*.png"):
                png.unlink(missing_ok=True)
        return dropped

    def finish(self) -> dict[str, Any]:
        atomic_io.write_text(
            self.root / "label_config.xml", label_config(self.taxonomy, depth_range_m=self.depth_range_m)
        )
        atomic_io.write_json(self.root / "label_studio_tasks.json", self.tasks)
        return {
            "tasks": len(self.tasks),
            "every_k": self.every_k,
            "skipped_flagged": self.skipped_flagged,
            "exclude_flagged": self.exclude_flagged,
        }
