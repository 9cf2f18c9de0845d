"""A local Label Studio server for a dataset: start, readiness, project, tasks in, annotations out.

Label Studio (Django + SQLite) runs in its own virtual environment
(`.venv-labelstudio-server`, `requirements/labelstudio-server.txt`; its pins clash
with ours) as a child process in its own process group, bound to 127.0.0.1 by
default. Its data directory (database, log, credentials, state) is `DATASET/labelstudio/`
unless given. Images are served by Label Studio's local-file serving with the
dataset directory as document root, so the task URLs the exporter writes
(`/data/local-files/?d=annotation/rgb/...`) load as they are; Label Studio only
serves files under the path of a local storage connection of the project, so one
is created for `annotation/` (never synced: the tasks are imported by us).

The REST API is called with the standard library (`urllib`), not the SDK: the
calls are a handful of JSON requests, and the SDK lives in another interpreter
(a worker protocol for six requests would add a process and a failure mode, not
safety). Authentication is the user's API token (`Authorization: Token`).
Credentials come from `DEPTH_ANNOTATION_LS_USER/PASSWORD/TOKEN` or are generated
once and kept in `credentials.json` (mode 0600) in the data directory; they are
never printed.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.cookiejar
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import AnnotationDatasetError, LabelStudioServerError
from .overlap import TASKS_FILE

DATA_DIR_NAME = "labelstudio"
CREDENTIALS_FILE = "credentials.json"
STATE_FILE = "server.json"
LOG_FILE = "server.log"
PREANNOTATED_TASKS_FILE = Path("annotation") / "label_studio_tasks_preannotated.json"
LABEL_CONFIG_FILE = Path("annotation") / "label_config.xml"
STARTUP_TIMEOUT_S = 90.0
SETUP_COMMAND = "scripts/setup_env.sh"
_REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Credentials:
    """The Label Studio login (e-mail + password) and API token of the server's admin user."""

    username: str
    password: str
    token: str
    source: str  # "environment" or the credentials file's path (what a user may be told)

    def __repr__(self) -> str:  # never the secrets, even in a traceback
        return f"Credentials(username={self.username!r}, source={self.source!r})"


def server_executable(explicit: str | Path | None = None) -> Path:
    """The `label-studio` program: given, `DEPTH_ANNOTATION_LABELSTUDIO_SERVER`, or the checkout's venv."""
    env = os.environ.get("DEPTH_ANNOTATION_LABELSTUDIO_SERVER")
    path = Path(explicit or env or _REPO / ".venv-labelstudio-server" / "bin" / "label-studio")
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise LabelStudioServerError(
            f"Label Studio server not found at {path}: run {SETUP_COMMAND} (it builds .venv-labelstudio-server)"
        )
    return path


def migrated_template(executable: Path) -> Path:
    """An empty, fully migrated Label Studio database that `scripts/setup_env.sh` builds in the server's venv."""
    return executable.parent.parent / "share" / "depth-annotation" / "label_studio.sqlite3"


def data_dir_of(dataset: str | Path, data_dir: str | Path | None = None) -> Path:
    return Path(data_dir) if data_dir else Path(dataset) / DATA_DIR_NAME


