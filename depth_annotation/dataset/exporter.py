"""The export pipeline shared by the offline command and the live node.

Messages (in any order the middleware or the bag gives) go into `ExportSession.add`;
the stamp synchronizer turns them into frames; frames go to the HDF5 writer and
the annotation exporter; `commit` writes dataset_info.json, taxonomy.json, the
Label Studio files and an export report, and publishes the whole dataset atomically.
`export_bags` drives a session from rosbag2 files.

Exclusive, all-or-nothing output: a session takes an OS lock (`flock`) on
`OUT/.export.lock` (a second export fails at once, naming the holder), writes
everything into a sibling staging directory `.OUT.staging-PID/`, and publishes it by
swapping the two directories in one `renameat2(RENAME_EXCHANGE)`: a reader sees the old
dataset or the new one, never a mix. The lock file is hard-linked into the staging
directory, so the lock stays on the published directory's inode.

Errors come in three kinds (`errors.py`): input (`ExportInputError`, named with bag, topic
and stamp), output (`ExportOutputError`: permission, disk full, a path occupied, the lock
held) and options (`ExportOptionError`, raised by `ExportOptions.validate` before any work).
Only input problems may leave a partial dataset, and only with `allow_partial`.
"""

from __future__ import annotations

import errno
import glob
import json
import math
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
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
from .chunk_codecs import resolve_codec
from .errors import (
    BagError,
    BagInputError,
    BagShortReadError,
    BagTruncatedError,
    CodecError,
    ExportError,
    ExportInputError,
    ExportLockedError,
    ExportOptionError,
    ExportOutputError,
)
from .hdf5_writer import CHECKSUM_ALGORITHM, EpisodeMeta, EpisodeWriter, Hdf5DatasetWriter, file_checksum
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
    checksums: bool = True  # xxh3_64 per frame (raw bytes) and per annotation file

    def validate(self) -> None:
        """Every value checked before any work starts: ExportOptionError names the option."""

        def bad(option: str, why: str) -> ExportOptionError:
            return ExportOptionError(f"{option}: {why}")

        if not isinstance(self.tolerance_ns, int) or self.tolerance_ns < 0:
            raise bad("tolerance", f"must be a finite number >= 0, got {self.tolerance_ns}")
        if self.every_k < 1:
            raise bad("every", f"must be at least 1 (every k-th frame), got {self.every_k}")
        lo, hi = self.depth_range_m
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
            raise bad("depth range", f"needs 0 <= depth-min < depth-max (metres), got {lo} and {hi}")
        if len(self.ratios) != 3 or not all(math.isfinite(r) and r >= 0 for r in self.ratios) or sum(self.ratios) <= 0:
            raise bad("split", f"needs three finite ratios >= 0 with a positive sum, got {self.ratios}")
        if not 1 <= self.max_depth_mm <= 65535:
            raise bad("max depth", f"must be 1..65535 mm, got {self.max_depth_mm}")
        try:
            resolve_codec(self.codec, self.level)
        except CodecError as exc:
            raise ExportOptionError(str(exc)) from None
        for key in ("depth", "color", "info"):
            if not self.topics.get(key):
                raise bad(f"{key} topic", "must not be empty")


LOCK_NAME = ".export.lock"
# What an export writes at the top of its folder. Anything else there (the QC node's qc/, the
# driver's captures/, a Label Studio data directory with people's annotations) belongs to another
# program sharing the folder and moves into the new dataset unchanged when it is published.
EXPORT_ENTRIES = frozenset({"export", "annotation", "dataset_info.json", "taxonomy.json", "export_report.json"})


def _output_error(exc: OSError, doing: str) -> ExportOutputError:
    """One line for an OSError on the output side, naming the path and the cause."""
    where = exc.filename if exc.filename is not None else ""
    cause = "no space left on device (disk full)" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return ExportOutputError(f"{doing} {where}: {cause}".replace("  ", " "))


