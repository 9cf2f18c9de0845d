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
    error: str | None = None  # why a failed bag failed
    outcome: str | None = None  # a completed bag's finding: "partial" (export) or "failed validation" (validate)
    note: str | None = None  # what the outcome is about: the unreadable parts, the failed frame count
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
        """The options, with the scale file's content (not only its path) and the model's files'
        names, sizes and first/last MiB, as for a bag: for a local model (a directory or an .onnx
        file) those files, for a hub model the revision this machine's Hugging Face cache holds.
        A changed calibration, re-saved weights or a new hub revision redo the bags."""
        o = {k: v for k, v in dataclasses.asdict(self).items() if k != "out"}
        o["model"] = dataclasses.asdict(self.model)
        if self.scale_file:
            o["scale_file_content"] = Path(self.scale_file).read_text(encoding="utf-8")
        local = Path(self.model.model)
        snapshot = local if local.exists() else hub_snapshot(self.model.model)
        if snapshot is not None:
            o["model_files"] = _files_digest(snapshot)
        return o


def hub_snapshot(repo_id: str) -> Path | None:
    """The folder of the revision of a hub model that the local Hugging Face cache holds (what
    `from_pretrained` loads offline), or None when it is not cached here (then the workers
    download it, and only its name is fingerprinted)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a repo id (a missing local path): the model fails to load with its own message
        return None
    return Path(found).parent if isinstance(found, str) else None


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
    _hash_files(h, Path(bag))
    return h.hexdigest()


def _files_digest(root: Path) -> str:
    """xxh3-128 over (name, size, first MiB, last MiB) of each file under root (or of root, a file)."""
    import xxhash

    h = xxhash.xxh3_128()
    _hash_files(h, root)
    return h.hexdigest()


def _hash_files(h: Any, root: Path) -> None:
    for f in _bag_files(root):
        size = f.stat().st_size
        h.update(f"{f.relative_to(root) if f != root else f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(MIB))
            if size > MIB:
                fh.seek(max(MIB, size - MIB))
                h.update(fh.read(MIB))


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
# What each kind of job puts into OUT/<stem>/: only a folder holding nothing else is replaced by a
# rerun (an earlier output of this kind, complete or not); anything else there is the user's.
OUTPUT_LAYOUT = {
    "export": frozenset({"export", "annotation", "dataset_info.json", "taxonomy.json", "export_report.json"})
    | {".export.lock"},
    "mono": frozenset({"depth", "scale.json"}),
    "validate": frozenset({"validation_report.json", "validation_report.html", "reannotation_tasks.json"}),
}
ATTEMPT_LOCK = ".lock"  # OUT/.batch/staging/<stem>/<attempt>.lock: held by the attempt's process while it lives
ATTEMPT_WORK = "out"  # OUT/.batch/staging/<stem>/<attempt>/out: what becomes OUT/<stem>


def check_replaceable(out: str, stem: str, mode: str) -> None:
    """Raise BatchError when OUT/<stem> exists and holds anything an output of `mode` does not."""
    from .errors import BatchError

    fs, path = _fs(out)
    dest = f"{path.rstrip('/')}/{stem}"
    if not fs.exists(dest):
        return
    if not fs.isdir(dest):
        raise BatchError(f"{out.rstrip('/')}/{stem} exists and is not a batch output: refusing to replace it")
    foreign = sorted(n for n in (Path(str(e)).name for e in fs.ls(dest, detail=False)) if n not in OUTPUT_LAYOUT[mode])
    if foreign:
        raise BatchError(
            f"{out.rstrip('/')}/{stem} exists and is not a batch output (it holds {', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}): refusing to replace it"
        )


def _remove_dead_attempts(stem_dir: Path) -> None:
    """Remove the staging of this stem's earlier attempts whose process is gone (its lock is free):
    the attempt folder, with the exporter's own staging folder inside it. A live attempt is left."""
    for lock_file in stem_dir.glob(f"*{ATTEMPT_LOCK}"):
        lock = atomic_io.ExclusiveLock(lock_file)
        try:
            lock.acquire()
        except atomic_io.LockHeldError:
            continue  # alive (a concurrent retry of this bag)
        except OSError:
            continue
        try:
            shutil.rmtree(stem_dir / lock_file.name.removesuffix(ATTEMPT_LOCK), ignore_errors=True)
            lock_file.unlink(missing_ok=True)
        finally:
            lock.release()
    for folder in stem_dir.iterdir():  # a folder without its lock file: its attempt has ended
        if folder.is_dir() and not (stem_dir / (folder.name + ATTEMPT_LOCK)).exists():
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _staging(out: str, stem: str) -> Iterator[Path]:
    """A fresh local folder for one attempt. Local output: OUT/.batch/staging/<stem>/<attempt>/out
    (same file system, so publishing is a rename), the attempt's lock file held while it runs and
    everything an attempt writes (the exporter stages beside its output) inside <attempt>/, so an
    attempt whose worker died is removed whole by the next one. Other URLs: a temporary folder on
    the worker. Removed unless published."""
    fs, path = _fs(out)
    if not _is_local(fs):
        staging = Path(tempfile.mkdtemp(prefix=f"depth-annotation-{stem}-"))
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    stem_dir = Path(path) / MARKER_DIR / "staging" / stem
    stem_dir.mkdir(parents=True, exist_ok=True)
    _remove_dead_attempts(stem_dir)
    attempt = stem_dir / uuid.uuid4().hex[:12]
    lock = atomic_io.ExclusiveLock(stem_dir / (attempt.name + ATTEMPT_LOCK)).acquire()  # before the folder
    try:
        attempt.mkdir()
        staging = attempt / ATTEMPT_WORK
        staging.mkdir()
        yield staging
    finally:
        shutil.rmtree(attempt, ignore_errors=True)
        Path(lock.path).unlink(missing_ok=True)
        lock.release()
        try:
            stem_dir.rmdir()  # the last attempt of this stem: no empty folder left
        except OSError:
            pass


