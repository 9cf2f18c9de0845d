#!/usr/bin/env bash
# One entry point for a checkout on a fresh Debian machine. Every command first
# sets up (idempotently) Debian packages, .venv and the rosidl interface build.
#   ./dev.sh demo [args]    the main job: the demo on the synthetic camera
#   ./dev.sh test [args]    static checks, then the test suite (what CI runs); with pytest
#                           args (files, -k ...), only pytest with those args
#   ./dev.sh lint           the static checks alone: ruff format + ruff lint + mypy
#   ./dev.sh mutate [names] mutation testing of the ROS-free modules (mutation/targets.toml)
#   ./dev.sh bench [args]   the benchmarks, printed as tables
#   ./dev.sh setup          only set up the environment
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
# ruff and mypy are configured in pyproject.toml (rules and why, strictness per subpackage).
lint() {
  local t0=$SECONDS
  .venv/bin/ruff format --check . >/dev/null || { echo "ruff format: run .venv/bin/ruff format ." >&2; return 1; }
  .venv/bin/ruff check --quiet . || return 1
  .venv/bin/mypy || return 1
  echo "[lint] ruff format, ruff check and mypy passed in $((SECONDS - t0)) s" >&2
}
cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  setup) bash scripts/setup_env.sh ;;
  demo)  bash scripts/setup_env.sh && exec .venv/bin/depth-annotation demo "$@" ;;
  lint)  bash scripts/setup_env.sh && lint ;;
  test)  bash scripts/setup_env.sh
         if [[ $# -eq 0 ]]; then lint; fi
         exec scripts/private_network.sh .venv/bin/python -m pytest "$@" ;;
  mutate) bash scripts/setup_env.sh --mutate && exec .venv/bin/python mutation/run.py "$@" ;;
  bench) bash scripts/setup_env.sh && exec scripts/private_network.sh .venv/bin/python bench/run.py "$@" ;;
  *) echo "usage: ./dev.sh {demo|test|lint|mutate|bench|setup} [args]" >&2; exit 2 ;;
esac
