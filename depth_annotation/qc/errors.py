"""Errors of qc/ (see common/errors.py for the raise-vs-result rule)."""

from __future__ import annotations

from depth_annotation.common import DepthAnnotationError


class CoverageConfigError(DepthAnnotationError, ValueError):
    pass
