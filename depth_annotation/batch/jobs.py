"""One bag's work, Ray-free: what a Ray task (or actor) runs, and what a rerun checks first.

Each bag gets its own output folder `OUT/<stem>/`, written to a staging folder and published
by renaming it (local) or uploading it (any other fsspec URL) only when the bag's work is
complete; then a done-marker `OUT/.batch/<stem>.<mode>.json` is written atomically. A rerun
skips a bag whose marker holds the same fingerprint and redoes every other one, so a bag
killed half-way (no marker, maybe a stale staging folder) is simply done again.

The fingerprint of a bag is its content as far as cheap to read: for every file of the bag
(`metadata.yaml` and the storage files, or the one .mcap/.db3) its name, its size and an
xxhash of its first and last MiB (not its mtime, so a copied bag is not redone), plus our
version and the job's options.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import depth_annotation
from depth_annotation.common import atomic_io

if TYPE_CHECKING:
    from depth_annotation.dataset import ExportOptions
    from depth_annotation.mono import DepthModel, MonoModelConfig

MIB = 1 << 20
MARKER_DIR = ".batch"
BAG_SUFFIXES = (".mcap", ".db3")


@dataclass
class BagResult:
    """What happened to one bag: the JSON summary's row."""

    bag: str
    stem: str
    status: str  # done | skipped | failed
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    attempt_pid: int = 0  # the worker process that did the work (retries show a new one)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ExportJob:
    """`depth-annotation export` of one bag into OUT/<stem>/ with these options (out_dir is replaced)."""

    out: str
    options: ExportOptions
    allow_partial: bool = False

    def fingerprint_options(self) -> dict[str, Any]:
        o = dataclasses.asdict(self.options)
        o.pop("out_dir")
        o.pop("overwrite")
        o["taxonomy"] = self.options.taxonomy.to_dict()
        o["allow_partial"] = self.allow_partial
        return o


@dataclass(frozen=True)
class ValidateJob:
    """`depth-annotation validate` of one dataset folder into OUT/<stem>/."""

    out: str
    config: str | None = None

    def fingerprint_options(self) -> dict[str, Any]:
        text = Path(self.config).read_text(encoding="utf-8") if self.config else None
        return {"config": text}


@dataclass(frozen=True)
class MonoJob:
    """`depth-annotation mono --bag` of one bag into OUT/<stem>/ (depth/*.png + scale.json)."""

    out: str
    model: MonoModelConfig
    topic: str = "/camera/color/image_raw"
    depth_topic: str | None = None
    scale_file: str | None = None
    metric_model: bool = False

    @property
    def mode(self) -> str:
        return "metric_model" if self.metric_model else ("sensor_fit" if self.depth_topic else "scale_file")

    def fingerprint_options(self) -> dict[str, Any]:
        o = {k: v for k, v in dataclasses.asdict(self).items() if k != "out"}
        o["model"] = dataclasses.asdict(self.model)
        return o


# --- names, fingerprints, markers -------------------------------------------------------------
def bag_stem(bag: str | Path) -> str:
    """The output folder name of a bag: a bag folder's name, a bag file's name without .mcap/.db3."""
    p = Path(bag)
    return p.stem if p.suffix in BAG_SUFFIXES else p.name


def _bag_files(bag: Path) -> list[Path]:
    if bag.is_file():
        return [bag]
    return sorted(p for p in bag.rglob("*") if p.is_file())


