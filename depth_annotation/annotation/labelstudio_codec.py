"""Label Studio's brush RLE and polygons, decoded and encoded by the Label Studio SDK itself.

The SDK (`label-studio-sdk`) pins numpy, opencv and pydantic versions that clash
with ours, so it lives in its own environment (`.venv-labelstudio`, made by
`scripts/setup_env.sh`). Its brush codec is a small pure-Python module, but it
sits inside a package whose `__init__` imports the whole converter (pandas,
ujson, ...), so we do not load its files into our interpreter: we start the SDK's
own interpreter on `labelstudio_worker.py` and talk to it over pipes (masks as
raw bytes). That keeps the SDK exactly as pinned and tested upstream, lets any
Python with the SDK serve (`DEPTH_ANNOTATION_LABELSTUDIO_PYTHON`), and runs one
worker per core, so decoding (pure Python in the SDK) uses every core.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from .errors import LabelStudioFormatError, LabelStudioUnavailable

ENV_PYTHON = "DEPTH_ANNOTATION_LABELSTUDIO_PYTHON"
WORKER = Path(__file__).with_name("labelstudio_worker.py")
_BATCH = 64  # regions per request: big enough to amortise the round trip, small enough to spread over workers


def labelstudio_python() -> Path:
    """The interpreter with the Label Studio SDK: $DEPTH_ANNOTATION_LABELSTUDIO_PYTHON, else `.venv-labelstudio`."""
    env = os.environ.get(ENV_PYTHON)
    if env:
        if not Path(env).exists():
            raise LabelStudioUnavailable(f"{ENV_PYTHON}={env}: no such interpreter")
        return Path(env)
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / ".venv-labelstudio" / "bin" / "python", Path.cwd() / ".venv-labelstudio/bin/python"]
    for cand in candidates:
        if cand.exists():
            return cand
    raise LabelStudioUnavailable(
        "no Python with the Label Studio SDK: looked for "
        + ", ".join(str(c) for c in candidates)
        + f"; run ./dev.sh setup, or set {ENV_PYTHON} to a Python with label-studio-sdk installed"
    )


@dataclass(frozen=True)
class RleRegion:
    """A brush region: the RLE byte list and the image size it covers."""

    rle: list[int]
    width: int
    height: int


@dataclass(frozen=True)
class PolygonRegion:
    """A polygon region: points in percent of the image size (Label Studio's convention)."""

    points: list[list[float]]
    width: int
    height: int


Region = RleRegion | PolygonRegion


class _Worker:
    def __init__(self, python: Path) -> None:
        # stderr to a file, not a pipe nobody reads while the worker runs: a chatty SDK cannot block on it
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(python), "-I", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=dict(os.environ, PYTHONNOUSERSITE="1", PYTHONPATH=""),
        )
        self.lock = threading.Lock()
        try:
            hello, _ = self._receive()
        except LabelStudioUnavailable as exc:
            raise LabelStudioUnavailable(f"{python}: the Label Studio worker did not start: {exc}") from None
        if not hello.get("ok"):
            self.close()
            raise LabelStudioUnavailable(f"{python}: cannot import the Label Studio SDK: {hello.get('error')}")
        self.sdk_version = str(hello["sdk_version"])

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        return self.proc.stdin, self.proc.stdout

    def _receive(self) -> tuple[dict[str, Any], bytes]:
        _, out = self._pipes()
        head = out.read(4)
        if len(head) < 4:
            self.proc.wait(10)
            self.stderr.seek(0)
            err = self.stderr.read().decode(errors="replace")[-1500:]
            raise LabelStudioUnavailable(f"worker exited ({self.proc.poll()}): {err.strip()}")
        (size,) = struct.unpack("<I", head)
        header: dict[str, Any] = json.loads(out.read(size))
        payload = out.read(int(header.get("payload", 0)))
        return header, payload

    def request(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        with self.lock:
            inp, _ = self._pipes()
            data = json.dumps(dict(header, payload=len(payload))).encode("utf-8")
            try:
                inp.write(struct.pack("<I", len(data)) + data + payload)
                inp.flush()
            except BrokenPipeError:
                raise LabelStudioUnavailable(f"worker exited ({self.proc.poll()})") from None
            return self._receive()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.stderr.close()


class LabelStudioCodec:
    """Decode regions to masks and masks to RLE with the SDK, in `workers` SDK processes.

    Use as a context manager (the workers are stopped on exit). Errors of single
    regions come back per region (`decode` returns the message in place of a mask),
    so the caller can report every bad region of an export with its task id.
    """

    def __init__(self, workers: int | None = None, *, python: Path | None = None) -> None:
        n = max(1, workers or min(os.cpu_count() or 1, 4))
        exe = python or labelstudio_python()
        self._workers: list[_Worker] = []
        try:
            with ThreadPoolExecutor(n) as pool:  # the SDK takes ~1 s to import: start them together
                futures = [pool.submit(_Worker, exe) for _ in range(n)]
                for fut in futures:
                    self._workers.append(fut.result())
        except BaseException:
            self.close()
            raise
        self.sdk_version = self._workers[0].sdk_version
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="labelstudio")

    def __enter__(self) -> LabelStudioCodec:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True)
        for worker in self._workers:
            worker.close()
        self._workers = []

    def _spread(self, batches: list[Any], call: Any) -> list[Any]:
        futures = [self._pool.submit(call, self._workers[i % len(self._workers)], b) for i, b in enumerate(batches)]
        return [f.result() for f in futures]

    def decode(self, regions: Sequence[Region]) -> list[np.ndarray | str]:
        """A uint8 0/1 mask (H, W) per region, or the SDK's error message for a region it cannot decode."""

        def run(worker: _Worker, batch: Sequence[Region]) -> list[np.ndarray | str]:
            items = [
                {"kind": "rle", "rle": r.rle, "width": r.width, "height": r.height}
                if isinstance(r, RleRegion)
                else {"kind": "polygon", "points": r.points, "width": r.width, "height": r.height}
                for r in batch
            ]
            reply, payload = worker.request({"op": "decode", "items": items})
            out: list[np.ndarray | str] = []
            for res in reply["results"]:
                if not res["ok"]:
                    out.append(str(res["error"]))
                    continue
                h, w = res["shape"]
                bits = np.frombuffer(payload, np.uint8, res["size"], res["offset"])
                out.append(np.unpackbits(bits, count=h * w).reshape(h, w))
            return out

        batches = [list(regions[i : i + _BATCH]) for i in range(0, len(regions), _BATCH)]
        return [m for part in self._spread(batches, run) for m in part]

    def decode_strict(self, regions: Sequence[Region]) -> list[np.ndarray]:
        """`decode`, raising LabelStudioFormatError at the first region the SDK rejects."""
        out = []
        for i, m in enumerate(self.decode(regions)):
            if isinstance(m, str):
                raise LabelStudioFormatError(f"region {i}: {m}")
            out.append(m)
        return out

    def encode(self, masks: Sequence[np.ndarray]) -> list[list[int]]:
        """Label Studio brush RLE (the SDK's `mask2rle`) of each mask (non-zero = painted)."""

        def run(worker: _Worker, batch: Sequence[np.ndarray]) -> list[list[int]]:
            arrays = [np.ascontiguousarray(m, dtype=np.uint8) for m in batch]
            if any(a.ndim != 2 for a in arrays):
                raise LabelStudioFormatError("masks to encode must be 2-D")
            reply, _ = worker.request(
                {"op": "encode", "shapes": [list(a.shape) for a in arrays]}, b"".join(a.tobytes() for a in arrays)
            )
            return [list(r) for r in reply["results"]]

        batches = [list(masks[i : i + _BATCH]) for i in range(0, len(masks), _BATCH)]
        return [r for part in self._spread(batches, run) for r in part]


def _main() -> int:  # pragma: no cover - a manual smoke check: python -m depth_annotation.annotation.labelstudio_codec
    with LabelStudioCodec(1) as codec:
        mask = np.zeros((4, 6), np.uint8)
        mask[1:3, 2:5] = 1
        (rle,) = codec.encode([mask])
        (back,) = codec.decode_strict([RleRegion(rle, 6, 4)])
        print(f"label-studio-sdk {codec.sdk_version}: round trip {'ok' if np.array_equal(back, mask) else 'FAILED'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
