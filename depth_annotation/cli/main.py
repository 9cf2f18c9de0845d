"""The `depth-annotation` command: offline entry points over the same core as the nodes."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from depth_annotation.common import StopSignals, atomic_io
from depth_annotation.dataset import CODECS


def _cmd_synth(args: argparse.Namespace) -> int:
    """Render frames of the synthetic scene to PNG files with their ground truth."""
    import math

    import cv2
    import numpy as np

    from depth_annotation.common import SyntheticScene, colorize_depth, default_intrinsics, orbit_pose

    out = Path(args.out)
    for name, value in (("--width", args.width), ("--height", args.height), ("--frames", args.frames)):
        if value < 1:
            print(f"error: option {name}: must be at least 1, got {value} (nothing written)", file=sys.stderr)
            return 2
    if not math.isfinite(args.fps) or args.fps <= 0:
        print(f"error: option --fps: must be a positive number, got {args.fps} (nothing written)", file=sys.stderr)
        return 2
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
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
    """The README's main job: the node graph on the synthetic camera, calibrated, recorded, exported."""
    from .demo import run_demo

    try:
        return run_demo(Path(args.out), short=args.short)
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1


def _cmd_view(args: argparse.Namespace) -> int:
    """One frame of an exported HDF5 file as a PNG: RGB, colorized depth, QC status, point cloud."""
    from depth_annotation.dataset import render_h5_frame

    out = Path(args.out) if args.out else Path(args.file).with_suffix(f".ep{args.episode}_f{args.frame}.png")
    try:
        path = render_h5_frame(args.file, out, episode=args.episode, frame=args.frame)
    except (OSError, KeyError, IndexError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from depth_annotation.dataset import check_report

    if not Path(args.dataset).is_dir():
        print(f"error: {os.fsencode(args.dataset).decode('utf-8', 'backslashreplace')}: not a folder", file=sys.stderr)
        return 2
    report = check_report(args.dataset, deep=args.deep)
    for p in report.problems:
        print(f"problem: {p}")
    for note in report.notes:
        print(f"note: {note}")
    print("dataset OK" if report.ok else f"{len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def _cmd_mono(args: argparse.Namespace) -> int:
    """Monocular depth over a folder of images or a bag's colour topic: 16-bit PNG (mm) + the scale used."""
    import cv2
    from tqdm import tqdm

    from depth_annotation.common import ImageConversionError
    from depth_annotation.dataset import BagError, bag_io
    from depth_annotation.mono import (
        MetricAligner,
        MetricConfigError,
        MonoModelConfig,
        MonoModelError,
        load_model,
        load_scale_file,
        write_depth_folder,
    )

    if getattr(args, "mono_command", None) == "export-onnx":
        return _cmd_mono_export_onnx(args)
    if not (args.images or args.bag) or not args.out:
        print("error: mono needs --images DIR or --bag BAG, and --out DIR (or: mono export-onnx)", file=sys.stderr)
        return 2
    if args.scale_file:  # its shape checked before any work (load_scale_file reports unreadable files)
        try:
            doc = json.loads(Path(args.scale_file).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            doc = {}
        if not isinstance(doc, dict) or not isinstance(doc.get("mono_scale", doc), dict):
            print(
                f"error: option --scale-file {args.scale_file}: expected a JSON object with mono_scale "
                f"{{scale, shift}}, got {type(doc.get('mono_scale') if isinstance(doc, dict) else doc).__name__}",
                file=sys.stderr,
            )
            return 2
    out = Path(args.out)
    if out.exists() and any(not p.name.startswith(".mono.partial-") for p in out.iterdir()) and not args.overwrite:
        print(f"error: {out} is not empty (use --overwrite)", file=sys.stderr)
        return 2
    mode = "metric_model" if args.metric_model else ("sensor_fit" if args.depth_topic else "scale_file")

    def frames():
        if args.images:
            files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
            if not files:
                raise BagError(f"no .png/.jpg images in {args.images}")
            for f in files:
                bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise BagError(f"{f}: not a readable image")
                yield f.stem, bgr[..., ::-1].copy(), None
            return
        yield from bag_io.colour_frames_with_depth(args.bag, args.topic, args.depth_topic or None)

    # depth/ and scale.json are written into a staging folder and moved into OUT when complete:
    # an error or a signal leaves OUT as it was, never some of the PNGs without their scale.json
    staged: _StagedOutput | None = None
    with StopSignals(interrupt_again=True) as stop:
        try:
            scale = load_scale_file(args.scale_file) if args.scale_file else None
            aligner = MetricAligner(mode, scale=scale)
            model = load_model(
                MonoModelConfig(
                    model=args.model,
                    device=args.device,
                    input_size=args.input_size,
                    offline=not args.online,
                    backend=args.backend,
                    threads=args.threads,
                    fp16=not args.fp32,
                )
            )
            staged = _StagedOutput(out, "mono")
            progress = tqdm(frames(), desc="mono depth", unit="frame")
            count = write_depth_folder(
                progress, model, aligner, staged.staging, model_name=args.model, scale_file=args.scale_file
            )
            staged.publish(stop)
        except (MetricConfigError, MonoModelError, BagError, ImageConversionError, OSError) as exc:
            if staged is not None:
                staged.discard()
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            done = len(list(staged.staging.glob("depth/*.png"))) if staged is not None else 0
            if staged is not None:
                staged.discard()
            print(
                f"interrupted by {stop.name}: no depth written ({done} frame(s) done were discarded; "
                f"{out} left as it was)",
                file=sys.stderr,
            )
            return stop.interrupted_exit_code()
    if stop.flag.is_set():  # the signal came while the finished folder was being moved in: it is complete
        print(f"interrupted by {stop.name} after the depth folder was written: {out}", file=sys.stderr)
        return stop.interrupted_exit_code()
    print(f"wrote {count} depth PNGs to {out / 'depth'} and {out / 'scale.json'}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    """Offline calibration from image files or a bag's image topic, through the node's CalibrationSession."""
    from dataclasses import astuple

    import cv2
    from tqdm import tqdm

    from depth_annotation.calibration import (
        BoardError,
        BoardSpec,
        CalibrationError,
        CalibrationGates,
        OfflineCalibration,
        SessionConfig,
        gray_image,
    )
    from depth_annotation.common import ImageConversionError, image_to_array
    from depth_annotation.dataset import BagError, bag_io

    try:
        spec = BoardSpec.from_counts(  # a checkerboard by its inner corners, as the service takes it
            args.board, args.squares_x, args.squares_y, args.square_length_m, args.marker_length_m, args.dictionary
        )
    except BoardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    select_all = args.select == "all" if args.select else bool(args.images)
    config = SessionConfig(
        spec=spec,
        min_views=args.min_views,
        max_rms_px=args.max_rms_px,
        min_sharpness=0.0 if select_all else 20.0,
        min_view_distance=0.0 if select_all else 0.1,
        detect_period_ns=int(1e9 / args.detect_rate_hz) if args.detect_rate_hz > 0 else 0,
        min_pairs=args.min_pairs,
        gates=CalibrationGates(
            *(
                default if value is None else value
                for value, default in zip(
                    (
                        args.min_coverage_x,
                        args.min_coverage_y,
                        args.min_coverage_size,
                        args.min_coverage_skew,
                        args.max_std,
                    ),
                    astuple(CalibrationGates()),
                    strict=True,
                )
            )
        ),
    )
    stereo = bool(args.right_images or args.right_topic)
    if args.right_images and not args.images:
        print("error: --right-images goes with --images (for a bag use --right-topic)", file=sys.stderr)
        return 2
    offline = OfflineCalibration(config, stereo=stereo)

    def image_files(where: str) -> list[Path]:
        """The images of a folder, or those a glob pattern names (`DIR/left*.jpg`), sorted by name."""
        d = Path(where)
        if d.is_dir():
            found = list(d.iterdir())
        elif d.parent.is_dir() and any(c in d.name for c in "*?["):
            found = list(d.parent.glob(d.name))
        else:
            raise CalibrationError(f"{d}: not a folder (nor a pattern such as DIR/left*.jpg in one)")
        files = sorted(p for p in found if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"))
        if not files:
            raise CalibrationError(f"{d}: no .png/.jpg/.bmp/.tif images")
        return files

    def read_gray(path: Path):
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise CalibrationError(f"{path}: not a readable image")
        return gray

    out = Path(args.out)
    # The files are written into a staging folder inside OUT (with a copy of calibration.json, whose
    # sections the run replaces) and moved in together: a signal or an error leaves OUT as it was.
    staged: _StagedOutput | None = None
    with StopSignals(interrupt_again=True) as stop:
        try:
            if args.images:
                left = image_files(args.images)
                right = image_files(args.right_images) if args.right_images else []
                if right and len(right) != len(left):
                    raise CalibrationError(
                        f"{len(left)} images in {args.images} but {len(right)} in {args.right_images}: "
                        "stereo pairs are matched by sorted file name"
                    )
                source = str(Path(args.images).resolve())
                for i, path in enumerate(tqdm(left, desc="calibrate", unit="image", disable=args.quiet)):
                    stamp = (i + 1) * 1_000_000_000  # sorted file name order; a pair shares its stamp
                    offline.add(stamp, read_gray(path))
                    if right:
                        offline.add_right(stamp, read_gray(right[i]))
            else:
                source = f"{Path(args.bag).resolve()} {args.topic}"
                wanted = [args.topic] + ([args.right_topic] if args.right_topic else [])
                with bag_io.open_bag(args.bag) as reader:
                    bag_io.require_topics(reader, wanted)
                    for topic, _, msg in tqdm(
                        bag_io.messages(reader, wanted), desc="calibrate", unit="msg", disable=args.quiet
                    ):
                        gray = gray_image(image_to_array(msg), msg.encoding)
                        if topic == args.topic:
                            offline.add(bag_io.stamp_of(msg), gray)
                        else:
                            offline.add_right(bag_io.stamp_of(msg), gray)
            staged = _StagedOutput(out, "calibrate", merge=frozenset({"history"}))
            if (out / "calibration.json").is_file():
                shutil.copy2(out / "calibration.json", staged.staging / "calibration.json")
            outcome = offline.finish(
                staged.staging, camera=args.camera_name, min_views=args.min_views, force=args.force, source=source
            )
            staged.publish(stop)
        except (CalibrationError, BagError, ImageConversionError, OSError) as exc:
            text = str(exc)
            if staged is not None:
                text = text.replace(str(staged.staging), str(out))  # name the file the user has
                staged.discard()
            print(f"error: {text}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            if staged is not None:
                staged.discard()
            print(f"interrupted by {stop.name}: nothing written ({out} left as it was)", file=sys.stderr)
            return stop.interrupted_exit_code()
    outcome.files = [staged.final(path) for path in outcome.files]
    if stop.flag.is_set():  # the signal came while the finished files were being moved in: they are complete
        print(f"interrupted by {stop.name} after the calibration was written to {out}", file=sys.stderr)
        return stop.interrupted_exit_code()
    cal = outcome.intrinsics
    print(f"{args.camera_name}: {'OK' if cal.success else 'FAILED'}: {cal.message}")
    if outcome.right is not None:
        print(f"{args.camera_name}_right: {'OK' if outcome.right.success else 'FAILED'}: {outcome.right.message}")
        if outcome.stereo is not None:
            print(f"stereo: {'OK' if outcome.stereo.success else 'FAILED'}: {outcome.stereo.message}")
    for path in dict.fromkeys(outcome.files):
        print(f"wrote {path}")
    return 0 if outcome.success else 1


def _cmd_mono_export_onnx(args: argparse.Namespace) -> int:
    """A transformers Depth Anything -> one .onnx file for the onnxruntime/openvino backends."""
    from depth_annotation.mono import MonoModelError, export_onnx

    try:
        width, height = (int(v) for v in args.image_size.lower().split("x"))
    except ValueError:
        print(f"error: --image-size must be WIDTHxHEIGHT, got {args.image_size!r}", file=sys.stderr)
        return 2
    try:
        info = export_onnx(
            args.model_dir, args.out, input_size=args.size, image_size=(width, height), offline=not args.online
        )
    except MonoModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: network input {info.network_height}x{info.network_width} for {width}x{height} images "
        f"(input size {info.input_size}); run it with backend:=onnxruntime or backend:=openvino"
    )
    return 0


class _StagedOutput:
    """A command's files written into `OUT/.NAME.partial-PID/` and moved into OUT only once complete.

    An interrupted or failed run removes its staging folder and leaves OUT as it was (removing OUT
    if the run created it); a run killed outright (SIGKILL) leaves the clearly named `.partial`
    folder, which the next run removes. `publish` replaces each top-level entry of OUT the run
    wrote (a folder whole, so `--overwrite` never mixes old and new frames), except the folders
    named in `merge`, whose files are added (calibration's `history/`).
    """

    def __init__(self, out: Path, name: str, *, merge: frozenset[str] = frozenset()) -> None:
        self.out, self.merge = out, merge
        self.created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        prefix = f".{name}.partial-"
        for stale in out.glob(prefix + "*"):
            pid = stale.name[len(prefix) :]
            if not (pid.isdigit() and _pid_alive(int(pid))):
                shutil.rmtree(stale, ignore_errors=True)  # a killed run's
        self.staging = out / f"{prefix}{os.getpid()}"
        self.staging.mkdir()

    def final(self, path: Path) -> Path:
        """Where a file written into the staging folder ends up."""
        return self.out / Path(path).relative_to(self.staging)

    def publish(self, stop: StopSignals) -> None:
        replaced = self.staging / ".replaced"
        with stop.deferred():
            for entry in sorted(self.staging.iterdir()):
                if entry == replaced:
                    continue
                target = self.out / entry.name
                if entry.name in self.merge and entry.is_dir():
                    target.mkdir(exist_ok=True)
                    for child in entry.iterdir():
                        os.replace(child, target / child.name)
                    atomic_io.fsync_dir(target)
                    continue
                if target.is_dir() and not target.is_symlink():
                    replaced.mkdir(exist_ok=True)
                    os.rename(target, replaced / entry.name)
                os.replace(entry, target)
            atomic_io.fsync_dir(self.out)
            shutil.rmtree(self.staging, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.created:
            try:
                self.out.rmdir()  # only if empty: never anything but what this run made
            except OSError:
                pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _export_options(args: argparse.Namespace):
    """Every export option parsed and validated before any work: ExportOptionError names the option."""
    import math

    from depth_annotation.common import DEFAULT_TAXONOMY, TaxonomyError, default_taxonomy_path, load_taxonomy
    from depth_annotation.dataset import DEFAULT_TOPICS, ExportOptionError, ExportOptions

    scenes = {}
    for s in args.scene or []:
        bag, sep, scene = s.partition("=")
        if not sep or not bag or not scene:
            raise ExportOptionError(f"--scene {s!r}: expected BAG=SCENE")
        scenes[bag] = scene
    parts = args.split.split(",")
    try:
        ratios = tuple(float(x) for x in parts)
    except ValueError:
        raise ExportOptionError(f"--split {args.split!r}: expected three numbers TRAIN,VAL,TEST") from None
    if len(ratios) != 3:
        raise ExportOptionError(f"--split {args.split!r}: expected three numbers TRAIN,VAL,TEST")
    if not math.isfinite(args.tolerance_ms) or args.tolerance_ms < 0:
        raise ExportOptionError(f"--tolerance-ms: must be a finite number >= 0, got {args.tolerance_ms}")
    topics = dict(DEFAULT_TOPICS)
    for key in ("depth", "color", "info", "quality"):
        if getattr(args, f"{key}_topic"):
            topics[key] = getattr(args, f"{key}_topic")
    try:
        tax_path = args.taxonomy or default_taxonomy_path()
        taxonomy = load_taxonomy(tax_path) if tax_path else DEFAULT_TAXONOMY
    except (OSError, TaxonomyError, ValueError) as exc:
        raise ExportOptionError(f"--taxonomy: {exc}") from None
    opts = ExportOptions(
        out_dir=Path(args.out),
        topics=topics,
        tolerance_ns=int(args.tolerance_ms * 1e6),
        codec=args.codec,
        level=args.level,
        every_k=args.every,
        exclude_flagged=not args.keep_flagged,
        depth_range_m=(args.depth_min, args.depth_max),
        overwrite=args.overwrite,
        seed=args.seed,
        ratios=ratios,
        taxonomy=taxonomy,
    )
    try:
        opts.validate()
    except ExportOptionError as exc:
        names = {"tolerance": "--tolerance-ms", "every": "--every", "depth range": "--depth-min/--depth-max"}
        names.update({"split": "--split", "max depth": "--max-depth"})
        head, _, rest = str(exc).partition(": ")
        raise ExportOptionError(f"{names.get(head, head)}: {rest}" if rest else str(exc)) from None
    bags = [(Path(b), scenes.get(b, Path(b).name)) for b in args.bags]
    return bags, opts


def _cmd_export(args: argparse.Namespace) -> int:
    """rosbag2 -> HDF5 + dataset_info.json + annotation package, published all at once or not at all."""
    from depth_annotation.common import ImageConversionError
    from depth_annotation.dataset import (
        BagError,
        ExportError,
        ExportOptionError,
        ExportOutputError,
        export_bags,
    )

    out_text = os.fsencode(args.out).decode("utf-8", "backslashreplace")
    try:
        bags, opts = _export_options(args)
    except ExportOptionError as exc:
        print(f"error: option {exc} (nothing written)", file=sys.stderr)
        return 2
    before_publish = None
    if args.overlap:
        from depth_annotation.annotation import mark_overlap

        marked: dict = {}

        def before_publish(staging: Path) -> None:  # in the staging folder: part of the one publish
            marked.update(mark_overlap(staging, args.overlap, seed=args.seed))

    with StopSignals(interrupt_again=True) as stop:
        try:
            report = export_bags(
                bags,
                opts,
                progress=not args.quiet,
                stop_requested=stop.flag.is_set,
                allow_partial=args.allow_partial,
                before_publish=before_publish,
            )
        except ExportOptionError as exc:
            print(f"error: option {exc} (nothing written)", file=sys.stderr)
            return 2
        except ExportOutputError as exc:
            print(f"error: output: {exc}; nothing published, {out_text} left as it was", file=sys.stderr)
            return 2
        except (BagError, ExportError, ImageConversionError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(
                f"interrupted by {stop.name}: no dataset written (staging removed; {out_text} left as it was)",
                file=sys.stderr,
            )
            return stop.interrupted_exit_code()
    if stop.flag.is_set():  # the signal came while the dataset was being swapped in: it is complete
        print(f"interrupted by {stop.name} after the dataset was published: {report['hdf5']}", file=sys.stderr)
        return stop.interrupted_exit_code()
    for problem in report["problems"]:
        print(f"warning: {problem}", file=sys.stderr)
    print(
        f"exported {report['frames']} frames in {report['episodes']} episode(s) to {report['hdf5']}; "
        f"{report['annotation']['tasks']} annotation tasks"
    )
    if args.overlap:
        print(f"  overlap: {len(marked['tasks'])} task(s) marked for two annotators (data.overlap = 2)")
    for ep in report["sync"]:
        counts = ", ".join(
            f"{k}: {v['matched']}/{v['received']} matched, {v['unmatched']} unmatched, {v['dropped']} dropped"
            for k, v in ep["topics"].items()
        )
        print(f"  {ep['source']}: {counts}")
    if args.preannotate:
        # preannotate's own defaults: the parser, so its options never drift from this call
        return _cmd_preannotate(
            build_parser().parse_args(["preannotate", "--dataset", str(args.out)] + ["--quiet"] * bool(args.quiet))
        )
    return 0


def _cmd_reindex(args: argparse.Namespace) -> int:
    """A fresh metadata.yaml (and recovered copies of damaged mcap files) for a bag directory."""
    from depth_annotation.dataset import BagError, reindex

    try:
        res = reindex(args.bag)
    except BagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for damaged, copy, where in res.recovered:
        print(f"{damaged.name}: damaged ({where.cause} at byte {where.offset}); complete chunks copied to {copy.name}")
    for where in res.damaged:
        print(f"{where.file.name}: read up to its damage ({where.cause})")
    kept = " (the old one kept as metadata.yaml.bak)" if res.replaced_metadata else ""
    print(
        f"reconstructed metadata from the storage files: wrote {res.metadata}{kept}: "
        f"{res.messages} messages on {res.topics} topics in {', '.join(f.name for f in res.files)}"
    )
    return 0


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {text}")
    return value


def _cmd_annotations_import(args: argparse.Namespace) -> int:
    """Label Studio JSON export -> /episode_N/segmentation and keypoints_3d in the dataset (all or nothing)."""
    from depth_annotation.annotation import (
        AnnotationDatasetError,
        AnnotationImportError,
        LabelStudioUnavailable,
        dataset_files,
        dataset_lock,
        import_export,
    )

    try:
        files = dataset_files(args.dataset)
        with dataset_lock(files.root):  # an export or another import writing the folder: refused at once
            result = import_export(args.export, files, workers=args.workers, lock=False)
            s = result.summary()
            atomic_io.write_json(Path(args.dataset) / "annotation" / "import_report.json", s)
    except AnnotationImportError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"error: {exc.source}: {len(exc.problems)} problem(s); nothing was imported", file=sys.stderr)
        return 2
    except (AnnotationDatasetError, LabelStudioUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in s["notes"]:
        print(f"note: {note}")
    print(
        f"imported {s['frames']} frames ({s['frames_with_several_annotators']} with several annotators), "
        f"{s['annotations']} annotations, {s['predictions']} predictions, {s['keypoints']} keypoints; "
        f"skipped {s['cancelled_annotations']} cancelled annotations, {s['tasks_without_annotations']} "
        f"tasks without annotations (label-studio-sdk {s['label_studio_sdk']})"
    )
    return 0


def _cmd_annotations_synth(args: argparse.Namespace) -> int:
    """A synthetic dataset and a Label Studio export of it as annotators would make it (ground truth + mistakes)."""
    from depth_annotation.annotation import (
        AnnotatorProfile,
        LabelStudioCodec,
        LabelStudioUnavailable,
        annotators_export,
        load_tasks,
        synthetic_dataset,
    )

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} is not empty", file=sys.stderr)
        return 2
    dataset, truth, scene = synthetic_dataset(
        out, frames=args.frames, every_k=args.every, overlap=args.overlap, fps=args.fps, seed=args.seed
    )
    second = AnnotatorProfile(
        2,
        boundary_px=args.boundary_px,
        keypoint_shift_mm=args.shift_mm,
        bleed_px=args.bleed_px,
        missed_objects=tuple(args.miss or ()),
        keypoints_on_background=tuple(args.keypoint_on_background or ()),
    )
    try:
        with LabelStudioCodec() as codec:
            export = annotators_export(load_tasks(dataset), truth, scene, [AnnotatorProfile(1), second], codec)
    except LabelStudioUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = atomic_io.write_json(out / "label_studio_export.json", export)
    print(f"dataset: {dataset}\nexport:  {path} ({len(export)} tasks; user1 = ground truth, user2 = with the mistakes)")
    return 0


def _cmd_labelstudio(args: argparse.Namespace) -> int:
    """`labelstudio serve`: a local Label Studio with the dataset's project; `labelstudio pull`: export + import."""
    from depth_annotation.annotation import (
        AnnotationDatasetError,
        LabelStudioClient,
        LabelStudioServer,
        LabelStudioServerError,
        data_dir_of,
        load_credentials,
        print_login,
        pull_export,
        setup_project,
        write_state,
    )

    ddir = data_dir_of(args.dataset, args.data_dir)
    try:
        if args.labelstudio_command == "pull":
            out = Path(args.out) if args.out else ddir / "export.json"
            path, annotated = pull_export(args.dataset, out, data_dir=args.data_dir)
            print(f"exported {annotated} annotated task(s) to {path}")
            return _cmd_annotations_import(argparse.Namespace(export=path, dataset=args.dataset, workers=None))
        creds = load_credentials(ddir)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on `kill` as on Ctrl-C
        with LabelStudioServer(ddir, args.dataset, creds, port=args.port, host=args.host) as server:
            info = setup_project(LabelStudioClient(server.url, creds.token), args.dataset)
            write_state(ddir, server, info.project_id)
            print(f"Label Studio {server.url} up in {server.startup_s:.1f} s (data: {ddir}, log: {server.log_path})")
            print(f"project {info.project_id}: {info.tasks} task(s) from {info.tasks_file.name}", end="")
            print(f" ({info.imported} imported now)" if info.imported else " (reused)")
            print_login(creds)
            print(f"open {info.url}  (Ctrl-C stops the server)", flush=True)
            try:
                while server.process is not None and server.process.poll() is None:
                    time.sleep(1.0)
            except KeyboardInterrupt:
                return 0
            print(f"error: Label Studio stopped by itself (log: {server.log_path})", file=sys.stderr)
            return 1
    except (LabelStudioServerError, AnnotationDatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _cmd_validate(args: argparse.Namespace) -> int:
    """Annotation quality: IoU, kappa, keypoints, mask vs depth; report + re-annotation tasks."""
    from depth_annotation.annotation import AnnotationDatasetError, ValidationConfigError, validate_dataset

    try:
        summary = validate_dataset(args.dataset, args.config, out_dir=args.out)
    except (AnnotationDatasetError, ValidationConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = summary.report["summary"]
    for f in summary.failed:
        print(f"failed: {f.key}: {'; '.join(f.reasons)}")
    for flag in summary.report["dataset"]["flags"]:
        print(f"dataset: {flag}")

    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"

    print(
        f"{s['frames']} annotated frames ({s['frames_with_several_annotators']} with several annotators): "
        f"{s['passed']} passed, {s['failed']} failed; median IoU {fmt(s['median_iou'])}, "
        f"median kappa {fmt(s['median_kappa'])}, keypoint agreement p95 {fmt(s['keypoint_agreement_p95_mm'])} mm"
    )
    print(f"report: {summary.paths['html']}\nre-annotation tasks: {summary.paths['tasks']} ({s['failed']})")
    return 0 if not summary.failed else 1


def _cmd_record(args: argparse.Namespace) -> int:
    from depth_annotation.dataset import BagError

    from .bag_replay import check_duration, record

    stop = StopSignals(interrupt=False)
    try:
        check_duration(args.duration)  # before anything is created
        counts = record(
            Path(args.out), args.topics, duration_s=args.duration, storage=args.storage, distro=args.distro, stop=stop
        )
    except (BagError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the bag {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"recorded {sum(counts.values())} messages: " + ", ".join(f"{t}: {n}" for t, n in counts.items()))
    return stop.exit_code()  # Ctrl-C is the normal end of record and play


def _cmd_play(args: argparse.Namespace) -> int:
    from depth_annotation.dataset import BagError

    from .bag_replay import parse_remaps, play

    stop = StopSignals(interrupt=False)
    try:
        sent = play(
            Path(args.bag),
            rate=args.rate,
            topics=args.topics,
            clock_hz=args.clock,
            loop=args.loop,
            remap=parse_remaps(args.remap),
            stop=stop,
        )
    except (BagError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"published {sent} messages")
    return stop.exit_code()  # Ctrl-C is the normal end of record and play


def _cmd_preannotate(args: argparse.Namespace) -> int:
    """Geometric pre-annotation of every exported task, written as Label Studio predictions."""
    import dataclasses

    from tqdm import tqdm

    from depth_annotation.preannotation import (
        GeometricConfig,
        LabelStudioEncoderError,
        PreannotationConfigError,
        PreannotationError,
        SamBackend,
        SamBackendConfig,
        load_preannotation_config,
        preannotate_dataset,
    )

    bar = tqdm(unit="frame", desc="preannotate", disable=args.quiet, dynamic_ncols=True)
    try:
        config = load_preannotation_config(args.config) if args.config else GeometricConfig()
        if args.target_hue is not None:
            config = dataclasses.replace(config, target_hue_deg=args.target_hue)
        sam = None
        if args.sam:
            sam = SamBackend(
                SamBackendConfig(
                    model=args.sam, device=args.sam_device, offline=not args.sam_online, prompt=args.sam_prompt
                )
            )
            if sam.untrained:
                print(f"warning: {args.sam} is an UNTRAINED model: its masks are meaningless", file=sys.stderr)
        report = preannotate_dataset(
            args.dataset,
            config=config,
            labelstudio_python=args.labelstudio_python,
            sam=sam,
            on_frame=lambda n: bar.update(1),
        )
    except (PreannotationError, PreannotationConfigError, LabelStudioEncoderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    regions = ", ".join(f"{k} {v} (mean score {report.mean_score[k]:.2f})" for k, v in report.regions.items())
    print(f"pre-annotated {report.tasks} tasks: {regions or 'no regions'}")
    sam_ms = f", {report.sam_ms_per_frame:.0f} ms/frame SAM" if report.sam_ms_per_frame is not None else ""
    print(
        f"  {report.geometric_ms_per_frame:.0f} ms/frame geometry{sam_ms}, {report.encode_ms_per_frame:.0f} ms/frame "
        f"Label Studio RLE; import {report.tasks_file} into Label Studio (report: {report.report_file})"
    )
    print(f"  model_version {report.model_version}" + (" (UNTRAINED)" if report.untrained else ""))
    return 0


def _cmd_pointclouds(args: argparse.Namespace) -> int:
    """Labelled point clouds (farthest-point sampled) and voxel grids of every annotated frame."""
    from tqdm import tqdm

    from depth_annotation.common import CameraModelError, Extrinsics
    from depth_annotation.training import PointCloudConfig, TrainingDataError, write_pointclouds

    bar = tqdm(unit="frame", desc="pointclouds", disable=args.quiet, dynamic_ncols=True)
    try:
        override = None
        if args.camera_to_base:
            try:
                override = Extrinsics.from_dict(json.loads(Path(args.camera_to_base).read_text()))
            except (OSError, json.JSONDecodeError, CameraModelError) as exc:
                raise TrainingDataError(f"--camera-to-base {args.camera_to_base}: {exc}") from None
        config = PointCloudConfig(
            num_points=tuple(args.points),
            depth_range_m=(args.depth_min, args.depth_max),
            voxel_size_m=args.voxel_size,
            dense_voxels=not args.sparse_only,
            camera_to_base=override,
        )
        report = write_pointclouds(args.dataset, config, on_frame=lambda n: bar.update(1))
    except TrainingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(
        f"wrote point clouds of {', '.join(map(str, args.points))} points and {args.voxel_size * 1000:g} mm voxels "
        f"({report.frame_of_voxels} frame) for {report.frames} annotated frames of {report.episodes} episode(s) "
        f"to {report.path} ({report.ms_per_frame:.0f} ms/frame)"
    )
    for name in report.skipped_episodes:
        print(f"  {name}: no annotated frames, skipped")
    return 0


def _cmd_smoke(args: argparse.Namespace) -> int:
    """Load one batch through the PyTorch dataset, print its tensors and write a PNG of it."""
    from depth_annotation.training import TrainingDataError, smoke

    out = Path(args.out) if args.out else Path(args.dataset) / "smoke.png"
    try:
        result = smoke(
            args.dataset,
            out,
            split=args.split,
            batch_size=args.batch_size,
            num_workers=args.workers,
            augment=args.augment,
        )
    except TrainingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    width = max(len(k) for k in result.shapes)
    for key, (dtype, shape) in result.shapes.items():
        print(f"{key.ljust(width)}  {dtype:8s} {tuple(shape)}")
    print(f"one batch of {result.samples} sample(s) drawn in {result.png}")
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    """export / mono / validate over many bags as Ray tasks (depth_annotation.batch); one line per failed bag."""
    from depth_annotation.batch import (
        MARKER_DIR,
        BatchError,
        BatchOptions,
        ExportJob,
        MonoJob,
        RayUnavailable,
        ValidateJob,
        find_bags,
        run_batch,
    )
    from depth_annotation.common import DEFAULT_TAXONOMY, default_taxonomy_path, load_taxonomy
    from depth_annotation.dataset import ExportOptions
    from depth_annotation.mono import MonoModelConfig

    job: ExportJob | MonoJob | ValidateJob
    with StopSignals(interrupt_again=True) as stop:
        try:
            items = find_bags(args.bags, args.list)
            if args.batch_command == "export":
                tax_path = args.taxonomy or default_taxonomy_path()
                opts = ExportOptions(
                    out_dir=Path("."),
                    codec=args.codec,
                    level=args.level,
                    every_k=args.every,
                    taxonomy=load_taxonomy(tax_path) if tax_path else DEFAULT_TAXONOMY,
                )
                job = ExportJob(args.out, opts, allow_partial=args.allow_partial)
            elif args.batch_command == "mono":
                model = MonoModelConfig(
                    model=args.model, device=args.device, input_size=args.input_size, backend=args.backend
                )
                job = MonoJob(
                    args.out,
                    model,
                    topic=args.topic,
                    depth_topic=args.depth_topic,
                    scale_file=args.scale_file,
                    metric_model=args.metric_model,
                )
            else:
                job = ValidateJob(args.out, args.config)
            batch = BatchOptions(
                ray_address=args.ray_address,
                num_workers=args.num_workers,
                gpus_per_actor=args.gpus_per_actor,
                actors=args.actors,
                max_retries=args.max_retries,
                progress=not args.quiet,
            )
            summary = run_batch(args.batch_command, items, job, batch)
        except (BatchError, RayUnavailable, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (OSError, ImportError) as exc:  # the output (or a file the options name) is unusable
            print(f"error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        except (KeyboardInterrupt, SystemExit) as exc:
            # ray.init replaces the SIGTERM handler with sys.exit(15) (ray/_private/worker.py, init):
            # a SIGTERM after it arrives as SystemExit(15). Either way run_batch has shut its local Ray
            # down (workers stopped) by now.
            if isinstance(exc, SystemExit):
                if exc.code != signal.SIGTERM:
                    raise
                stop.caught.append(signal.SIGTERM)
            removed = _remove_batch_staging(args.out, MARKER_DIR)
            print(
                f"interrupted by {stop.name}: the bags finished before it are published with their done-markers "
                f"(a rerun skips them); those in progress were stopped{removed}",
                file=sys.stderr,
            )
            return stop.interrupted_exit_code()
    for r in summary.failed:
        print(f"failed: {r.bag}: {r.error}", file=sys.stderr)
    for r in summary.partial:  # --allow-partial: published with the frames read, as `export` warns
        print(f"partial: {r.bag}: {r.note}", file=sys.stderr)
    for r in summary.failed_validation:  # completed: the report is published; exit 1 as `validate`
        print(f"failed validation: {r.bag}: {r.note} (report: {args.out.rstrip('/')}/{r.stem}/)", file=sys.stderr)
    d = summary.to_dict()
    findings = "".join(
        f", {d[key]} {name}"
        for key, name in (("partial", "partial"), ("failed_validation", "failed validation"))
        if d[key]
    )
    print(
        f"{d['done']} done, {d['skipped']} skipped (already done), {d['failed']} failed of {d['bags']}{findings} in "
        f"{d['seconds']:.1f} s ({d['frames_per_s']:.1f} frames/s); summary: {summary.path}"
    )
    return 1 if summary.failed or summary.failed_validation else 0


def _remove_batch_staging(out: str, marker_dir: str) -> str:
    """After an interrupted local batch: the stopped bags' staging folders (OUT/.batch/staging/*;
    a published bag's folder and marker are elsewhere). Returns what to say about it."""
    if "://" in out and not out.startswith("file://"):
        return " (their temporary folders were on the workers)"
    staging = Path(out.removeprefix("file://")) / marker_dir / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    return f" and their staging folders ({staging}) removed"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="depth-annotation", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("synth", help="render the synthetic scene to PNGs with ground truth")
    sp.add_argument("--out", required=True, help="output directory")
    sp.add_argument("--overwrite", action="store_true", help="write into a non-empty directory")
    sp.add_argument("--frames", type=int, default=30, help="frames to render (default %(default)s)")
    sp.add_argument("--width", type=int, default=640)
    sp.add_argument("--height", type=int, default=480)
    sp.add_argument("--fps", type=float, default=30.0, help="trajectory time step is 1/fps")
    sp.add_argument("--seed", type=int, default=0, help="scene layout and noise seed")
    sp.set_defaults(func=_cmd_synth)

    sp = sub.add_parser(
        "mono",
        help="monocular metric depth for a folder of images or a bag's colour topic (or: mono export-onnx)",
    )
    mono_sub = sp.add_subparsers(dest="mono_command", required=False, metavar="{export-onnx}")
    ep = mono_sub.add_parser("export-onnx", help="export a Depth Anything checkpoint to ONNX (CPU backends)")
    ep.add_argument("model_dir", help="local directory (config.json, model.safetensors) or cached hub id")
    ep.add_argument("out", help="the .onnx file to write")
    ep.add_argument(
        "--size", type=int, default=518, help="network input size, e.g. 518, 392, 266 (default %(default)s)"
    )
    ep.add_argument(
        "--image-size", default="640x480", help="camera image WIDTHxHEIGHT it will run on (default %(default)s)"
    )
    ep.add_argument("--online", action="store_true", help="allow downloading the model")
    src = sp.add_mutually_exclusive_group()
    src.add_argument("--images", help="folder of .png/.jpg RGB images")
    src.add_argument("--bag", help="rosbag2 directory or .mcap/.db3 file")
    sp.add_argument("--topic", default="/camera/color/image_raw", help="colour topic in the bag (default %(default)s)")
    sp.add_argument("--depth-topic", help="aligned sensor depth topic in the bag: fit scale per frame (sensor_fit)")
    sp.add_argument("--scale-file", help="calibration JSON with mono_scale (scale_file mode)")
    sp.add_argument("--metric-model", action="store_true", help="the checkpoint predicts metres (metric_model mode)")
    sp.add_argument(
        "--model",
        default="depth-anything/Depth-Anything-V2-Small-hf",
        help="hub id or local directory (torch); a .onnx file from mono export-onnx (onnxruntime, openvino)",
    )
    sp.add_argument("--device", default="cpu")
    sp.add_argument(
        "--input-size", type=int, default=518, help="network input size (0: native; an ONNX model's is fixed)"
    )
    sp.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "openvino"),
        default="torch",
        help="torch (--model: checkpoint) or a CPU runtime (--model: .onnx from mono export-onnx)",
    )
    sp.add_argument("--threads", type=int, default=0, help="CPU threads for inference (0: the backend's default)")
    sp.add_argument("--fp32", action="store_true", help="full precision (no fp16 on CUDA, no bf16 in OpenVINO)")
    sp.add_argument("--online", action="store_true", help="allow downloading the model")
    sp.add_argument("--out")
    sp.add_argument("--overwrite", action="store_true")
    sp.set_defaults(func=_cmd_mono)

    sp = sub.add_parser("export", help="rosbag2 (sqlite3 or mcap) -> HDF5 + dataset_info.json + annotation files")
    sp.add_argument("bags", nargs="+", help="rosbag2 directories or .mcap/.db3 files (one episode each)")
    sp.add_argument("--out", required=True, help="dataset directory")
    sp.add_argument(
        "--scene", action="append", metavar="BAG=SCENE", help="scene id of a bag (default: its name); repeatable"
    )
    sp.add_argument("--depth-topic", help="default /camera/aligned_depth_to_color/image_raw (16UC1 mm or 32FC1 m)")
    sp.add_argument("--color-topic", help="default /camera/color/image_raw")
    sp.add_argument("--info-topic", help="default /camera/aligned_depth_to_color/camera_info")
    sp.add_argument("--quality-topic", help="default /camera/depth_quality (joined when present)")
    sp.add_argument(
        "--tolerance-ms",
        type=float,
        default=1000 / 60,
        help="max stamp difference in a frame (default: half a 30 fps period)",
    )
    sp.add_argument(
        "--codec",
        choices=CODECS,
        default="gzip",
        help="chunk compression: gzip (deflate, any HDF5 reader), gzip-fast (same format via ISA-L: ~3x faster, "
        "a few %% larger), blosc-lz4 / blosc-zstd (fastest; readers need the Blosc filter: "
        "import hdf5plugin), lzf (h5py only), none",
    )
    sp.add_argument(
        "--level",
        type=int,
        default=None,
        help="codec level (default: gzip 4, gzip-fast 2 of 0-3, blosc-lz4 5, blosc-zstd 1)",
    )
    sp.add_argument("--every", type=int, default=10, help="annotation: every k-th frame (default 10)")
    sp.add_argument(
        "--keep-flagged",
        action="store_true",
        help="annotation: keep QC-flagged frames (marked) instead of excluding them",
    )
    sp.add_argument(
        "--overlap",
        type=_fraction,
        default=0.0,
        help="annotation: fraction of each scene's tasks marked for two annotators (the guide: 0.2), by --seed",
    )
    sp.add_argument("--depth-min", type=float, default=0.3, help="colorized depth range, metres")
    sp.add_argument("--depth-max", type=float, default=2.0)
    sp.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test ratios over scenes")
    sp.add_argument("--seed", type=int, default=0, help="split seed")
    sp.add_argument("--taxonomy", help="taxonomy YAML (default config/taxonomy.yaml)")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing dataset.h5")
    sp.add_argument("--allow-partial", action="store_true", help="exit 0 even if parts of a bag were unreadable")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--preannotate", action="store_true", help="then run preannotate on the new dataset")
    sp.set_defaults(func=_cmd_export)

    sp = sub.add_parser(
        "calibrate",
        help="camera calibration from image files or a bag, as the calibration node does (JSON, YAML, PNG report)",
    )
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--images", help="folder (or pattern, 'DIR/left*.jpg') of board images (png, jpg, bmp, tif), by sorted name"
    )
    src.add_argument("--bag", help="rosbag2 directory or .mcap/.db3 file")
    sp.add_argument("--topic", default="/camera/color/image_raw", help="image topic in the bag (default %(default)s)")
    sp.add_argument(
        "--right-images", help="the right camera's images (folder or pattern): pairs matched by sorted file name"
    )
    sp.add_argument("--right-topic", help="the right camera's topic in the bag: stereo pairs matched by stamp")
    sp.add_argument("--board", choices=("charuco", "checkerboard"), required=True)
    sp.add_argument("--squares-x", type=int, required=True, help="ChArUco squares / checkerboard inner corners along x")
    sp.add_argument("--squares-y", type=int, required=True)
    sp.add_argument("--square-length-m", type=float, required=True, help="printed square size (metres)")
    sp.add_argument("--marker-length-m", type=float, default=0.03, help="ChArUco marker size (default %(default)s)")
    sp.add_argument("--dictionary", default="DICT_5X5_100", help="ChArUco dictionary (default %(default)s)")
    sp.add_argument("--out", required=True, help="folder for calibration.json, <camera>.yaml and the PNG report")
    sp.add_argument("--camera-name", default="camera_color", help="camera name in the YAML and JSON")
    sp.add_argument(
        "--select",
        choices=("all", "auto"),
        help="all: every image with a board is a view (default for --images); auto: the node's selector keeps "
        "sharp views unlike the kept ones (default for --bag)",
    )
    sp.add_argument("--detect-rate-hz", type=float, default=0.0, help="bag: detections per second of stamps (0: all)")
    sp.add_argument("--min-views", type=int, default=10, help="views needed (default %(default)s)")
    sp.add_argument("--min-pairs", type=int, default=10, help="stereo pairs needed (default %(default)s)")
    sp.add_argument("--max-rms-px", type=float, default=0.5, help="RMS reprojection error gate (default %(default)s)")
    for key in ("x", "y", "size", "skew"):
        sp.add_argument(f"--min-coverage-{key}", type=float, help="coverage gate (default: the node's, see README)")
    sp.add_argument(
        "--max-std", type=float, help="gate: largest std of fx, fy, cx, cy over the value (default: the node's, 0.005)"
    )
    sp.add_argument("--force", action="store_true", help="write the calibration even if a gate fails (recorded)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cmd_calibrate)

    sp = sub.add_parser("record", help="record topics to a rosbag2 (mcap/sqlite3) without ros2 bag")
    sp.add_argument("topics", nargs="+")
    sp.add_argument("--out", required=True, help="bag directory to create")
    sp.add_argument("--duration", type=float, required=True, help="seconds to record (Ctrl-C stops early)")
    sp.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    sp.add_argument(
        "--distro",
        choices=("humble", "jazzy", "kilted"),
        default="kilted",
        help="write the metadata.yaml version and types this distro's ros2 bag reads (humble: 5, jazzy/kilted: 9)",
    )
    sp.set_defaults(func=_cmd_record)

    sp = sub.add_parser("reindex", help="write a fresh metadata.yaml for a bag (and a recovered copy of a cut mcap)")
    sp.add_argument("bag", help="bag directory; storage files are never modified")
    sp.set_defaults(func=_cmd_reindex)

    sp = sub.add_parser("play", help="replay a rosbag2 with recorded timing and QoS, without ros2 bag")
    sp.add_argument("bag")
    sp.add_argument("--rate", type=float, default=1.0)
    sp.add_argument("--topics", nargs="*", help="only these topics")
    sp.add_argument(
        "--clock",
        type=float,
        nargs="?",
        const=40.0,
        default=None,
        metavar="HZ",
        help="publish /clock with the bag's time (default 40 Hz, as ros2 bag play --clock)",
    )
    sp.add_argument("--loop", action="store_true", help="play again from the start until Ctrl-C")
    sp.add_argument("--remap", action="append", metavar="FROM:=TO", help="publish topic FROM as TO (repeatable)")
    sp.set_defaults(func=_cmd_play)

    sp = sub.add_parser("demo", help="run the node graph on the synthetic camera: calibrate, record, export")
    sp.add_argument("--out", default="out/demo", help="output directory, replaced on each run (default %(default)s)")
    sp.add_argument("--short", action="store_true", help="shorter recording (CI)")
    sp.set_defaults(func=_cmd_demo)

    sp = sub.add_parser("view", help="render one frame of an exported HDF5 file to a PNG")
    sp.add_argument("file")
    sp.add_argument("--episode", type=int, default=0)
    sp.add_argument("--frame", type=int, default=0)
    sp.add_argument("--out", help="PNG path (default: beside the file)")
    sp.set_defaults(func=_cmd_view)

    sp = sub.add_parser("annotations", help="the annotation round trip: import a Label Studio export, synthesize one")
    ann = sp.add_subparsers(dest="annotations_command", required=True)
    ap = ann.add_parser("import", help="Label Studio JSON export -> label images and 3D keypoints in the dataset")
    ap.add_argument("export", help="Label Studio JSON export (Export -> JSON) of the dataset's tasks")
    ap.add_argument("--dataset", required=True, help="dataset directory made by `depth-annotation export`")
    ap.add_argument("--workers", type=int, default=None, help="Label Studio SDK processes decoding (default: cores)")
    ap.set_defaults(func=_cmd_annotations_import)
    ap = ann.add_parser("synth", help="a synthetic dataset + a two-annotator Label Studio export of its ground truth")
    ap.add_argument("--out", required=True, help="directory to create (dataset/ and label_studio_export.json)")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--every", type=int, default=2, help="every k-th frame is an annotation task")
    ap.add_argument("--overlap", type=_fraction, default=0.2, help="fraction of tasks both annotators label")
    ap.add_argument("--fps", type=float, default=2.0, help="frame i views the scene from the orbit at i/fps s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--boundary-px", type=int, default=0, help="annotator 2: erode (<0) or dilate (>0) objects")
    ap.add_argument("--shift-mm", type=float, default=0.0, help="annotator 2: keypoints shifted by this many mm")
    ap.add_argument("--bleed-px", type=int, default=0, help="annotator 2: masks bleed onto the background behind")
    ap.add_argument("--miss", action="append", metavar="OBJECT", help="annotator 2 leaves this object unlabelled")
    ap.add_argument("--keypoint-on-background", action="append", metavar="KEYPOINT", help="annotator 2 clicks it off")
    ap.set_defaults(func=_cmd_annotations_synth)

    sp = sub.add_parser("labelstudio", help="a local Label Studio server for a dataset: serve its tasks, pull results")
    lsp = sp.add_subparsers(dest="labelstudio_command", required=True)
    ap = lsp.add_parser("serve", help="start Label Studio (127.0.0.1) with the dataset's project and tasks")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    ap = lsp.add_parser("pull", help="export the project's annotations through the API and import them")
    ap.add_argument("--out", help="where to keep the JSON export (default DATA_DIR/export.json)")
    for ap in lsp.choices.values():
        ap.add_argument("--dataset", required=True, help="dataset directory made by `depth-annotation export`")
        ap.add_argument("--data-dir", help="Label Studio's data directory (default DATASET/labelstudio)")
    sp.set_defaults(func=_cmd_labelstudio)

    sp = sub.add_parser("validate", help="annotation quality of a dataset: metrics, report, re-annotation tasks")
    sp.add_argument("--dataset", required=True, help="dataset directory with imported annotations")
    sp.add_argument("--config", help="thresholds YAML (default config/annotation_validation.yaml)")
    sp.add_argument("--out", help="report directory (default DATASET/validation)")
    sp.set_defaults(func=_cmd_validate)

    sp = sub.add_parser("check", help="run the exporter's consistency checks on a dataset directory")
    sp.add_argument("dataset")
    sp.add_argument(
        "--deep", action="store_true", help="decode every frame and verify every frame and annotation file checksum"
    )
    sp.set_defaults(func=_cmd_check)

    sp = sub.add_parser(
        "preannotate", help="geometric pre-annotation of the exported tasks as Label Studio predictions"
    )
    sp.add_argument("--dataset", required=True, help="dataset directory (made by export)")
    sp.add_argument("--config", help="settings YAML (default: the built-in ones, as in config/preannotation.yaml)")
    sp.add_argument("--target-hue", type=float, help="label objects of this HSV hue (degrees) target_object")
    sp.add_argument("--labelstudio-python", help="a Python with label-studio-sdk (default: .venv-labelstudio)")
    sp.add_argument("--sam", metavar="MODEL", help="refine objects with Segment Anything: local directory or hub id")
    sp.add_argument("--sam-prompt", choices=("box", "point"), default="box", help="prompt per geometric cluster")
    sp.add_argument("--sam-device", default="cpu")
    sp.add_argument("--sam-online", action="store_true", help="allow downloading the SAM model")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cmd_preannotate)

    sp = sub.add_parser("pointclouds", help="labelled point clouds and voxel grids of the annotated frames")
    sp.add_argument("--dataset", required=True, help="dataset directory with imported annotations")
    sp.add_argument("--points", type=int, nargs="+", default=[8192], help="farthest-point sample sizes (default 8192)")
    sp.add_argument("--voxel-size", type=float, default=0.005, help="voxel edge, metres (default %(default)s)")
    sp.add_argument("--depth-min", type=float, default=0.3, help="working range, metres")
    sp.add_argument("--depth-max", type=float, default=2.0)
    sp.add_argument("--camera-to-base", help="extrinsics JSON (camera optical frame -> robot base) for every episode")
    sp.add_argument("--sparse-only", action="store_true", help="voxels as coordinates only, no dense grids")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cmd_pointclouds)

    sp = sub.add_parser("smoke", help="load one training batch, print its tensors, write a PNG of it")
    sp.add_argument("--dataset", required=True, help="dataset directory")
    sp.add_argument("--split", help="train, val or test (default: all frames)")
    sp.add_argument("--batch-size", type=int, default=4)
    sp.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    sp.add_argument("--augment", action="store_true", help="apply the augmentations (noise, dropout patches)")
    sp.add_argument("--out", help="PNG path (default DATASET/smoke.png)")
    sp.set_defaults(func=_cmd_smoke)

    sp = sub.add_parser("batch", help="export / mono / validate over many bags on Ray (local or a cluster)")
    sp.add_argument("batch_command", choices=("export", "mono", "validate"), help="validate: --bags are datasets")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--bags", help="glob of bags (.mcap/.db3 files or bag folders; datasets for validate)")
    src.add_argument("--list", help="file with one bag path a line")
    sp.add_argument("--out", required=True, help="output folder or fsspec URL: OUT/<bag-stem>/ per bag")
    sp.add_argument("--ray-address", help="join this Ray cluster (default: start a local Ray)")
    sp.add_argument("--num-workers", type=int, help="local Ray: bags at once (default: the machine's cores)")
    sp.add_argument("--max-retries", type=int, default=3, help="re-runs of a bag whose worker died")
    sp.add_argument("--codec", choices=CODECS, default="gzip", help="export: chunk compression")
    sp.add_argument("--level", type=int, default=None, help="export: codec level")
    sp.add_argument("--every", type=int, default=10, help="export: annotation every k-th frame")
    sp.add_argument("--taxonomy", help="export: taxonomy YAML")
    sp.add_argument("--allow-partial", action="store_true", help="export: a partly unreadable bag counts as done")
    sp.add_argument("--model", default="depth-anything/Depth-Anything-V2-Small-hf", help="mono: model")
    sp.add_argument("--device", default="auto", help="mono: auto (cuda when the actor has a GPU), cpu, cuda")
    sp.add_argument("--input-size", type=int, default=518, help="mono: network input size")
    sp.add_argument("--backend", choices=("torch", "onnxruntime", "openvino"), default="torch")
    sp.add_argument("--topic", default="/camera/color/image_raw", help="mono: colour topic")
    sp.add_argument("--depth-topic", help="mono: sensor depth topic (sensor_fit)")
    sp.add_argument("--scale-file", help="mono: calibration JSON with mono_scale")
    sp.add_argument("--metric-model", action="store_true", help="mono: the model predicts metres")
    sp.add_argument("--gpus-per-actor", type=float, default=0.0, help="mono: GPUs per model actor (0: CPU)")
    sp.add_argument("--actors", type=int, help="mono: model actors (default: one per worker)")
    sp.add_argument("--config", help="validate: thresholds YAML")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cmd_batch)
    return p


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 path prints escaped, never as a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
