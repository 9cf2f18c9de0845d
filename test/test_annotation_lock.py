"""`annotations import` takes the dataset folder's lock (`OUT/.export.lock`, the export's).

While an export or another import holds it, an import fails at once with one line naming the
holder, and writes nothing. The holders are the real commands, paused by a wrapper at the moment
that matters (the export just before it publishes, the import just before it replaces the HDF5
file), so the lock is held by the code that really takes it, at a known time.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ros_harness import VENV_BIN, wait_until

from depth_annotation.annotation import AnnotationDatasetLockedError, dataset_files, import_export
from depth_annotation.dataset import write_synthetic_bag

# Runs `depth-annotation ARGS...` with one step held until GO exists: FLAG is written when it is reached.
PAUSED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from depth_annotation.annotation import ls_import
    from depth_annotation.dataset import exporter
    from depth_annotation.cli.main import main

    FLAG, GO, STEP = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def paused(original):
        def wrapper(*args, **kwargs):
            FLAG.touch()
            deadline = time.monotonic() + 120
            while not GO.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            return original(*args, **kwargs)
        return wrapper

    if STEP == "export-publish":
        exporter.DatasetOutput.publish = paused(exporter.DatasetOutput.publish)
    else:
        ls_import.publish = paused(ls_import.publish)
    sys.exit(main(sys.argv[4:]))
    """
)


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "depth-annotation"), *map(str, args)], capture_output=True, text=True, timeout=300
    )


def paused(tmp_path: Path, step: str, *args: object) -> tuple[subprocess.Popen[str], Path, Path]:
    script = tmp_path / "paused.py"
    script.write_text(PAUSED)
    flag, go = tmp_path / f"{step}.reached", tmp_path / f"{step}.go"
    cmd = [sys.executable, str(script), str(flag), str(go), step, *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: flag.exists() or proc.poll() is not None, 240)
    assert proc.poll() is None, proc.communicate()
    return proc, flag, go


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, less the lock file (whose holder note each taker rewrites)."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".export.lock")
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lock") / "synth"
    res = cli("annotations", "synth", "--out", out, "--frames", 12, "--every", 2, "--overlap", 0.5)
    assert res.returncode == 0, res.stderr
    return out


def refused_line(res: subprocess.CompletedProcess[str], dataset: Path, pid: int) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: {dataset} is being written by another program (pid {pid}, started ")
    assert lines[0].endswith("; nothing was imported")
    return lines[0]


def test_import_is_refused_at_once_while_an_export_holds_the_folder(synth, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(synth / "dataset", dataset)
    bag = tmp_path / "bag"
    write_synthetic_bag(bag, frames=6, width=64, height=48)
    before = snapshot(dataset)
    export, _, _ = paused(tmp_path, "export-publish", "export", "--quiet", bag, "--out", dataset, "--overwrite")
    started = time.monotonic()
    res = cli("annotations", "import", synth / "label_studio_export.json", "--dataset", dataset)
    assert time.monotonic() - started < 60  # at once: never waits for the export
    line = refused_line(res, dataset, export.pid)
    assert "paused.py" in line and f"export --quiet {bag}" in line  # the holder's command line
    assert snapshot(dataset) == before  # nothing imported, no report, no .partial copy
    # the export was never disturbed: stopped by SIGTERM now, it leaves the folder as it was too
    export.send_signal(signal.SIGTERM)
    _, err = export.communicate(timeout=60)
    assert export.returncode == 143, err
    assert snapshot(dataset) == before


def test_two_imports_never_interleave(synth, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(synth / "dataset", dataset)
    export_json = synth / "label_studio_export.json"
    first, _, go = paused(tmp_path, "import-publish", "annotations", "import", export_json, "--dataset", dataset)
    # the first holds the lock, parsed and about to replace the HDF5 file: a second is refused, CLI and API
    held = snapshot(dataset)
    refused_line(cli("annotations", "import", export_json, "--dataset", dataset), dataset, first.pid)
    with pytest.raises(AnnotationDatasetLockedError, match=f"pid {first.pid}, started .*; nothing was imported"):
        import_export(export_json, dataset_files(dataset))
    assert snapshot(dataset) == held  # the refused ones wrote nothing (not even a .partial copy)
    go.touch()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert "imported 6 frames" in out
    report = json.loads((dataset / "annotation" / "import_report.json").read_text())
    assert report["frames"] == 6
    assert not list(dataset.glob("export/*.partial"))
    check = cli("check", dataset)  # (not --deep: `annotations synth --overlap` edits the tasks after their checksum)
    assert check.returncode == 0, check.stdout + check.stderr
    # and with the folder free again, an import runs
    assert cli("annotations", "import", export_json, "--dataset", dataset).returncode == 0
