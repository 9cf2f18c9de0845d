#!/usr/bin/env bash
# One entry point for a checkout on a fresh Debian machine. Every command first
# sets up (idempotently) Debian packages, .venv and the rosidl interface build.
#   ./dev.sh demo [args]    the main job: the demo on the synthetic camera
#   ./dev.sh test [args]    the test suite (what CI runs)
#   ./dev.sh bench [args]   the benchmarks, printed as tables
#   ./dev.sh setup          only set up the environment
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  setup) bash scripts/setup_env.sh ;;
  demo)  bash scripts/setup_env.sh && exec .venv/bin/depth-annotation demo "$@" ;;
  test)  bash scripts/setup_env.sh && exec .venv/bin/python -m pytest "$@" ;;
  bench) bash scripts/setup_env.sh && exec .venv/bin/python bench/run.py "$@" ;;
  *) echo "usage: ./dev.sh {demo|test|bench|setup} [args]" >&2; exit 2 ;;
esac
