"""Offline calibration from files, as image_pipeline's tarfile calibration: the node's session, fed from disk.

`depth-annotation calibrate` reads images from a folder or a bag and hands every frame to
`OfflineCalibration`, which drives the same `CalibrationSession` as `calibration_node`, then
writes what the node writes — `calibration.json` (the node's schema: an `intrinsics`
section, with a right camera also a `stereo` section) and camera_info YAML — plus a PNG
report per camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .calibration_file import save_camera_info_yaml, save_section
from .session import CalibrationSession, SessionConfig
from .solver import IntrinsicsResult, StereoResult


@dataclass
class OfflineOutcome:
    """What an offline calibration produced, and where it wrote it."""

    intrinsics: IntrinsicsResult
    right: IntrinsicsResult | None = None
    stereo: StereoResult | None = None
    frames: int = 0
    files: list[Path] = field(default_factory=list)

    @property
    def success(self) -> bool:
        ok = self.intrinsics.success
        if self.right is not None:
            ok = ok and self.right.success and self.stereo is not None and self.stereo.success
        return ok


class OfflineCalibration:
    """Frames in (stamp, grayscale image), calibration files out; stereo when a right camera is given."""

    def __init__(self, config: SessionConfig, *, stereo: bool = False) -> None:
        self.config = config
        self.left = CalibrationSession(config)
        self.right = CalibrationSession(config) if stereo else None
        self.frames = 0

    def add(self, stamp_ns: int, gray: np.ndarray) -> None:
        self.frames += 1
        self.left.add_image(stamp_ns, gray)

    def add_right(self, stamp_ns: int, gray: np.ndarray) -> None:
        if self.right is None:
            raise ValueError("a right image needs OfflineCalibration(stereo=True)")
        self.right.add_image(stamp_ns, gray)  # the right camera's own intrinsics
        self.left.add_right_image(stamp_ns, gray)  # and the pair with the left image of the same stamp

    def finish(
        self,
        out: Path,
        *,
        camera: str = "camera_color",
        min_views: int = 0,
        force: bool = False,
        source: str = "",
        report: bool = True,
    ) -> OfflineOutcome:
        """Calibrate, write the files (the JSON only for what succeeded; a report even when refused)."""
        from .report import write_report_png

        outcome = OfflineOutcome(self.left.calibrate(min_views=min_views, force=force), frames=self.frames)
        extra: dict[str, Any] = {"source": source or "depth-annotation calibrate"}
        sides = [(outcome.intrinsics, camera, "")]
        if self.right is not None:
            outcome.right = self.right.calibrate(min_views=min_views, force=force)
            sides.append((outcome.right, f"{camera}_right", " (right camera)"))
        for result, name, label in sides:
            if report and result.intrinsics is not None:
                outcome.files.append(
                    write_report_png(
                        out / f"{name}_report.png",
                        result,
                        max_rms_px=self.config.max_rms_px,
                        title=f"{name}: {source}{label}",
                    )
                )
        if outcome.intrinsics.success and outcome.intrinsics.intrinsics is not None:
            outcome.files.append(
                save_section(out, "intrinsics", {**outcome.intrinsics.to_dict(), **extra}, camera=camera)
            )
            outcome.files.append(save_camera_info_yaml(out, outcome.intrinsics.intrinsics, camera))
        right = outcome.right
        if right is not None and right.success and right.intrinsics is not None and outcome.intrinsics.success:
            self.left.set_right_camera_info(right.intrinsics)
            outcome.stereo = self.left.calibrate_stereo()
            if outcome.stereo.success:
                payload = {"board": self.config.spec.to_dict(), **outcome.stereo.to_dict(), **extra}
                payload["right_intrinsics"] = right.to_dict()
                outcome.files.append(save_section(out, "stereo", payload, camera=camera))
                outcome.files.append(save_camera_info_yaml(out, right.intrinsics, f"{camera}_right"))
        return outcome
