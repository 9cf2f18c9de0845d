"""Errors of mono/ (see common/errors.py for the raise-vs-result rule)."""

from __future__ import annotations

from depth_annotation.common import DepthAnnotationError


class MetricConfigError(DepthAnnotationError, ValueError):
    pass


class MonoModelError(DepthAnnotationError, RuntimeError):
    """The model cannot be loaded or run as configured; the message says what to do."""
