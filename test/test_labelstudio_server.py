"""The real Label Studio in the loop: our tasks served, annotated through its API, exported, imported; a real browser.

One `depth-annotation labelstudio serve` process (Label Studio from
`.venv-labelstudio-server`, a temporary data directory, a free loopback port)
serves a synthetic dataset of 5 tasks for the module. Two annotators' brush masks
(the synthetic ground truth, RLE encoded by the SDK) and keypoint clicks are posted
through the REST API; `labelstudio pull` exports the project through the API and
runs our import, which must reproduce the ground truth exactly. Headless Chromium,
logged in with a session cookie and driven over the DevTools protocol through a pipe
(`helpers/cdp_browser.py`), opens a task's labelling page: both images decode and
are the task's RGB and colorized depth, and the taxonomy's names are on the page.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.cdp_browser import CHROMIUM, CdpBrowser
from ros_harness import REPO, VENV_BIN

from depth_annotation.annotation import (
    AnnotatorProfile,
    LabelStudioClient,
    LabelStudioCodec,
    annotators_export,
    free_port,
    load_credentials,
    load_tasks,
    session_cookie,
    setup_project,
    synthetic_dataset,
)
from depth_annotation.common import DEFAULT_TAXONOMY
from depth_annotation.dataset import open_h5

SERVER = REPO / ".venv-labelstudio-server" / "bin" / "label-studio"
SETUP = f"{REPO / 'scripts' / 'setup_env.sh'} (builds .venv-labelstudio-server)"
SERVE_WAIT_S = 120.0  # Label Studio's own start-up wait is bounded at 90 s; then the project and 5 tasks


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DEPTH_ANNOTATION_LS", "LABEL_STUDIO"))}


def cli(*args: object, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "depth-annotation"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
    )


def kill_group(pgid: int | None, sig: int = signal.SIGKILL) -> None:
    if pgid:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`labelstudio serve` on a synthetic dataset of 5 tasks; stopped (group killed) on every exit path."""
    if not SERVER.exists():
        pytest.skip(f"Label Studio server venv missing ({SERVER}): run {SETUP}")
    root = tmp_path_factory.mktemp("labelstudio")
    dataset, truth, scene = synthetic_dataset(root, frames=5, every_k=1, overlap=1.0, fps=1.0)
    port = free_port()
    out, err = root / "serve.out", root / "serve.err"
    t0 = time.monotonic()
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(
            [
                str(VENV_BIN / "depth-annotation"),
                "labelstudio",
                "serve",
                "--dataset",
                str(dataset),
                "--port",
                str(port),
            ],
            stdout=fo,
            stderr=fe,
            env=cli_env(),
            start_new_session=True,
        )
    state_path = dataset / "labelstudio" / "server.json"
    try:
        while "open http" not in out.read_text():
            assert proc.poll() is None, f"serve exited {proc.returncode}: {err.read_text()[-2000:]}"
            assert time.monotonic() - t0 < SERVE_WAIT_S, f"serve not ready in {SERVE_WAIT_S} s: {err.read_text()}"
            time.sleep(0.5)
        ready_s = time.monotonic() - t0
        state = json.loads(state_path.read_text())
        print(f"\nlabelstudio serve ready in {ready_s:.1f} s ({out.read_text().splitlines()[0]})")
        yield {
            "dataset": dataset,
            "truth": truth,
            "scene": scene,
            "state": state,
            "port": port,
            "stdout": out.read_text(),
            "stderr_path": err,
            "creds": load_credentials(dataset / "labelstudio", env={}),
        }
    finally:
        kill_group(proc.pid, signal.SIGTERM)  # serve stops its server on SIGTERM
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait(10)
        if state_path.exists():  # the server's own group, should serve have died without stopping it
            kill_group(json.loads(state_path.read_text()).get("server_pgid"))


def test_serve_prints_the_url_and_where_the_login_is_never_the_secret(served):
    creds, out = served["creds"], served["stdout"]
    state = served["state"]
    assert state["url"] == f"http://127.0.0.1:{served['port']}"
    assert f"open {state['url']}/projects/{state['project_id']}/data" in out
    assert "5 task(s) from label_studio_tasks.json (5 imported now)" in out
    assert f"login: {creds.username}, password in {creds.source} (mode 0600)" in out
    cred_file = served["dataset"] / "labelstudio" / "credentials.json"
    assert stat.S_IMODE(cred_file.stat().st_mode) == 0o600
    logs = out + served["stderr_path"].read_text() + (served["dataset"] / "labelstudio" / "server.log").read_text()
    assert creds.password not in logs and creds.token not in logs
    # the token is the server's: the API answers with it and refuses without it
    client = LabelStudioClient(state["url"], creds.token)
    assert client.request("GET", "/api/current-user/whoami")["email"] == creds.username
    with pytest.raises(Exception, match="HTTP 401"):
        LabelStudioClient(state["url"], "not-the-token").request("GET", "/api/projects")


