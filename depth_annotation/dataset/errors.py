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


# The exporter's taxonomy. Every error an export raises on purpose is one of three kinds, and the
# kind decides what is left behind: only an input problem may ever leave a (partial) dataset, and
# only when the user allowed it; output and option problems leave the previous dataset untouched.


class ExportInputError(ExportError):
    """A problem with what is read (a bag, a topic, a frame): named with bag, topic and stamp."""

    def __init__(self, message: str, *, bag: object = None, topic: str | None = None, stamp_ns: int | None = None):
        self.bag, self.topic, self.stamp_ns = bag, topic, stamp_ns
        where = ", ".join(
            part
            for part in (
                f"bag {bag}" if bag is not None else "",
                f"topic {topic}" if topic else "",
                f"stamp {stamp_ns}" if stamp_ns is not None else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class ExportOutputError(ExportError):
    """A problem writing the dataset (permission, disk full, a path occupied): nothing is published."""


class ExportLockedError(ExportOutputError):
    """Another export holds the output directory's lock; the message names it (pid, command, start)."""


class ExportOptionError(ExportError, ValueError):
    """An option value that cannot work, found before any work starts."""
