"""Errors of preannotation/ (see common/errors.py for the raise-vs-result rule)."""

from __future__ import annotations

from depth_annotation.common import DepthAnnotationError


class PreannotationConfigError(DepthAnnotationError, ValueError):
    """A pre-annotation setting out of range or a config file that cannot be read; the message names it."""


class PreannotationError(DepthAnnotationError, RuntimeError):
    """The dataset cannot be pre-annotated (missing tasks, frames or intrinsics); the message says which."""


class LabelStudioEncoderError(DepthAnnotationError, RuntimeError):
    """Label Studio's brush RLE encoder could not be run (no interpreter with label-studio-sdk, or it failed)."""