def load_credentials(data_dir: str | Path, env: Mapping[str, str] | None = None) -> Credentials:
    """Credentials from the environment, else from (or generated into) `data_dir/credentials.json` (0600)."""
    env = os.environ if env is None else env
    user, password, token = (env.get(f"DEPTH_ANNOTATION_LS_{k}") for k in ("USER", "PASSWORD", "TOKEN"))
    if user or password or token:
        if not (user and password and token):
            raise LabelStudioServerError(
                "set all three of DEPTH_ANNOTATION_LS_USER, DEPTH_ANNOTATION_LS_PASSWORD, DEPTH_ANNOTATION_LS_TOKEN"
            )
        if len(token) < 6:
            raise LabelStudioServerError("DEPTH_ANNOTATION_LS_TOKEN must have at least 6 characters")
        return Credentials(user, password, token, "environment")
    path = Path(data_dir) / CREDENTIALS_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generated = {"username": "annotator@localhost", "password": secrets.token_urlsafe(18)}
        generated["token"] = secrets.token_hex(20)
        try:  # created with 0600 from the start: never readable by others, not even briefly
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process just wrote it: read theirs
        else:
            with os.fdopen(fd, "w") as f:
                json.dump(generated, f)
    try:
        stored = json.loads(path.read_text())
        return Credentials(str(stored["username"]), str(stored["password"]), str(stored["token"]), str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabelStudioServerError(f"{path}: unreadable credentials ({type(exc).__name__}); delete it") from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    with socket.socket() as s:  # Label Studio itself would move on silently to the next port if this answered
        s.settimeout(0.5)
        return s.connect_ex(("localhost", port)) == 0


def _die_with_parent() -> None:
    """In the server's process before exec (Linux): SIGTERM when we die, even by SIGKILL, so none is orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LabelStudioServer:
    """One `label-studio start` child process; `with` starts it, waits until it answers, and stops it."""

    def __init__(
        self,
        data_dir: str | Path,
        document_root: str | Path,
        credentials: Credentials,
        *,
        port: int = 8080,
        host: str = "127.0.0.1",
        executable: str | Path | None = None,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.document_root = Path(document_root).resolve()
        self.credentials = credentials
        self.host, self.port = host, int(port)
        self.executable = executable
        self.startup_timeout_s = min(float(startup_timeout_s), STARTUP_TIMEOUT_S)
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    def start(self) -> LabelStudioServer:
        exe = server_executable(self.executable)
        if _port_taken(self.host, self.port):
            raise LabelStudioServerError(f"port {self.port} on {self.host} is in use: choose another with --port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        template = migrated_template(exe)
        database = self.data_dir / "label_studio.sqlite3"
        if template.is_file() and not database.exists():  # skip the first start's migrations (30-90 s)
            shutil.copyfile(template, database)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DEPTH_ANNOTATION_LS_"))}
        env.update(
            LABEL_STUDIO_USERNAME=self.credentials.username,
            LABEL_STUDIO_PASSWORD=self.credentials.password,
            LABEL_STUDIO_USER_TOKEN=self.credentials.token,
            LOCAL_FILES_SERVING_ENABLED="true",
            LOCAL_FILES_DOCUMENT_ROOT=str(self.document_root),
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            COLLECT_ANALYTICS="false",
            LATEST_VERSION_CHECK="false",  # no question to PyPI at every start (a wait where offline)
            PYTHONUNBUFFERED="1",
        )
        args = [str(exe), "start", "--no-browser", "--internal-host", self.host, "--port", str(self.port)]
        args += ["--data-dir", str(self.data_dir), "--enable-legacy-api-token"]
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:  # secrets go through the environment, never argv or the log
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        assert self.process is not None
        while True:
            code = self.process.poll()
            if code is not None:
                raise LabelStudioServerError(
                    f"Label Studio exited with code {code} while starting: {self._last_log_line()} "
                    f"(log: {self.log_path})"
                )
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if json.loads(r.read()).get("status") == "UP":
                        return
            if time.monotonic() - t0 > self.startup_timeout_s:
                raise LabelStudioServerError(
                    f"Label Studio did not answer on {self.url} within {self.startup_timeout_s:.0f} s "
                    f"(log: {self.log_path})"
                )
            time.sleep(0.5)

    def _last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                return lines[-1][-200:]
        return "no output"

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after 10 s; safe to call twice."""
        proc, self.process = self.process, None
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait_s)
                break
        with contextlib.suppress(ProcessLookupError):  # any child left behind in the group
            os.killpg(proc.pid, signal.SIGKILL)

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LabelStudioClient:
    """The few REST calls we need, with the API token (stdlib urllib: see the module docstring)."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 120.0) -> None:
        self.url, self._token, self.timeout_s = url.rstrip("/"), token, timeout_s

    def request(self, method: str, path: str, body: Any = None, *, query: Mapping[str, Any] | None = None) -> Any:
        url = self.url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Token {self._token}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise LabelStudioServerError(f"Label Studio {method} {path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise LabelStudioServerError(f"Label Studio at {self.url} does not answer: {exc}") from None
        return json.loads(raw) if raw else None

    def project_by_title(self, title: str) -> dict[str, Any] | None:
        page = self.request("GET", "/api/projects", query={"title": title, "page_size": 1000})
        found = [p for p in page.get("results", []) if p.get("title") == title]
        return found[0] if found else None

    def ensure_project(self, title: str, label_config: str) -> tuple[dict[str, Any], bool]:
        """(project, created): the project called `title`, its label config brought up to date."""
        project = self.project_by_title(title)
        if project is None:
            return self.request("POST", "/api/projects", {"title": title, "label_config": label_config}), True
        if project.get("label_config") != label_config:
            project = self.request("PATCH", f"/api/projects/{project['id']}", {"label_config": label_config})
        return project, False

    def ensure_local_storage(self, project_id: int, path: Path) -> None:
        """A (never synced) local-files storage on `path`: Label Studio serves only files under one."""
        storages = self.request("GET", "/api/storages/localfiles", query={"project": project_id})
        if any(Path(s.get("path", "")) == path for s in storages):
            return
        body = {"project": project_id, "path": str(path), "title": "dataset annotation/", "use_blob_urls": False}
        self.request("POST", "/api/storages/localfiles", body)

    def task_count(self, project_id: int) -> int:
        return int(self.request("GET", f"/api/projects/{project_id}").get("task_number") or 0)

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> int:
        reply = self.request("POST", f"/api/projects/{project_id}/import", tasks, query={"commit_to_project": "true"})
        return int(reply.get("task_count", len(tasks)))

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        reply = self.request("GET", "/api/tasks", query={"project": project_id, "page_size": 100000, "fields": "all"})
        return list(reply.get("tasks", reply) if isinstance(reply, dict) else reply)

    def create_user(self, email: str) -> int:
        return int(self.request("POST", "/api/users/", {"email": email, "username": email.split("@")[0]})["id"])

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], completed_by: int | None = None) -> int:
        body: dict[str, Any] = {"result": result, "was_cancelled": False, "ground_truth": False}
        if completed_by is not None:
            body["completed_by"] = completed_by
        return int(self.request("POST", f"/api/tasks/{task_id}/annotations/", body)["id"])

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Label Studio's JSON export (Export -> JSON) of every task of the project."""
        reply = self.request(
            "GET", f"/api/projects/{project_id}/export", query={"exportType": "JSON", "download_all_tasks": "true"}
        )
        return list(reply)


