"""Errors of dataset/ (see common/errors.py for the raise-vs-result rule)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from depth_annotation.common import DepthAnnotationError

if TYPE_CHECKING:
    from .bag_recovery import RecoveryReport


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


class BagInputError(BagError):
    """The input is not a readable bag at all (wrong kind of file, bad metadata, no permission):
    one line naming the file and the cause, never skipped."""


class NotABagError(BagInputError):
    """A directory that holds no rosbag2 bag (no metadata.yaml, no .mcap or .db3 file)."""


class NotABagFileError(BagInputError):
    """A storage file that is neither mcap nor sqlite3 (judged by its first bytes, not its name)."""


class UnknownStorageError(BagInputError):
    """metadata.yaml names a storage plugin other than mcap or sqlite3."""


class BagMetadataError(BagInputError):
    """metadata.yaml does not parse, is not rosbag2 metadata, or lists storage files that are missing."""


class BagPermissionError(BagInputError):
    """The bag directory, its metadata.yaml or a storage file cannot be read for lack of permission."""


class BagTruncatedError(BagError):
    """Raised after the last recoverable message of a damaged bag was yielded; `report` says what came back."""

    def __init__(self, report: RecoveryReport) -> None:
        self.report = report
        super().__init__(report.summary())


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
