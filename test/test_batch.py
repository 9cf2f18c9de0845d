"""`depth-annotation batch`: Ray tasks per bag give what separate `export` runs give, bit for bit.

One local Ray (2 CPUs, no dashboard, a small object store) serves the module. Six synthetic bags:
four good, one truncated (its .mcap cut in half), one without the depth topic. The good bags'
datasets are compared with `depth-annotation export BAG --out REF/<stem>` run one by one: every
HDF5 dataset's bytes and every attribute, every PNG/XML byte for byte, every JSON equal except the
absolute output folder in export_report.json's "hdf5" (REF/... vs OUT/...), which is the only
thing that names where the run wrote.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from depth_annotation.batch import BatchOptions, ExportJob, find_bags, run_batch
from depth_annotation.cli.main import main
from depth_annotation.common import default_intrinsics
from depth_annotation.dataset import DEFAULT_TOPICS, ExportOptions, bag_io, write_synthetic_bag

ray = pytest.importorskip("ray")  # in requirements; the module-level message says what is missing

GOOD = ["bag_0", "bag_1", "bag_2", "bag_3"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _bag_file(bag: Path) -> Path:
    return next(bag.glob("*.mcap"))


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    for i, name in enumerate(GOOD + ["bag_4_truncated"]):
        write_synthetic_bag(root / name, frames=6, width=160, height=120, seed=i)
    cut = _bag_file(root / "bag_4_truncated")
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    # a recording without the depth topic: colour and camera_info only
    intr = default_intrinsics(160, 120)
    with bag_io.BagWriter(root / "bag_5_no_depth", storage="mcap") as w:
        w.add_topic(DEFAULT_TOPICS["color"], "sensor_msgs/msg/Image")
        w.add_topic(DEFAULT_TOPICS["info"], "sensor_msgs/msg/CameraInfo")
        for k in range(3):
            stamp = 1_700_000_000_000_000_000 + k * 33_333_333
            rgb = np.full((120, 160, 3), 40 * k, np.uint8)
            w.write(DEFAULT_TOPICS["color"], stamp, bag_io.image(rgb, "rgb8", stamp, "camera_color_optical_frame"))
            w.write(DEFAULT_TOPICS["info"], stamp, bag_io.camera_info(intr, stamp, "camera_color_optical_frame"))
    return root


@pytest.fixture(scope="module")
def reference(bags, tmp_path_factory):
    """`depth-annotation export` run one bag at a time."""
    ref = tmp_path_factory.mktemp("ref")
    for name in GOOD:
        assert main(["export", str(bags / name), "--out", str(ref / name), "--quiet"]) == 0
    return ref


def _h5_items(path: Path) -> dict[str, object]:
    items: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        items["/@"] = {k: repr(v) for k, v in f.attrs.items()}

        def visit(name, obj):
            items[name + "@"] = {k: repr(v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                arr = obj[()]
                data = repr(np.asarray(arr).tolist()) if arr.dtype.kind == "O" else np.asarray(arr).tobytes()
                items[name] = (arr.dtype.str, arr.shape, data)  # variable-length strings: by value

        f.visititems(visit)
    return items


def assert_same_dataset(ref: Path, got: Path) -> None:
    # .export.lock records who holds the output (pid, start time): not part of the dataset.
    ref_files = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file() and p.name != ".export.lock")
    got_files = sorted(p.relative_to(got) for p in got.rglob("*") if p.is_file() and p.name != ".export.lock")
    assert got_files == ref_files
    for rel in ref_files:
        a, b = ref / rel, got / rel
        if rel.suffix == ".h5":
            ia, ib = _h5_items(a), _h5_items(b)
            assert ia.keys() == ib.keys(), rel
            for key in ia:
                assert ia[key] == ib[key], f"{rel}:{key} differs"
        elif rel.suffix == ".json":
            ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
            if rel.name == "export_report.json":  # the absolute folder the run wrote to, nothing else
                assert ja.pop("hdf5") == str(ref / "export" / "dataset.h5")
                assert jb.pop("hdf5") == str(got / "export" / "dataset.h5")
            assert ja == jb, rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel


def test_batch_export_equals_separate_runs_lists_the_bad_bags_and_skips_on_rerun(
    local_ray, bags, reference, tmp_path, capsys
):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    rc = main(["batch", "export", "--bags", str(bags / "bag_*"), "--out", str(out), "--quiet"])
    first_s = time.perf_counter() - t0
    assert rc == 1  # two bags failed
    err = capsys.readouterr().err
    failed = [ln for ln in err.splitlines() if ln.startswith("failed: ")]
    assert len(failed) == 2, err
    assert any("bag_4_truncated" in ln and "cut short" in ln for ln in failed), failed
    assert any("bag_5_no_depth" in ln and "/camera/aligned_depth_to_color/image_raw" in ln for ln in failed)
    for name in GOOD:
        assert_same_dataset(reference / name, out / name)
    assert not (out / "bag_4_truncated").exists() and not (out / "bag_5_no_depth").exists()
    summary = json.loads((out / ".batch" / "export_summary.json").read_text())
    rows = {Path(r["bag"]).name: r for r in summary["per_bag"]}
    assert {n: rows[n]["status"] for n in rows} == {
        **dict.fromkeys(GOOD, "done"),
        "bag_4_truncated": "failed",
        "bag_5_no_depth": "failed",
    }
    assert all(rows[n]["frames"] == 6 and rows[n]["error"] is None for n in GOOD)
    assert summary["frames"] == 24 and summary["failed"] == 2

    # a rerun: nothing to do for the good bags (their files untouched), the bad ones tried again
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("bag_*/**/*") if p.is_file()}
    rc = main(["batch", "export", "--bags", str(bags / "bag_*"), "--out", str(out), "--quiet"])
    assert rc == 1
    summary = json.loads((out / ".batch" / "export_summary.json").read_text())
    assert [r["status"] for r in summary["per_bag"]] == ["skipped"] * 4 + ["failed"] * 2
    assert summary["frames"] == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("bag_*/**/*") if p.is_file()} == mtimes
    print(f"\nbatch export of 6 bags on 2 local workers: {first_s:.1f} s (first run, with Ray start-up)")


def test_a_partial_output_is_redone_and_changed_options_redo_everything(local_ray, bags, tmp_path):
    out = tmp_path / "out"
    items = find_bags(str(bags / "bag_[01]"))
    job = ExportJob(str(out), ExportOptions(out_dir=Path(".")))
    opts = BatchOptions(progress=False)
    assert [r.status for r in run_batch("export", items, job, opts).results] == ["done", "done"]
    # bag_0 as a run killed after publishing, before its marker, with a damaged file: redone; bag_1 skipped
    (out / ".batch" / "bag_0.export.json").unlink()
    (out / "bag_0" / "export" / "dataset.h5").write_bytes(b"half")
    assert [r.status for r in run_batch("export", items, job, opts).results] == ["done", "skipped"]
    assert h5py.is_hdf5(out / "bag_0" / "export" / "dataset.h5")
    shutil.rmtree(out / "bag_1")  # a marker without its dataset (deleted by hand): redone
    assert [r.status for r in run_batch("export", items, job, opts).results] == ["skipped", "done"]
    assert h5py.is_hdf5(out / "bag_1" / "export" / "dataset.h5")
    other = ExportJob(str(out), ExportOptions(out_dir=Path("."), every_k=5))
    assert [r.status for r in run_batch("export", items, other, opts).results] == ["done", "done"]


def test_a_killed_worker_is_retried_and_gives_the_same_dataset(local_ray, bags, reference, tmp_path):
    out, flags = tmp_path / "out", tmp_path / "flags"
    flags.mkdir()
    target = str(bags / "bag_2")

    def hook(bag: str) -> None:  # runs in the worker; pickled by value (a closure)
        if bag != target or (flags / "attempted").exists():
            return
        (flags / "attempted").write_text("1")
        (flags / "pid").write_text(str(os.getpid()))
        for _ in range(600):  # until the test kills this process
            time.sleep(0.1)

    killed = []

    def killer() -> None:
        for _ in range(600):
            if (flags / "pid").exists():
                pid = int((flags / "pid").read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=killer)
    thread.start()
    items = [str(bags / "bag_1"), target]
    summary = run_batch(
        "export",
        items,
        ExportJob(str(out), ExportOptions(out_dir=Path("."))),
        BatchOptions(progress=False, task_hook=hook),
    )
    thread.join()
    assert len(killed) == 1
    rows = {Path(r.bag).name: r for r in summary.results}
    assert rows["bag_2"].status == "done" and rows["bag_2"].attempt_pid != killed[0]
    assert rows["bag_1"].status == "done"
    assert_same_dataset(reference / "bag_2", out / "bag_2")
    assert not any((out / ".batch" / "staging").iterdir())  # the killed attempt's staging is not published


def test_find_bags_refuses_two_bags_with_one_stem_and_an_empty_glob(tmp_path):
    from depth_annotation.batch import BatchError

    (tmp_path / "a" / "x.mcap").mkdir(parents=True)
    (tmp_path / "b" / "x").mkdir(parents=True)
    with pytest.raises(BatchError, match="both be exported to <out>/x"):
        find_bags(str(tmp_path / "*" / "x*"))
    with pytest.raises(BatchError, match="no bags matched"):
        find_bags(str(tmp_path / "nothing*"))


def test_batch_mono_actors_write_what_mono_writes(local_ray, bags, tmp_path):
    from depth_annotation.mono import save_tiny_model

    model = str(save_tiny_model(tmp_path / "tiny"))
    flags = ["--model", model, "--metric-model", "--input-size", "56"]
    for name in ("bag_0", "bag_1"):
        assert main(["mono", "--bag", str(bags / name), "--out", str(tmp_path / "ref" / name), *flags]) == 0
    out = tmp_path / "out"
    rc = main(
        ["batch", "mono", "--bags", str(bags / "bag_[01]"), "--out", str(out), "--actors", "2", "--quiet", *flags]
    )
    assert rc == 0
    for name in ("bag_0", "bag_1"):
        ref, got = tmp_path / "ref" / name, out / name
        pngs = sorted(p.name for p in (ref / "depth").iterdir())
        assert len(pngs) == 6 and sorted(p.name for p in (got / "depth").iterdir()) == pngs
        for png in pngs:
            assert (ref / "depth" / png).read_bytes() == (got / "depth" / png).read_bytes()
        a, b = json.loads((ref / "scale.json").read_text()), json.loads((got / "scale.json").read_text())
        for doc in (a, b):  # wall-clock time per frame is the only thing that may differ
            for frame in doc["frames"]:
                frame.pop("inference_ms")
        assert a == b


def test_without_ray_the_package_imports_and_says_how_to_install(monkeypatch, tmp_path):
    import sys

    from depth_annotation.batch import RayUnavailable

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(RayUnavailable, match=r"needs Ray, which is not installed: pip install"):
        run_batch("export", [str(tmp_path)], ExportJob(str(tmp_path / "out"), ExportOptions(out_dir=Path("."))))
    assert main(["batch", "export", "--bags", str(tmp_path), "--out", str(tmp_path / "out")]) == 2


# --- faults found in review (issue 19) ---------------------------------------------------------
def _copy_bag(bags: Path, name: str, dest: Path) -> Path:
    shutil.copytree(bags / name, dest)
    return dest


def _error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error: ")]


def test_an_output_folder_holding_an_input_is_refused_at_start(bags, tmp_path, capsys):
    rec = tmp_path / "rec"
    _copy_bag(bags, "bag_0", rec / "bag_0")
    before = {p: p.read_bytes() for p in rec.rglob("*") if p.is_file()}
    # OUT/<stem> of rec/bag_0 is rec/bag_0 itself: publishing would replace the bag by its dataset
    assert main(["batch", "export", "--bags", str(rec / "*"), "--out", str(rec), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(_error_lines(err)) == 1 and "lies inside" in err and "Traceback" not in err, err
    assert {p: p.read_bytes() for p in rec.rglob("*") if p.is_file() and ".batch" not in p.parts} == before


def test_a_folder_at_out_stem_that_is_not_a_batch_output_is_kept_and_only_that_bag_fails(local_ray, bags, tmp_path):
    out = tmp_path / "out"
    (out / "bag_0").mkdir(parents=True)
    (out / "bag_0" / "notes.txt").write_text("mine")
    items = [str(bags / "bag_0"), str(bags / "bag_1")]
    summary = run_batch(
        "export", items, ExportJob(str(out), ExportOptions(out_dir=Path("."))), BatchOptions(progress=False)
    )
    rows = {r.stem: r for r in summary.results}
    assert rows["bag_0"].status == "failed"
    assert "exists and is not a batch output" in rows["bag_0"].error and "notes.txt" in rows["bag_0"].error
    assert sorted(p.name for p in (out / "bag_0").iterdir()) == ["notes.txt"]
    assert rows["bag_1"].status == "done" and h5py.is_hdf5(out / "bag_1" / "export" / "dataset.h5")


def test_allow_partial_publishes_a_cut_bag_as_export_allow_partial_does(local_ray, bags, tmp_path, capsys):
    bag = tmp_path / "cut"  # cut at 3/4: frames before the damage are readable
    write_synthetic_bag(bag, frames=12, width=320, height=240, seed=5)
    data = _bag_file(bag).read_bytes()
    _bag_file(bag).write_bytes(data[: len(data) * 3 // 4])
    assert main(["export", str(bag), "--out", str(tmp_path / "ref"), "--allow-partial", "--quiet"]) == 0
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["batch", "export", "--bags", str(bag), "--out", str(out), "--allow-partial", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert any(ln.startswith(f"partial: {bag}: ") and "cut short" in ln for ln in err.splitlines()), err
    assert_same_dataset(tmp_path / "ref", out / "cut")
    summary = json.loads((out / ".batch" / "export_summary.json").read_text())
    assert summary["done"] == 1 and summary["failed"] == 0 and summary["partial"] == 1
    [row] = summary["per_bag"]
    ref_frames = json.loads((tmp_path / "ref" / "export_report.json").read_text())["frames"]
    assert row["outcome"] == "partial" and 0 < row["frames"] == ref_frames < 12


def test_one_stems_staging_cleanup_leaves_a_longer_stems_attempt_alone(local_ray, bags, tmp_path):
    """`cam` starting while `cam-2` exports must not remove cam-2's staging (its name starts with cam-)."""
    from depth_annotation.common import atomic_io

    src, out, flags = tmp_path / "src", tmp_path / "out", tmp_path / "flags"
    flags.mkdir()
    cam2, cam = _copy_bag(bags, "bag_0", src / "cam-2"), _copy_bag(bags, "bag_1", src / "cam")

    staging_root = out / ".batch" / "staging"

    def hook(bag: str) -> None:  # in the worker, with the bag's staging folder made
        if Path(bag).name == "cam":
            if not (flags / "cam_killed").exists():  # so that cam's retry starts while cam-2 is staged
                (flags / "cam_killed").write_text("1")
                for _ in range(2400):
                    if (flags / "cam2_staged").exists():
                        break
                    time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGKILL)
            (flags / "cam_started").write_text("1")
            return
        # cam-2 marks its staging folders, then waits until cam (retried) has cleaned up stale staging
        # only cam-2's own folder is walked: cam's retry removes its stale attempts meanwhile, and a
        # walk over the whole staging root met a folder vanishing under it (FileNotFoundError)
        own = staging_root / "cam-2"
        mine = [own, *(d for d in own.rglob("*") if d.is_dir())]
        for d in mine:
            (d / "sentinel").write_text("1")
        (flags / "cam2_staged").write_text("1")
        for _ in range(2400):
            if (flags / "cam_started").exists():
                break
            time.sleep(0.05)
        gone = [str(d) for d in mine if not (d / "sentinel").exists()]
        for d in mine:
            (d / "sentinel").unlink(missing_ok=True)
        if gone:
            raise RuntimeError(f"cam's start removed cam-2's staging: {gone}")

    # an attempt of cam whose process is alive (this one holds its lock) and one whose process died
    stem_dir = out / ".batch" / "staging" / "cam"
    (stem_dir / "aaaaaaaaaaaa" / "out").mkdir(parents=True)
    (stem_dir / "bbbbbbbbbbbb" / "out").mkdir(parents=True)
    (stem_dir / "bbbbbbbbbbbb.lock").write_text("{}")
    with atomic_io.ExclusiveLock(stem_dir / "aaaaaaaaaaaa.lock"):
        summary = run_batch(
            "export",
            [str(cam2), str(cam)],
            ExportJob(str(out), ExportOptions(out_dir=Path("."))),
            BatchOptions(progress=False, task_hook=hook),
        )
        assert (stem_dir / "aaaaaaaaaaaa" / "out").is_dir()  # alive: left alone
    assert [(r.stem, r.status, r.error) for r in summary.results] == [("cam-2", "done", None), ("cam", "done", None)]
    assert not (stem_dir / "bbbbbbbbbbbb").exists() and not (stem_dir / "bbbbbbbbbbbb.lock").exists()


