"""Writes the sample kit: a character image with its joints, and a performer video with ground truth.

Everything is a pure function of the seed and the options, so the same call writes the same bytes.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from motion.errors import InputError
from motion.samples.camera import PinholeCamera
from motion.samples.draw import Palette, render_background, render_frame
from motion.samples.encode import SampleVideoWriter
from motion.samples.mannequin import (
    LANDMARK_DEFINITIONS,
    BodyDimensions,
    DanceParams,
    body_yaw_deg,
    dance_pose,
    standing_pose,
)
from motion.skeleton import N_BODY, BodyLandmark, landmark_name
from motion.storage.atomic import atomic_write_bytes

B = BodyLandmark
GROUND_TRUTH_FORMAT = "motion-control/sample-ground-truth"
JOINTS_FORMAT = "motion-control/character-joints"
LANDMARK_NAMES: tuple[str, ...] = tuple(landmark_name(i) for i in range(N_BODY))

# Bounds the sample writer accepts (the product's video limits are checked by motion.media).
MIN_SIDE_PX, MAX_SIDE_PX = 64, 3850
MAX_DURATION_S = 30.0
MAX_FPS = 60.0
AUDIO_RATE_HZ = 44100


@dataclass(frozen=True)
class SampleKit:
    """Paths of a written kit and what it was written with."""

    outdir: pathlib.Path
    character_png: pathlib.Path
    character_joints: pathlib.Path
    performer_mp4: pathlib.Path
    performer_joints: pathlib.Path
    seed: int
    duration_s: float
    fps: float
    width: int
    height: int
    frame_count: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class PerformerOptions:
    seed: int = 0
    duration_s: float = 8.0
    fps: float = 30.0
    width: int = 720
    height: int = 1280
    audio: bool = True


@dataclass
class GroundTruth:
    """The performer's ground truth, loaded from ``performer.joints.json``."""

    fps: float
    width: int
    height: int
    points_px: np.ndarray  # (T, 33, 2) pixels
    visible: np.ndarray  # (T, 33) bool
    camera_m: np.ndarray  # (T, 33, 3) camera space metres (x right, y down, z forward)
    body_yaw_deg: np.ndarray  # (T,)
    foot_contact: np.ndarray  # (T, 2) bool: left, right
    meta: dict[str, Any]

    def __len__(self) -> int:
        return int(self.points_px.shape[0])


def _check_options(duration_s: float, fps: float, width: int, height: int) -> None:
    if not (0.0 < duration_s <= MAX_DURATION_S):
        raise InputError("samples.duration_s", "duration must be in (0, 30] s", limit=f"(0, {MAX_DURATION_S}]",
                         actual=duration_s)
    if not (0.0 < fps <= MAX_FPS):
        raise InputError("samples.fps", "fps must be in (0, 60]", limit=f"(0, {MAX_FPS}]", actual=fps)
    for side in (width, height):
        if not (MIN_SIDE_PX <= side <= MAX_SIDE_PX) or side % 2:
            raise InputError("samples.size_px", "frame sides must be even and within 64..3850 px",
                             limit=f"{MIN_SIDE_PX}..{MAX_SIDE_PX}, even", actual=f"{width}x{height}")


def _frame_count(duration_s: float, fps: float) -> int:
    return max(1, int(round(duration_s * fps)))