def test_two_annotators_through_the_api_then_pull_reproduces_the_ground_truth(served):
    dataset, truth, scene, state, creds = (served[k] for k in ("dataset", "truth", "scene", "state", "creds"))
    client = LabelStudioClient(state["url"], creds.token)
    again = setup_project(client, dataset)  # a second serve reuses the project and does not import twice
    assert (again.project_id, again.created, again.imported, again.tasks) == (state["project_id"], False, 0, 5)
    server_tasks = client.tasks(state["project_id"])
    by_frame = {(t["data"]["episode"], int(t["data"]["stamp_ns"])): int(t["id"]) for t in server_tasks}
    assert len(by_frame) == 5
    users = {1: int(client.request("GET", "/api/current-user/whoami")["id"]), 2: client.create_user("user2@localhost")}
    drawn: dict = {}
    with LabelStudioCodec(1) as codec:
        export = annotators_export(
            load_tasks(dataset),
            truth,
            scene,
            [AnnotatorProfile(1), AnnotatorProfile(2)],
            codec,
            assignment="all",
            drawn_out=drawn,
        )
    posted: dict[int, int] = {}  # server task id -> synthetic task id
    for entry in export:
        task_id = by_frame[(entry["data"]["episode"], int(entry["data"]["stamp_ns"]))]
        posted[task_id] = entry["id"]
        for ann in entry["annotations"]:
            client.create_annotation(task_id, ann["result"], completed_by=users[ann["completed_by"]])

    res = cli("labelstudio", "pull", "--dataset", dataset)
    assert res.returncode == 0, res.stderr
    assert "exported 5 annotated task(s)" in res.stdout
    assert "imported 5 frames (5 with several annotators), 10 annotations" in res.stdout
    pulled = json.loads((dataset / "labelstudio" / "export.json").read_text())
    assert sorted({a["completed_by"] for t in pulled for a in t["annotations"]}) == sorted(users.values())

    names = {f"user{users[1]}": 1, f"user{users[2]}": 2}
    with open_h5(dataset / "export" / "dataset.h5") as f:
        g = f["episode_0"]
        stamps = g["timestamps_ns"][:]
        index = list(g["segmentation_index"][:])
        assert sorted(index) == list(range(5))
        for row, fi in enumerate(index):
            expected = truth[("episode_0", int(stamps[fi]))].annotation_labels()
            assert np.array_equal(g["segmentation"][row], expected)  # labels exact, void where no depth
            for who in names:  # and every annotator's own copy
                copy = g["annotations"][who]
                crow = list(copy["segmentation_index"][:]).index(fi)
                assert np.array_equal(copy["segmentation"][crow], expected)
        kps = g["keypoints_3d"][:]
    got = sorted(
        (
            names[k["annotator"].decode() if isinstance(k["annotator"], bytes) else k["annotator"]],
            int(k["stamp_ns"]),
            k["name"].decode() if isinstance(k["name"], bytes) else k["name"],
            round(float(k["u"]), 2),
            round(float(k["v"]), 2),
        )
        for k in kps
    )
    stamp_of = {e["id"]: int(e["data"]["stamp_ns"]) for e in export}
    want = sorted(
        (who, stamp_of[tid], kp, round(u, 2), round(v, 2))
        for (tid, name), d in drawn.items()
        for who in [int(name[4:])]
        for (_obj, kp, u, v) in d.clicks
    )
    assert len(want) >= 10 and got == want  # every click of both annotators, at its pixel
    assert all(np.all(np.isfinite(k["xyz"])) or k["reason"] for k in kps)


def image_mean_js() -> str:
    """The mean R, G, B of every decoded image of the labelling editor (Label Studio's `lsf-image`)."""
    return """(() => {
      const imgs = Array.from(document.querySelectorAll('.lsf-image > img')).filter(i => i.naturalWidth > 0);
      if (imgs.length < 2) return null;
      return imgs.map(img => {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        const s = [0, 0, 0];
        for (let i = 0; i < d.length; i += 4) { s[0] += d[i]; s[1] += d[i + 1]; s[2] += d[i + 2]; }
        const n = d.length / 4;
        return {w: img.naturalWidth, h: img.naturalHeight, mean: s.map(v => v / n)};
      });
    })()"""


