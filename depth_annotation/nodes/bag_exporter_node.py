"""Deprecated executable name of `live_exporter_node` (it never read a bag): kept for one release.

Prints one deprecation line, then runs the same node (named live_exporter_node).
"""

from __future__ import annotations

import sys

from . import live_exporter_node


def main(args: list[str] | None = None) -> int:
    print(
        "[bag_exporter_node] deprecated: the executable is now live_exporter_node "
        "(this alias goes in the next release)",
        file=sys.stderr,
        flush=True,
    )
    return live_exporter_node.main(args)


if __name__ == "__main__":
    sys.exit(main())
