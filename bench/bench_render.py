"""Renderer benchmark on real data from --data (../shared/data).

Figures:
- render-only frames/s and CPU ms per frame at 720p and 1080p (deform + rasterise + read back, no encoding;
  RGBA and the shader I420 route; a photo, and an illustration); render+encode in ranges of the orchestrator's
  size, each with its own Renderer, as a job is split (per-range setup included); the 1-minute load average;
- the full-clip render+encode wall time, frames/s, CPU ms per frame and the overlap factor ((render + encode) / wall; 2.0 = perfect overlap);
- end-to-end real-time factor (wall / video duration) of the embedded pipeline at 720p and 1080p on the
  first --render-seconds (default 10, 3 with --quick) of a 30 fps real video, with the per-stage split
  (decode+pose, character, retarget, rig model, render+encode);
- motion fidelity: the body pose re-detected on rendered frames (our pose pipeline) against the retargeted
  target skeleton, PCK@0.1 of the character height over the 12 limb joints on 40 frames per pair, for
  photo-like characters; frames where the performer shows their back are drawn front-on with sides swapped
  and scored against the side-swapped target (``pck@0.1``; ``pck@0.1_labels`` keeps the labels);
- exact rig check: mean angle between deformed bone axes and target bones.
Run: `python -m bench --only render`.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time
from typing import Any

import numpy as np

VIDEO = "musepose__ubc_91-3003CN5S.mp4"  # 29.97 fps, full body
PCK_VIDEOS = ("musepose__ubc_91-3003CN5S.mp4", "animate_x__dance_1.mp4")
PHOTO_CHARACTERS = ("musev__man.jpg", "unianimate__WOMEN-Blouses_Shirts-id_00004955-01_4_full.jpg")
# Render-only speed is also taken on an illustration: a larger, more detailed texture over more of the frame.
ILLUSTRATION = "musepose__ref.png"


def _render_fps(rig: Any, seq: Any, resolution: str, n: int, i420: bool = False) -> tuple[float, float, int, int]:
    """(frames/s, CPU ms per frame over all threads incl. llvmpipe's, width, height) of render-only."""
    from services.render.renderer import Renderer, RenderOptions

    with Renderer(rig, RenderOptions(resolution=resolution)) as r:
        r.render_frame(seq, 0, i420=i420)  # warm up (shader compile, texture upload)
        c0, t0 = time.process_time(), time.perf_counter()
        done = 0
        while done < n:  # the streaming path a video render takes (one frame rasterising while the next skins)
            for _ in r.render_frames(seq, 0, min(len(seq.frames), n - done), i420=i420):
                done += 1
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        return n / dt, cpu / n * 1e3, r.geometry.width_px, r.geometry.height_px


def _ranges(rig: Any, seq: Any, model: Any, resolution: str, out_dir: pathlib.Path,
            range_frames: int = 0) -> dict[str, Any]:
    """Render + encode in ``range_frames`` ranges, each with its own Renderer (GL context) as a render worker
    does per RenderRange request: the per-range setup is part of the figure."""
    from services.gateway.orchestrator import DEFAULT_FRAMES_PER_RANGE
    from services.render.renderer import RenderOptions, render_video

    range_frames = range_frames or DEFAULT_FRAMES_PER_RANGE
    n = len(seq.frames)
    c0, t0 = time.process_time(), time.perf_counter()
    for s in range(0, n, range_frames):
        render_video(rig, seq, out_dir / f"range_{resolution}_{s:06d}.mp4", RenderOptions(resolution=resolution),
                     start=s, end=min(n, s + range_frames), model=model)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"fps": round(n / dt, 1), "wall_ms_per_frame": round(dt / n * 1e3, 1),
            "cpu_ms_per_frame": round(cpu / n * 1e3, 1), "frames": n, "range_frames": range_frames}


def _swap_sides(index: int) -> int:
    from motion.skeleton import BodyLandmark

    name = BodyLandmark(index).name
    other = name.replace("LEFT", "@").replace("RIGHT", "LEFT").replace("@", "RIGHT")
    return int(BodyLandmark[other])


