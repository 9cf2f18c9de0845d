"""The Ray side: one task per bag (export, validate), a pool of model actors (mono), one bar.

Without an address a local Ray is started with as many CPUs as `num_workers` (default: the
machine's cores) and shut down at the end; with one, the run joins that cluster (`ray start
--head` on one machine, `ray start --address HEAD:6379` on the others). Each task asks for one
CPU, so Ray runs as many bags at once as there are CPUs in the cluster. A worker process that
dies mid-bag (killed, out of memory, a lost node) makes Ray run the task again (`max_retries`);
the bag's attempt writes only its own staging folder, so a retry starts clean.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depth_annotation.common import atomic_io

from .errors import BatchError, RayUnavailable
from .jobs import (
    MARKER_DIR,
    BagResult,
    ExportJob,
    MonoJob,
    ValidateJob,
    _one_line,
    bag_stem,
    run_export,
    run_mono,
    run_validate,
)

RAY_INSTALL = "pip install 'ray>=2.60'"
MODES = ("export", "mono", "validate")


@dataclass
class BatchOptions:
    ray_address: str | None = None
    num_workers: int | None = None  # local Ray: CPUs (= bags at once); None: the machine's cores
    gpus_per_actor: float = 0.0  # mono: GPUs per model actor (0: CPU actors)
    actors: int | None = None  # mono: model actors (None: one per worker, at most one per bag)
    max_retries: int = 3  # Ray re-runs a task whose worker process died this many times
    progress: bool = True
    object_store_memory: int | None = None  # local Ray only; None: Ray's default
    task_hook: Callable[[str], None] | None = None  # called in the worker before a bag's work (tests)


@dataclass
class BatchSummary:
    mode: str
    results: list[BagResult]
    seconds: float
    workers: int
    path: str = ""  # where the JSON summary was written
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[BagResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def failed_validation(self) -> list[BagResult]:
        """Datasets validated (done or skipped) with failing frames: their reports list them."""
        return [r for r in self.results if r.outcome == "failed validation"]

    @property
    def partial(self) -> list[BagResult]:
        """Bags published with the frames read (--allow-partial)."""
        return [r for r in self.results if r.outcome == "partial"]

    def to_dict(self) -> dict[str, Any]:
        frames = sum(r.frames for r in self.results if r.status == "done")
        counts = {s: sum(r.status == s for r in self.results) for s in ("done", "skipped", "failed")}
        return {
            "mode": self.mode,
            "bags": len(self.results),
            **counts,
            "partial": len(self.partial),
            "failed_validation": len(self.failed_validation),
            "frames": frames,
            "seconds": self.seconds,
            "frames_per_s": frames / self.seconds if self.seconds > 0 else 0.0,
            "workers": self.workers,
            "per_bag": [r.to_dict() for r in self.results],
        }


def find_bags(pattern: str | None = None, list_file: str | None = None) -> list[str]:
    """Bags (or datasets, for validate) from a glob (`**` recurses) or a file of paths, one a line."""
    if list_file:
        try:
            lines = Path(list_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise BatchError(f"{list_file}: cannot read the bag list: {exc.strerror}") from exc
        items = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    elif pattern:
        items = sorted(glob.glob(pattern, recursive=True))
    else:
        raise BatchError("give --bags GLOB or --list FILE")
    if not items:
        raise BatchError(f"no bags matched {list_file or pattern}")
    seen: dict[str, str] = {}
    for item in items:
        stem = bag_stem(item)
        if stem in seen:
            raise BatchError(f"{item} and {seen[stem]} would both be exported to <out>/{stem}: rename one")
        seen[stem] = item
    return items


def check_inputs_outside_outputs(items: list[str], out: str) -> None:
    """Refuse a run whose output folder OUT/<stem> would hold (or be) one of its inputs:
    publishing replaces OUT/<stem>, so the input would be lost (local outputs only)."""
    fs, path = _output_fs(out)
    if not _local(fs):
        return
    root = Path(path).resolve()
    for item in items:
        src = Path(item).resolve()
        dest = root / bag_stem(item)
        if src == dest or dest in src.parents:
            raise BatchError(
                f"{item} is or lies inside {dest}, where its output would go (--out {out}): choose another --out"
            )


@contextmanager
def check_output(out: str) -> Iterator[None]:
    """Before any Ray work: the output must be usable (OUT/.batch created and written to), not
    memory:// (each Ray process has its own), and, when local, not in use by another batch run
    (an OS lock on OUT/.batch/batch.lock, held until the run ends). BatchError, one line, otherwise."""
    fs, path = _output_fs(out)
    if "memory" in _protocols(fs):
        raise BatchError(
            f"--out {out}: memory:// cannot be an output: each Ray worker process has its own in-memory file system"
        )
    batch_dir = f"{path.rstrip('/')}/{MARKER_DIR}"
    probe = f"{batch_dir}/.probe-{os.getpid()}"
    try:
        fs.makedirs(batch_dir, exist_ok=True)
        fs.pipe_file(probe, b"")
        fs.rm(probe)
    except Exception as exc:  # any fsspec backend's error: permissions, credentials, not a folder
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
        raise BatchError(f"--out {out}: cannot write there ({type(exc).__name__}: {why})") from exc
    if not _local(fs):
        yield
        return
    lock = atomic_io.ExclusiveLock(Path(batch_dir) / "batch.lock")
    try:
        lock.acquire()
    except atomic_io.LockHeldError as exc:
        raise BatchError(f"--out {out} is in use by another batch run: {exc.strerror}") from exc
    try:
        yield
    finally:
        lock.release()


def _output_fs(out: str) -> tuple[Any, str]:
    """The file system of --out; BatchError when fsspec cannot open it (an unknown protocol, its
    package missing, as s3fs for s3://)."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(out)
    except (ImportError, ValueError, OSError) as exc:
        raise BatchError(f"--out {out}: unusable output: {' '.join(str(exc).split())}") from exc
    return fs, str(path)


def _protocols(fs: Any) -> tuple[str, ...]:
    return tuple(fs.protocol) if isinstance(fs.protocol, (tuple, list)) else (str(fs.protocol),)


def _local(fs: Any) -> bool:
    return "file" in _protocols(fs)


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(f"depth-annotation batch needs Ray, which is not installed: {RAY_INSTALL}") from exc
    return ray


def _start(ray: Any, opts: BatchOptions) -> bool:
    """Connect or start; True when this call started Ray (and so shuts it down)."""
    if ray.is_initialized():
        return False
    if opts.ray_address:
        ray.init(address=opts.ray_address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=opts.num_workers or os.cpu_count() or 1,
            include_dashboard=False,
            object_store_memory=opts.object_store_memory,
            log_to_driver=False,
        )
    return True


def _bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="bag", desc="batch", disable=not enabled, dynamic_ncols=True)


