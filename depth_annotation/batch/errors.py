"""Errors of the batch runner (bad input and broken state; per-bag failures are results)."""

from depth_annotation.common import DepthAnnotationError


class BatchError(DepthAnnotationError, ValueError):
    """Bad batch input: no bags matched, two bags with one stem, an unusable output URL."""


class RayUnavailable(DepthAnnotationError, RuntimeError):
    """Ray is not installed (it is an optional dependency)."""