def _pck(rig: Any, seq: Any, ex: Any, frames: list[int]) -> dict[str, Any]:
    """Re-detected PCK@0.1 (of the character's height) over the 12 limb joints.

    A frame where the performer shows their back is ``mirrored``: a still picture has no back, so the
    renderer draws the character's front with its drawn-left limbs on the target's right joints (see
    services/render/skin.frame_joints). A detector then sees a front view and names the sides the other way
    while every limb is where the target puts it, so those frames are scored against the side-swapped
    target (``pck@0.1``). ``pck@0.1_labels`` scores every frame with the target's own side labels.
    """
    from motion.skeleton import LIMB_JOINTS
    from services.render.renderer import Renderer, RenderOptions

    joints = list(LIMB_JOINTS)
    swapped = [_swap_sides(j) for j in joints]
    hits, strict_hits, total, mirrored = 0, 0, 0, 0
    with Renderer(rig, RenderOptions(resolution="720p")) as r:
        g = r.geometry
        threshold = 0.1 * rig.height_px * g.scale
        for i in frames:
            img = np.ascontiguousarray(r.render_frame(seq, i)[..., :3])
            found = ex.process_image(img)
            frame = seq.frames[i]
            if frame.body is None:
                continue
            px = frame.body[:, :2] * g.scale + np.array(g.offset_px)
            total += len(joints)
            mirrored += int(bool(frame.mirrored))
            if not found.present or found.body is None:
                continue
            got = found.body[joints, :2]
            ok_labels = np.hypot(*(got - px[joints]).T) <= threshold
            ok_sides = np.hypot(*(got - px[swapped]).T) <= threshold if frame.mirrored else ok_labels
            hits += int(ok_sides.sum())
            strict_hits += int(ok_labels.sum())
    return {"pck@0.1": round(hits / max(total, 1), 3), "pck@0.1_labels": round(strict_hits / max(total, 1), 3),
            "joints": total, "frames": len(frames), "mirrored_frames": mirrored}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from motion.media import validate_video
    from services.pose.pipeline import PoseExtractor, PoseOptions
    from services.render.character import analyse_character
    from services.render.check import bone_angle_errors_deg
    from services.render.encode import EncodeStats
    from services.render.layers import build_rig_model
    from services.render.renderer import RenderOptions, render_video
    from services.retarget.retarget import RetargetOptions, retarget

    data = pathlib.Path(args.data)
    video = data / "videos" / VIDEO
    if not video.is_file():
        return {"skipped": f"no real data under {data}"}
    quick = bool(getattr(args, "quick", False))
    seconds = float(getattr(args, "render_seconds", 0) or (3.0 if quick else 10.0))
    result: dict[str, Any] = {}
    info = validate_video(video)
    with PoseExtractor(PoseOptions(max_duration_s=seconds)) as ex:
        t0 = time.perf_counter()
        performer = ex.process_video(video)
        pose_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rig = analyse_character(data / "characters" / PHOTO_CHARACTERS[0], pose_extractor=ex)
        character_s = time.perf_counter() - t0
        illustration = analyse_character(data / "characters" / ILLUSTRATION, pose_extractor=ex)
    t0 = time.perf_counter()
    seq = retarget(performer, rig, RetargetOptions())
    retarget_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = build_rig_model(rig)
    model_s = time.perf_counter() - t0
    duration_s = len(seq.frames) / seq.fps
    result["video"] = {"name": VIDEO, "fps": round(info.fps, 3), "seconds": round(duration_s, 2),
                       "frames": len(seq.frames)}
    n = 60 if quick else 150
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)  # a shared node: figures move with the load
    for res in ("720p", "1080p"):
        fps, cpu_ms, w, h = _render_fps(rig, seq, res, n)
        result[f"render_only_{res}"] = {"fps": round(fps, 1), "cpu_ms_per_frame": round(cpu_ms, 1),
                                        "size": f"{w}x{h}", "frames": n}
        # The shader RGB->I420 route (used on GPUs; llvmpipe takes RGBA + swscale, see Rasterizer.prefers_i420).
        fps, cpu_ms, w, h = _render_fps(rig, seq, res, n // 2, i420=True)
        result[f"render_only_i420_{res}"] = {"fps": round(fps, 1), "cpu_ms_per_frame": round(cpu_ms, 1)}
        fps, cpu_ms, w, h = _render_fps(illustration, retarget(performer, illustration, RetargetOptions()), res, n)
        result[f"render_only_illustration_{res}"] = {"fps": round(fps, 1), "cpu_ms_per_frame": round(cpu_ms, 1),
                                                     "size": f"{w}x{h}", "character": ILLUSTRATION}
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        for res in ("720p", "1080p"):
            result[f"render_encode_ranges_{res}"] = _ranges(rig, seq, model, res, pathlib.Path(tmp))
        for res in ("720p", "1080p"):
            stats = EncodeStats()
            c0 = time.process_time()
            t0 = time.perf_counter()
            render_video(rig, seq, pathlib.Path(tmp) / f"out_{res}.mp4", RenderOptions(resolution=res),
                         audio_from=video if info.has_audio else None, stats=stats, model=model)
            wall = time.perf_counter() - t0
            cpu_ms = (time.process_time() - c0) / max(stats.frames, 1) * 1e3
            e2e = pose_s + character_s + retarget_s + model_s + wall
            result[f"end_to_end_{res}"] = {
                "rtf": round(e2e / duration_s, 3),
                "stage_s": {"decode_pose": round(pose_s, 2), "character": round(character_s, 2),
                            "retarget": round(retarget_s, 3), "rig_model": round(model_s, 2),
                            "render": round(stats.render_s, 2), "encode": round(stats.encode_s, 2),
                            "render_encode_wall": round(wall, 2)},
                "encode_overlap": round((stats.render_s + stats.encode_s) / max(wall, 1e-9), 2),
                "render_encode_fps": round(stats.frames / max(wall, 1e-9), 1),
                "render_encode_cpu_ms_per_frame": round(cpu_ms, 1),
            }
    errors = [e for f in seq.frames[:: max(1, len(seq.frames) // 20)] if f.present
              for e in bone_angle_errors_deg(model, f).values()]
    result["exact_rig_mean_deg"] = round(float(np.mean(errors)), 3) if errors else None
    pck: dict[str, Any] = {}
    n_pck = 8 if quick else 40
    with PoseExtractor(PoseOptions(hands=False, face=False, smoothing=False, max_duration_s=seconds)) as ex:
        for char in PHOTO_CHARACTERS[: 1 if quick else 2]:
            crig = analyse_character(data / "characters" / char, pose_extractor=ex)
            for vname in PCK_VIDEOS[: 1 if quick else 2]:
                perf = ex.process_video(data / "videos" / vname) if vname != VIDEO else performer
                ex.reset()
                cseq = retarget(perf, crig, RetargetOptions())
                idx = [int(i) for i in np.linspace(0, len(cseq.frames) - 1, n_pck)]
                pck[f"{pathlib.Path(char).stem[:24]}|{pathlib.Path(vname).stem[:24]}"] = _pck(crig, cseq, ex, idx)
    result["pck"] = pck
    if pck:
        result["pck_mean"] = round(float(np.mean([v["pck@0.1"] for v in pck.values()])), 3)
    return result
