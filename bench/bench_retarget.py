"""Character + retarget benchmark on real data from --data (../shared/data).

Figures: drawing mask IoU against the AnimatedDrawings reference masks; character analysis time; for each
real video, the first --retarget-seconds (default 4, 2 with --quick) through the pose pipeline
(litert, no hands/face) and then retargeted onto drawing char1 in both orientations: foot skate (mean
ankle px/frame while a foot is in contact) before and after pinning, its reduction factor, contact
frames, and retarget throughput (frames/s, pose extraction excluded).
Run: `python -m bench --only retarget`.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from typing import Any

import numpy as np

from motion.media.image import read_image

VIDEOS = ("musepose__ubc_91-3003CN5S.mp4", "musepose__ubc_91bxAN6BjAS.mp4", "animate_x__dance_1.mp4",
          "unianimate__source_video.mp4")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from services.render.character import analyse_character, compute_mask
    from services.retarget.retarget import RetargetOptions, retarget_with_report

    data = pathlib.Path(args.data)
    drawings = data / "drawings"
    if not drawings.is_dir():
        return {"skipped": f"no real data under {data}"}
    result: dict[str, Any] = {"mask_iou": {}, "analyse_s": {}}
    for i in range(1, 5):
        rgb = np.asarray(read_image(drawings / f"char{i}_texture.png"))
        ref = np.asarray(read_image(drawings / f"char{i}_mask.png"))
        ref_mask = (ref[..., 0] if ref.ndim == 3 else ref) > 0
        result["mask_iou"][f"char{i}"] = round(_iou(compute_mask(rgb).mask > 0, ref_mask), 4)
        t0 = time.perf_counter()
        analyse_character(drawings / f"char{i}_texture.png", drawings / f"char{i}_char_cfg.yaml")
        result["analyse_s"][f"char{i}"] = round(time.perf_counter() - t0, 3)
    rig = analyse_character(drawings / "char1_texture.png", drawings / "char1_char_cfg.yaml")
    try:
        from services.pose.pipeline import PoseExtractor, PoseOptions
    except ImportError:
        result["videos"] = "skipped: pose pipeline not available"
        return result
    seconds = float(getattr(args, "retarget_seconds", 0) or (2.0 if getattr(args, "quick", False) else 4.0))
    videos: dict[str, Any] = {}
    for name in VIDEOS:
        path = data / "videos" / name
        if not path.is_file():
            continue
        with PoseExtractor(PoseOptions(hands=False, face=False, max_duration_s=seconds)) as ex:
            seq = ex.process_video(path)
        row: dict[str, Any] = {"frames": len(seq.frames)}
        for orientation in ("video", "image"):
            t0 = time.perf_counter()
            res = retarget_with_report(seq, rig, RetargetOptions(orientation=orientation))
            dt = time.perf_counter() - t0
            before, after = res.foot_skate_before_px, res.foot_skate_after_px
            row[orientation] = {
                "skate_before_px": round(before, 3), "skate_after_px": round(after, 4),
                "skate_reduction_x": round(before / after, 1) if after > 1e-9 else float("inf"),
                "contact_frames": res.contact_frames, "fps": round(len(seq.frames) / dt, 1),
                "mirrored_frames": sum(f.mirrored for f in res.sequence.frames),
            }
        videos[name.removesuffix(".mp4")] = row
    result["videos"] = videos
    result["seconds_per_video"] = seconds
    return result