def beat_audio(duration_s: float, seed: int) -> np.ndarray:
    """A 120 BPM beat (kick, hat, a soft two-note bass), mono float32 in [-1, 1], from the seed."""
    n = int(round(duration_s * AUDIO_RATE_HZ))
    t = np.arange(n, dtype=np.float64) / AUDIO_RATE_HZ
    rng = np.random.default_rng(seed + 104729)
    beat_s = 0.5
    phase = np.mod(t, beat_s)
    # Kick: a falling sine with a fast decay on every beat.
    kick = np.sin(2 * np.pi * (55.0 * phase + 60.0 * (1 - np.exp(-phase * 30.0)) / 30.0)) * np.exp(-phase * 9.0)
    hat_phase = np.mod(t + beat_s / 2, beat_s)
    hat = rng.standard_normal(n) * np.exp(-hat_phase * 60.0) * 0.25
    root = 110.0 * (1.5 if rng.random() < 0.5 else 1.25)
    note = np.where(np.mod(t, 4 * beat_s) < 2 * beat_s, 110.0, root)
    bass = 0.18 * np.sin(2 * np.pi * note * t)
    fade = np.clip(np.minimum(t, duration_s - t) / 0.05, 0.0, 1.0)
    # Quantised to 16 bits so the samples are exact whatever the platform's float maths.
    pcm = np.round(np.clip((0.6 * kick + hat + bass) * fade * 0.7, -1.0, 1.0) * 32767.0)
    return (pcm / 32768.0).astype(np.float32)


def _round_list(a: np.ndarray, digits: int) -> list[Any]:
    return np.round(np.asarray(a, np.float64), digits).tolist()  # type: ignore[no-any-return]


def write_performer_video(path: str | pathlib.Path, ground_truth_path: str | pathlib.Path | None = None,
                          options: PerformerOptions | None = None) -> int:
    """Renders the dancing mannequin to ``path`` (H.264 MP4) and its ground truth JSON; returns frames."""
    opts = options or PerformerOptions()
    _check_options(opts.duration_s, opts.fps, opts.width, opts.height)
    path = pathlib.Path(path)
    params = DanceParams.from_seed(opts.seed, opts.duration_s)
    cam = PinholeCamera.framing(opts.width, opts.height)
    pal = Palette.from_seed(opts.seed)
    background = render_background(cam, pal)
    n = _frame_count(opts.duration_s, opts.fps)
    frames: list[dict[str, Any]] = []
    audio = beat_audio(n / opts.fps, opts.seed) if opts.audio else None
    with SampleVideoWriter(path, opts.width, opts.height, opts.fps, audio=audio,
                           audio_rate_hz=AUDIO_RATE_HZ) as writer:
        for i in range(n):
            t = i / opts.fps
            pose = dance_pose(params, t)
            frame = render_frame(pose, cam, pal, background)
            writer.write(frame.rgb)
            frames.append(_gt_frame(i, t, pose, frame.points_px, frame.visible, cam, params))
    if ground_truth_path is not None:
        doc = _gt_document(opts, params, cam, frames)
        atomic_write_bytes(pathlib.Path(ground_truth_path), _json_bytes(doc))
    return n


def _gt_frame(index: int, t: float, pose: np.ndarray, points_px: np.ndarray, visible: np.ndarray,
              cam: PinholeCamera, params: DanceParams) -> dict[str, Any]:
    cam_m = cam.to_camera(pose)
    contact_h = params.dims.ankle_height_m + 0.005
    return {
        "index": index,
        "timestamp_s": round(t, 6),
        "body_yaw_deg": round(body_yaw_deg(params, t), 3),
        "left_foot_contact": bool(pose[B.LEFT_ANKLE, 1] <= contact_h),
        "right_foot_contact": bool(pose[B.RIGHT_ANKLE, 1] <= contact_h),
        "landmarks_px": [[round(float(x), 3), round(float(y), 3), int(v)]
                         for (x, y), v in zip(points_px, visible, strict=True)],
        "landmarks_camera_m": _round_list(cam_m, 5),
    }


