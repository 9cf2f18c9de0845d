"""Annotation round trip at 640x480: Label Studio import and validation throughput, 500 frames by two annotators."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from depth_annotation.annotation import (
    AnnotatorProfile,
    LabelStudioCodec,
    annotators_export,
    dataset_files,
    import_export,
    load_tasks,
    synthetic_dataset,
    validate_dataset,
)

FRAMES = int(os.environ.get("BENCH_ANNOTATION_FRAMES", "500"))


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        # every frame an annotation task, every task labelled by both annotators (the worst case of the overlap)
        dataset, truth, scene = synthetic_dataset(root, frames=FRAMES, every_k=1, overlap=0.0, fps=10.0)
        setup_s = time.perf_counter() - t0
        second = AnnotatorProfile(2, boundary_px=-2, keypoint_shift_mm=3.0)
        with LabelStudioCodec() as codec:
            t0 = time.perf_counter()
            export = annotators_export(
                load_tasks(dataset), truth, scene, [AnnotatorProfile(1), second], codec, assignment="all"
            )
            encode_s = time.perf_counter() - t0
            path = root / "export.json"
            path.write_text(json.dumps(export))
            export_mb = path.stat().st_size / 1e6
            regions = sum(len(a["result"]) for t in export for a in t["annotations"])
            del export
            workers = len(codec._workers)
        files = dataset_files(dataset)
        h5_mb = files.h5.stat().st_size / 1e6
        for n in sorted({1, workers}):
            t0 = time.perf_counter()
            result = import_export(path, files, workers=n)  # starts its own SDK workers, as the CLI does
            dt = time.perf_counter() - t0
            sec = result.seconds
            rows.append(
                {
                    "stage": f"import ({n} SDK worker{'s' if n > 1 else ''})",
                    "frames": len(result.frames),
                    "annotations": sum(len(f.annotations) for f in result.frames),
                    "s": dt,
                    "frames/s": len(result.frames) / dt,
                    "detail": f"decode {sec['decode']:.1f} s, back-project + write {sec['write']:.1f} s "
                    f"({regions} regions, export {export_mb:.0f} MB, dataset {h5_mb:.0f} MB copied)",
                }
            )
        t0 = time.perf_counter()
        summary = validate_dataset(dataset)
        dt = time.perf_counter() - t0
        s = summary.report["summary"]
        rows.append(
            {
                "stage": "validate (metrics + report)",
                "frames": s["frames"],
                "annotations": 2 * s["frames"],
                "s": dt,
                "frames/s": s["frames"] / dt,
                "detail": f"metrics {summary.report['seconds']['validate']:.1f} s; {s['failed']} frames failed",
            }
        )
        rows.append(
            {
                "stage": "fixture: render + export bag, encode export",
                "frames": FRAMES,
                "annotations": 2 * FRAMES,
                "s": setup_s + encode_s,
                "frames/s": FRAMES / (setup_s + encode_s),
                "detail": f"SDK encode of the export {encode_s:.1f} s",
            }
        )
    return rows


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from run import print_table

    print_table(__doc__.strip().splitlines()[0], run())
