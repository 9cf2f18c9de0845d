#!/usr/bin/env bash
# Run a command in a private network namespace whose only interface is loopback, so ROS 2
# discovery and data (multicast included) never leave this machine, while every process
# keeps the stock middleware configuration a user has. Used by `./dev.sh test`.
# Needs root (or CAP_SYS_ADMIN) for `unshare --net`; without it the command runs as is.
set -euo pipefail
if [[ "${DA_NO_PRIVATE_NETWORK:-}" != "1" ]] && unshare --net true 2>/dev/null && command -v ip >/dev/null; then
  exec unshare --net -- bash -c 'ip link set lo up && exec "$@"' bash "$@"
fi
echo "[test] note: no private network namespace here (unshare --net needs root); DDS traffic uses the host's interfaces" >&2
exec "$@"