def _gt_document(opts: PerformerOptions, params: DanceParams, cam: PinholeCamera,
                 frames: list[dict[str, Any]]) -> dict[str, Any]:
    dims = params.dims
    return {
        "format": GROUND_TRUTH_FORMAT,
        "version": 1,
        "seed": opts.seed,
        "fps": opts.fps,
        "width": opts.width,
        "height": opts.height,
        "duration_s": round(len(frames) / opts.fps, 6),
        "frame_count": len(frames),
        "camera": cam.to_dict(),
        "coordinates": {
            "landmarks_px": "[x, y, visible]: pixels of the video frame (origin top-left, x right, y down); "
                            "visible is 1 when the point is inside the frame and not hidden by another body part",
            "landmarks_camera_m": "[x, y, z] metres in camera space (x right, y down, z forward from the camera); "
                                  "landmarks_px is their pinhole projection with camera.focal_px, cx_px, cy_px",
            "sides": "left/right are the performer's anatomical sides (BlazePose semantics)",
            "body_yaw_deg": "pelvis yaw; 0 = facing the camera, positive turns the face towards the image right",
        },
        "landmark_names": list(LANDMARK_NAMES),
        "landmark_definitions": {name: LANDMARK_DEFINITIONS[name] for name in LANDMARK_NAMES},
        "bone_lengths_m": {f"{landmark_name(a)}-{landmark_name(b)}": round(length, 5)
                           for (a, b), length in dims.bone_lengths.items()},
        "dance": {
            "turn_start_s": round(params.turn_start_s, 4), "turn_duration_s": round(params.turn_duration_s, 4),
            "turn_direction": params.turn_direction, "sweep_amplitude_deg": params.sweep_amplitude_deg,
            "step_period_s": round(params.step_period_s, 4), "arm_keys": list(params.arm_keys),
        },
        "frames": frames,
    }


def _json_bytes(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, separators=(",", ":"), sort_keys=False) + "\n").encode()


def load_ground_truth(path: str | pathlib.Path) -> GroundTruth:
    doc = json.loads(pathlib.Path(path).read_text())
    if doc.get("format") != GROUND_TRUTH_FORMAT:
        raise InputError("samples.ground_truth_format", "not a sample ground-truth file",
                         limit=GROUND_TRUTH_FORMAT, actual=doc.get("format"))
    frames = doc["frames"]
    px = np.array([f["landmarks_px"] for f in frames], np.float64).reshape(len(frames), N_BODY, 3)
    return GroundTruth(
        fps=float(doc["fps"]), width=int(doc["width"]), height=int(doc["height"]),
        points_px=px[..., :2], visible=px[..., 2] > 0.5,
        camera_m=np.array([f["landmarks_camera_m"] for f in frames], np.float64).reshape(len(frames), N_BODY, 3),
        body_yaw_deg=np.array([f["body_yaw_deg"] for f in frames], np.float64),
        foot_contact=np.array([[f["left_foot_contact"], f["right_foot_contact"]] for f in frames], bool),
        meta={k: v for k, v in doc.items() if k != "frames"},
    )


