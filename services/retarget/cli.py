"""`motionctl` subcommands of the retarget stage: `character`, `retarget` and `retarget-serve`."""

from __future__ import annotations

import argparse
import json
import pathlib
import time
from typing import Any

from motion.cli import add_common_flags, emit

RIG_FILE = "rig.bin"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `character`, `retarget` and `retarget-serve`."""
    ch = sub.add_parser("character", help="analyse a character image: mask, texture, filled background, joints")
    ch.add_argument("image", type=pathlib.Path)
    ch.add_argument("--joints", type=pathlib.Path, default=None,
                    help="joints override: motion-control/character-joints JSON or AnimatedDrawings char_cfg.yaml")
    ch.add_argument("-o", "--output", type=pathlib.Path, required=True, help="directory for the rig files")
    add_common_flags(ch)
    ch.set_defaults(func=_cmd_character)

    rt = sub.add_parser("retarget", help="retarget a performer skeleton onto a character image")
    rt.add_argument("--skeleton", type=pathlib.Path, required=True, help="performer SkeletonSequence (.json or .pb)")
    src = rt.add_mutually_exclusive_group(required=True)
    src.add_argument("--character", type=pathlib.Path, help="character image (analysed first)")
    src.add_argument("--rig", type=pathlib.Path, help="a rig directory written by `motionctl character`")
    rt.add_argument("--joints", type=pathlib.Path, default=None, help="joints override for --character")
    rt.add_argument("--orientation", choices=["video", "image"], default="video")
    rt.add_argument("--loop", action="store_true", help="blend the end into the start for a seamless loop")
    rt.add_argument("--loop-blend-s", type=float, default=0.0, help="loop blend window, s (default 0.5)")
    rt.add_argument("--no-pin-feet", action="store_true", help="do not pin planted feet")
    rt.add_argument("-o", "--output", type=pathlib.Path, required=True, help="retargeted skeleton JSON")
    add_common_flags(rt)
    rt.set_defaults(func=_cmd_retarget)

    sv = sub.add_parser("retarget-serve", help="serve the gRPC RetargetService on 127.0.0.1")
    sv.add_argument("--port", type=int, default=None)
    sv.add_argument("--store", default=None, help="object store URL (default from settings)")
    sv.add_argument("--metrics-port", type=int, default=None)
    sv.set_defaults(func=_cmd_serve)


def rig_summary(rig: Any) -> dict[str, Any]:
    return {
        "image_sha256": rig.image_sha256, "width": rig.width, "height": rig.height, "facing": rig.facing,
        "height_px": rig.height_px, "mask_source": rig.mask_source, "warnings": rig.warnings,
        "missing_parts": rig.missing_parts,
        "joints": {k: [round(v[0], 2), round(v[1], 2)] for k, v in sorted(rig.joints.items())},
        "joint_sources": dict(sorted(rig.joint_sources.items())),
        "bones": [{"name": b.name, "parent": b.parent_joint, "child": b.child_joint,
                   "length_px": round(b.length_px, 2), "rest_angle_rad": round(b.rest_angle_rad, 4)} for b in rig.bones],
        "hands": {"left": rig.left_hand is not None, "right": rig.right_hand is not None},
        "face": rig.face is not None,
    }


def write_rig_dir(rig: Any, out_dir: pathlib.Path) -> dict[str, str]:
    """mask.png, texture.png, background.png, joints.png (overlay), rig.json (readable) and rig.bin."""
    import cv2

    from motion.rig import encode_png
    from motion.storage.atomic import atomic_write_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    overlay = cv2.cvtColor(rig.texture_rgba[..., :3], cv2.COLOR_RGB2BGR)
    overlay = (overlay * 0.6).astype("uint8")
    for b in rig.bones:
        p0 = tuple(int(round(v)) for v in rig.joints[b.parent_joint])
        p1 = tuple(int(round(v)) for v in rig.joints[b.child_joint])
        cv2.line(overlay, p0, p1, (0, 255, 255), 2, cv2.LINE_AA)
    for x, y in rig.joints.values():
        cv2.circle(overlay, (int(round(x)), int(round(y))), 4, (0, 0, 255), -1, cv2.LINE_AA)
    files = {
        "mask.png": encode_png(rig.mask), "texture.png": encode_png(rig.texture_rgba),
        "background.png": encode_png(rig.background_rgb),
        "joints.png": encode_png(cv2.cvtColor(overlay, cv2.COLOR_BGR2RGB)),
        "rig.json": json.dumps(rig_summary(rig), indent=2).encode(), RIG_FILE: rig.to_bytes(),
    }
    for name, data in files.items():
        atomic_write_bytes(out_dir / name, data)
    return {name: str(out_dir / name) for name in files}


def _cmd_character(args: argparse.Namespace) -> int:
    from services.render.character import analyse_character

    t0 = time.monotonic()
    rig = analyse_character(args.image, joints_override=args.joints)
    files = write_rig_dir(rig, args.output)
    summary = rig_summary(rig)
    emit(args, {**summary, "files": files, "seconds": round(time.monotonic() - t0, 2)},
         f"{args.image.name}: mask from {rig.mask_source}, facing {rig.facing}, {len(rig.bones)} bones, "
         f"height {rig.height_px:.0f} px -> {args.output}"
         + "".join(f"\n  warning: {w}" for w in rig.warnings))
    return 0


def load_skeleton(path: pathlib.Path) -> Any:
    from motion.errors import InputError
    from motion.skeleton import SkeletonSequence

    if not path.is_file():
        raise InputError("skeleton.path", f"no such skeleton file: {path}", actual=str(path))
    if path.suffix.lower() == ".json":
        try:
            return SkeletonSequence.load_json(path)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError("skeleton.format", f"{path.name} is not a skeleton JSON document: {exc}",
                             actual=path.name) from exc
    return SkeletonSequence.from_bytes(path.read_bytes())


def _cmd_retarget(args: argparse.Namespace) -> int:
    from motion.rig import CharacterRig
    from services.render.character import analyse_character
    from services.retarget.retarget import RetargetOptions, retarget_with_report

    t0 = time.monotonic()
    performer = load_skeleton(args.skeleton)
    if args.rig is not None:
        rig = CharacterRig.from_bytes((args.rig / RIG_FILE if args.rig.is_dir() else args.rig).read_bytes())
    else:
        rig = analyse_character(args.character, joints_override=args.joints)
    opts = RetargetOptions(orientation=args.orientation, loop=args.loop, loop_blend_s=args.loop_blend_s,
                           pin_feet=not args.no_pin_feet)
    res = retarget_with_report(performer, rig, opts)
    res.sequence.save_json(args.output)
    result = {
        "output": str(args.output), "frames": len(res.sequence.frames), "fps": res.sequence.fps,
        "width": rig.width, "height": rig.height, "trimmed_s": round(res.trimmed_s, 3),
        "foot_skate_before_px": round(res.foot_skate_before_px, 3),
        "foot_skate_after_px": round(res.foot_skate_after_px, 3), "contact_frames": res.contact_frames,
        "height_ratio": round(res.height_ratio, 4), "mirrored_frames": sum(f.mirrored for f in res.sequence.frames),
        "warnings": res.sequence.warnings, "seconds": round(time.monotonic() - t0, 2),
    }
    emit(args, result,
         f"{len(res.sequence.frames)} frames in character pixels ({rig.width}x{rig.height}) -> {args.output}; "
         f"foot skate {res.foot_skate_before_px:.2f} -> {res.foot_skate_after_px:.2f} px/frame"
         + (f"; trimmed {res.trimmed_s:.2f} s" if res.trimmed_s else "")
         + "".join(f"\n  warning: {w}" for w in res.sequence.warnings))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from services.retarget.__main__ import serve

    return serve(args.port, args.store, args.metrics_port)