def session_cookie(url: str, credentials: Credentials) -> str:
    """Log in through the login form (CSRF token and all) as a browser would; the `sessionid` cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{url}/user/login/", timeout=30) as r:
        r.read()
    csrf = next((c.value for c in jar if c.name == "csrftoken"), "")
    form = urllib.parse.urlencode(
        {"email": credentials.username, "password": credentials.password, "csrfmiddlewaretoken": csrf}
    ).encode()
    req = urllib.request.Request(f"{url}/user/login/", data=form, method="POST")
    req.add_header("Referer", f"{url}/user/login/")
    with opener.open(req, timeout=30) as r:
        r.read()
    session = next((c.value for c in jar if c.name == "sessionid"), None)
    if not session:
        raise LabelStudioServerError(f"logging in to {url} as {credentials.username} failed")
    return session


# --- the dataset's project ------------------------------------------------------------------------------


def project_title(dataset: str | Path) -> str:
    return f"depth_annotation {Path(dataset).resolve().name}"


def dataset_tasks(dataset: str | Path) -> tuple[Path, list[dict[str, Any]]]:
    """The tasks to import: the pre-annotated file (with predictions) when present, else the plain one."""
    root = Path(dataset)
    for rel in (PREANNOTATED_TASKS_FILE, TASKS_FILE):
        if (root / rel).is_file():
            try:
                tasks = json.loads((root / rel).read_text())
            except ValueError as exc:
                raise AnnotationDatasetError(f"{root / rel}: not JSON ({exc})") from None
            return root / rel, list(tasks)
    raise AnnotationDatasetError(f"{root / TASKS_FILE}: no Label Studio tasks (run `depth-annotation export` first)")


@dataclass(frozen=True)
class ProjectInfo:
    """What `setup_project` did: the project, its labelling URL and how many tasks it holds."""

    project_id: int
    url: str
    created: bool
    imported: int
    tasks: int
    tasks_file: Path


def setup_project(client: LabelStudioClient, dataset: str | Path) -> ProjectInfo:
    """Create (or reuse) the dataset's project with our label config, storage for annotation/, tasks imported once."""
    root = Path(dataset).resolve()
    if not (root / LABEL_CONFIG_FILE).is_file():
        raise AnnotationDatasetError(f"{root / LABEL_CONFIG_FILE}: missing (run `depth-annotation export` first)")
    tasks_file, tasks = dataset_tasks(root)
    project, created = client.ensure_project(project_title(root), (root / LABEL_CONFIG_FILE).read_text())
    pid = int(project["id"])
    client.ensure_local_storage(pid, root / "annotation")
    imported = 0
    if client.task_count(pid) == 0:  # a reused project keeps its tasks (and their annotations)
        imported = client.import_tasks(pid, tasks)
    return ProjectInfo(pid, f"{client.url}/projects/{pid}/data", created, imported, client.task_count(pid), tasks_file)


