"""The export pipeline shared by the offline command and the live node.

Messages (in any order the middleware or the bag gives) go into `ExportSession.add`;
the stamp synchronizer turns them into frames; frames go to the HDF5 writer and
the annotation exporter; `commit` writes dataset_info.json, taxonomy.json, the
Label Studio files and an export report, and publishes the HDF5 file atomically.
`export_bags` drives a session from rosbag2 files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_annotation.common import (
    DEFAULT_TAXONOMY,
    NO_QC_NAME,
    Extrinsics,
    ImageConversionError,
    Intrinsics,
    Taxonomy,
    atomic_io,
    depth_to_millimetres,
    image_to_array,
    image_to_rgb,
    rotation_from_quaternion,
    status_name,
)

from . import bag_io
from .annotation_export import AnnotationExporter
from .errors import BagError, BagInputError, BagShortReadError, BagTruncatedError, ExportError
from .hdf5_writer import EpisodeMeta, EpisodeWriter, Hdf5DatasetWriter
from .info import assign_splits, build_dataset_info
from .sync import StampSynchronizer

DEFAULT_TOPICS = {
    "depth": "/camera/aligned_depth_to_color/image_raw",
    "color": "/camera/color/image_raw",
    "info": "/camera/aligned_depth_to_color/camera_info",
    "quality": "/camera/depth_quality",
}


@dataclass
class ExportOptions:
    out_dir: Path
    topics: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    tolerance_ns: int = 16_666_666  # half a frame period at 30 fps
    codec: str = "gzip"
    level: int | None = None  # None: the codec's default (chunk_codecs.CODEC_TABLE)
    every_k: int = 10
    exclude_flagged: bool = True
    depth_range_m: tuple[float, float] = (0.3, 2.0)
    overwrite: bool = False
    seed: int = 0
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    taxonomy: Taxonomy = DEFAULT_TAXONOMY
    max_depth_mm: int = 65535


class ExportSession:
    def __init__(self, opts: ExportOptions) -> None:
        self.opts = opts
        out = Path(opts.out_dir)
        self.h5_path = out / "export" / "dataset.h5"
        self.writer = Hdf5DatasetWriter(self.h5_path, codec=opts.codec, level=opts.level, overwrite=opts.overwrite)
        self.annotations = AnnotationExporter(
            out,
            opts.taxonomy,
            every_k=opts.every_k,
            exclude_flagged=opts.exclude_flagged,
            depth_range_m=opts.depth_range_m,
        )
        self.episodes: list[dict[str, Any]] = []
        self.sync_counts: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.sensor: dict[str, Any] = {}
        self._episode: EpisodeWriter | None = None
        self._sync: StampSynchronizer | None = None
        self._pending_meta: dict[str, Any] = {}
        self.frames_written = 0
        self.on_frame: Callable[[int], None] | None = None

    # --- episodes ---------------------------------------------------------------------------
    def begin_episode(
        self, *, scene_id: str, source: str, depth_to_color: Extrinsics | None = None, has_quality: bool = True
    ) -> None:
        if self._sync is not None:
            self.end_episode()
        optional = ["quality"] if has_quality else []
        self._sync = StampSynchronizer(
            "depth", ["color", "info"], optional=optional, sticky=["info"], tolerance_ns=self.opts.tolerance_ns
        )
        self._pending_meta = {"scene_id": scene_id, "source": source, "depth_to_color": depth_to_color}
        self._episode = None

    def add(self, stream: str, stamp_ns: int, msg: Any) -> None:
        if self._sync is None:
            raise ExportError("add() before begin_episode()")
        if stream not in self._sync.streams:
            return
        for frame in self._sync.add(stream, stamp_ns, msg):
            self._write(frame.stamp_ns, frame.items)

    def end_episode(self) -> dict[str, Any] | None:
        if self._sync is None:
            return None
        for frame in self._sync.flush():
            self._write(frame.stamp_ns, frame.items)
        counts = {k: v.to_dict() for k, v in self._sync.counts.items()}
        self._sync = None
        summary = None
        if self._episode is not None:
            summary = self._episode.finish()
            summary["sync"] = counts
            self.episodes.append(summary)
        self.sync_counts.append(
            {"scene_id": self._pending_meta["scene_id"], "source": self._pending_meta["source"], "topics": counts}
        )
        self._episode = None
        return summary

    def _write(self, stamp: int, items: dict[str, Any]) -> None:
        depth_msg, color_msg, info_msg = items["depth"], items["color"], items["info"]
        # copy=False: the frame is only read (compressed, sampled) while the message is alive.
        depth = depth_to_millimetres(
            image_to_array(depth_msg, copy=False), depth_msg.encoding, max_mm=self.opts.max_depth_mm
        )
        color = image_to_rgb(color_msg, copy=False)
        if self._episode is None:
            intr = Intrinsics.from_camera_info(info_msg)
            if (intr.width, intr.height) != (depth.shape[1], depth.shape[0]):
                raise ExportError(
                    f"camera_info is {intr.width}x{intr.height} but depth is {depth.shape[1]}x{depth.shape[0]}"
                )
            meta = EpisodeMeta(
                scene_id=self._pending_meta["scene_id"],
                source=self._pending_meta["source"],
                topics={k: v for k, v in self.opts.topics.items()},
                intrinsics=intr,
                frame_id=str(color_msg.header.frame_id),
                depth_to_color=self._pending_meta["depth_to_color"],
                extra={"depth_encoding_in_source": str(depth_msg.encoding)},
            )
            self._episode = self.writer.begin_episode(meta, depth.shape)
            if not self.sensor:
                self.sensor = {"camera_info": intr.to_dict(), "frame_id": meta.frame_id}
        qc: dict[str, Any] | None = None
        q = items.get("quality")
        if q is not None:
            qc = {
                "status": int(q.status),
                "valid_fraction": float(q.valid_fraction),
                "roi_valid_fraction": float(q.roi_valid_fraction),
                "reasons": list(q.reasons),
            }
        ep = self._episode
        index = ep.frames
        ep.append(stamp, depth, color, qc)
        self.annotations.consider(
            index,
            episode=f"episode_{ep.index}",
            scene_id=ep.meta.scene_id,
            stamp_ns=stamp,
            color_rgb=color,
            depth_mm=depth,
            intrinsics=ep.meta.intrinsics.as_vector().tolist(),
            qc_status=status_name(qc["status"]) if qc else NO_QC_NAME,
        )
        self.frames_written += 1
        if self.on_frame is not None:
            self.on_frame(self.frames_written)

    # --- finishing ---------------------------------------------------------------------------
    def commit(self, *, capture_metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        self.end_episode()
        if not self.episodes:
            self.writer.abort()
            raise ExportError("no frames were exported (no synchronized depth + colour + camera_info)")
        out = Path(self.opts.out_dir)
        splits = assign_splits([e["scene_id"] for e in self.episodes], self.opts.ratios, self.opts.seed)
        for e in self.episodes:
            self.writer.h5[e["episode"]].attrs["split"] = splits[e["scene_id"]]
        sensor = dict(self.sensor)
        if capture_metadata:
            sensor["capture_metadata"] = capture_metadata.get("sensor")
        tax = self.opts.taxonomy.to_dict()
        ann = self.annotations.finish()
        h5 = self.writer.commit()
        info = build_dataset_info(
            episodes=self.episodes,
            splits=splits,
            sensor=sensor,
            taxonomy=tax,
            seed=self.opts.seed,
            ratios=self.opts.ratios,
            files={
                "hdf5": str(h5.relative_to(out)),
                "taxonomy": "taxonomy.json",
                "annotation": ann,
                "codec": self.writer.codec,
                "codec_level": self.writer.level,
                "readable_by": self.writer.readers,
            },
            sync={"tolerance_ns": self.opts.tolerance_ns, "per_episode": self.sync_counts},
        )
        atomic_io.write_json(out / "taxonomy.json", tax)
        atomic_io.write_json(out / "dataset_info.json", info)
        report = {
            "frames": self.frames_written,
            "episodes": len(self.episodes),
            "problems": self.problems,
            "sync": self.sync_counts,
            "annotation": ann,
            "hdf5": str(h5),
        }
        atomic_io.write_json(out / "export_report.json", report)
        return report

    def abort(self) -> None:
        self.writer.abort()


def _tf_depth_to_color(reader: bag_io.BagReader) -> Extrinsics | None:
    """depth->colour extrinsics from /tf_static (the driver's depth->colour optical transform), if recorded."""
    if "/tf_static" not in bag_io.topics(reader):
        return None
    try:
        found = list(bag_io.messages(reader, ["/tf_static"]))
    except BagTruncatedError:  # the main read reports the damage
        return None
    for _, _, msg in found:
        for t in msg.transforms:
            if t.header.frame_id.endswith("depth_optical_frame") and t.child_frame_id.endswith("color_optical_frame"):
                q, tr = t.transform.rotation, t.transform.translation
                # TF parent->child is the child's pose in the parent: it maps colour points into depth.
                color_to_depth = Extrinsics(
                    rotation_from_quaternion(q.x, q.y, q.z, q.w), np.array([tr.x, tr.y, tr.z]), "color", "depth"
                )
                return color_to_depth.inverse()
    return None


def find_capture_metadata(bag: Path) -> dict[str, Any] | None:
    """capture_metadata.json next to the bag, inside it, or one directory up."""
    for cand in (
        bag / "capture_metadata.json",
        bag.parent / "capture_metadata.json",
        bag.parent.parent / "capture_metadata.json",
    ):
        if cand.is_file():
            try:
                found = json.loads(cand.read_text())
            except json.JSONDecodeError:
                return None
            return found if isinstance(found, dict) else None
    return None


def _export_one(
    session: ExportSession,
    reader: bag_io.BagReader,
    bag: Path,
    scene: str,
    opts: ExportOptions,
    metadata: dict[str, Any] | None,
    stop_requested: Callable[[], bool],
) -> None:
    required = [opts.topics["depth"], opts.topics["color"], opts.topics["info"]]
    bag_io.require_topics(reader, required)
    have = bag_io.topics(reader)
    if have[opts.topics["depth"]].count == 0:
        raise ExportError(f"{bag}: no messages on {opts.topics['depth']} (empty bag)")
    has_q = opts.topics.get("quality") in have
    wanted = required + ([opts.topics["quality"]] if has_q else [])
    stream_of = {opts.topics[k]: k for k in ("depth", "color", "info", "quality") if opts.topics.get(k) in wanted}
    d2c = _tf_depth_to_color(reader)
    if d2c is None and metadata and metadata.get("sensor"):
        d2c = Extrinsics.from_dict(metadata["sensor"]["extrinsics"]["depth_to_color"])
    session.begin_episode(scene_id=scene, source=str(bag), depth_to_color=d2c, has_quality=has_q)
    read = 0
    try:
        for topic, _, msg in bag_io.messages(reader, wanted):
            if stop_requested():
                raise KeyboardInterrupt
            session.add(stream_of[topic], bag_io.stamp_of(msg), msg)
            read += 1
    except BagTruncatedError as exc:  # a damaged bag: what came before the damage was added
        session.problems.append(str(exc))
    except (ExportError, ImageConversionError, BagShortReadError):
        raise  # bad frames, or a reader that lost messages: no dataset from that
    except Exception as exc:  # damage part-way through the bag: keep what was read, report it
        session.problems.append(f"{bag}: stopped reading after {read} messages: {type(exc).__name__}: {exc}")
    session.end_episode()


def export_bags(
    bags: list[tuple[Path, str]],
    opts: ExportOptions,
    *,
    progress: bool = True,
    stop_requested: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Export (bag, scene_id) pairs into one dataset. Problems reading a bag are recorded in the
    report's `problems`; the caller decides whether they fail the run. `stop_requested` is polled
    per message: True aborts like KeyboardInterrupt (the partial file is removed)."""
    from tqdm import tqdm

    session = ExportSession(opts)
    metadata = None
    # The writer aborts (removes the partial file) on any exception, Ctrl-C included.
    with session.writer, tqdm(unit="frame", desc="export", disable=not progress, dynamic_ncols=True) as bar:
        session.on_frame = lambda n: bar.update(1)
        for bag, scene in bags:
            if not Path(bag).exists():
                raise BagError(f"bag not found: {bag}")
            with ExitStack() as stack:
                try:
                    reader = stack.enter_context(bag_io.open_bag(bag))
                except BagInputError:  # not a bag, bad metadata, no permission: one line, exit 2
                    raise
                except BagError as exc:  # unreadable metadata or index: skip the bag, say so
                    session.problems.append(str(exc))
                    continue
                metadata = metadata or find_capture_metadata(Path(bag))
                _export_one(session, reader, Path(bag), scene, opts, metadata, stop_requested)
        return session.commit(capture_metadata=metadata)