def bag_fingerprint(bag: str | Path, options: dict[str, Any], mode: str) -> str:
    """xxh3-128 over (name, size, first MiB, last MiB) of each file of the bag, our version, the options."""
    import xxhash

    h = xxhash.xxh3_128()
    h.update(
        json.dumps(
            {"version": depth_annotation.__version__, "mode": mode, "options": options}, sort_keys=True, default=str
        ).encode()
    )
    root = Path(bag)
    for f in _bag_files(root):
        size = f.stat().st_size
        h.update(f"{f.relative_to(root) if f != root else f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(MIB))
            if size > MIB:
                fh.seek(max(MIB, size - MIB))
                h.update(fh.read(MIB))
    return h.hexdigest()


def _fs(url: str) -> tuple[Any, str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, str(path)


def _is_local(fs: Any) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def marker_path(out: str, stem: str, mode: str) -> str:
    return f"{out.rstrip('/')}/{MARKER_DIR}/{stem}.{mode}.json"


def read_marker(out: str, stem: str, mode: str) -> dict[str, Any] | None:
    fs, path = _fs(marker_path(out, stem, mode))
    try:
        with fs.open(path, "rb") as fh:
            found = json.loads(fh.read())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return found if isinstance(found, dict) else None


def _write_marker(out: str, stem: str, mode: str, marker: dict[str, Any]) -> None:
    fs, path = _fs(marker_path(out, stem, mode))
    if _is_local(fs):
        atomic_io.write_json(path, marker)  # temp file + fsync + rename: never half a marker
    else:
        fs.pipe_file(path, json.dumps(marker, indent=2).encode())  # an object store PUT is atomic


# --- publishing ------------------------------------------------------------------------------
@contextmanager
def _staging(out: str, stem: str) -> Iterator[Path]:
    """A fresh local folder for one attempt: beside the output when local (same file system, so
    publishing is a rename), else a temporary folder on the worker. Removed unless published."""
    fs, path = _fs(out)
    if _is_local(fs):
        base = Path(path) / MARKER_DIR / "staging"
        base.mkdir(parents=True, exist_ok=True)
        for stale in base.glob(f"{stem}-*"):  # an earlier attempt whose worker died (Ray retries one at a time)
            shutil.rmtree(stale, ignore_errors=True)
        staging = base / f"{stem}-{uuid.uuid4().hex[:12]}"
        staging.mkdir()
    else:
        staging = Path(tempfile.mkdtemp(prefix=f"depth-annotation-{stem}-"))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, out: str, stem: str) -> None:
    """Make the staging folder OUT/<stem>: a rename locally (an older partial folder is moved
    aside first and removed after), an upload otherwise (the old folder is removed first)."""
    fs, path = _fs(out)
    if _is_local(fs):
        dest = Path(path) / stem
        old = None
        if dest.exists():
            old = Path(path) / MARKER_DIR / "staging" / f"{stem}-old-{uuid.uuid4().hex[:12]}"
            os.replace(dest, old)
        os.replace(staging, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    dest_url = f"{path.rstrip('/')}/{stem}"
    if fs.exists(dest_url):
        fs.rm(dest_url, recursive=True)
    fs.put(str(staging) + "/", dest_url, recursive=True)


def _exists(out: str, stem: str) -> bool:
    fs, path = _fs(out)
    return bool(fs.exists(f"{path.rstrip('/')}/{stem}"))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_one(
    item: str,
    out: str,
    mode: str,
    options: dict[str, Any],
    work: Callable[[Path], tuple[int, str | None]],
    fingerprint: Callable[[], str] | None = None,
) -> BagResult:
    """Skip if done with the same fingerprint; else run `work(staging)` -> (frames, problem),
    publish and mark. Any exception becomes a failed result (the other bags go on)."""
    stem = bag_stem(item)
    t0 = time.perf_counter()
    result = BagResult(bag=item, stem=stem, status="failed", attempt_pid=os.getpid())
    try:
        fp = fingerprint() if fingerprint else bag_fingerprint(item, options, mode)
        marker = read_marker(out, stem, mode)
        if marker is not None and marker.get("fingerprint") == fp and _exists(out, stem):
            result.status, result.frames = "skipped", int(marker.get("frames", 0))
            return result
        with _staging(out, stem) as staging:
            frames, problem = work(staging)
            result.frames = frames
            if problem is not None:
                result.error = problem
                return result
            _publish(staging, out, stem)
        _write_marker(
            out,
            stem,
            mode,
            {"fingerprint": fp, "bag": item, "frames": frames, "version": depth_annotation.__version__},
        )
        result.status = "done"
    except Exception as exc:  # one bag's failure is its row in the summary, not the run's end
        result.error = _one_line(exc)
    finally:
        result.seconds = time.perf_counter() - t0
    return result


# --- the three kinds of work -------------------------------------------------------------------
def run_export(bag: str, job: ExportJob, hook: Callable[[str], None] | None = None) -> BagResult:
    """`depth-annotation export BAG --out OUT/<stem>` (scene id: the bag's name, as there)."""
    from depth_annotation.dataset import export_bags

    def work(staging: Path) -> tuple[int, str | None]:
        if hook is not None:
            hook(bag)
        opts = dataclasses.replace(job.options, out_dir=staging, overwrite=False)
        report = export_bags([(Path(bag), Path(bag).name)], opts, progress=False)
        # the report names the file where a separate `export --out OUT/<stem>` would have put it
        final = f"{job.out.rstrip('/')}/{bag_stem(bag)}/export/dataset.h5"
        report_path = staging / "export_report.json"
        atomic_io.write_json(report_path, {**json.loads(report_path.read_text(encoding="utf-8")), "hdf5": final})
        problems = [str(p) for p in report["problems"]]
        if problems and not job.allow_partial:
            return int(report["frames"]), "partly unreadable (use --allow-partial): " + "; ".join(problems)
        return int(report["frames"]), None

    return _run_one(bag, job.out, "export", job.fingerprint_options(), work)


def run_validate(dataset: str, job: ValidateJob, hook: Callable[[str], None] | None = None) -> BagResult:
    """`depth-annotation validate --dataset DATASET --out OUT/<stem>`; failed frames are a failed row."""
    from depth_annotation.annotation import dataset_files, validate_dataset

    def work(staging: Path) -> tuple[int, str | None]:
        if hook is not None:
            hook(dataset)
        summary = validate_dataset(dataset, job.config, out_dir=staging)
        s = summary.report["summary"]
        problem = f"{s['failed']} of {s['frames']} frame(s) failed validation" if summary.failed else None
        return int(s["frames"]), problem

    def fingerprint() -> str:
        return bag_fingerprint(dataset_files(dataset).h5, job.fingerprint_options(), "validate")

    return _run_one(dataset, job.out, "validate", job.fingerprint_options(), work, fingerprint)


def run_mono(bag: str, job: MonoJob, model: DepthModel, hook: Callable[[str], None] | None = None) -> BagResult:
    """`depth-annotation mono --bag BAG --out OUT/<stem>` with an already loaded model."""
    from depth_annotation.dataset import bag_io
    from depth_annotation.mono import MetricAligner, load_scale_file, write_depth_folder

    def work(staging: Path) -> tuple[int, str | None]:
        if hook is not None:
            hook(bag)
        aligner = MetricAligner(job.mode, scale=load_scale_file(job.scale_file) if job.scale_file else None)
        (staging / "depth").mkdir()  # a fresh staging folder: a leftover one would be a bug
        frames = bag_io.colour_frames_with_depth(bag, job.topic, job.depth_topic)
        count = write_depth_folder(
            frames, model, aligner, staging, model_name=job.model.model, scale_file=job.scale_file
        )
        return count, None

    return _run_one(bag, job.out, "mono", job.fingerprint_options(), work)