def _publish(staging: Path, out: str, stem: str, mode: str) -> None:
    """Make the staging folder OUT/<stem>: a rename locally (an earlier output of this kind is
    moved into the attempt folder first and removed with it), an upload otherwise (the old
    folder is removed first). Anything else at OUT/<stem> is refused (`check_replaceable`)."""
    check_replaceable(out, stem, mode)
    fs, path = _fs(out)
    if _is_local(fs):
        dest = Path(path) / stem
        if dest.exists():
            os.replace(dest, staging.parent / "replaced")
        os.replace(staging, dest)
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


@dataclass
class WorkDone:
    """What one bag's work found: frames written, and for a completed bag its outcome (see BagResult)."""

    frames: int
    outcome: str | None = None
    note: str | None = None


def _run_one(
    item: str,
    out: str,
    mode: str,
    options: dict[str, Any],
    work: Callable[[Path], WorkDone],
    fingerprint: Callable[[], str] | None = None,
    finish: Callable[[Path, str], None] | None = None,
) -> BagResult:
    """Skip if done with the same fingerprint; else run `work(staging)`, `finish(staging, final)`
    (rewrite paths that name the staging folder), publish and mark. Any exception becomes a
    failed result (the other bags go on)."""
    stem = bag_stem(item)
    t0 = time.perf_counter()
    result = BagResult(bag=item, stem=stem, status="failed", attempt_pid=os.getpid())
    try:
        fp = fingerprint() if fingerprint else bag_fingerprint(item, options, mode)
        marker = read_marker(out, stem, mode)
        if marker is not None and marker.get("fingerprint") == fp and _exists(out, stem):
            result.status, result.frames = "skipped", int(marker.get("frames", 0))
            result.outcome, result.note = marker.get("outcome"), marker.get("note")
            return result
        check_replaceable(out, stem, mode)  # before the work: refuse early, not after it
        with _staging(out, stem) as staging:
            done = work(staging)
            result.frames = done.frames
            if finish is not None:
                finish(staging, _final_path(out, stem))
            _publish(staging, out, stem, mode)
        _write_marker(
            out,
            stem,
            mode,
            {
                "fingerprint": fp,
                "bag": item,
                "frames": done.frames,
                "outcome": done.outcome,
                "note": done.note,
                "version": depth_annotation.__version__,
            },
        )
        result.status, result.outcome, result.note = "done", done.outcome, done.note
    except Exception as exc:  # one bag's failure is its row in the summary, not the run's end
        result.error = _one_line(exc)
    finally:
        result.seconds = time.perf_counter() - t0
    return result