def test_labelling_page_shows_rgb_and_depth_and_the_taxonomy_in_chromium(served, tmp_path):
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: {SETUP} installs Debian's chromium"
    state, creds, dataset = served["state"], served["creds"], served["dataset"]
    client = LabelStudioClient(state["url"], creds.token)
    task = client.tasks(state["project_id"])[0]
    cookie = session_cookie(state["url"], creds)
    browser = CdpBrowser(tmp_path / "profile")
    try:
        browser.open_page()
        browser.call("Network.enable")
        browser.call("Network.setCookie", {"name": "sessionid", "value": cookie, "url": state["url"]})
        browser.call("Page.navigate", {"url": f"{state['url']}/projects/{state['project_id']}/data?task={task['id']}"})
        images = browser.wait_for(image_mean_js(), 60)
        text = browser.wait_for("document.body.innerText.includes('base_center') && document.body.innerText", 30)
        shot = browser.screenshot(tmp_path / "labelstudio_labeling_page.png")
        print(f"\nscreenshot: {shot}")
    finally:
        browser.close()
    assert images and len(images) == 2, f"the editor decoded {images!r}"
    name = Path(task["data"]["image"].split("?d=", 1)[1]).name
    for sub, got in zip(("rgb", "depth_color"), images, strict=True):  # in the config's order: RGB, then depth
        png = cv2.cvtColor(cv2.imread(str(dataset / "annotation" / sub / name)), cv2.COLOR_BGR2RGB)
        assert (got["w"], got["h"]) == (png.shape[1], png.shape[0])
        assert np.allclose(got["mean"], png.reshape(-1, 3).mean(axis=0), atol=0.5), (sub, got["mean"])
    assert isinstance(text, str)
    for label in (lab.name for lab in DEFAULT_TAXONOMY.labels if lab.name != "void"):
        assert label in text
    for keypoint in (k for names in DEFAULT_TAXONOMY.keypoints.values() for k in names):
        assert keypoint in text
    assert shot.stat().st_size > 10_000


def test_start_up_failures_are_one_line_and_exit_2(tmp_path):
    dataset = tmp_path / "ds"
    (dataset / "annotation").mkdir(parents=True)
    env = cli_env()
    env["DEPTH_ANNOTATION_LABELSTUDIO_SERVER"] = str(tmp_path / "no-venv" / "bin" / "label-studio")
    res = cli("labelstudio", "serve", "--dataset", dataset, "--port", free_port(), env=env, timeout=60)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: Label Studio server not found at ")
    assert "scripts/setup_env.sh" in res.stderr
    if not SERVER.exists():
        pytest.skip(f"Label Studio server venv missing ({SERVER}): run {SETUP}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = cli("labelstudio", "serve", "--dataset", dataset, "--port", port, timeout=60)
    assert res.returncode == 2
    assert res.stderr == f"error: port {port} on 127.0.0.1 is in use: choose another with --port\n"


def test_credentials_come_from_all_three_variables_or_a_0600_file_and_never_show(tmp_path):
    from depth_annotation.annotation import LabelStudioServerError

    env = {
        "DEPTH_ANNOTATION_LS_USER": "a@b.c",
        "DEPTH_ANNOTATION_LS_PASSWORD": "pw-secret",
        "DEPTH_ANNOTATION_LS_TOKEN": "tok-secret",
    }
    creds = load_credentials(tmp_path / "d1", env=env)
    assert (creds.username, creds.password, creds.token, creds.source) == (
        "a@b.c",
        "pw-secret",
        "tok-secret",
        "environment",
    )
    assert not (tmp_path / "d1").exists()  # nothing written when the environment has them
    assert "secret" not in repr(creds) and "secret" not in str(creds)
    with pytest.raises(LabelStudioServerError, match="all three"):
        load_credentials(tmp_path / "d2", env={"DEPTH_ANNOTATION_LS_USER": "a@b.c"})
    with pytest.raises(LabelStudioServerError, match="at least 6"):
        load_credentials(tmp_path / "d2", env=dict(env, DEPTH_ANNOTATION_LS_TOKEN="abc"))
    first = load_credentials(tmp_path / "d3", env={})
    path = tmp_path / "d3" / "credentials.json"
    assert first.source == str(path) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.password) >= 16 and len(first.token) >= 32
    assert load_credentials(tmp_path / "d3", env={}) == first  # generated once, then read back
    assert load_credentials(tmp_path / "d4", env={}).token != first.token
