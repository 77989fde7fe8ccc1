"""`motionctl samples OUTDIR`: writes the sample kit (character + performer video with ground truth)."""

from __future__ import annotations

import argparse
import pathlib
import time

from motion.cli import add_common_flags, emit
from motion.errors import InputError
from motion.samples.kit import write_samples


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InputError("samples.size_px", "size must look like WIDTHxHEIGHT, e.g. 720x1280",
                         limit="WxH", actual=text)
    return int(parts[0]), int(parts[1])


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "samples", help="write a sample character and a performer video with ground truth",
        description="Writes character.png (+ character.joints.json) and performer.mp4 (+ performer.joints.json, "
                    "per-frame ground truth of the 33 BlazePose landmarks) into OUTDIR, deterministically "
                    "from --seed.",
    )
    p.add_argument("outdir", type=pathlib.Path, help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same bytes")
    p.add_argument("--duration-s", type=float, default=8.0, help="performer video length in seconds (default 8)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    p.add_argument("--size", default="720x1280", metavar="WxH",
                   help="performer video frame size (default 720x1280)")
    p.add_argument("--no-audio", action="store_true", help="write the video without its beat track")
    add_common_flags(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    kit = write_samples(args.outdir, seed=args.seed, duration_s=args.duration_s, fps=args.fps,
                        size=parse_size(args.size),
                        audio=not args.no_audio)
    result = kit.to_dict()
    result["elapsed_s"] = round(time.monotonic() - started, 2)
    human = "\n".join([
        f"wrote {kit.character_png}", f"wrote {kit.character_joints}",
        f"wrote {kit.performer_mp4} ({kit.width}x{kit.height}, {kit.frame_count} frames at {kit.fps:g} fps)",
        f"wrote {kit.performer_joints}", f"in {result['elapsed_s']} s",
    ])
    emit(args, result, human)
    return 0
