"""The `depth-annotation` command: offline entry points over the same core as the nodes."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .core import atomic_io


def _cmd_synth(args: argparse.Namespace) -> int:
    """Render frames of the synthetic scene to PNG files with their ground truth."""
    import cv2
    import numpy as np

    from .core.colorize import colorize_depth
    from .core.synthetic import SyntheticScene, default_intrinsics, orbit_pose

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        print(f"error: {out} is not empty (use --overwrite)", file=sys.stderr)
        return 2
    for sub in ("rgb", "depth16", "depth_color", "labels"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    scene = SyntheticScene(args.seed)
    intr = default_intrinsics(args.width, args.height)
    t0 = time.perf_counter()
    coverage = []
    for i in range(args.frames):
        frame = scene.render(intr, orbit_pose(i / args.fps), frame_seed=i)
        name = f"{i:06d}.png"
        cv2.imwrite(str(out / "rgb" / name), cv2.cvtColor(frame.color, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / "depth16" / name), frame.depth_mm)
        cv2.imwrite(str(out / "depth_color" / name), cv2.cvtColor(colorize_depth(frame.depth_mm), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / "labels" / name), frame.annotation_labels())
        coverage.append(float(np.mean(frame.depth_mm > 0)))
    elapsed = time.perf_counter() - t0
    atomic_io.write_json(out / "intrinsics.json", intr.to_dict())
    summary = {
        "frames": args.frames,
        "size": [args.width, args.height],
        "seed": args.seed,
        "mean_valid_coverage": float(np.mean(coverage)),
        "render_fps": args.frames / elapsed,
    }
    atomic_io.write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """The README's main job. Until the node graph lands (see the issues), a smoke run:
    synthetic RGB-D frames rendered and written with ground truth."""
    args.out = str(Path(args.out) / "synthetic")
    args.overwrite = True
    print("depth-annotation demo: rendering the synthetic tabletop scene (the node graph demo is not built yet)")
    rc = _cmd_synth(args)
    if rc == 0:
        print(f"outputs: {args.out}/{{rgb,depth16,depth_color,labels}}/*.png, intrinsics.json, summary.json")
    return rc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="depth-annotation", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def synth_args(sp: argparse.ArgumentParser, frames: int) -> None:
        sp.add_argument("--frames", type=int, default=frames, help="frames to render (default %(default)s)")
        sp.add_argument("--width", type=int, default=640)
        sp.add_argument("--height", type=int, default=480)
        sp.add_argument("--fps", type=float, default=30.0, help="trajectory time step is 1/fps")
        sp.add_argument("--seed", type=int, default=0, help="scene layout and noise seed")

    sp = sub.add_parser("synth", help="render the synthetic scene to PNGs with ground truth")
    sp.add_argument("--out", required=True, help="output directory")
    sp.add_argument("--overwrite", action="store_true", help="write into a non-empty directory")
    synth_args(sp, 30)
    sp.set_defaults(func=_cmd_synth)

    sp = sub.add_parser("demo", help="run the main job on the synthetic camera")
    sp.add_argument("--out", default="out/demo", help="output directory (default %(default)s)")
    synth_args(sp, 30)
    sp.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
