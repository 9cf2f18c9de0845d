"""Faults on the export/check side (issues 21 and 15): each case asserts the one-line message, the
exit code and the files left behind.

Output faults are injected at the file layer in-process (monkeypatched `os` calls and the
crash-safe writer), not with a tmpfs: mounting one needs root. Concurrency and signals run the
real command in subprocesses.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import xxhash
from ros_harness import VENV_BIN

from depth_annotation.cli.main import main
from depth_annotation.dataset import ExportOptions, export_bags, write_synthetic_bag

W, H = 64, 48


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "depth-annotation"), *map(str, args)], capture_output=True, text=True, timeout=300
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def leftovers(parent: Path, name: str) -> list[str]:
    """Staging or old-dataset folders of the export to `parent/name` (none may survive an export)."""
    return sorted(p.name for p in parent.glob(f".{name}.*"))


def snapshot(out: Path) -> dict[str, str]:
    """Every file of a dataset folder by its xxh3 (the lock file aside)."""
    return {
        p.relative_to(out).as_posix(): xxhash.xxh3_64_hexdigest(p.read_bytes())
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != ".export.lock"
    }


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fault_bags")
    write_synthetic_bag(root / "a", frames=12, width=W, height=H, seed=1, storage="mcap")
    write_synthetic_bag(root / "b", frames=9, width=W, height=H, seed=2, storage="mcap")
    return {"a": root / "a", "b": root / "b"}


@pytest.fixture
def dataset_a(bags: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A published dataset of bag a (every 3rd frame annotated), the one a failing export must not touch."""
    out = tmp_path / "ds"
    rc, _, err = run_main(capsys, "export", "--quiet", bags["a"], "--out", out, "--every", "3")
    assert rc == 0, err
    return out


# --- options: validated before any work ---------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split", "0.8,0.2"], "error: option --split '0.8,0.2': expected three numbers TRAIN,VAL,TEST"),
        (["--split", "a,b,c"], "error: option --split 'a,b,c': expected three numbers TRAIN,VAL,TEST"),
        (["--split=-1,1,1"], "error: option --split: needs three finite ratios >= 0 with a positive sum"),
        (["--every", "0"], "error: option --every: must be at least 1 (every k-th frame), got 0"),
        (["--every", "-1"], "error: option --every: must be at least 1 (every k-th frame), got -1"),
        (["--tolerance-ms", "nan"], "error: option --tolerance-ms: must be a finite number >= 0, got nan"),
        (["--depth-min", "2", "--depth-max", "0.3"], "error: option --depth-min/--depth-max: needs 0 <= depth-min"),
        (["--scene", "nobag"], "error: option --scene 'nobag': expected BAG=SCENE"),
        (["--level", "99"], "error: option "),
    ],
)
def test_options_fail_before_any_work(bags, tmp_path, capsys, args, message):
    out = tmp_path / "ds"
    rc, stdout, err = run_main(capsys, "export", "--quiet", bags["a"], "--out", out, *args)
    assert rc == 2 and stdout == ""
    line = one_line(err)
    assert line.startswith(message) and line.endswith("(nothing written)"), line
    assert not out.exists() and leftovers(tmp_path, "ds") == []


@pytest.mark.parametrize("args", [["--width", "0"], ["--height", "-3"], ["--frames", "0"], ["--fps", "nan"]])
def test_synth_options_fail_before_any_work(tmp_path, capsys, args):
    out = tmp_path / "synth"
    rc, _, err = run_main(capsys, "synth", "--out", out, *args)
    assert rc == 2
    assert one_line(err).startswith(f"error: option {args[0]}: must be ")
    assert not out.exists()


@pytest.mark.parametrize("doc", [[1.0, 0.0], {"mono_scale": [1.0, 0.0]}])
def test_mono_scale_file_of_the_wrong_shape_fails_before_work(tmp_path, capsys, doc):
    scale = tmp_path / "scale.json"
    scale.write_text(json.dumps(doc))
    (tmp_path / "images").mkdir()
    out = tmp_path / "mono"
    rc, _, err = run_main(capsys, "mono", "--images", tmp_path / "images", "--out", out, "--scale-file", scale)
    assert rc == 2
    assert one_line(err) == (
        f"error: option --scale-file {scale}: expected a JSON object with mono_scale {{scale, shift}}, got list"
    )
    assert not out.exists()


