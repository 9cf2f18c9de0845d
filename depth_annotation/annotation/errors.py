"""Errors of annotation/ (see common/errors.py for the raise-vs-result rule)."""

from __future__ import annotations

from depth_annotation.common import DepthAnnotationError


class LabelStudioUnavailable(DepthAnnotationError, RuntimeError):
    """No Python with the Label Studio SDK to decode or encode its formats; the message says where we looked."""


class LabelStudioFormatError(DepthAnnotationError, ValueError):
    """A Label Studio region that the SDK cannot decode (malformed RLE, a polygon with too few points)."""


class AnnotationImportError(DepthAnnotationError, ValueError):
    """A Label Studio export that cannot be imported; `problems` lists each one with its task id.

    Nothing is written when this is raised: the import is all or nothing.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        head = "; ".join(self.problems[:3]) + (f"; ... ({len(self.problems)} in all)" if len(self.problems) > 3 else "")
        super().__init__(f"{source}: {len(self.problems)} problem(s): {head}")


class AnnotationDatasetError(DepthAnnotationError, ValueError):
    """A dataset directory without what the step needs (no HDF5 file, no imported annotations, no tasks)."""


class AnnotationDatasetLockedError(AnnotationDatasetError):
    """The dataset folder is being written (an export or another import holds `OUT/.export.lock`)."""


class ValidationConfigError(DepthAnnotationError, ValueError):
    """A validation config file with an unknown key, a wrong type or a value out of range."""


class LabelStudioServerError(DepthAnnotationError, RuntimeError):
    """The local Label Studio server cannot start or answer (venv missing, port taken, no reply, HTTP error)."""