def test_a_worker_killed_during_the_export_leaves_no_staging_after_the_retry(local_ray, tmp_path):
    bags_dir, out, flags = tmp_path / "bags", tmp_path / "out", tmp_path / "flags"
    flags.mkdir()
    write_synthetic_bag(bags_dir / "big", frames=12, width=320, height=240, seed=3)
    staging_root = out / ".batch" / "staging"

    def hook(bag: str) -> None:  # first attempt: die as soon as the exporter's own staging folder exists
        if (flags / "attempted").exists():
            return
        (flags / "attempted").write_text("1")
        pid = os.getpid()

        def die() -> None:
            for _ in range(60000):
                if any(staging_root.rglob(f".*.staging-{pid}")):
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.001)

        threading.Thread(target=die, daemon=True).start()

    summary = run_batch(
        "export",
        [str(bags_dir / "big")],
        ExportJob(str(out), ExportOptions(out_dir=Path("."))),
        BatchOptions(progress=False, task_hook=hook),
    )
    [row] = summary.results
    assert row.status == "done" and row.frames == 12, row
    assert (flags / "attempted").exists()
    left = sorted(str(p.relative_to(staging_root)) for p in staging_root.rglob("*")) if staging_root.exists() else []
    assert left == []


@pytest.mark.parametrize("kind", ["file", "proc", "s3", "memory"])
def test_an_unusable_output_is_one_line_and_exit_2_before_any_work(local_ray, bags, tmp_path, capsys, kind):
    from depth_annotation.batch import BatchError

    afile = tmp_path / "afile"
    afile.write_text("x")
    out = {"file": str(afile), "proc": "/proc/x", "s3": "s3://bucket/x", "memory": "memory://x"}[kind]
    if kind == "s3" and importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed: s3:// is usable here")  # the case is s3:// without s3fs
    worked = tmp_path / "worked"

    def hook(bag: str) -> None:  # in the worker: a bag's work began
        worked.write_text(bag)

    job = ExportJob(out, ExportOptions(out_dir=Path(".")))
    with pytest.raises(BatchError, match=f"--out {out}"):
        run_batch("export", [str(bags / "bag_0")], job, BatchOptions(progress=False, task_hook=hook))
    assert not worked.exists()
    assert main(["batch", "export", "--bags", str(bags / "bag_0"), "--out", out, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "failed: " not in err and len(_error_lines(err)) == 1, err
    if kind == "memory":
        assert "own in-memory file system" in err


def test_a_second_batch_run_into_one_out_is_refused_naming_the_first(bags, tmp_path, capsys):
    from depth_annotation.common import atomic_io

    out = tmp_path / "out"
    (out / ".batch").mkdir(parents=True)
    with atomic_io.ExclusiveLock(out / ".batch" / "batch.lock"):
        assert main(["batch", "export", "--bags", str(bags / "bag_0"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "in use by another batch run" in err and f"pid {os.getpid()}" in err, err


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    """`annotations synth` (annotator 2 erodes 10 px: every frame fails) + import, and the same
    dataset before the import (nothing to validate: an error, not a finding)."""
    root = tmp_path_factory.mktemp("annotated")
    synth = root / "synth"
    args = ["annotations", "synth", "--out", str(synth), "--frames", "6", "--every", "2", "--overlap", "1"]
    assert main([*args, "--boundary-px", "-10"]) == 0
    shutil.copytree(synth / "dataset", root / "bare")
    shutil.copytree(synth / "dataset", root / "fails")
    assert (
        main(["annotations", "import", str(synth / "label_studio_export.json"), "--dataset", str(root / "fails")]) == 0
    )
    return root


def test_batch_validate_publishes_the_report_of_a_dataset_with_failing_frames(local_ray, annotated, tmp_path, capsys):
    out, ref = tmp_path / "out", tmp_path / "ref"
    assert main(["validate", "--dataset", str(annotated / "fails"), "--out", str(ref)]) == 1
    listing = tmp_path / "list.txt"
    listing.write_text(f"{annotated / 'fails'}\n{annotated / 'bare'}\n")
    capsys.readouterr()
    for run in range(2):  # the rerun skips it and still exits 1: its frames still need re-annotation
        assert main(["batch", "validate", "--list", str(listing), "--out", str(out), "--quiet"]) == 1
        err = capsys.readouterr().err
        assert any(ln.startswith(f"failed validation: {annotated / 'fails'}: 3 of 3") for ln in err.splitlines()), err
        assert any(
            ln.startswith(f"failed: {annotated / 'bare'}: ") and "no imported annotations" in ln
            for ln in err.splitlines()
        )
        summary = json.loads((out / ".batch" / "validate_summary.json").read_text())
        assert (summary["failed_validation"], summary["failed"]) == (1, 1)
        rows = {r["stem"]: r for r in summary["per_bag"]}
        assert rows["fails"]["status"] == ("done", "skipped")[run] and rows["fails"]["outcome"] == "failed validation"
    assert (out / ".batch" / "fails.validate.json").exists() and not (out / "bare").exists()
    got = out / "fails"
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in ref.iterdir())
    assert (got / "reannotation_tasks.json").read_bytes() == (ref / "reannotation_tasks.json").read_bytes()
    report = json.loads((got / "validation_report.json").read_text())
    assert report["files"]["reannotation_tasks"] == str(got / "reannotation_tasks.json")
    html = (got / "validation_report.html").read_text()
    assert str(got / "reannotation_tasks.json") in html
    assert "staging" not in json.dumps(report) and "staging" not in html


def test_batch_mono_redoes_the_bags_when_the_scale_files_content_changes(local_ray, bags, tmp_path):
    from depth_annotation.batch import MonoJob
    from depth_annotation.mono import MonoModelConfig, save_tiny_model

    model = MonoModelConfig(model=str(save_tiny_model(tmp_path / "tiny")), input_size=56)
    scale = tmp_path / "scale.json"
    scale.write_text(json.dumps({"mono_scale": {"scale": 2.5, "shift": 0.1}}))
    out = tmp_path / "out"
    job = MonoJob(str(out), model, scale_file=str(scale))
    opts = BatchOptions(progress=False, actors=1)

    def run() -> tuple[str, set[float]]:  # the status and the scales the published frames were aligned with
        [row] = run_batch("mono", [str(bags / "bag_0")], job, opts).results
        assert row.error is None, row.error
        frames = json.loads((out / "bag_0" / "scale.json").read_text())["frames"]
        assert len(frames) == 6
        return row.status, {f["scale"] for f in frames}

    assert run() == ("done", {2.5})
    assert run() == ("skipped", {2.5})
    scale.write_text(json.dumps({"mono_scale": {"scale": 1.5, "shift": 0.1}}))  # the same path, a new calibration
    assert run() == ("done", {1.5})


def test_batch_mono_with_a_missing_model_says_why_in_one_line(local_ray, bags, tmp_path, capsys):
    missing = tmp_path / "no_such_model"
    rc = main(
        ["batch", "mono", "--bags", str(bags / "bag_0"), "--out", str(tmp_path / "out"), "--model", str(missing)]
        + ["--metric-model", "--actors", "1", "--quiet"]
    )
    assert rc == 1
    err = capsys.readouterr().err
    [line] = [ln for ln in err.splitlines() if ln.startswith("failed: ")]
    assert "MonoModelError" in line and str(missing) in line and "\x1b" not in line, line


def _cache_hub_model(cache: Path, repo_id: str, commit: str, seed: int) -> None:
    """A hub model in the Hugging Face cache layout (models--org--name/snapshots/<commit>, refs/main),
    as `from_pretrained` leaves it after a download."""
    from depth_annotation.mono import save_tiny_model

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    save_tiny_model(repo / "snapshots" / commit, seed=seed)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


def test_batch_mono_fingerprints_the_cached_revision_of_a_hub_model(monkeypatch, tmp_path):
    """A hub model is fingerprinted by the files of the revision the cache holds (what an offline
    from_pretrained loads), so a new revision redoes the bags; an uncached one by its name alone."""
    from huggingface_hub import constants

    from depth_annotation.batch import MonoJob
    from depth_annotation.mono import MonoModelConfig, load_model

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # restored after the test (loading sets it for the process)
    repo_id, first, second = "our-lab/tiny-depth", "a" * 40, "b" * 40

    def options(model: str) -> dict:
        return MonoJob(str(tmp_path / "out"), MonoModelConfig(model=model, input_size=56)).fingerprint_options()

    assert "model_files" not in options(repo_id)  # not cached here: the name only
    _cache_hub_model(cache, repo_id, first, seed=0)
    loaded = load_model(MonoModelConfig(model=repo_id, input_size=56))  # the layout from_pretrained reads offline
    assert loaded.predict(np.zeros((56, 56, 3), np.uint8))[0].shape == (56, 56)
    at_first = options(repo_id)
    assert (
        at_first["model_files"] == options(str(cache / f"models--our-lab--tiny-depth/snapshots/{first}"))["model_files"]
    )
    assert options(repo_id) == at_first  # stable while the cache holds the same revision
    _cache_hub_model(cache, repo_id, second, seed=1)  # a new revision downloaded: refs/main moves
    assert options(repo_id)["model_files"] != at_first["model_files"]
