"""The QC verdict of a depth frame, one vocabulary for QC, the exporter, reports and views.

The values are those of `depth_annotation/msg/DepthQuality` (GOOD=0 ... ERROR=3);
HDF5 stores them as uint8 with `NO_QC` (255) for a frame that had no QC message.
"""

from __future__ import annotations

from enum import IntEnum


class QcStatus(IntEnum):
    GOOD = 0  # coverage at or above the good fraction (85 % by default)
    WARN = 1  # between the flag and good fractions, or a secondary check failed
    FLAGGED = 2  # coverage below the flag fraction (70 %): the frame needs review
    ERROR = 3  # the frame could not be analysed (bad encoding, ...)


NO_QC = 255  # stored for frames without a DepthQuality message
NO_QC_NAME = "no QC"


def status_name(value: int) -> str:
    """`QcStatus` name of a stored value, `NO_QC_NAME` for 255; a ValueError for anything else."""
    if value == NO_QC:
        return NO_QC_NAME
    return QcStatus(value).name
