"""Mutation testing of the ROS-free subpackages: `./dev.sh mutate [target ...] [--show]`.

For each target in `mutation/targets.toml` (one module and the fast tests that cover it),
mutmut mutates the module in a scratch copy of the repository and runs only those tests
against every mutant, so a target takes seconds to minutes, not hours. Survivors listed in
`mutation/equivalent.toml` (with a one-line reason each) are equivalent mutants: they cannot
change behaviour, so they count neither for nor against the score. Every other survivor is a
missing test. Separate from CI: mutation runs are a habit, not a gate on every push.

Prints a table: mutants, killed, survived, timeout, equivalent, score
(= killed / (mutants - equivalent)); `--show` prints each unexplained survivor's diff.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
MUTMUT = Path(sys.executable).with_name("mutmut")
COPY = ("depth_annotation", "test", "config", "msg", "srv", "pytest.ini")


def _scratch_copy(dest: Path) -> None:
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, dest / name)


def _config(module: str, tests: list[str]) -> str:
    quoted = ", ".join(json.dumps(t) for t in tests)
    return (
        "[tool.mutmut]\n"
        'source_paths = ["depth_annotation"]\n'
        f"only_mutate = [{json.dumps(module)}]\n"
        f"pytest_add_cli_args_test_selection = [{quoted}]\n"
    )


def run_target(
    name: str, target: dict[str, object], equivalent: dict[str, str], show: bool, jobs: int
) -> dict[str, object]:
    module = str(target["module"])
    tests = [str(t) for t in target["tests"]]  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix=f"da-mutate-{name}-") as tmp:
        work = Path(tmp)
        _scratch_copy(work)
        (work / "pyproject.toml").write_text(_config(module, tests))
        env = dict(os.environ, DEPTH_ANNOTATION_PYTEST_IN_PROCESS="1")
        t0 = time.monotonic()
        run = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(jobs)], cwd=work, env=env, capture_output=True, text=True
        )
        seconds = time.monotonic() - t0
        if run.returncode != 0:
            tail = run.stdout.replace("\r", "\n")[-2000:] + run.stderr[-2000:]
            raise SystemExit(f"mutate: mutmut failed on {name} ({module}):\n{tail}")
        subprocess.run([str(MUTMUT), "export-cicd-stats"], cwd=work, env=env, capture_output=True, check=True)
        stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
        results = subprocess.run([str(MUTMUT), "results"], cwd=work, env=env, capture_output=True, text=True)
        survivors = re.findall(r"^\s*(\S+): survived", results.stdout, re.M)
        unexplained = [m for m in survivors if m not in equivalent]
        equivalent_here = [m for m in survivors if m in equivalent]
        if show:
            for mutant in unexplained:
                diff = subprocess.run([str(MUTMUT), "show", mutant], cwd=work, env=env, capture_output=True, text=True)
                print(diff.stdout)
    total = int(stats["total"])
    killed = int(stats["killed"]) + int(stats["timeout"]) + int(stats["segfault"])
    scored = total - len(equivalent_here)
    return {
        "target": name,
        "module": module,
        "mutants": total,
        "killed": int(stats["killed"]),
        "survived": len(survivors),
        "timeout": int(stats["timeout"]),
        "no tests": int(stats["no_tests"]),
        "equivalent": len(equivalent_here),
        "score %": 100.0 * killed / scored if scored else 100.0,
        "seconds": seconds,
        "unexplained": unexplained,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev.sh mutate", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="names from mutation/targets.toml (default: all)")
    parser.add_argument("--show", action="store_true", help="print the diff of every unexplained survivor")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once (mutmut --max-children; default 1)")
    args = parser.parse_args(argv)
    targets = tomllib.loads((HERE / "targets.toml").read_text())
    equivalent = tomllib.loads((HERE / "equivalent.toml").read_text()).get("equivalent", {})
    names = args.targets or list(targets)
    unknown = [n for n in names if n not in targets]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(targets)}")
    rows = []
    for name in names:
        print(f"[mutate] {name}: {targets[name]['module']}", file=sys.stderr, flush=True)
        rows.append(run_target(name, targets[name], equivalent, args.show, args.jobs))
    cols = ["target", "mutants", "killed", "survived", "timeout", "no tests", "equivalent", "score %", "seconds"]
    print("| " + " | ".join(cols) + " |\n|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        cells = [f"{r[c]:.1f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        print("| " + " | ".join(cells) + " |")
    for r in rows:
        if r["unexplained"]:
            print(f"\n{r['target']}: {len(r['unexplained'])} survivor(s) without a test or a reason:")
            for m in r["unexplained"]:
                print(f"  {m}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
