"""Errors of capture/ (see common/errors.py for the raise-vs-result rule)."""

from __future__ import annotations

from depth_annotation.common import DepthAnnotationError


class FilterConfigError(DepthAnnotationError, ValueError):
    """An unknown filter or option, or an option value outside its range."""


class ReplayError(DepthAnnotationError, RuntimeError):
    """A frame could not be turned back into an SDK frame (wrong shape, SDK timeout)."""


class WorkerFailed(DepthAnnotationError, RuntimeError):
    """A worker process died; frames in flight are lost (the caller counts them)."""


class SourceError(DepthAnnotationError, RuntimeError):
    """The source cannot be opened as configured (bad profile, no device, missing file)."""


class SourceUnavailable(SourceError):
    """The device is not there right now (unplugged); worth retrying."""


class ControlError(DepthAnnotationError, ValueError):
    """A sensor option cannot be set: the source has none (synthetic camera, recording), or the camera refused it."""
