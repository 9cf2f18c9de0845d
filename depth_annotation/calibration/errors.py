"""Errors of calibration/ (see common/errors.py for the raise-vs-result rule)."""

from __future__ import annotations

from depth_annotation.common import DepthAnnotationError


class BoardError(DepthAnnotationError, ValueError):
    """A board definition OpenCV cannot build."""


class ScaleFitError(DepthAnnotationError, ValueError):
    """Too few usable pixels (or a degenerate set) to fit."""


class CalibrationError(DepthAnnotationError, ValueError):
    """Calibration cannot run (too few views, mismatched sizes, no board)."""