def write_state(data_dir: Path, server: LabelStudioServer, project_id: int) -> Path:
    """Where `pull` (and a test's clean-up) finds the running server: URL, project, process group."""
    from depth_annotation.common import atomic_io

    pgid = server.process.pid if server.process is not None else None
    state = {"url": server.url, "project_id": project_id, "server_pgid": pgid, "pid": os.getpid()}
    return atomic_io.write_json(data_dir / STATE_FILE, state)


def _running_url(data_dir: Path) -> tuple[str, int] | None:
    """The URL and project of a server `serve` left running for this data directory, if it answers."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
        url, pid = str(state["url"]), int(state["project_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    with contextlib.suppress(OSError, ValueError):
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            if json.loads(r.read()).get("status") == "UP":
                return url, pid
    return None


@contextlib.contextmanager
def connected(
    dataset: str | Path, *, data_dir: str | Path | None = None, executable: str | Path | None = None
) -> Iterator[tuple[LabelStudioClient, int | None]]:
    """A client for the dataset's server: the one `serve` runs, or one started (on a free port) for the block."""
    ddir = data_dir_of(dataset, data_dir)
    creds = load_credentials(ddir)
    running = _running_url(ddir)
    if running is not None:
        yield LabelStudioClient(running[0], creds.token), running[1]
        return
    with LabelStudioServer(ddir, dataset, creds, port=free_port(), executable=executable) as server:
        yield LabelStudioClient(server.url, creds.token), None


def pull_export(
    dataset: str | Path, out: str | Path, *, data_dir: str | Path | None = None, executable: str | Path | None = None
) -> tuple[Path, int]:
    """Export the dataset's project (JSON) through the API into `out`: (path, tasks with annotations)."""
    from depth_annotation.common import atomic_io

    with connected(dataset, data_dir=data_dir, executable=executable) as (client, project_id):
        if project_id is None:
            project = client.project_by_title(project_title(dataset))
            if project is None:
                raise AnnotationDatasetError(f"no Label Studio project for {dataset}: run `labelstudio serve` first")
            project_id = int(project["id"])
        export = client.export(project_id)
    path = atomic_io.write_json(Path(out), export)
    return path, sum(1 for t in export if t.get("annotations"))


def print_login(credentials: Credentials, file: Any = sys.stdout) -> None:
    """Where the login is (the user name, and the file or variables holding the password): never the secret."""
    where = (
        "DEPTH_ANNOTATION_LS_PASSWORD" if credentials.source == "environment" else f"{credentials.source} (mode 0600)"
    )
    print(f"login: {credentials.username}, password in {where}", file=file)
