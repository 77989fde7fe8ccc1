"""Per-job quality report: how much of the reference had a performer, how well the rig followed, what came out.

Everything here is cheap by design (no pose re-detection): figures come from the skeletons the job already
made, a retarget re-run for the foot-skate figures (pure numpy), the exact rig check on a few sampled frames,
and the output file's container metadata plus one sha256 pass.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from motion.skeleton import SkeletonSequence

REPORT_FORMAT = "motion-control/quality-report"
REPORT_VERSION = 1


@dataclass
class SkeletonFacts:
    frames_total: int = 0
    frames_detected: int = 0  # a performer was found in the frame
    frames_interpolated: int = 0  # no performer: filled from the neighbours
    detected_fraction: float = 0.0
    mean_pose_score: float = 0.0  # over detected frames
    min_pose_score: float = 0.0


@dataclass
class OutputFacts:
    path: str = ""
    size_bytes: int = 0
    codec: str = ""
    width_px: int = 0
    height_px: int = 0
    fps: float = 0.0
    frames: int = 0
    duration_s: float = 0.0
    has_audio: bool = False
    sha256: str = ""


@dataclass
class QualityReport:
    skeleton: SkeletonFacts = field(default_factory=SkeletonFacts)
    output: OutputFacts | None = None
    foot_skate_before_px: float | None = None  # mean ankle px/frame while in contact, before pinning
    foot_skate_after_px: float | None = None
    foot_contact_frames: int | None = None
    rig_bone_angle_error_deg: dict[str, float] = field(default_factory=dict)  # mean/max over sampled frames
    rig_check_frames: int = 0
    trimmed_s: float = 0.0
    ignored_options: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stage_s: dict[str, float] = field(default_factory=dict)
    extra_outputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {"format": REPORT_FORMAT, "version": REPORT_VERSION, **_rounded(d)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        from motion.storage.atomic import atomic_write_bytes

        p = pathlib.Path(path)
        atomic_write_bytes(p, self.to_json().encode())
        return p


def _rounded(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return v


def skeleton_facts(performer: SkeletonSequence) -> SkeletonFacts:
    """Detection coverage and pose scores of the performer's (video-space) skeleton."""
    n = len(performer.frames)
    scores = np.array([f.score for f in performer.frames if f.present], dtype=np.float64)
    detected = int(scores.size)
    return SkeletonFacts(frames_total=n, frames_detected=detected, frames_interpolated=n - detected,
                         detected_fraction=detected / n if n else 0.0,
                         mean_pose_score=float(scores.mean()) if detected else 0.0,
                         min_pose_score=float(scores.min()) if detected else 0.0)


def sha256_file(path: str | pathlib.Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def output_facts(path: str | pathlib.Path) -> OutputFacts:
    """Container facts of an encoded output (frame count from the stream header when the muxer wrote one)."""
    import av

    p = pathlib.Path(path)
    with av.open(str(p)) as c:
        v = c.streams.video[0]
        fps = float(v.average_rate) if v.average_rate else 0.0
        frames = int(v.frames)
        if frames <= 0:  # WebM carries no frame count: count packets (no decoding)
            frames = sum(1 for pkt in c.demux(v) if pkt.size)
        duration = float(c.duration) / 1e6 if c.duration else (frames / fps if fps else 0.0)
        return OutputFacts(path=str(p), size_bytes=p.stat().st_size, codec=v.codec_context.name,
                           width_px=v.codec_context.width, height_px=v.codec_context.height, fps=fps, frames=frames,
                           duration_s=duration, has_audio=len(c.streams.audio) > 0, sha256=sha256_file(p))


def rig_check(rig: Any, seq: SkeletonSequence, n_frames: int = 6) -> tuple[dict[str, float], int]:
    """Mean and max bone angle error (degrees) of the deformed mesh vs the target bones on sampled frames."""
    from services.render.check import bone_angle_errors_deg
    from services.render.layers import build_rig_model

    present = [i for i, f in enumerate(seq.frames) if f.present]
    if not present:
        return {}, 0
    picks = sorted({present[int(round(k))] for k in np.linspace(0, len(present) - 1, min(n_frames, len(present)))})
    model = build_rig_model(rig)
    errors = [e for i in picks for e in bone_angle_errors_deg(model, seq.frames[i]).values()]
    if not errors:
        return {}, len(picks)
    return {"mean": float(np.mean(errors)), "max": float(np.max(errors))}, len(picks)


def build_report(*, performer: SkeletonSequence | None, rig: Any, retargeted: SkeletonSequence | None,
                 output: str | pathlib.Path | None, orientation: str = "video", loop: bool = False,
                 pin_feet: bool = True, trimmed_s: float = 0.0, ignored_options: list[str] | None = None,
                 warnings: list[str] | None = None, stage_s: dict[str, float] | None = None,
                 extra_outputs: dict[str, str] | None = None, rig_check_frames: int = 6) -> QualityReport:
    """The report from what a job already made (the embedded CLI and the gateway runner both call this)."""
    report = QualityReport(trimmed_s=float(trimmed_s), ignored_options=list(ignored_options or []),
                           warnings=list(warnings or []), stage_s=dict(stage_s or {}),
                           extra_outputs=dict(extra_outputs or {}))
    if performer is not None:
        report.skeleton = skeleton_facts(performer)
        if rig is not None:
            from services.retarget.retarget import RetargetOptions, retarget_with_report

            # Retargeting is deterministic numpy: a re-run gives the foot-skate figures of the job's retarget.
            rt = retarget_with_report(performer, rig, RetargetOptions(orientation=orientation, loop=loop,
                                                                      pin_feet=pin_feet))
            report.foot_skate_before_px = float(rt.foot_skate_before_px)
            report.foot_skate_after_px = float(rt.foot_skate_after_px)
            report.foot_contact_frames = int(rt.contact_frames)
    else:
        report.warnings.append("quality: the performer skeleton was not found; detection figures are missing")
    if rig is not None and retargeted is not None and rig_check_frames > 0:
        report.rig_bone_angle_error_deg, report.rig_check_frames = rig_check(rig, retargeted, rig_check_frames)
    if output is not None and pathlib.Path(output).exists():
        report.output = output_facts(output)
    return report
