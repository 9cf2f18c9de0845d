"""The learned pre-annotation backend: SAM prompted by the geometric clusters.

The region bookkeeping is checked with masks whose answer is known; the real
transformers path (from_pretrained, processor, post-processing) with a tiny
randomly initialised SAM that the test saves (UNTRAINED: its masks are noise).
"""

from __future__ import annotations

import json
import subprocess

import cv2
import numpy as np
import pytest
from ros_harness import REPO, VENV_BIN

from depth_annotation.common import LABEL_IDS, SyntheticScene, default_intrinsics, orbit_pose
from depth_annotation.dataset import ExportOptions, export_bags, write_synthetic_bag
from depth_annotation.preannotation import (
    PreannotationConfigError,
    PreannotationError,
    SamBackend,
    SamBackendConfig,
    preannotate_frame,
    prompt_of,
    refine_regions,
    save_tiny_sam,
)


@pytest.fixture(scope="module")
def frame():
    intr = default_intrinsics(320, 240)
    rendered = SyntheticScene(0).render(intr, orbit_pose(0.0))
    return rendered, preannotate_frame(rendered.depth_mm, intr, rendered.color)


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory):
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny-sam")


def test_prompts_are_the_box_and_the_innermost_pixel():
    mask = np.zeros((40, 60), bool)
    mask[10:21, 30:51] = True  # rows 10..20, columns 30..50
    assert prompt_of(mask, "box").tolist() == [30, 10, 51, 21]
    square = np.zeros((40, 60), bool)
    square[10:21, 30:41] = True  # 11 x 11: one innermost pixel, its centre
    assert prompt_of(square, "point").tolist() == [35, 15]


def test_refined_masks_replace_the_regions_where_there_is_depth(frame):
    rendered, result = frame
    valid = rendered.depth_mm > 0
    targets = [r for r in result.regions if r.kind in ("object", "robot")]
    assert len(targets) >= 4
    # Each object grows by 2 px: a mask that differs from geometry's where the answer is known.
    kernel = np.ones((5, 5), np.uint8)
    proposals = {r.instance: (cv2.dilate(result.mask(r).astype(np.uint8), kernel).astype(bool), 0.8) for r in targets}
    low = targets[0]
    proposals[low.instance] = (np.ones_like(valid), 0.05)  # below min_score: geometry's mask stays
    refined = refine_regions(result, rendered.depth_mm, proposals, min_score=0.1)
    expected = result.labels.copy()
    for r in targets[1:]:
        expected[proposals[r.instance][0] & valid] = r.label_id
    assert np.array_equal(refined.labels, expected)
    assert np.array_equal(refined.labels == LABEL_IDS["void"], ~valid)
    by_instance = {r.instance: r for r in refined.regions}
    for r in targets[1:]:
        assert by_instance[r.instance].score == pytest.approx(0.8)
        assert by_instance[r.instance].pixels == np.count_nonzero(proposals[r.instance][0] & valid)
    assert by_instance[low.instance].score == low.score and by_instance[low.instance].pixels == low.pixels
    for r in refined.regions:  # the partition is consistent
        assert np.all(refined.labels[refined.mask(r)] == r.label_id)
    assert sum(r.pixels for r in refined.regions) == np.count_nonzero(valid)


def test_pixels_an_object_gives_up_become_background(frame):
    rendered, result = frame
    target = next(r for r in result.regions if r.kind == "object")
    half = result.mask(target).copy()
    rows = np.nonzero(half.any(axis=1))[0]
    half[rows[len(rows) // 2] :] = False  # SAM keeps only the top half
    refined = refine_regions(result, rendered.depth_mm, {target.instance: (half, 0.9)})
    given_up = result.mask(target) & ~half
    assert given_up.any() and np.all(refined.labels[given_up] == LABEL_IDS["background"])
    assert np.all(refined.labels[half] == target.label_id)


def test_the_tiny_sam_runs_the_real_path_and_says_untrained(frame, tiny_sam):
    rendered, result = frame
    for prompt in ("box", "point"):
        backend = SamBackend(SamBackendConfig(model=str(tiny_sam), prompt=prompt))
        assert backend.untrained and backend.model_version.endswith("tiny-sam-UNTRAINED")
        targets = [r for r in result.regions if r.kind in ("object", "robot")]
        masks, scores = backend.predict(rendered.color, [prompt_of(result.mask(r), prompt) for r in targets])
        assert len(masks) == len(scores) == len(targets)
        assert all(m.shape == rendered.depth_mm.shape and m.dtype == bool for m in masks)
        refined = backend.refine(rendered.color, rendered.depth_mm, result)
        valid = rendered.depth_mm > 0
        assert np.array_equal(refined.labels == LABEL_IDS["void"], ~valid)
        assert all(0.0 <= r.score <= 1.0 for r in refined.regions)
        assert sum(r.pixels for r in refined.regions) == np.count_nonzero(valid)


def test_loading_is_offline_and_safe(tmp_path, tiny_sam):
    with pytest.raises(PreannotationError, match=r"not available offline.*no such directory"):
        SamBackend(SamBackendConfig(model=str(tmp_path / "none")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PreannotationError, match=r"lacks config\.json, model\.safetensors"):
        SamBackend(SamBackendConfig(model=str(tmp_path / "empty")))
    with pytest.raises(PreannotationError, match="not available offline"):
        SamBackend(SamBackendConfig(model="depth-annotation-test/no-such-sam"))
    with pytest.raises(PreannotationConfigError, match="prompt"):
        SamBackend(SamBackendConfig(model=str(tiny_sam), prompt="scribble"))


def test_cli_with_sam_marks_the_predictions_untrained_and_label_studio_accepts_them(tmp_path, tiny_sam):
    write_synthetic_bag(tmp_path / "bag", frames=3, width=320, height=240)
    export_bags([(tmp_path / "bag", "s")], ExportOptions(out_dir=tmp_path / "ds", every_k=2), progress=False)
    res = subprocess.run(
        [
            str(VENV_BIN / "depth-annotation"),
            "preannotate",
            "--dataset",
            str(tmp_path / "ds"),
            "--sam",
            str(tiny_sam),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "UNTRAINED model" in res.stderr and "(UNTRAINED)" in res.stdout and "ms/frame SAM" in res.stdout
    ann = tmp_path / "ds" / "annotation"
    tasks = json.loads((ann / "label_studio_tasks_preannotated.json").read_text())
    assert len(tasks) == 2
    assert all(t["predictions"][0]["model_version"].endswith("UNTRAINED") for t in tasks)
    assert json.loads((ann / "preannotation_report.json").read_text())["sam"]["untrained"] is True
    script = (
        "import json, sys\n"
        "from label_studio_sdk.label_interface import LabelInterface\n"
        "li = LabelInterface(open(sys.argv[1]).read())\n"
        "for t in json.load(open(sys.argv[2])):\n"
        "    assert li.validate_prediction(t['predictions'][0], return_errors=True) == []\n"
        "print('ok')\n"
    )
    res = subprocess.run(
        [
            str(REPO / ".venv-labelstudio" / "bin" / "python"),
            "-c",
            script,
            ann / "label_config.xml",
            ann / "label_studio_tasks_preannotated.json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
