"""The annotation round trip from the command line, checked with the real tools around it.

- `depth-annotation annotations synth / annotations import / validate` as processes;
- `export --overlap 0.2` on bags of two scenes;
- the generated export (annotations, predictions: brush, polygons, keypoints) and the
  re-annotation tasks validated by the Label Studio SDK against our labelling config;
- the HTML report opened in headless Chromium: every figure and worst-frame image decodes;
- the demo's closing step (`cli/demo.py::annotation_round_trip`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ros_harness import REPO, VENV_BIN

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
from depth_annotation.dataset import write_synthetic_bag

CHROMIUM = Path("/usr/bin/chromium")


def cli(*args, timeout=300):
    return subprocess.run(
        [str(VENV_BIN / "depth-annotation"), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """`annotations synth`: 12 frames, every 2nd a task, half of them for two annotators; annotator 2 erodes 10 px."""
    out = tmp_path_factory.mktemp("cli") / "synth"
    res = cli(
        "annotations", "synth", "--out", out, "--frames", 12, "--every", 2, "--overlap", 0.5, "--boundary-px", -10
    )
    assert res.returncode == 0, res.stderr
    return out


def test_import_then_validate_routes_the_eroded_frames_back(synth, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(synth / "dataset", dataset)
    res = cli("annotations", "import", synth / "label_studio_export.json", "--dataset", dataset)
    assert res.returncode == 0, res.stderr
    assert "imported 6 frames (3 with several annotators)" in res.stdout
    report = json.loads((dataset / "annotation" / "import_report.json").read_text())
    assert report["frames"] == 6 and report["per_source"] == {"user1": 5, "user2": 4}
    res = cli("validate", "--dataset", dataset)
    assert res.returncode == 1, res.stderr  # frames failed: exit 1, as `check` does for problems
    failed = [line for line in res.stdout.splitlines() if line.startswith("failed: ")]
    tasks = json.loads((dataset / "validation" / "reannotation_tasks.json").read_text())
    overlap = {
        f"{t['data']['episode']}@{t['data']['stamp_ns']}" for t in load_tasks(dataset) if t["data"]["overlap"] == 2
    }
    assert {f"{t['data']['episode']}@{t['data']['stamp_ns']}" for t in tasks} >= overlap  # 10 px: all routed back
    assert len(failed) == len(tasks) and all(
        "IoU target_object" in line for line in failed if line.split()[1][:-1] in overlap
    )
    assert all(t["meta"]["reannotation_reasons"] and t["data"]["depth"] for t in tasks)
    assert cli("check", dataset).returncode == 0  # the published file is still a consistent dataset


def test_malformed_exports_exit_nonzero_name_the_task_and_write_nothing(synth, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(synth / "dataset", dataset)
    export = json.loads((synth / "label_studio_export.json").read_text())
    brush = next(r for r in export[1]["annotations"][0]["result"] if r["type"] == "brushlabels")
    brush["value"]["rle"] = brush["value"]["rle"][:7]
    export[2]["id"] = 4242
    export[2]["data"]["episode"] = "episode_9"
    kp = next(r for r in export[3]["annotations"][0]["result"] if r["type"] == "keypointlabels")
    kp["value"]["keypointlabels"] = ["spout"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(export))
    h5 = dataset / "export" / "dataset.h5"
    before = digest(h5)
    res = cli("annotations", "import", bad, "--dataset", dataset)
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert any(line.startswith(f"error: task {export[1]['id']}: ") and "malformed brush RLE" in line for line in lines)
    assert any(line.startswith("error: task 4242: ") and "episode_9" in line for line in lines)
    assert any(
        line.startswith(f"error: task {export[3]['id']}: ") and "unknown keypoint 'spout'" in line for line in lines
    )
    assert "nothing was imported" in lines[-1]
    assert digest(h5) == before and not list(h5.parent.glob("*.partial"))
    assert not (dataset / "annotation" / "import_report.json").exists()
    (tmp_path / "not.json").write_text("{ nope")
    res = cli("annotations", "import", tmp_path / "not.json", "--dataset", dataset)
    assert res.returncode == 2 and "cannot read the export" in res.stderr


def test_export_overlap_marks_a_fifth_of_each_scene(tmp_path):
    for name, n in (("a", 30), ("b", 12)):
        write_synthetic_bag(tmp_path / name, frames=n, width=160, height=120, seed=1, with_quality=False)
    args = ["export", "--quiet", tmp_path / "a", tmp_path / "b", "--every", 2, "--overlap", 0.2, "--seed", 3]
    scenes = ["--scene", f"{tmp_path / 'a'}=sa", "--scene", f"{tmp_path / 'b'}=sb"]
    res = cli(*args, *scenes, "--out", tmp_path / "ds")
    assert res.returncode == 0, res.stderr
    assert "4 task(s) marked for two annotators" in res.stdout
    tasks = load_tasks(tmp_path / "ds")
    per_scene = {s: [t["data"]["overlap"] for t in tasks if t["data"]["scene_id"] == s] for s in ("sa", "sb")}
    # 15 and 6 tasks: round(0.2 * 15) = 3, round(0.2 * 6) = 1
    assert (per_scene["sa"].count(2), per_scene["sb"].count(2)) == (3, 1)
    assert len(per_scene["sa"]) == 15 and set(per_scene["sa"] + per_scene["sb"]) == {1, 2}
    info = json.loads((tmp_path / "ds" / "dataset_info.json").read_text())
    rec = info["annotation_overlap"]
    assert rec["fraction"] == 0.2 and rec["per_scene"] == {
        "sa": {"tasks": 15, "overlap": 3},
        "sb": {"tasks": 6, "overlap": 1},
    }
    assert len(rec["tasks"]) == 4
    assert cli(*args, *scenes, "--out", tmp_path / "ds2").returncode == 0  # the same seed: the same tasks
    assert (
        json.loads((tmp_path / "ds2" / "dataset_info.json").read_text())["annotation_overlap"]["tasks"] == rec["tasks"]
    )
    assert cli(*args[:-2], "--seed", 4, *scenes, "--out", tmp_path / "ds3").returncode == 0
    other = json.loads((tmp_path / "ds3" / "dataset_info.json").read_text())["annotation_overlap"]["tasks"]
    assert len(other) == 4 and other != rec["tasks"]
    res = cli(*args[:-4], "--overlap", 1.5, "--out", tmp_path / "ds4")
    assert res.returncode == 2 and "between 0 and 1" in res.stderr


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """A dataset with every kind of region exported (brush, polygons, keypoints, predictions), imported, validated."""
    root = tmp_path_factory.mktemp("validated")
    dataset, truth, scene = synthetic_dataset(root, frames=8, every_k=2, overlap=0.5, fps=1.0)
    profiles = [AnnotatorProfile(1, polygon_labels=("gripper",)), AnnotatorProfile(2, boundary_px=-4, bleed_px=2)]
    with LabelStudioCodec(2) as codec:
        export = annotators_export(
            load_tasks(dataset), truth, scene, profiles, codec, prediction=AnnotatorProfile(9, boundary_px=2)
        )
        (root / "export.json").write_text(json.dumps(export))
        import_export(root / "export.json", dataset_files(dataset), codec=codec)
    return dataset, root / "export.json", validate_dataset(dataset)


LS_CHECK = r"""
import json, sys
from label_studio_sdk.label_interface import LabelInterface
li = LabelInterface(open(sys.argv[1]).read())
export, reann = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
out = {"annotations": 0, "predictions": 0, "types": set(), "errors": []}
for task in export:
    assert li.validate_task({"data": task["data"]}), task["id"]
    for a in task["annotations"]:
        out["annotations"] += 1
        out["types"] |= {r["type"] for r in a["result"]}
        if not li.validate_annotation(a):
            out["errors"].append(("annotation", task["id"], a["id"]))
    for p in task["predictions"]:
        out["predictions"] += 1
        errors = li.validate_prediction(p, return_errors=True)
        if errors:
            out["errors"].append(("prediction", task["id"], errors[:2]))
