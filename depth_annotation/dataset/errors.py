"""Errors of dataset/ (see common/errors.py for the raise-vs-result rule)."""

from __future__ import annotations

from depth_annotation.common import DepthAnnotationError


class BagError(DepthAnnotationError, RuntimeError):
    """A bag that cannot be opened or lacks what was asked for."""


class CodecError(DepthAnnotationError, ValueError):
    """Unknown codec or a level outside its range; the message lists what is valid."""


class ExportError(DepthAnnotationError, RuntimeError):
    """The export cannot proceed (existing output, bad frames); the message says why."""


class BagShortReadError(BagError):
    """Reading returned fewer messages than the bag's storage holds: a reader bug or damage, never success."""

    def __init__(self, bag: object, shortfalls: dict[str, tuple[int, int]]) -> None:
        self.bag = bag
        self.shortfalls = shortfalls  # topic -> (messages read, messages the storage holds)
        listing = ", ".join(f"{topic}: read {read} of {stored}" for topic, (read, stored) in shortfalls.items())
        super().__init__(f"bag {bag}: the reader returned fewer messages than the storage holds ({listing})")
