"""The exporter's own checks of a dataset directory: what a loader will rely on, verified.

`check_report(DIR)` decodes every frame when the dataset holds at most `FULL_DECODE_FRAMES`
frames, and otherwise a sample (the first, middle and last frame of every episode), and says
so. Every frame it decodes in full is compared with the xxh3_64 checksum written at export
(raw bytes before compression). `check_report(DIR, deep=True)` decodes and verifies every
frame whatever the size, and compares every annotation file with
the checksum `dataset_info.json` records; each corrupt frame is named by episode and index,
each file by its path. Datasets written before checksums existed are decoded, and the report
says their checksums are absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .chunk_codecs import open_h5
from .hdf5_writer import CHECKSUM_GROUP, file_checksum, frame_checksum

FULL_DECODE_FRAMES = 300  # the default check decodes every frame of a dataset this small (~1-3 s at 640x480)


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was and was not checked

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(out_dir: str | Path, *, deep: bool = False) -> list[str]:
    """Problems found (empty list: the dataset is consistent)."""
    return check_report(out_dir, deep=deep).problems


def _load_json(path: Path, report: CheckReport) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.problems.append(f"{path.name}: not readable JSON ({exc})")
        return None


def check_report(out_dir: str | Path, *, deep: bool = False) -> CheckReport:
    out = Path(out_dir)
    report = CheckReport()
    problems = report.problems
    h5_path = out / "export" / "dataset.h5"
    for p in (h5_path, out / "dataset_info.json", out / "taxonomy.json"):
        if not p.exists():
            problems.append(f"missing {p}")
    if problems:
        return report
    if list(out.glob("export/*.partial")):
        problems.append("a .partial file is left in export/")
    info = _load_json(out / "dataset_info.json", report)
    if not isinstance(info, dict) or not isinstance(info.get("episodes"), list):
        if info is not None:
            problems.append("dataset_info.json: no 'episodes' list")
        return report
    try:
        _check_h5(h5_path, info, deep, report)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        problems.append(f"{h5_path.name}: cannot be read as this exporter's dataset ({type(exc).__name__}: {exc})")
    _check_tasks(out, report)
    _check_annotation_files(out, info, deep, report)
    return report


def _check_h5(h5_path: Path, info: dict[str, Any], deep: bool, report: CheckReport) -> None:
    problems = report.problems
    readers = info.get("files", {}).get("readable_by", "")
    with open_h5(h5_path) as f:
        episodes = sorted(k for k in f if k.startswith("episode_"))
        listed = [e.get("episode") if isinstance(e, dict) else e for e in info["episodes"]]
        if listed != episodes:
            problems.append(f"dataset_info lists {listed}, the file has {episodes}")
        total = sum(int(f[name]["timestamps_ns"].shape[0]) for name in episodes)
        every = deep or total <= FULL_DECODE_FRAMES
        missing_sums: list[str] = []
        decoded = 0
        undecodable_total = 0
        for name in episodes:
            g = f[name]
            t = g["timestamps_ns"].shape[0]
            sums = g[CHECKSUM_GROUP] if CHECKSUM_GROUP in g else None
            for key, dtype, ndim in (("depth", np.uint16, 3), ("color", np.uint8, 4)):
                ds = g[key]
                if ds.dtype != dtype or ds.ndim != ndim or ds.shape[0] != t:
                    problems.append(f"{name}/{key}: {ds.dtype} {ds.shape}, expected {np.dtype(dtype)} with {t} frames")
                if ds.chunks is None or ds.chunks[0] != 1:
                    problems.append(f"{name}/{key}: not chunked one frame per chunk")
                n = ds.shape[0]
                indices = range(n) if every else sorted({0, n // 2, n - 1} if n else set())
                expected = None
                if every:  # every frame is decoded: each is compared with its checksum too
                    if sums is None or key not in sums:
                        missing_sums.append(f"{name}/{key}")
                    elif sums[key].shape[0] != n:
                        problems.append(f"{name}/{key}: {sums[key].shape[0]} checksums for {n} frames")
                    else:
                        expected = sums[key][:]
                undecodable = 0
                for i in indices:
                    try:
                        frame = ds[i]
                    except (OSError, ValueError) as exc:
                        undecodable += 1
                        problems.append(
                            f"{name}/{key} frame {i}: cannot be decoded ({exc}); the codec needs: {readers}"
                        )
                        continue
                    decoded += 1
                    if expected is not None and frame_checksum(frame) != int(expected[i]):
                        problems.append(f"{name}/{key} frame {i}: checksum mismatch (the stored pixels changed)")
                undecodable_total += undecodable
            if g["depth"].shape[1:] != g["color"].shape[1:3]:
                problems.append(f"{name}: depth and colour sizes differ")
            stamps = g["timestamps_ns"][:]
            if t and not np.all(np.diff(stamps) > 0):
                problems.append(f"{name}: timestamps do not increase")
            k = g["camera_intrinsics"][:]
            if k.shape != (4,) or not np.all(k[:2] > 0):
                problems.append(f"{name}: camera_intrinsics {k} is not fx, fy, cx, cy")
            if g.attrs.get("depth_scale") != 0.001:
                problems.append(f"{name}: depth_scale attribute is not 0.001")
            assignment = info.get("splits", {}).get("assignment", {})
            if "split" not in g.attrs or g.attrs["split"] != assignment.get(g.attrs.get("scene_id")):
                problems.append(f"{name}: split attribute disagrees with dataset_info.json")
        if every and undecodable_total:
            report.notes.append(
                f"decoded {decoded} of {2 * total} frames (depth and colour) of {len(episodes)} episode(s); "
                f"{undecodable_total} could not be decoded"
            )
        elif every:
            report.notes.append(f"decoded all {2 * total} frames (depth and colour) of {len(episodes)} episode(s)")
        else:
            report.notes.append(
                f"sampled: decoded {decoded} of {2 * total} frames (first, middle, last of each episode; "
                f"more than {FULL_DECODE_FRAMES} frames): run check --deep to decode and verify every frame"
            )
        if every:
            if missing_sums:
                report.notes.append(
                    f"checksums absent for {', '.join(missing_sums)} (written before checksums): decoded, not verified"
                )
            elif undecodable_total:
                report.notes.append(f"checksums verified for the {decoded} decoded frames")
            else:
                report.notes.append("every frame's checksum verified")


def _check_tasks(out: Path, report: CheckReport) -> None:
    tasks_path = out / "annotation" / "label_studio_tasks.json"
    if not tasks_path.exists():
        return
    tasks = _load_json(tasks_path, report)
    if tasks is None:
        return
    if not isinstance(tasks, list):
        report.problems.append(f"{tasks_path.name}: not a list of tasks")
        return
    for n, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("image", "depth", "depth16")):
            report.problems.append(f"{tasks_path.name}: task {n} is malformed (needs data.image, depth, depth16)")
            continue
        for key in ("image", "depth", "depth16"):
            rel = data[key].split("?d=", 1)[-1]
            if not (out / rel).exists():
                report.problems.append(f"task file missing: {rel}")
                break


def _check_annotation_files(out: Path, info: dict[str, Any], deep: bool, report: CheckReport) -> None:
    recorded = info.get("files", {}).get("checksums", {}).get("annotation")
    if not deep:
        return
    if not isinstance(recorded, dict):
        report.notes.append("annotation file checksums absent (written before checksums)")
        return
    bad = 0
    for rel, digest in recorded.items():
        path = out / rel
        if not path.is_file():
            report.problems.append(f"annotation file missing: {rel}")
            bad += 1
        elif file_checksum(path) != digest:
            report.problems.append(f"annotation file corrupt: {rel} (checksum mismatch)")
            bad += 1
    report.notes.append(f"{len(recorded) - bad} of {len(recorded)} annotation files match their checksums")
