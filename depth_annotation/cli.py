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


def _cmd_mono(args: argparse.Namespace) -> int:
    """Monocular depth over a folder of images or a bag's colour topic: 16-bit PNG (mm) + the scale used."""
    import cv2
    import numpy as np
    from tqdm import tqdm

    from .core import bag_io
    from .core.images import depth_to_metres, depth_to_millimetres, image_to_array
    from .core.mono_metric import MetricAligner, MetricConfigError, load_scale_file
    from .core.mono_model import DepthAnything, MonoModelConfig, MonoModelError

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        print(f"error: {out} is not empty (use --overwrite)", file=sys.stderr)
        return 2
    mode = "metric_model" if args.metric_model else ("sensor_fit" if args.depth_topic else "scale_file")
    try:
        scale = load_scale_file(args.scale_file) if args.scale_file else None
        aligner = MetricAligner(mode, scale=scale)
        model = DepthAnything(MonoModelConfig(model=args.model, device=args.device, input_size=args.input_size,
                                              offline=not args.online))
    except (MetricConfigError, MonoModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def frames():
        if args.images:
            files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
            if not files:
                raise bag_io.BagError(f"no .png/.jpg images in {args.images}")
            for f in files:
                bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
                yield f.stem, bgr[..., ::-1].copy(), None
            return
        with bag_io.open_bag(args.bag) as reader:
            wanted = [args.topic] + ([args.depth_topic] if args.depth_topic else [])
            bag_io.require_topics(reader, wanted)
            depth_by_stamp = {}
            pending = []
            for topic, _, msg in bag_io.messages(reader, wanted):
                stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                if topic == args.depth_topic:
                    depth_by_stamp[stamp] = depth_to_metres(image_to_array(msg), msg.encoding)
                    continue
                rgb = image_to_array(msg)
                if msg.encoding == "bgr8":
                    rgb = rgb[..., ::-1].copy()
                pending.append((str(stamp), rgb, stamp))
            for name, rgb, stamp in pending:
                yield name, rgb, depth_by_stamp.get(stamp)

    (out / "depth").mkdir(parents=True, exist_ok=True)
    records = []
    try:
        for name, rgb, sensor in tqdm(frames(), desc="mono depth", unit="frame"):
            output, infer_ms = model.predict(rgb)
            depth_m, _, rep = aligner.align(output, sensor)
            cv2.imwrite(str(out / "depth" / f"{name}.png"), depth_to_millimetres(depth_m, "32FC1"))
            records.append({"frame": name, "mode": rep.mode, "fitted": rep.fitted, "scale": rep.scale, "shift": rep.shift,
                            "abs_rel": rep.abs_rel, "delta_1_25": rep.delta_1_25, "inference_ms": infer_ms})
    except bag_io.BagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_io.write_json(out / "scale.json", {
        "schema_version": 1, "model": args.model, "mode": mode,
        "untrained_model": (Path(args.model) / "UNTRAINED.txt").exists(),
        "scale_file": args.scale_file, "depth_unit": "millimetre (uint16 PNG), 0 = no depth",
        "frames": records,
    })
    print(f"wrote {len(records)} depth PNGs to {out / 'depth'} and {out / 'scale.json'}")
    return 0


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

    sp = sub.add_parser("mono", help="monocular metric depth for a folder of images or a bag's colour topic")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of .png/.jpg RGB images")
    src.add_argument("--bag", help="rosbag2 directory or .mcap/.db3 file")
    sp.add_argument("--topic", default="/camera/color/image_raw", help="colour topic in the bag (default %(default)s)")
    sp.add_argument("--depth-topic", help="aligned sensor depth topic in the bag: fit scale per frame (sensor_fit)")
    sp.add_argument("--scale-file", help="calibration JSON with mono_scale (scale_file mode)")
    sp.add_argument("--metric-model", action="store_true", help="the checkpoint predicts metres (metric_model mode)")
    sp.add_argument("--model", default="depth-anything/Depth-Anything-V2-Small-hf", help="hub id or local directory")
    sp.add_argument("--device", default="cpu")
    sp.add_argument("--input-size", type=int, default=518, help="network input size (0: native resolution)")
    sp.add_argument("--online", action="store_true", help="allow downloading the model")
    sp.add_argument("--out", required=True)
    sp.add_argument("--overwrite", action="store_true")
    sp.set_defaults(func=_cmd_mono)

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
