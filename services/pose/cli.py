"""`motionctl` subcommands of the pose service: `models fetch|verify`, `pose VIDEO`, `pose-serve`."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from motion.cli import add_common_flags, emit


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `models fetch`, `models verify`, `pose` and `pose-serve`."""
    models = sub.add_parser("models", help="pose models (MediaPipe 0.10.21 .tflite files)")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    fetch = msub.add_parser("fetch", help="download the mediapipe wheel with pip and extract the models")
    fetch.add_argument("--model-dir", type=pathlib.Path, default=None,
                       help="where to put the models (default: $MOTION_MODEL_DIR or ~/.cache/motion-control/models)")
    fetch.add_argument("--wheel", type=pathlib.Path, default=None, help="use this already-downloaded wheel")
    fetch.add_argument("--force", action="store_true", help="download again even when the models verify")
    add_common_flags(fetch)
    fetch.set_defaults(func=_cmd_models_fetch)
    verify = msub.add_parser("verify", help="check the installed models against their manifest")
    verify.add_argument("--model-dir", type=pathlib.Path, default=None)
    add_common_flags(verify)
    verify.set_defaults(func=_cmd_models_verify)

    pose = sub.add_parser("pose", help="extract the whole-body skeleton of a video")
    pose.add_argument("video", type=pathlib.Path)
    pose.add_argument("-o", "--output", type=pathlib.Path, required=True, help="skeleton JSON to write")
    pose.add_argument("--overlay", type=pathlib.Path, default=None, help="also write the skeleton over the video")
    pose.add_argument("--no-hands", action="store_true")
    pose.add_argument("--no-face", action="store_true")
    pose.add_argument("--no-smoothing", action="store_true")
    pose.add_argument("--runtime", default=None, choices=["auto", "litert", "openvino", "torch", "tensorrt"],
                      help="default $MOTION_POSE_RUNTIME or auto (openvino where the CPU has native bf16, else litert)")
    pose.add_argument("--track-id", type=int, default=0, help="0 = largest person, k = k-th from the left")
    pose.add_argument("--max-duration-s", type=float, default=0.0)
    pose.add_argument("--threads", type=int, default=1, help="inference threads per model")
    pose.add_argument("--model-dir", type=pathlib.Path, default=None)
    add_common_flags(pose)
    pose.set_defaults(func=_cmd_pose)

    serve = sub.add_parser("pose-serve", help="serve the gRPC PoseService on 127.0.0.1")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--store", default=None, help="object store URL (default from settings)")
    serve.add_argument("--model-dir", type=pathlib.Path, default=None)
    serve.set_defaults(func=_cmd_serve)


def _cmd_models_fetch(args: argparse.Namespace) -> int:
    from services.pose.models import fetch_models

    t0 = time.monotonic()
    res = fetch_models(args.model_dir, wheel=args.wheel, force=args.force)
    warmed_s = _warm_default_runtime(res.model_dir)
    emit(args, {"model_dir": str(res.model_dir), "downloaded": res.downloaded,
                "files": {k: str(v) for k, v in res.files.items()}, "seconds": round(time.monotonic() - t0, 2),
                "openvino_cache_s": warmed_s},
         f"models {'fetched into' if res.downloaded else 'already present and verified in'} {res.model_dir} "
         f"({len(res.files)} files)" + (f"; OpenVINO compile cache warm ({warmed_s:.1f} s)" if warmed_s else ""))
    return 0


def _warm_default_runtime(model_dir: pathlib.Path) -> float | None:
    """Where the default pose runtime is openvino, compiles every graph once so its blob cache (under the
    model dir) is filled at install time: the first `animate` then loads in ~0.4 s instead of ~1.8 s.
    Returns the seconds it took, or None when the default runtime is another one."""
    from services.pose.pipeline import PoseExtractor, PoseOptions
    from services.pose.service import resolve_default_runtime

    if resolve_default_runtime() != "openvino":
        return None
    t0 = time.monotonic()
    with PoseExtractor(PoseOptions(runtime="openvino"), model_dir=model_dir):
        pass
    return round(time.monotonic() - t0, 2)


def _cmd_models_verify(args: argparse.Namespace) -> int:
    from services.pose.models import ensure_models

    files = ensure_models(args.model_dir)
    emit(args, {"files": {k: str(v) for k, v in files.items()}}, f"{len(files)} model files verified")
    return 0


def _cmd_pose(args: argparse.Namespace) -> int:
    from services.pose.overlay import OverlayWriter, draw_skeleton
    from services.pose.pipeline import PoseExtractor, PoseOptions
    from services.pose.service import resolve_default_runtime

    opts = PoseOptions(runtime=resolve_default_runtime(args.runtime), hands=not args.no_hands, face=not args.no_face,
                       smoothing=not args.no_smoothing, track_id=args.track_id,
                       max_duration_s=args.max_duration_s, num_threads=args.threads)
    show = not (args.quiet or args.json) and sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show:
            print(f"\rpose: {done}/{total} frames", end="", file=sys.stderr, flush=True)

    t0 = time.monotonic()
    writer: OverlayWriter | None = None
    with PoseExtractor(opts, model_dir=args.model_dir) as ex:
        try:
            def sink(frame, rgb):  # type: ignore[no-untyped-def]
                nonlocal writer
                if args.overlay is None:
                    return
                if writer is None:
                    writer = OverlayWriter(args.overlay, rgb.shape[1], rgb.shape[0], _fps_of(args.video))
                writer.write(draw_skeleton(rgb, frame))

            seq = ex.process_video(args.video, progress=progress, frame_sink=sink)
        finally:
            if writer is not None:
                writer.close()
    if show:
        print(file=sys.stderr)
    seq.save_json(args.output)
    elapsed = time.monotonic() - t0
    present = sum(f.present for f in seq.frames)
    result = {
        "output": str(args.output), "overlay": str(args.overlay) if args.overlay else None, "runtime": opts.runtime,
        "frames": len(seq), "frames_with_person": present,
        "left_hands": sum(f.left_hand is not None for f in seq.frames),
        "right_hands": sum(f.right_hand is not None for f in seq.frames),
        "faces": sum(f.face is not None for f in seq.frames),
        "fps_processed": round(len(seq) / elapsed, 2) if elapsed > 0 else None,
        "width": seq.width, "height": seq.height, "warnings": seq.warnings,
    }
    emit(args, result, f"{args.output}: {len(seq)} frames, person in {present}, "
                       f"{result['fps_processed']} frames/s" + (f"; overlay {args.overlay}" if args.overlay else ""))
    return 0


def _fps_of(path: pathlib.Path) -> float:
    from services.pose.pipeline import _video_info

    return _video_info(path).fps


def _cmd_serve(args: argparse.Namespace) -> int:
    from services.pose.__main__ import serve

    serve(port=args.port, store_url=args.store, model_dir=args.model_dir)
    return 0