def _display(path: Path | str) -> str:
    """A path as text that always prints and encodes (undecodable bytes escaped)."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM wait until the publish step is done (main thread only; elsewhere a no-op)."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class DatasetOutput:
    """The output directory of one export: locked, staged beside it, published in one step."""

    def __init__(self, out_dir: Path, *, overwrite: bool) -> None:
        self.out = Path(out_dir)
        self.published = False
        self.old: Path | None = None  # where the previous dataset went during the swap
        if self.out.exists() and not self.out.is_dir():
            raise ExportOutputError(f"{_display(self.out)} exists and is not a directory: the dataset needs a folder")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.lock = atomic_io.ExclusiveLock(self.out / LOCK_NAME).acquire()
        except atomic_io.LockHeldError as exc:
            raise ExportLockedError(
                f"{_display(self.out)} is being written by another export "
                f"(pid {exc.holder.get('pid', '?')}, started {exc.holder.get('started', '?')}, "
                f"command: {exc.holder.get('command', '?')}); nothing was written"
            ) from None
        except OSError as exc:
            raise _output_error(exc, "cannot create or lock the output folder") from None
        try:
            self._prepare(overwrite)
        except BaseException:
            self.lock.release()
            raise

    def _prepare(self, overwrite: bool) -> None:
        # Only a dataset's own entries make the folder "taken": what other programs keep there (the
        # QC node's qc/, the driver's captures/ — created while the launch files start the exporter
        # beside them — a Label Studio data dir) is carried over by `publish`, never replaced.
        present = sorted(p.name for p in self.out.iterdir() if p.name in EXPORT_ENTRIES)
        if present and not overwrite:
            h5 = self.out / "export" / "dataset.h5"
            if h5.exists():
                raise ExportOutputError(f"{_display(h5)} exists: refusing to overwrite it (use --overwrite)")
            raise ExportOutputError(
                f"{_display(self.out)} is not empty ({', '.join(map(_display, present[:3]))}"
                f"{', ...' if len(present) > 3 else ''}): refusing to overwrite it "
                "(use --overwrite: it replaces the whole dataset)"
            )
        # Under the lock, any staging folder of this output is a dead export's: remove it.
        for stale in glob.glob(glob.escape(str(self.out.parent / f".{self.out.name}.")) + "*-*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.staging = self.out.parent / f".{self.out.name}.staging-{os.getpid()}"
        try:
            self.staging.mkdir()
            os.link(self.out / LOCK_NAME, self.staging / LOCK_NAME)  # same inode: the lock moves with it
        except OSError as exc:
            shutil.rmtree(self.staging, ignore_errors=True)
            raise _output_error(exc, "cannot create the staging folder") from None

    def publish(self) -> None:
        """Swap the staging folder in (atomically where the OS can), then drop the old dataset."""
        try:
            for sub in [self.staging, *(p for p in self.staging.rglob("*") if p.is_dir())]:
                atomic_io.fsync_dir(sub)
            self._swap()
        except KeyboardInterrupt:  # a signal deferred during the swap arrives here
            if not self.published:
                raise
        except OSError as exc:
            raise _output_error(exc, "cannot publish the dataset into") from None
        if self.old is not None:
            shutil.rmtree(self.old, ignore_errors=True)
        self.lock.release()

    def _swap(self) -> None:
        with _signals_deferred():
            for entry in self.out.iterdir():
                if entry.name not in EXPORT_ENTRIES | {LOCK_NAME} and not (self.staging / entry.name).exists():
                    os.rename(entry, self.staging / entry.name)
            if atomic_io.exchange_dirs(self.staging, self.out):
                self.old = self.staging
            else:  # no RENAME_EXCHANGE here: two renames (for an instant there is no dataset, never a mix)
                self.old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
                os.rename(self.out, self.old)
                os.rename(self.staging, self.out)
            self.published = True
            atomic_io.fsync_dir(self.out.parent)

    def discard(self) -> None:
        """Remove the staging folder and release the lock (the previous dataset stays as it was)."""
        if not self.published:
            shutil.rmtree(self.staging, ignore_errors=True)
        self.lock.release()


def annotation_checksums(root: Path) -> dict[str, str]:
    """`file_checksum` of every file under `root/annotation`, keyed by its path relative to `root`."""
    sums: dict[str, str] = {}
    ann = root / "annotation"
    if ann.is_dir():
        for p in sorted(ann.rglob("*")):
            if p.is_file():
                sums[p.relative_to(root).as_posix()] = file_checksum(p)
    return sums


class ExportSession:
    def __init__(self, opts: ExportOptions) -> None:
        opts.validate()
        self.opts = opts
        self.output = DatasetOutput(Path(opts.out_dir), overwrite=opts.overwrite)
        stage = self.output.staging
        try:
            self.h5_path = stage / "export" / "dataset.h5"
            self.writer = Hdf5DatasetWriter(
                self.h5_path, codec=opts.codec, level=opts.level, overwrite=True, checksums=opts.checksums
            )
        except OSError as exc:
            self.output.discard()
            raise _output_error(exc, "cannot create") from None
        except BaseException:
            self.output.discard()
            raise
        self.annotations = AnnotationExporter(
            stage,
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
        self.source = ""  # the bag being read, for input errors

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
            self._write_checked(frame.stamp_ns, frame.items)

    def end_episode(self, *, flush: bool = True) -> dict[str, Any] | None:
        """Close the episode; `flush=False` drops frames still waiting for a partner (after bad input)."""
        if self._sync is None:
            return None
        for frame in self._sync.flush() if flush else ():
            self._write_checked(frame.stamp_ns, frame.items)
        counts = {k: v.to_dict() for k, v in self._sync.counts.items()}
        self._sync = None
        summary = None
        if self._episode is not None and self._episode.frames == 0:  # begun, nothing written: not an episode
            self._drop(self._episode)
        elif self._episode is not None:
            summary = self._episode.finish()
            summary["sync"] = counts
            self.episodes.append(summary)
        self.sync_counts.append(
            {"scene_id": self._pending_meta["scene_id"], "source": self._pending_meta["source"], "topics": counts}
        )
        self._episode = None
        return summary

    def discard_episode(self, reason: str) -> str | None:
        """Drop the episode being written, frames, annotation PNGs and tasks, and say so in `problems`.

        After the writer failed part-way (disk full) that episode is not complete: the dataset then
        holds only the episodes finished before it. Returns the dropped episode's name (None: none open)."""
        self._sync = None
        episode, self._episode = self._episode, None
        if episode is None:
            return None
        self._drop(episode)
        self.problems.append(f"{episode.name} ({episode.frames} frames) discarded: {reason}")
        return episode.name

    def _drop(self, episode: EpisodeWriter) -> None:
        self._episode = None
        self.frames_written -= episode.frames
        self.annotations.drop_episode(episode.name)
        try:
            episode.discard()
        except OSError as exc:
            raise _output_error(exc, "cannot drop the unfinished episode from") from None

    def _write_checked(self, stamp: int, items: dict[str, Any]) -> None:
        """One frame; an OSError while writing is an output problem, never an input one."""
        try:
            self._write(stamp, items)
        except OSError as exc:
            raise _output_error(exc, "cannot write") from None

    def _write(self, stamp: int, items: dict[str, Any]) -> None:
        depth_msg, color_msg, info_msg = items["depth"], items["color"], items["info"]
        # copy=False: the frame is only read (compressed, sampled) while the message is alive.
        depth = depth_to_millimetres(
            image_to_array(depth_msg, copy=False), depth_msg.encoding, max_mm=self.opts.max_depth_mm
        )
        color = image_to_rgb(color_msg, copy=False)
        source = self._pending_meta.get("source", "")
        if self._episode is not None:
            ep0 = self._episode
            if depth.shape != ep0.depth.frame_shape:
                raise ExportInputError(
                    f"resolution changes from {ep0.depth.frame_shape[1]}x{ep0.depth.frame_shape[0]} to "
                    f"{depth.shape[1]}x{depth.shape[0]} within the episode",
                    bag=source,
                    topic=self.opts.topics["depth"],
                    stamp_ns=stamp,
                )
            if ep0.stamps and stamp <= ep0.stamps[-1]:
                raise ExportInputError(
                    f"stamps go backwards ({stamp} after {ep0.stamps[-1]})",
                    bag=source,
                    topic=self.opts.topics["depth"],
                    stamp_ns=stamp,
                )
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
    def commit(
        self,
        *,
        capture_metadata: dict[str, Any] | None = None,
        before_publish: Callable[[Path], None] | None = None,
    ) -> dict[str, Any]:
        """Finish every file in the staging folder, run `before_publish(staging)`, checksum, publish.

        Any failure removes the staging folder and leaves the previous dataset as it was."""
        try:
            self.end_episode()
            if not self.episodes:
                why = f": {'; '.join(self.problems)}" if self.problems else ""
                raise ExportInputError(f"no frames were exported (no synchronized depth + colour + camera_info){why}")
            report = self._commit(capture_metadata, before_publish)
        except OSError as exc:
            self.abort()
            raise _output_error(exc, "cannot write") from None
        except BaseException:
            self.abort()
            raise
        return report

    @property
    def published(self) -> bool:
        return self.output.published

    def _commit(
        self, capture_metadata: dict[str, Any] | None, before_publish: Callable[[Path], None] | None
    ) -> dict[str, Any]:
        out = self.output.staging
        final = Path(self.opts.out_dir)
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
                "hdf5": h5.relative_to(out).as_posix(),
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
        if before_publish is not None:  # e.g. overlap marking: edits tasks and dataset_info before the checksums
            before_publish(out)
        if self.opts.checksums:
            info = json.loads((out / "dataset_info.json").read_text())
            info["files"]["checksums"] = {
                "algorithm": CHECKSUM_ALGORITHM,
                "frames": "/episode_N/checksums/{depth,color} in the HDF5 file (raw bytes before compression)",
                "annotation": annotation_checksums(out),
            }
            atomic_io.write_json(out / "dataset_info.json", info)
        report = {
            "frames": sum(int(e["frames"]) for e in self.episodes),  # what was committed, nothing else
            "episodes": len(self.episodes),
            "problems": self.problems,
            "sync": self.sync_counts,
            "annotation": ann,
            "hdf5": str(final / h5.relative_to(out)),
        }
        atomic_io.write_json(out / "export_report.json", report)
        self.output.publish()
        return report

    def abort(self) -> None:
        """Drop everything this session wrote; the previous dataset (if any) is untouched."""
        try:
            self.writer.abort()
        finally:
            self.output.discard()


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
    try:
        bag_io.require_topics(reader, required)
    except BagError as exc:
        raise ExportInputError(str(exc)) from None
    have = bag_io.topics(reader)
    if have[opts.topics["depth"]].count == 0:
        # A bag cut before its first complete chunk is not an empty recording: say which it is.
        reason = (
            f"no complete message before the damage (the bag was cut short: {'; '.join(map(str, reader.damage))})"
            if reader.truncated
            else "no messages"
        )
        raise ExportInputError(f"{reason} (empty bag)", bag=_display(bag), topic=opts.topics["depth"])
    has_q = opts.topics.get("quality") in have
    wanted = required + ([opts.topics["quality"]] if has_q else [])
    stream_of = {opts.topics[k]: k for k in ("depth", "color", "info", "quality") if opts.topics.get(k) in wanted}
    d2c = _tf_depth_to_color(reader)
    if d2c is None and metadata and metadata.get("sensor"):
        d2c = Extrinsics.from_dict(metadata["sensor"]["extrinsics"]["depth_to_color"])
    session.begin_episode(scene_id=_display(scene), source=_display(bag), depth_to_color=d2c, has_quality=has_q)
    read = 0
    messages = iter(bag_io.messages(reader, wanted))
    while True:
        if stop_requested():
            raise KeyboardInterrupt
        try:
            topic, _, msg = next(messages)
        except StopIteration:
            break
        except BagTruncatedError as exc:  # a damaged bag: what came before the damage was added
            session.problems.append(str(exc))
            break
        except (ExportError, BagShortReadError):
            raise  # a reader that lost messages: no dataset from that
        except Exception as exc:  # damage part-way through the bag: keep what was read, report it
            session.problems.append(
                f"bag {_display(bag)}: stopped reading after {read} messages: {type(exc).__name__}: {exc}"
            )
            break
        stamp = bag_io.stamp_of(msg)
        try:
            session.add(stream_of[topic], stamp, msg)
        except ImageConversionError as exc:
            raise ExportInputError(str(exc), bag=_display(bag), topic=topic, stamp_ns=stamp) from None
        except ExportInputError as exc:  # the frames before it stay; the rest of this bag is not read
            session.problems.append(f"{exc}; stopped reading this bag after {read} messages")
            session.end_episode(flush=False)
            return
        read += 1
    session.end_episode()