# --- output problems: nothing published, the previous dataset untouched ------------------------


def _eacces_under(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only folder: real permissions for a normal user; injected EROFS for root (who ignores them)."""
    if os.geteuid() != 0:
        root.chmod(0o555)
        return
    real_mkdir, real_open = os.mkdir, os.open

    def under(path: object) -> bool:
        return str(os.fsdecode(path)).startswith(str(root))  # type: ignore[arg-type]

    def mkdir(path, *a, **k):
        if under(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real_mkdir(path, *a, **k)

    def open_(path, flags, *a, **k):
        if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


def _enospc_on_annotation_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The third annotation PNG hits a full disk (at the crash-safe writer, as a real write would)."""
    from depth_annotation.dataset import annotation_export

    real = annotation_export.atomic_io.write_bytes
    calls = {"n": 0}

    def write_bytes(path, data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(annotation_export.atomic_io, "write_bytes", write_bytes)


def _enospc_on_hdf5_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """The HDF5 file's final fsync reports a full disk (delayed allocation surfaces ENOSPC there)."""
    real = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("dataset.h5.partial"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize(
    "fault, expected",
    [
        ("read_only", "error: output: cannot create or lock the output folder"),
        ("enospc_png", "error: output: cannot write "),
        ("enospc_h5", "error: output: cannot write "),
    ],
)
def test_output_errors_publish_nothing_and_keep_the_old_dataset(
    bags, dataset_a, tmp_path, capsys, monkeypatch, fault, expected
):
    before = snapshot(dataset_a)
    if fault == "read_only":
        _eacces_under(tmp_path, monkeypatch)
    elif fault == "enospc_png":
        _enospc_on_annotation_write(monkeypatch)
    else:
        _enospc_on_hdf5_fsync(monkeypatch)
    rc, stdout, err = run_main(
        capsys, "export", "--quiet", bags["b"], "--out", dataset_a, "--overwrite", "--every", "1", "--allow-partial"
    )
    monkeypatch.undo()
    tmp_path.chmod(0o755)
    assert rc == 2 and "exported" not in stdout
    line = one_line(err)
    assert line.startswith(expected), line
    assert line.endswith(f"nothing published, {dataset_a} left as it was")
    if fault.startswith("enospc"):
        assert "no space left on device (disk full)" in line
    assert snapshot(dataset_a) == before  # not one file of the old dataset changed
    assert leftovers(tmp_path, "ds") == []
    assert cli("check", dataset_a, "--deep").returncode == 0


def test_a_file_where_the_output_folder_goes(bags, tmp_path, capsys):
    out = tmp_path / "ds"
    out.write_text("not a folder")
    rc, _, err = run_main(capsys, "export", "--quiet", bags["a"], "--out", out, "--overwrite")
    assert rc == 2
    assert one_line(err).startswith(f"error: output: {out} exists and is not a directory")
    assert out.read_text() == "not a folder" and leftovers(tmp_path, "ds") == []


def test_other_programs_folders_do_not_make_the_output_taken(bags, tmp_path, capsys):
    """The launch files start the QC node and the driver beside the exporter, on one output_dir: their
    qc/ and captures/ may exist before the exporter starts. It exports there and keeps them."""
    out = tmp_path / "ds"
    (out / "qc").mkdir(parents=True)
    (out / "qc" / "qc_report.json").write_text('{"frames": 3}')
    (out / "captures").mkdir()
    rc, _, err = run_main(capsys, "export", "--quiet", bags["a"], "--out", out)
    assert rc == 0, err
    assert (out / "export" / "dataset.h5").is_file() and (out / "captures").is_dir()
    assert (out / "qc" / "qc_report.json").read_text() == '{"frames": 3}'
    rc, _, err = run_main(capsys, "export", "--quiet", bags["a"], "--out", out)  # now it holds a dataset
    assert rc == 2 and "exists: refusing to overwrite" in one_line(err)


def test_a_file_occupying_annotation_rgb(bags, dataset_a, tmp_path, capsys):
    """annotation/rgb as a file: refused without --overwrite; --overwrite replaces the whole dataset."""
    shutil.rmtree(dataset_a / "annotation" / "rgb")
    (dataset_a / "annotation" / "rgb").write_text("in the way")
    # What other programs keep in the folder: the QC node's report, a Label Studio data directory.
    (dataset_a / "qc").mkdir()
    (dataset_a / "qc" / "qc_report.json").write_text('{"frames": 3}')
    (dataset_a / "labelstudio").mkdir()
    (dataset_a / "labelstudio" / "label_studio.sqlite3").write_bytes(b"people's annotations")
    rc, _, err = run_main(capsys, "export", "--quiet", bags["b"], "--out", dataset_a)
    assert rc == 2
    assert one_line(err).startswith(f"error: output: {dataset_a}/export/dataset.h5 exists: refusing to overwrite")
    assert (dataset_a / "annotation" / "rgb").read_text() == "in the way"
    rc, out, err = run_main(capsys, "export", "--quiet", bags["b"], "--out", dataset_a, "--overwrite", "--every", "4")
    assert rc == 0, err
    assert "exported 9 frames" in out
    pngs = sorted(p.name for p in (dataset_a / "annotation" / "rgb").iterdir())
    assert len(pngs) == 3 and all(p.startswith("episode_0_") for p in pngs)  # frames 0, 4, 8 of b only
    info = json.loads((dataset_a / "dataset_info.json").read_text())
    assert [e["scene_id"] for e in info["episodes"]] == ["b"]
    assert (dataset_a / "qc" / "qc_report.json").read_text() == '{"frames": 3}'
    assert (dataset_a / "labelstudio" / "label_studio.sqlite3").read_bytes() == b"people's annotations"
    assert leftovers(tmp_path, "ds") == []
    assert cli("check", dataset_a, "--deep").returncode == 0


# --- concurrency: one export at a time, the other refused at once --------------------------------


@pytest.mark.parametrize("second_args", [[], ["--overwrite"]])
def test_concurrent_exports_one_fails_at_once_naming_the_holder(tmp_path, second_args):
    long_bag = tmp_path / "long"
    write_synthetic_bag(long_bag, frames=480, width=320, height=240, storage="mcap", seed=3)
    out = tmp_path / "ds"
    first = subprocess.Popen(
        [str(VENV_BIN / "depth-annotation"), "export", "--quiet", str(long_bag), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    staged = tmp_path / f".ds.staging-{first.pid}" / "export" / "dataset.h5.partial"
    deadline = time.monotonic() + 60
    while not staged.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.poll() is None, "the first export ended before the second started"
    t0 = time.monotonic()
    second = cli("export", "--quiet", long_bag, "--out", out, "--scene", f"{long_bag}=other", *second_args)
    refused_after = time.monotonic() - t0
    still_running = first.poll() is None
    stdout, stderr = first.communicate(timeout=300)
    # The lock message below proves the second saw the first holding the folder; `still_running`
    # can only be asked of a first export that outlasts the second's start-up (seconds under load).
    assert still_running or "being written by another export" in second.stderr
    assert second.returncode == 2 and refused_after < 20
    line = one_line(second.stderr)
    assert line.startswith(f"error: output: {out} is being written by another export (pid {first.pid}, started ")
    assert "command: " in line and "export" in line
    assert first.returncode == 0, stderr
    assert "exported 480 frames" in stdout
    info = json.loads((out / "dataset_info.json").read_text())
    assert [e["scene_id"] for e in info["episodes"]] == ["long"]
    with h5py.File(out / "export" / "dataset.h5") as f:
        assert f["episode_0/depth"].shape[0] == 480
    assert cli("check", out, "--deep").returncode == 0
    assert leftovers(tmp_path, "ds") == []


# --- signals: SIGTERM like SIGINT ---------------------------------------------------------------


@pytest.mark.parametrize("sig, rc", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_export_keeps_the_old_dataset(bags, dataset_a, tmp_path, sig, rc):
    long_bag = tmp_path / "long"
    write_synthetic_bag(long_bag, frames=160, width=320, height=240, storage="mcap", seed=4)
    before = snapshot(dataset_a)
    proc = subprocess.Popen(
        [str(VENV_BIN / "depth-annotation"), "export", "--quiet", str(long_bag), "--out", str(dataset_a)]
        + ["--overwrite"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    staged = tmp_path / f".ds.staging-{proc.pid}" / "export" / "dataset.h5.partial"
    deadline = time.monotonic() + 60
    while not staged.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert proc.poll() is None, "export finished before the signal"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == rc, stderr
    assert one_line(stderr) == (
        f"interrupted by {signal.Signals(sig).name}: no dataset written (staging removed; {dataset_a} left as it was)"
    )
    assert "exported" not in stdout
    assert leftovers(tmp_path, "ds") == []
    assert snapshot(dataset_a) == before


# --- integrity: checksums and check --deep --------------------------------------------------------


def _chunk_span(h5: Path, dataset: str, index: int) -> tuple[int, int]:
    with h5py.File(h5) as f:
        ds = f[dataset]
        info = ds.id.get_chunk_info_by_coord((index,) + (0,) * (ds.ndim - 1))
        return int(info.byte_offset), int(info.size)


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([b ^ 0x01]))


@pytest.fixture
def none_dataset(bags, tmp_path, capsys) -> Path:
    out = tmp_path / "raw"
    rc, _, err = run_main(capsys, "export", "--quiet", bags["a"], "--out", out, "--codec", "none", "--every", "3")
    assert rc == 0, err
    return out


@pytest.mark.parametrize(
    "damage, problem",
    [
        ("flip depth 4", "problem: episode_0/depth frame 4: checksum mismatch (the stored pixels changed)"),
        ("flip color 7", "problem: episode_0/color frame 7: checksum mismatch (the stored pixels changed)"),
        ("16 bytes depth 6", "problem: episode_0/depth frame 6: checksum mismatch (the stored pixels changed)"),
        ("flip png", "problem: annotation file corrupt: annotation/depth16/{name} (checksum mismatch)"),
    ],
)
def test_check_deep_names_each_corrupt_frame_and_file(none_dataset, damage, problem):
    h5 = none_dataset / "export" / "dataset.h5"
    assert cli("check", none_dataset, "--deep").stdout.endswith("dataset OK\n")
    name = ""
    if damage == "flip png":
        png = sorted((none_dataset / "annotation" / "depth16").iterdir())[1]
        name = png.name
        _flip(png, png.stat().st_size // 2)
    else:
        kind, key, index = damage.rsplit(" ", 2)
        offset, size = _chunk_span(h5, f"episode_0/{key}", int(index))
        if kind == "flip":
            _flip(h5, offset + size // 2)
        else:
            _overwrite(h5, offset + size // 2, b"\xa5" * 16)
    res = cli("check", none_dataset, "--deep")
    assert res.returncode == 1
    problems = [ln for ln in res.stdout.splitlines() if ln.startswith("problem:")]
    assert problems == [problem.format(name=name)], res.stdout
    assert res.stdout.endswith("1 problem(s)\n")


def test_check_detects_16_bytes_in_a_middle_gzip_chunk(bags, tmp_path, capsys):
    out = tmp_path / "gz"
    rc, _, err = run_main(capsys, "export", "--quiet", bags["a"], "--out", out, "--codec", "gzip")
    assert rc == 0, err
    h5 = out / "export" / "dataset.h5"
    offset, size = _chunk_span(h5, "episode_0/depth", 6)
    _overwrite(h5, offset + size // 2, bytes(range(16)))
    for args in ([], ["--deep"]):  # a small dataset: the default check decodes every frame too
        res = cli("check", out, *args)
        assert res.returncode == 1, res.stdout
        problems = [ln for ln in res.stdout.splitlines() if ln.startswith("problem:")]
        assert len(problems) == 1 and problems[0].startswith("problem: episode_0/depth frame 6: "), res.stdout
        assert "1 could not be decoded" in res.stdout or "checksum mismatch" in problems[0]


def test_default_check_verifies_checksums_when_it_decodes_every_frame(none_dataset):
    """A 100x100 block of one depth frame zeroed through h5py (a valid chunk, valid pixels): only the
    checksum can tell. The default check decodes every frame of a dataset this small, so it verifies too."""
    with h5py.File(none_dataset / "export" / "dataset.h5", "r+") as f:
        ds = f["episode_0/depth"]
        assert ds[5, :100, :100].any()
        ds[5, :100, :100] = 0
    res = cli("check", none_dataset)
    assert res.returncode == 1, res.stdout
    problems = [ln for ln in res.stdout.splitlines() if ln.startswith("problem:")]
    assert problems == ["problem: episode_0/depth frame 5: checksum mismatch (the stored pixels changed)"]
    assert "note: every frame's checksum verified" in res.stdout


def test_check_notes_do_not_claim_every_frame_when_one_cannot_be_decoded(bags, tmp_path, capsys):
    out = tmp_path / "gz"
    rc, _, err = run_main(capsys, "export", "--quiet", bags["a"], "--out", out, "--codec", "gzip")
    assert rc == 0, err
    h5 = out / "export" / "dataset.h5"
    offset, _ = _chunk_span(h5, "episode_0/depth", 6)
    _overwrite(h5, offset, b"\x00\x00")  # the zlib header: the chunk cannot be inflated
    for args in ([], ["--deep"]):
        res = cli("check", out, *args)
        assert res.returncode == 1, res.stdout
        problems = [ln for ln in res.stdout.splitlines() if ln.startswith("problem:")]
        assert len(problems) == 1 and problems[0].startswith("problem: episode_0/depth frame 6: cannot be decoded")
        assert "decoded all" not in res.stdout and "every frame's checksum verified" not in res.stdout, res.stdout
        assert "note: decoded 23 of 24 frames (depth and colour) of 1 episode(s); 1 could not be decoded" in res.stdout
        assert "note: checksums verified for the 23 decoded frames" in res.stdout


def test_check_says_when_it_samples_and_when_checksums_are_absent(bags, tmp_path, monkeypatch):
    out = tmp_path / "old"
    export_bags([(bags["a"], "a")], ExportOptions(out_dir=out, checksums=False), progress=False)
    res = cli("check", out, "--deep")
    assert res.returncode == 0, res.stdout
    assert "note: checksums absent for episode_0/depth, episode_0/color (written before checksums)" in res.stdout
    assert "note: annotation file checksums absent (written before checksums)" in res.stdout
    from depth_annotation.dataset import check, check_report

    monkeypatch.setattr(check, "FULL_DECODE_FRAMES", 5)
    report = check_report(out)
    assert report.ok
    assert report.notes == [
        "sampled: decoded 6 of 24 frames (first, middle, last of each episode; more than 5 frames): "
        "run check --deep to decode and verify every frame"
    ]


@pytest.mark.parametrize(
    "damage, message",
    [
        ("info_not_json", "problem: dataset_info.json: not readable JSON"),
        ("task_malformed", "problem: label_studio_tasks.json: task 0 is malformed (needs data.image, depth, depth16)"),
        ("tasks_not_list", "problem: label_studio_tasks.json: not a list of tasks"),
    ],
)
def test_check_reports_corrupt_json_in_one_line(dataset_a, damage, message):
    if damage == "info_not_json":
        (dataset_a / "dataset_info.json").write_bytes(b'{"episodes": [\xff')
    else:
        tasks = dataset_a / "annotation" / "label_studio_tasks.json"
        data = json.loads(tasks.read_text())
        data[0]["data"] = 5
        tasks.write_text(json.dumps(data if damage == "task_malformed" else {"tasks": data}))
    res = cli("check", dataset_a)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert any(ln.startswith(message) for ln in res.stdout.splitlines()), res.stdout


def test_frame_checksums_are_xxh3_of_the_raw_frames(bags, tmp_path, capsys):
    """Known answer: the stored checksum is xxh3_64 of the frame's bytes, computed here independently."""
    out = tmp_path / "k"
    rc, _, err = run_main(capsys, "export", "--quiet", bags["b"], "--out", out, "--codec", "blosc-lz4")
    assert rc == 0, err
    import hdf5plugin  # noqa: F401  (the Blosc filter)

    with h5py.File(out / "export" / "dataset.h5") as f:
        g = f["episode_0"]
        for key in ("depth", "color"):
            frames = g[key][:]
            want = [xxhash.xxh3_64_intdigest(np.ascontiguousarray(fr).tobytes()) for fr in frames]
            assert g["checksums"][key][:].tolist() == want
    info = json.loads((out / "dataset_info.json").read_text())
    sums = info["files"]["checksums"]["annotation"]
    assert set(sums) == {p.relative_to(out).as_posix() for p in (out / "annotation").rglob("*") if p.is_file()}
    for rel, digest in sums.items():
        assert xxhash.xxh3_64_hexdigest((out / rel).read_bytes()) == digest


def test_non_utf8_paths_export_and_check_without_a_traceback(bags, tmp_path, capsys):
    """A bag and an output folder whose names are not UTF-8 (bytes a Linux filesystem allows)."""
    raw = os.fsencode(tmp_path)
    os.symlink(bags["b"], raw + b"/bag\xff")
    bag, out = os.fsdecode(raw + b"/bag\xff"), os.fsdecode(raw + b"/ds\xfe")
    rc, stdout, err = run_main(capsys, "export", "--quiet", bag, "--out", out)
    assert rc == 0 and "Traceback" not in err, err
    assert "exported 9 frames" in stdout
    with h5py.File(raw + b"/ds\xfe/export/dataset.h5") as f:
        assert f["episode_0"].attrs["scene_id"] == "bag\\xff"  # the undecodable byte, escaped
    rc, stdout, _ = run_main(capsys, "check", out, "--deep")
    assert rc == 0 and stdout.endswith("dataset OK\n")
    rc, _, err = run_main(capsys, "check", os.fsdecode(raw + b"/none\xfe"))
    assert rc == 2 and one_line(err) == f"error: {tmp_path}/none\\xfe: not a folder"


@pytest.mark.parametrize("fault", ["resolution"])
@pytest.mark.parametrize("allow_partial", [False, True])
def test_bad_frames_are_input_problems_named_with_bag_topic_and_stamp(tmp_path, capsys, fault, allow_partial):
    """Five good frames, then a size change (or a stamp going back): input problem; partial only if allowed."""
    from depth_annotation.common import default_intrinsics
    from depth_annotation.dataset import DEFAULT_TOPICS, bag_io

    bag = tmp_path / "bag"
    stamps = [10**9 + i * 33_333_333 for i in range(8)]
    if fault == "backwards":
        stamps[5] = stamps[2] - 1
    with bag_io.BagWriter(bag) as w:
        for key, t in (("depth", "Image"), ("color", "Image"), ("info", "CameraInfo")):
            w.add_topic(DEFAULT_TOPICS[key], f"sensor_msgs/msg/{t}")
        for i, s in enumerate(stamps):
            w_, h_ = (32, 24) if fault == "resolution" and i >= 5 else (W, H)
            w.write(DEFAULT_TOPICS["depth"], s, bag_io.image(np.full((h_, w_), 700, np.uint16), "16UC1", s, "cam"))
            w.write(DEFAULT_TOPICS["color"], s, bag_io.image(np.zeros((h_, w_, 3), np.uint8), "rgb8", s, "cam"))
            w.write(DEFAULT_TOPICS["info"], s, bag_io.camera_info(default_intrinsics(w_, h_), s, "cam"))
    out = tmp_path / "ds"
    rc, stdout, err = run_main(capsys, "export", "--quiet", bag, "--out", out, *(["--allow-partial"] * allow_partial))
    why = "resolution changes from 64x48 to 32x24" if fault == "resolution" else "stamps go backwards"
    named = f"bag {bag}, topic {DEFAULT_TOPICS['depth']}, stamp {stamps[5]}: {why}"
    assert "Traceback" not in err
    if allow_partial:
        assert rc == 0, err
        assert one_line(err).startswith(f"warning: {named}")
        assert "exported 5 frames in 1 episode(s)" in stdout  # the count printed is the count committed
        with h5py.File(out / "export" / "dataset.h5") as f:
            assert f["episode_0/depth"].shape == (5, H, W)
            assert f["episode_0/timestamps_ns"][:].tolist() == stamps[:5]
    else:
        assert rc == 2
        line = one_line(err)
        assert line.startswith(f"error: {named}") and "No dataset written (5 frames were read" in line
        assert not (out / "export").exists() and not (out / "dataset_info.json").exists()
    assert leftovers(tmp_path, "ds") == []