bad = [t for t in reann if not li.validate_task(t)]
out["reannotation_tasks"], out["reannotation_invalid"] = len(reann), len(bad)
out["types"] = sorted(out["types"])
print(json.dumps(out))
"""


def test_label_studio_sdk_accepts_the_generated_export_and_the_reannotation_tasks(validated):
    dataset, export_path, summary = validated
    assert summary.failed  # annotator 2 erodes and bleeds: some frames go back
    res = subprocess.run(
        [
            str(REPO / ".venv-labelstudio" / "bin" / "python"),
            "-c",
            LS_CHECK,
            dataset / "annotation" / "label_config.xml",
            export_path,
            summary.paths["tasks"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["errors"] == []
    assert out["types"] == ["brushlabels", "keypointlabels", "polygonlabels"]
    assert out["predictions"] == 4 and out["annotations"] == 6
    assert out["reannotation_tasks"] == len(summary.failed) and out["reannotation_invalid"] == 0
    # and a broken region is caught by the same SDK check (the check can fail)
    export = json.loads(export_path.read_text())
    export[0]["annotations"][0]["result"][0]["value"]["brushlabels"] = ["teapot"]
    broken = export_path.with_name("broken.json")
    broken.write_text(json.dumps(export))
    res = subprocess.run(
        [
            str(REPO / ".venv-labelstudio" / "bin" / "python"),
            "-c",
            LS_CHECK,
            dataset / "annotation" / "label_config.xml",
            broken,
            summary.paths["tasks"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(res.stdout)["errors"][:1] == [["annotation", export[0]["id"], export[0]["annotations"][0]["id"]]]


def test_html_report_renders_every_figure_in_a_headless_browser(validated, tmp_path):
    _, _, summary = validated
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: scripts/setup_env.sh installs Debian's chromium"
    report = summary.report
    assert len(report["figures"]) >= 8 and report["worst_frames"]
    res = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            summary.paths["html"].as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, HOME=str(tmp_path)),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    n_fig, n_worst = len(report["figures"]), len(report["worst_frames"])
    # set by the page's own script once loaded: images the browser decoded (naturalWidth > 0)
    assert f'data-figures-loaded="{n_fig}"' in dom and f'data-figures-expected="{n_fig}"' in dom
    assert f'data-worst-loaded="{n_worst}"' in dom
    for fid in report["figures"]:
        assert f'id="{fid}"' in dom
    for key in report["worst_frames"]:
        assert key in dom


def test_demo_ends_with_the_annotation_round_trip(tmp_path, capsys):
    from depth_annotation.cli.demo import annotation_round_trip

    result = annotation_round_trip(tmp_path / "rt", frames=8)
    out = capsys.readouterr().out
    assert "| frames imported" in out and "| median IoU / kappa" in out
    v = result["validation"]
    assert result["imported"]["frames"] == 4 and result["imported"]["frames_with_several_annotators"] == 1
    assert v["failed"] >= 1 and v["median_iou"] < 0.85  # annotator 2's 3 px erosion shows up
    assert Path(result["report"]).exists()
