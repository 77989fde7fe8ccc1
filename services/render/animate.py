"""The embedded pipeline in one process: validate -> pose -> character -> retarget -> render + encode.

Stage boundaries are kept clean (each stage's input and output is a documented type) so the gateway's
orchestrator can run the same stages over gRPC.
"""

from __future__ import annotations

import math
import pathlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from motion.errors import InputError
from motion.rig import CharacterRig
from motion.skeleton import SkeletonSequence
from services.render.composite import RESOLUTION_SHORT_SIDE_PX, Background, BackgroundMode, frame_geometry
from services.render.layers import RigModel, build_rig_model
from services.render.renderer import Renderer, RenderOptions

ProgressFn = Callable[[str, int, int], None]

MAX_PROMPT_CHARS = 2500
CFG_RANGE = (1.0, 30.0)


@dataclass
class AnimateOptions:
    resolution: str = "720p"
    orientation: str = "video"  # "video" | "image"
    background: str = "keep"
    sound: bool = True
    loop: bool = False
    joints: pathlib.Path | None = None  # manual joints file for the character
    export_skeleton: pathlib.Path | None = None  # retargeted skeleton: BVH when the name ends in .bvh, else JSON
    report: pathlib.Path | None = None  # per-job quality report JSON (motion.quality)
    preview: pathlib.Path | None = None  # small side-by-side MP4 (reference | render)
    contact_sheet: pathlib.Path | None = None  # PNG grid of rendered frames
    contact_sheet_frames: int = 12
    width: int = 0
    height: int = 0
    # Accepted for API parity with generative renderers; the deterministic renderer ignores them.
    prompt: str = ""
    negative_prompt: str = ""
    cfg: float | None = None
    model_dir: pathlib.Path | None = None

    def ignored(self) -> list[str]:
        for name in ("prompt", "negative_prompt"):
            if len(getattr(self, name)) > MAX_PROMPT_CHARS:
                raise InputError(f"options.{name}", f"{name} is too long", limit=MAX_PROMPT_CHARS,
                                 actual=len(getattr(self, name)))
        if self.cfg is not None and not CFG_RANGE[0] <= self.cfg <= CFG_RANGE[1]:
            raise InputError("options.cfg", "cfg is out of range", limit=list(CFG_RANGE), actual=self.cfg)
        return [n for n in ("prompt", "negative_prompt") if getattr(self, n)] + (
            ["cfg"] if self.cfg is not None else [])


@dataclass
class AnimateResult:
    output: pathlib.Path
    width_px: int
    height_px: int
    fps: float
    frames: int
    duration_s: float
    stage_s: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    real_time_factor: float = 0.0  # wall time / output duration
    warnings: list[str] = field(default_factory=list)
    ignored_options: list[str] = field(default_factory=list)
    extra_outputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "width_px": self.width_px, "height_px": self.height_px,
                "fps": round(self.fps, 3), "frames": self.frames, "duration_s": round(self.duration_s, 3),
                "stage_s": {k: round(v, 3) for k, v in self.stage_s.items()}, "wall_s": round(self.wall_s, 3),
                "real_time_factor": round(self.real_time_factor, 3), "warnings": self.warnings,
                "ignored_options": self.ignored_options, **self.extra_outputs}


