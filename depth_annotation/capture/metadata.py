"""`capture_metadata.json`: what a session was recorded with, written atomically.

Written when streaming starts, refreshed periodically and finalised at shutdown,
so even a killed session leaves a complete (if not final) record.
"""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path
from typing import Any

from depth_annotation.common import atomic_io

from .filters import FilterSettings, settings_to_dict
from .frame_accounting import StreamCounter
from .hw_clock import HOST_CLOCK_DOMAINS
from .sources import DeviceInfo

SCHEMA_VERSION = 1
FILE_NAME = "capture_metadata.json"


def utc_iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).isoformat(timespec="milliseconds")


def build_metadata(
    *,
    session_id: str,
    info: DeviceInfo | None,
    filters: list[FilterSettings],
    align: bool,
    warmup_s: float,
    counters: dict[str, StreamCounter],
    started_ns: int,
    stopped_ns: int | None,
    temperatures: dict[str, float],
    sdk_work: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    timestamp_domain: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "session_id": session_id,
        "final": stopped_ns is not None,
        "start_time_utc": utc_iso(started_ns),
        "stop_time_utc": utc_iso(stopped_ns) if stopped_ns is not None else None,
        "host": platform.node(),
        "sensor": None,
        "processing": {
            "filters": settings_to_dict(filters),
            "filter_order": [f.name for f in filters],
            "align_depth_to_color": align,
            "depth_storage": "uint16 millimetres (16UC1)",
            "warmup_s": warmup_s,
            **(sdk_work or {}),
        },
        "timing": {
            "timestamp_domain": timestamp_domain,  # None until the first frame
            "stamps": (
                None
                if timestamp_domain is None
                else "SDK timestamp as-is (host clock)"
                if timestamp_domain in HOST_CLOCK_DOMAINS
                else "hardware clock mapped to the host clock (capture/hw_clock.py)"
            ),
        },
        "temperatures_c": temperatures,
        "frames": {name: c.to_dict() for name, c in counters.items()},
    }
    if info is not None:
        data["sensor"] = {
            "source": info.source,
            "product": info.name,
            "product_line": info.product_line,
            "serial_number": info.serial,
            "firmware_version": info.firmware,
            "warnings": info.warnings,
            "depth_scale_m": info.depth_scale_m,
            "profiles": {"color": str(info.color_profile), "depth": str(info.depth_profile)},
            "intrinsics": {"color": info.color_intrinsics.to_dict(), "depth": info.depth_intrinsics.to_dict()},
            "extrinsics": {"depth_to_color": info.depth_to_color.to_dict()},
            "exposure": info.controls,
        }
    if extra:
        data.update(extra)
    return data


def write_metadata(directory: str | Path, data: dict[str, Any]) -> Path:
    return atomic_io.write_json(Path(directory) / FILE_NAME, data)