def export_bags(
    bags: list[tuple[Path, str]],
    opts: ExportOptions,
    *,
    progress: bool = True,
    stop_requested: Callable[[], bool] = lambda: False,
    allow_partial: bool = False,
    before_publish: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Export (bag, scene_id) pairs into one dataset, all or nothing.

    Options are validated and every bag is found before anything is written. Input problems
    met while reading are listed in the report's `problems`; with `allow_partial` the frames
    read are published, without it nothing is (`ExportInputError`). `stop_requested` is polled
    per message: True aborts like KeyboardInterrupt. On any failure or interruption the
    staging folder is removed and the previous dataset, if any, is left untouched."""
    from tqdm import tqdm

    opts.validate()
    out = Path(opts.out_dir).resolve()
    for bag, _ in bags:
        if not Path(bag).exists():
            raise BagError(f"bag not found: {_display(bag)}")
        if opts.overwrite and (out == Path(bag).resolve() or out in Path(bag).resolve().parents):
            raise ExportOptionError(f"--out {_display(out)} holds the bag {_display(bag)}: --overwrite would delete it")
    session = ExportSession(opts)
    metadata = None
    try:
        with tqdm(unit="frame", desc="export", disable=not progress, dynamic_ncols=True) as bar:
            session.on_frame = lambda n: bar.update(1)
            for bag, scene in bags:
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
        if session.problems and not allow_partial:
            frames = session.frames_written
            raise ExportInputError(
                "; ".join(session.problems)
                + f". No dataset written ({frames} frames were read; --allow-partial publishes them)"
            )
        return session.commit(capture_metadata=metadata, before_publish=before_publish)
    except BaseException:
        if not session.published:
            session.abort()
        raise
