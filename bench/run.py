"""Run the benchmarks under bench/ and print their tables: `./dev.sh bench [name ...]`.

Each bench_*.py module has `run() -> list[dict]`; rows are printed as a table.
Benchmarks measure; they never fail a build (targets are checked by reading them).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def print_table(title: str, rows: list[dict]) -> None:
    if not rows:
        print(f"\n## {title}\n(no rows)")
        return
    cols = list(rows[0])
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print(f"\n## {title}")
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for name in names:
        mod = importlib.import_module(f"bench_{name}")
        print_table(mod.__doc__.strip().splitlines()[0] if mod.__doc__ else name, mod.run())
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    # Like test/conftest.py: after every table is printed, leave without running native static
    # destructors; with librealsense, Open3D, torch and Fast DDS loaded together they segfaulted
    # at interpreter exit (exit 139 after a complete `./dev.sh bench`).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