def character_figure(width: int = 600, height: int = 900, seed: int = 0) -> tuple[np.ndarray, dict[str, list[float]]]:
    """The cartoon character: (H, W, 4) RGBA on transparency, and its 33 joints in pixels by name."""
    shape_rng = np.random.default_rng(seed + 271828)
    dims = BodyDimensions(head_scale=float(shape_rng.uniform(1.2, 1.4)))
    pose = standing_pose(dims, arm_abduction_deg=float(shape_rng.uniform(18.0, 28.0)),
                         stance_half_width_m=float(shape_rng.uniform(0.15, 0.2)))
    # A far camera flattens perspective (a drawing, not a photo); the figure fills ~88% of the height.
    top_m = float(pose[:, 1].max()) + 0.16 * dims.head_scale
    cam = PinholeCamera.framing(width, height, visible_width_m=1.2, visible_height_m=top_m / 0.9,
                                height_m=top_m / 2, distance_m=12.0)
    base = Palette.from_seed(seed + 1)
    rng = np.random.default_rng(seed + 31337)
    stripes = tuple(int(c) for c in rng.integers(200, 256, 3))
    pal = Palette(skin=base.skin, hair=base.hair, shirt=base.shirt, pants=base.pants, shoes=(200, 60, 50),
                  lips=base.lips, iris=(40, 90, 160), shirt_stripes=(stripes[0], stripes[1], stripes[2]),
                  outline=(30, 25, 30), outline_px=max(2, width // 240))
    frame = render_frame(pose, cam, pal, background=None, head_scale=dims.head_scale, shadows=False)
    alpha = frame.alpha
    # The canvas is premultiplied over black; undo that so edge pixels keep their colour.
    a = np.maximum(alpha.astype(np.float32) / 255.0, 1e-6)[..., None]
    rgb = np.where(alpha[..., None] > 0, np.clip(frame.rgb.astype(np.float32) / a, 0, 255), 0).astype(np.uint8)
    rgba = np.dstack([rgb, alpha])
    joints = {name: [round(float(x), 2), round(float(y), 2)] for name, (x, y) in zip(LANDMARK_NAMES, frame.points_px,
                                                                                      strict=True)}
    return rgba, joints


def write_character(png_path: str | pathlib.Path, joints_path: str | pathlib.Path | None = None, seed: int = 0,
                    width: int = 600, height: int = 900) -> None:
    """Writes ``character.png`` (RGBA) and, when asked, ``character.joints.json``."""
    rgba, joints = character_figure(width, height, seed)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    atomic_write_bytes(pathlib.Path(png_path), buf.tobytes())
    if joints_path is not None:
        doc = {"format": JOINTS_FORMAT, "version": 1, "width": width, "height": height, "joints": joints}
        atomic_write_bytes(pathlib.Path(joints_path), (json.dumps(doc, indent=1) + "\n").encode())


def write_empty_video(path: str | pathlib.Path, duration_s: float = 4.0, fps: float = 30.0,
                      size: tuple[int, int] = (640, 480), seed: int = 0) -> int:
    """The sample room with nobody in it (for `pose.no_person`); a light moves so frames differ."""
    width, height = size
    _check_options(duration_s, fps, width, height)
    cam = PinholeCamera.framing(width, height)
    background = render_background(cam, Palette.from_seed(seed)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    n = _frame_count(duration_s, fps)
    with SampleVideoWriter(path, width, height, fps) as writer:
        for i in range(n):
            cx = width * (0.5 + 0.3 * math.sin(2 * math.pi * i / max(n, 1)))
            glow = 1.0 + 0.12 * np.exp(-((xx - cx) ** 2 + (yy - height * 0.3) ** 2) / (2 * (0.2 * width) ** 2))
            writer.write(np.clip(background * glow[..., None], 0, 255).astype(np.uint8))
    return n


def write_samples(outdir: str | pathlib.Path, seed: int = 0, duration_s: float = 8.0, fps: float = 30.0,
                  size: tuple[int, int] = (720, 1280), audio: bool = True) -> SampleKit:
    """Writes character.png, character.joints.json, performer.mp4 and performer.joints.json."""
    width, height = size
    _check_options(duration_s, fps, width, height)
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    kit = SampleKit(
        outdir=out, character_png=out / "character.png", character_joints=out / "character.joints.json",
        performer_mp4=out / "performer.mp4", performer_joints=out / "performer.joints.json", seed=seed,
        duration_s=duration_s, fps=fps, width=width, height=height, frame_count=_frame_count(duration_s, fps),
    )
    write_character(kit.character_png, kit.character_joints, seed=seed)
    write_performer_video(kit.performer_mp4, kit.performer_joints,
                          PerformerOptions(seed=seed, duration_s=duration_s, fps=fps, width=width, height=height,
                                           audio=audio))
    for p in (kit.character_png, kit.character_joints, kit.performer_mp4, kit.performer_joints):
        # Temp-file writes create 0600 files; sample media is meant to be shared.
        p.chmod(0o644)
    return kit


def performer_pose(seed: int, t: float, duration_s: float = 8.0) -> np.ndarray:
    """The performer's 33 landmarks (world metres) at time ``t`` of the clip written from ``seed``."""
    return dance_pose(DanceParams.from_seed(seed, duration_s), t)


__all__ = ["GroundTruth", "PerformerOptions", "SampleKit", "character_figure", "load_ground_truth",
           "performer_pose", "write_character", "write_empty_video", "write_performer_video", "write_samples"]