def animate(image: str | pathlib.Path, video: str | pathlib.Path, out: str | pathlib.Path,
            options: AnimateOptions | None = None, progress: ProgressFn | None = None) -> AnimateResult:
    """Makes the character in ``image`` perform the motion of ``video``; writes ``out``."""
    from motion.media import validate_image, validate_video

    opts = options or AnimateOptions()
    ignored = opts.ignored()
    # Reject bad render options before spending time on pose extraction.
    Background.parse(opts.background)
    if opts.resolution not in RESOLUTION_SHORT_SIDE_PX:
        raise InputError("render.resolution", "unknown resolution", limit="720p|1080p", actual=opts.resolution)
    if opts.orientation not in ("video", "image"):
        raise InputError("retarget.orientation", "orientation must be 'video' or 'image'",
                         limit="video|image", actual=opts.orientation)
    if Background.parse(opts.background).mode == BackgroundMode.TRANSPARENT and pathlib.Path(out).suffix.lower() \
            not in (".webm", ".mov"):
        raise InputError("output.format", "transparent output is VP9 WebM (.webm) or ProRes (.mov)",
                         limit=".webm|.mov", actual=pathlib.Path(out).suffix)
    out = pathlib.Path(out)
    stage: dict[str, float] = {}
    start = time.perf_counter()

    def timed(name: str) -> _Timer:
        return _Timer(stage, name)

    with timed("validate"):
        validate_image(image)
        validate_video(video)
    # Pose, rig, retarget and render run through the gateway's orchestrator with in-process stages, so this
    # file is identical to a mesh job's output for the same inputs (same frame ranges, same joins).
    from services.gateway.embedded import embedded_options, run_embedded

    def stage_progress(name: str, done: int, total: int, _message: str) -> None:
        if progress is not None:
            progress(name, done, total)

    eopts = embedded_options(opts)
    run = run_embedded(image, video, out, eopts, joints=opts.joints, progress=stage_progress,
                       model_dir=opts.model_dir)
    stage.update(run.stage_s)
    wants = (opts.export_skeleton, opts.contact_sheet, opts.preview, opts.report)
    if any(w is not None for w in wants):
        rig, seq = run.load_rig(), run.load_skeleton()
        rig_w, rig_h, fps, n_frames = rig.width, rig.height, float(seq.fps), len(seq.frames)
    else:
        rig_w, rig_h, fps, n_frames = run.facts()  # nothing else needs the decoded rig and skeleton
    warnings = list(run.run.warnings)
    extra: dict[str, str] = {}
    if opts.export_skeleton is not None:
        with timed("export_skeleton"):
            if opts.export_skeleton.suffix.lower() == ".bvh":
                from motion.bvh import export_bvh

                export_bvh(seq, opts.export_skeleton)
            else:
                seq.save_json(opts.export_skeleton)
        extra["skeleton"] = str(opts.export_skeleton)
    ropts = RenderOptions(resolution=opts.resolution, background=opts.background, width=opts.width,
                          height=opts.height)
    model = build_rig_model(rig) if opts.contact_sheet is not None or opts.preview is not None else None
    if opts.contact_sheet is not None:
        with timed("contact_sheet"):
            write_contact_sheet(rig, seq, opts.contact_sheet, ropts, model, opts.contact_sheet_frames)
        extra["contact_sheet"] = str(opts.contact_sheet)
    if opts.preview is not None:
        with timed("preview"):
            write_preview(rig, seq, video, opts.preview, ropts, model)
        extra["preview"] = str(opts.preview)
    if opts.report is not None:
        with timed("report"):
            write_quality_report(opts.report, run, video, eopts, rig, seq, stage, ignored, warnings,
                                 {**extra, "output": str(out)})
        extra["report"] = str(opts.report)
    wall = time.perf_counter() - start
    duration = n_frames / fps if fps > 0 else 0.0
    g = frame_geometry(rig_w, rig_h, ropts.resolution, ropts.width, ropts.height)
    w, h = g.width_px, g.height_px
    return AnimateResult(out, w, h, fps, n_frames, duration, stage, wall,
                         wall / duration if duration > 0 else math.inf, warnings, ignored, extra)


def write_quality_report(path: pathlib.Path, run: Any, video: str | pathlib.Path, eopts: Any, rig: CharacterRig,
                         seq: SkeletonSequence, stage_s: dict[str, float], ignored: list[str], warnings: list[str],
                         extra: dict[str, str]) -> pathlib.Path:
    """The per-job quality report (``motion.quality``) from what the run already made; no re-detection."""
    from motion.quality import build_report, sha256_file
    from services.gateway.orchestrator import Orchestrator

    # The performer's skeleton is in the run's store under the orchestrator's cache key for this video.
    index = Orchestrator(stages=None, store=run.store)  # type: ignore[arg-type]
    ref = index._cache_get(index.skeleton_cache_key(sha256_file(video), eopts))
    performer = SkeletonSequence.from_bytes(run.store.get_bytes(ref)) if ref is not None else None
    report = build_report(performer=performer, rig=rig, retargeted=seq, output=extra.get("output"),
                          orientation=eopts.orientation, loop=eopts.loop, pin_feet=eopts.pin_feet,
                          trimmed_s=float(run.run.trimmed_s), ignored_options=ignored, warnings=warnings,
                          stage_s=stage_s, extra_outputs=extra)
    return report.save(path)


