"""Errors of dataset/ (see common/errors.py for the raise-vs-result rule)."""

from __future__ import annotations

from depth_annotation.common import DepthAnnotationError


class BagError(DepthAnnotationError, RuntimeError):
    """A bag that cannot be opened or lacks what was asked for."""


class CodecError(DepthAnnotationError, ValueError):
    """Unknown codec or a level outside its range; the message lists what is valid."""


class ExportError(DepthAnnotationError, RuntimeError):
    """The export cannot proceed (existing output, bad frames); the message says why."""
