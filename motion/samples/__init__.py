"""Sample kit: a procedurally drawn performer video and character, with ground truth.

`write_samples(outdir, seed=0, duration_s=8.0, fps=30)` writes character.png (+ joints) and
performer.mp4 (+ per-frame ground truth); `render_performer(pose3d, size)` draws one frame.
"""

from motion.samples.camera import PinholeCamera
from motion.samples.draw import Palette, RenderedFrame, render_background, render_frame, render_performer
from motion.samples.kit import (
    GroundTruth,
    PerformerOptions,
    SampleKit,
    character_figure,
    load_ground_truth,
    performer_pose,
    write_character,
    write_empty_video,
    write_performer_video,
    write_samples,
)
from motion.samples.mannequin import (
    LANDMARK_DEFINITIONS,
    BodyDimensions,
    DanceParams,
    dance_pose,
    standing_pose,
)

__all__ = [
    "LANDMARK_DEFINITIONS",
    "BodyDimensions",
    "DanceParams",
    "GroundTruth",
    "Palette",
    "PerformerOptions",
    "PinholeCamera",
    "RenderedFrame",
    "SampleKit",
    "character_figure",
    "dance_pose",
    "load_ground_truth",
    "performer_pose",
    "render_background",
    "render_frame",
    "render_performer",
    "standing_pose",
    "write_character",
    "write_empty_video",
    "write_performer_video",
    "write_samples",
]
