"""One base class for every error the package raises on purpose.

The rule, applied in every subpackage:
- **raise** (a subclass of `DepthAnnotationError`) for bad input — a file, a message,
  a parameter value — and for broken state — a device gone, a worker dead, a writer
  that failed. Callers that can recover catch the subpackage's class; the CLI and the
  nodes turn it into one line for the user.
- **return a result object** for outcomes the user acts on: a calibration that fails
  its gate, a frame that QC flags, a view the selector declines. Those are answers,
  not failures, and carry what the user needs to decide (RMS, coverage, reasons).

Each subclass also derives from the built-in it replaced (`ValueError` for bad
values, `RuntimeError` for state), so `except ValueError` keeps working.
"""

from __future__ import annotations


class DepthAnnotationError(Exception):
    """Base of every error raised on purpose by depth_annotation."""


class CameraModelError(DepthAnnotationError, ValueError):
    """Intrinsics, extrinsics or a camera_info document that cannot describe a camera."""


class ImageConversionError(DepthAnnotationError, ValueError):
    """An image message whose encoding, size or step does not match its data."""


class TaxonomyError(DepthAnnotationError, ValueError):
    """A taxonomy file with missing, duplicate or malformed labels."""