class _Timer:
    def __init__(self, stage: dict[str, float], name: str) -> None:
        self.stage, self.name = stage, name

    def __enter__(self) -> _Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stage[self.name] = self.stage.get(self.name, 0.0) + time.perf_counter() - self.t0


def _pick_frames(n_total: int, n: int) -> list[int]:
    if n_total <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, n_total - 1, min(n, n_total))})


def contact_sheet(frames: list[np.ndarray], columns: int = 4, cell_h_px: int = 360,
                  labels: list[str] | None = None) -> np.ndarray:
    """A grid (RGB) of frames scaled to ``cell_h_px`` high; transparent pixels shown on a checkerboard."""
    if not frames:
        raise InputError("contact_sheet.frames", "no frames for the contact sheet", limit=">= 1", actual=0)
    h0, w0 = frames[0].shape[:2]
    cw = max(2, round(w0 * cell_h_px / h0))
    cells = []
    for i, f in enumerate(frames):
        img: np.ndarray = f
        if img.shape[2] == 4:
            yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
            checker = np.where(((yy // 16 + xx // 16) % 2)[..., None] == 0, 200, 150).astype(np.float32)
            a = img[..., 3:4].astype(np.float32) / 255.0
            img = (img[..., :3] * a + checker * (1 - a)).astype(np.uint8)
        cell = cv2.resize(np.ascontiguousarray(img[..., :3]), (cw, cell_h_px), interpolation=cv2.INTER_AREA)
        if labels is not None:
            # Dark text on a light halo. The halo is the same thin text drawn at one-pixel offsets: OpenCV
            # advances each glyph by more for thicker strokes, so a thick halo drifted off the thin text.
            for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
                cv2.putText(cell, labels[i], (6 + dx, 20 + dy), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1,
                            cv2.LINE_AA)
            cv2.putText(cell, labels[i], (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        cells.append(cell)
    rows = math.ceil(len(cells) / columns)
    sheet = np.full((rows * cell_h_px, columns * cw, 3), 32, np.uint8)
    for i, c in enumerate(cells):
        r, k = divmod(i, columns)
        sheet[r * cell_h_px:(r + 1) * cell_h_px, k * cw:(k + 1) * cw] = c
    return sheet


def write_contact_sheet(rig: CharacterRig, seq: SkeletonSequence, path: str | pathlib.Path,
                        opts: RenderOptions, model: RigModel | None = None, n_frames: int = 12) -> pathlib.Path:
    idx = _pick_frames(len(seq.frames), n_frames)
    with Renderer(rig, opts, model=model) as r:
        frames = [r.render_frame(seq, i) for i in idx]
    sheet = contact_sheet(frames, labels=[f"#{i} {i / seq.fps:.1f}s" for i in idx])
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def write_preview(rig: CharacterRig, seq: SkeletonSequence, video: str | pathlib.Path, path: str | pathlib.Path,
                  opts: RenderOptions, model: RigModel | None = None, height_px: int = 360) -> pathlib.Path:
    """A small side-by-side MP4: the reference video (left) and the render (right), same timing."""
    from motion.media import VideoWriter, iter_frames

    with Renderer(rig, opts, model=model) as r:
        rw = _even(r.geometry.width_px * height_px / r.geometry.height_px)
        ref_iter = iter_frames(video, fps=seq.fps)
        first = True
        writer: VideoWriter | None = None
        try:
            for i in range(len(seq.frames)):
                ref = next(ref_iter, None)
                rendered = r.render_frame(seq, i)[..., :3]
                right = cv2.resize(np.ascontiguousarray(rendered), (rw, height_px), interpolation=cv2.INTER_AREA)
                left: np.ndarray
                if ref is None:
                    left = np.zeros((height_px, height_px, 3), np.uint8)
                else:
                    lw = _even(ref.rgb.shape[1] * height_px / ref.rgb.shape[0])
                    left = cv2.resize(ref.rgb, (lw, height_px), interpolation=cv2.INTER_AREA)
                row = np.concatenate([left, right], axis=1)
                if first:
                    writer = VideoWriter(path, row.shape[1], height_px, seq.fps)
                    writer.open()
                    first = False
                if writer is not None and row.shape[1] == writer.width:
                    writer.write(row)
            if writer is not None:
                writer.close()
                writer = None
        finally:
            if writer is not None:
                writer.abort()
    return pathlib.Path(path)


def _even(v: float) -> int:
    return max(2, int(round(v / 2.0)) * 2)
