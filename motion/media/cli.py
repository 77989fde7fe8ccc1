"""`motionctl probe FILE`: validate an input image or video against the product spec and print its facts."""

from __future__ import annotations

import argparse
import pathlib

from motion.cli import add_common_flags, emit
from motion.errors import InputError
from motion.media.image import IMAGE_EXTENSIONS, validate_image
from motion.media.video import VIDEO_EXTENSIONS, validate_video


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("probe", help="validate an image or video input and print its info")
    p.add_argument("file", type=pathlib.Path, help="character image (JPG/PNG) or reference video (MP4/MOV)")
    add_common_flags(p)
    p.set_defaults(func=_probe)


def _probe(args: argparse.Namespace) -> int:
    path: pathlib.Path = args.file
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        result = validate_image(path).to_dict()
    elif ext in VIDEO_EXTENSIONS:
        result = validate_video(path).to_dict()
    else:
        raise InputError("input.format", f"cannot tell an image from a video by the name {path.name!r}",
                         limit="jpg|jpeg|png|mp4|mov", actual=ext)
    human = "\n".join(f"{k}: {v}" for k, v in result.items())
    emit(args, {"file": str(path), "valid": True, **result}, f"{path}: valid {result['kind']}\n{human}")
    return 0