def _final_path(out: str, stem: str) -> str:
    """OUT/<stem> as a separate run with `--out OUT/<stem>` would name it (absolute when local)."""
    fs, path = _fs(out)
    return str(Path(path) / stem) if _is_local(fs) else f"{out.rstrip('/')}/{stem}"


# --- the three kinds of work -------------------------------------------------------------------
def run_export(bag: str, job: ExportJob, hook: Callable[[str], None] | None = None) -> BagResult:
    """`depth-annotation export BAG --out OUT/<stem>` (scene id: the bag's name, as there);
    with `allow_partial` a partly unreadable bag is published with the frames read (outcome "partial")."""
    from depth_annotation.dataset import export_bags

    def work(staging: Path) -> WorkDone:
        if hook is not None:
            hook(bag)
        opts = dataclasses.replace(job.options, out_dir=staging, overwrite=False)
        report = export_bags([(Path(bag), Path(bag).name)], opts, progress=False, allow_partial=job.allow_partial)
        # the report names the file where a separate `export --out OUT/<stem>` would have put it
        final = f"{_final_path(job.out, bag_stem(bag))}/export/dataset.h5"
        report_path = staging / "export_report.json"
        atomic_io.write_json(report_path, {**json.loads(report_path.read_text(encoding="utf-8")), "hdf5": final})
        problems = [str(p) for p in report["problems"]]
        if problems:  # only reachable with allow_partial: export_bags raises otherwise
            return WorkDone(int(report["frames"]), "partial", "; ".join(problems))
        return WorkDone(int(report["frames"]))

    return _run_one(bag, job.out, "export", job.fingerprint_options(), work)


def run_validate(dataset: str, job: ValidateJob, hook: Callable[[str], None] | None = None) -> BagResult:
    """`depth-annotation validate --dataset DATASET --out OUT/<stem>`. A dataset with failed frames
    is a completed job (its report published, outcome "failed validation"); only an error (an
    unreadable dataset, no annotations) is a failed row."""
    from depth_annotation.annotation import dataset_files, validate_dataset

    def work(staging: Path) -> WorkDone:
        if hook is not None:
            hook(dataset)
        summary = validate_dataset(dataset, job.config, out_dir=staging)
        s = summary.report["summary"]
        if summary.failed:
            return WorkDone(int(s["frames"]), "failed validation", f"{s['failed']} of {s['frames']} frame(s) failed")
        return WorkDone(int(s["frames"]))

    def finish(staging: Path, final: str) -> None:
        """The report names its files: where they are published, not the staging folder."""
        for f in staging.iterdir():
            if f.suffix in (".json", ".html"):
                text = f.read_text(encoding="utf-8")
                if str(staging) in text:
                    atomic_io.write_text(f, text.replace(str(staging), final))

    def fingerprint() -> str:
        return bag_fingerprint(dataset_files(dataset).h5, job.fingerprint_options(), "validate")

    return _run_one(dataset, job.out, "validate", job.fingerprint_options(), work, fingerprint, finish)


def run_mono(bag: str, job: MonoJob, model: DepthModel, hook: Callable[[str], None] | None = None) -> BagResult:
    """`depth-annotation mono --bag BAG --out OUT/<stem>` with an already loaded model."""
    from depth_annotation.dataset import bag_io
    from depth_annotation.mono import MetricAligner, load_scale_file, write_depth_folder

    def work(staging: Path) -> WorkDone:
        if hook is not None:
            hook(bag)
        aligner = MetricAligner(job.mode, scale=load_scale_file(job.scale_file) if job.scale_file else None)
        (staging / "depth").mkdir()  # a fresh staging folder: a leftover one would be a bug
        frames = bag_io.colour_frames_with_depth(bag, job.topic, job.depth_topic)
        count = write_depth_folder(
            frames, model, aligner, staging, model_name=job.model.model, scale_file=job.scale_file
        )
        return WorkDone(count)

    return _run_one(bag, job.out, "mono", job.fingerprint_options(), work)