def run_batch(
    mode: str, items: list[str], job: ExportJob | ValidateJob | MonoJob, opts: BatchOptions | None = None
) -> BatchSummary:
    """Run every item's work on Ray and write `OUT/.batch/<mode>_summary.json`; never raises for one bag."""
    opts = opts or BatchOptions()
    if mode not in MODES:
        raise BatchError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    check_inputs_outside_outputs(items, job.out)
    with check_output(job.out):
        return _run_locked(mode, items, job, opts)


def _run_locked(
    mode: str, items: list[str], job: ExportJob | ValidateJob | MonoJob, opts: BatchOptions
) -> BatchSummary:
    ray = _ray()
    started = _start(ray, opts)
    t0 = time.perf_counter()
    results: list[BagResult] = []
    try:
        workers = int(ray.cluster_resources().get("CPU", 1))
        refs = _submit(ray, mode, items, job, opts, workers)
        pending = list(refs)
        frames = 0
        with _bar(len(items), opts.progress) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    try:
                        result: BagResult = ray.get(ref)
                    except Exception as exc:  # the task itself died past its retries
                        item = refs[ref]
                        result = BagResult(item, bag_stem(item), "failed", error=" ".join(str(exc).split())[:500])
                    results.append(result)
                    if result.status == "done":
                        frames += result.frames
                    bar.update(1)
                    bar.set_postfix(frames_per_s=f"{frames / max(time.perf_counter() - t0, 1e-9):.1f}")
    finally:
        if started:
            ray.shutdown()
    order = {item: i for i, item in enumerate(items)}
    results.sort(key=lambda r: order.get(r.bag, len(order)))
    summary = BatchSummary(mode, results, time.perf_counter() - t0, workers)
    summary.path = _write_summary(job.out, mode, summary.to_dict())
    return summary


def _submit(
    ray: Any, mode: str, items: list[str], job: ExportJob | ValidateJob | MonoJob, opts: BatchOptions, workers: int
) -> dict[Any, str]:
    """ObjectRef -> item, for tasks (export, validate) or actor calls (mono)."""
    hook = opts.task_hook
    if isinstance(job, MonoJob):
        n = max(1, min(opts.actors or workers, len(items)))
        actor_cls = ray.remote(
            num_cpus=1, num_gpus=opts.gpus_per_actor, max_restarts=opts.max_retries, max_task_retries=opts.max_retries
        )(MonoActor)
        actors = [actor_cls.remote(job) for _ in range(n)]
        return {actors[i % n].run.remote(item, hook): item for i, item in enumerate(items)}
    fn: Callable[..., BagResult] = run_export if isinstance(job, ExportJob) else run_validate
    task = ray.remote(num_cpus=1, max_retries=opts.max_retries)(fn)
    return {task.remote(item, job, hook): item for item in items}


class MonoActor:
    """Holds one loaded model (on its GPU when the actor has one) and runs bags through it."""

    def __init__(self, job: MonoJob) -> None:
        import dataclasses

        from depth_annotation.mono import load_model

        config = job.model
        if config.device == "auto":
            import torch

            config = dataclasses.replace(config, device="cuda" if torch.cuda.is_available() else "cpu")
        self.job = job
        self.model: Any = None
        self.error: str | None = None
        try:
            self.model = load_model(config)
        except Exception as exc:  # a missing model: each bag's row says why, not a cut Ray traceback
            self.error = _one_line(exc)

    def run(self, bag: str, hook: Callable[[str], None] | None = None) -> BagResult:
        if self.error is not None:
            return BagResult(bag, bag_stem(bag), "failed", error=f"cannot load the model: {self.error}")
        return run_mono(bag, self.job, self.model, hook)


def _write_summary(out: str, mode: str, data: dict[str, Any]) -> str:
    import fsspec

    fs, path = fsspec.core.url_to_fs(out)
    target = f"{str(path).rstrip('/')}/{MARKER_DIR}/{mode}_summary.json"
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        atomic_io.write_json(target, data)
        return target
    fs.pipe_file(target, json.dumps(data, indent=2).encode())
    return f"{out.rstrip('/')}/{MARKER_DIR}/{mode}_summary.json"
