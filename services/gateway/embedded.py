"""Embedded mode: the orchestrator with in-process stages over a local-directory store.

`motionctl animate` calls `run_embedded`, so the embedded output and a mesh job's output come from the
same orchestration (same frame ranges, same joins) and are byte-identical for the same inputs.
"""

from __future__ import annotations

import os
import pathlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from motion.settings import Settings
from services.gateway.orchestrator import (
    AnimateOptions,
    InProcessStages,
    Orchestrator,
    OrchestratorResult,
    ProgressFn,
)


@dataclass
class EmbeddedResult:
    output: pathlib.Path
    run: OrchestratorResult
    store: Any
    rig_key: str
    skeleton_key: str
    stage_s: dict[str, float] = field(default_factory=dict)

    def load_rig(self) -> Any:
        from motion.rig import CharacterRig

        return CharacterRig.load(self.store, self.rig_key)

    def load_skeleton(self) -> Any:
        from motion.skeleton import SkeletonSequence

        return SkeletonSequence.from_bytes(self.store.get_bytes(self.skeleton_key))

    def facts(self) -> tuple[int, int, float, int]:
        """(rig width px, rig height px, fps, frames) from the stored protos alone: no image decoding and no
        keypoint conversion (~0.15 s less than ``load_rig`` + ``load_skeleton`` for a 10 s clip)."""
        from motion.v1 import rig_pb2, skeleton_pb2

        rig = rig_pb2.CharacterRig()
        rig.ParseFromString(self.store.get_bytes(self.rig_key))
        seq = skeleton_pb2.SkeletonSequence()
        seq.ParseFromString(self.store.get_bytes(self.skeleton_key))
        return int(rig.width), int(rig.height), float(seq.fps), len(seq.frames)


def run_embedded(
    image: str | pathlib.Path,
    video: str | pathlib.Path,
    out: str | pathlib.Path,
    opts: AnimateOptions | None = None,
    *,
    joints: str | pathlib.Path | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    settings: Settings | None = None,
    model_dir: pathlib.Path | None = None,
) -> EmbeddedResult:
    """Animates `image` with the motion of `video` into `out`, all stages in this process.

    Inputs are copied into the local store (content-addressed), so a second character on the same
    reference reuses the cached skeleton, exactly as in the mesh.
    """
    from dataclasses import replace

    from motion.storage import open_store

    settings = settings or Settings.from_env()
    # Embedded mode always works on a local directory, even when MOTION_STORE_URL names S3.
    url = settings.store_url if settings.store_url.startswith("file://") else f"file://{settings.cache_dir / 'store'}"
    store = open_store(url, settings)
    opts = opts or AnimateOptions()
    image, video = pathlib.Path(image), pathlib.Path(video)
    image_ref = store.put_content_addressed(image.read_bytes(), "uploads/local", image.suffix.lower(), "")
    video_ref = store.put_content_addressed(video.read_bytes(), "uploads/local", video.suffix.lower(), "")
    if opts.background.startswith("image:"):
        # A background picture travels through the store like every other input.
        bpath = pathlib.Path(opts.background.split(":", 1)[1])
        bref = store.put_content_addressed(bpath.read_bytes(), "uploads/local", bpath.suffix.lower(), "")
        opts = replace(opts, background="image", background_image=bref.key)
    if joints is not None:
        jpath = pathlib.Path(joints)
        jref = store.put_content_addressed(jpath.read_bytes(), "uploads/local", jpath.suffix.lower(), "")
        opts = replace(opts, joints_override=jref.key)
    stage_s: dict[str, float] = {}
    marks: dict[str, float] = {}

    def report(stage: str, done: int, total: int, message: str) -> None:
        now = time.perf_counter()
        marks.setdefault(stage, now)
        stage_s[stage] = now - marks[stage]
        if progress is not None:
            progress(stage, done, total, message)

    # Two ranges render at once even on two cores: one range's encoder thread and its rasteriser do not keep
    # both cores busy alone (~1.5 cores), two do (~10 % less wall for the render stage, measured on 2 cores).
    workers = min(4, max(2, (os.cpu_count() or 2) // 2))
    stages = InProcessStages(store, model_dir=model_dir or settings.model_dir, workers=workers, render_threads=True)
    try:
        run = Orchestrator(stages, store).run(image_ref, video_ref, opts, progress=report, cancel=cancel,
                                              output_path=pathlib.Path(out))
    finally:
        stages.close()
    # The stages' own durations where they ran (the rig is built while pose runs); progress marks otherwise.
    stage_s.update(run.stage_s)
    return EmbeddedResult(output=pathlib.Path(out), run=run, store=store, rig_key=run.rig.key,
                          skeleton_key=run.retargeted.key, stage_s=stage_s)


def embedded_options(cli_opts: Any) -> AnimateOptions:
    """The orchestrator's options from `services.render.animate.AnimateOptions` (the CLI's)."""
    cfg = getattr(cli_opts, "cfg", None)
    return AnimateOptions(
        orientation=cli_opts.orientation, resolution=cli_opts.resolution, background=cli_opts.background,
        width=cli_opts.width, height=cli_opts.height, keep_original_sound=cli_opts.sound, loop=cli_opts.loop,
        prompt=cli_opts.prompt, negative_prompt=cli_opts.negative_prompt, cfg_scale=float(cfg or 0.0),
    )
