"""Character analysis: image (+ optional joints file) -> ``CharacterRig``."""

from __future__ import annotations

import hashlib
import json
import pathlib
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from motion.errors import FailedPreconditionError, InputError, NoPersonError
from motion.rig import CharacterRig, build_bones
from services.render.character.joints import (
    CORE_JOINTS,
    add_low_visibility_legs,
    check_joints_on_mask,
    complete_joints,
    estimate_facing,
    joints_from_frame,
    load_joints_file,
    unsure_ankles,
)
from services.render.character.mask import (
    MaskOptions,
    MaskResult,
    MaskSource,
    SelfieSegmenter,
    clean_texture,
    compute_mask,
    fill_background,
    local_threshold_mask,
    refine_photo_mask,
    skeleton_envelope,
)
from services.render.outline import outline_threshold

ANALYSIS_VERSION = 3


@dataclass
class CharacterOptions:
    mask: MaskOptions | None = None
    # A joint may sit this far off the mask (fraction of the character's height; at least 4 px): detector
    # joints on thin limbs and hand-placed joints on stick figures land near, not always on, the outline.
    joint_tolerance_fraction: float = 0.04
    min_joint_visibility: float = 0.5

    def digest(self) -> str:
        doc = {"v": ANALYSIS_VERSION, "mask": asdict(self.mask or MaskOptions()),
               "tol": self.joint_tolerance_fraction, "vis": self.min_joint_visibility}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _read_image(path: pathlib.Path) -> np.ndarray:
    try:
        from motion.media.image import read_image
    except ImportError:  # pragma: no cover - the media package is part of this repo
        read_image = None  # type: ignore[assignment]
    if read_image is not None:
        return np.asarray(read_image(path))
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError("image.corrupt", f"cannot decode {path.name}", actual=str(path))
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _detect_joints(rgb: np.ndarray, pose_extractor: Any, min_visibility: float) -> tuple[dict[str, Any], Any]:
    """Runs the pose pipeline in static-image mode; returns (joints, frame)."""
    own = None
    if pose_extractor is None:
        try:
            from services.pose.pipeline import PoseExtractor, PoseOptions
        except ImportError as exc:
            raise FailedPreconditionError(
                "the pose pipeline is not available to find the character's joints; give a joints file "
                "(--joints)") from exc
        own = PoseExtractor(PoseOptions(hands=True, face=True, smoothing=False))
        pose_extractor = own.__enter__()
    try:
        frame = pose_extractor.process_image(rgb)
    finally:
        if own is not None:
            own.__exit__(None, None, None)
    h, w = rgb.shape[:2]
    return joints_from_frame(frame, w, h, min_visibility), frame


def _height_px(mask: np.ndarray) -> float:
    ys = np.nonzero(mask.any(axis=1))[0]
    return float(ys[-1] - ys[0] + 1) if len(ys) else 0.0


def analyse_character(image_path: str | pathlib.Path, joints_override: str | pathlib.Path | None = None,
                      pose_extractor: Any = None, options: CharacterOptions | None = None,
                      segmenter: SelfieSegmenter | None = None) -> CharacterRig:
    """Mask, joints, bones, cut-out texture and filled background of a character image.

    Joints come from ``joints_override`` when given, else from ``pose_extractor.process_image`` (a
    ``services.pose.pipeline.PoseExtractor``; one is created when None). Raises ``character.no_person``,
    ``character.missing_joints`` or ``character.joints_outside_mask`` (InputError) for unusable input.
    """
    options = options or CharacterOptions()
    path = pathlib.Path(image_path)
    image = _read_image(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    h, w = image.shape[:2]
    rgb = np.ascontiguousarray(image[..., :3])
    frame = None
    override = None
    local = False
    try:
        mres = compute_mask(image, options.mask, segmenter)
    except NoPersonError as no_person:
        if joints_override is None:
            raise
        # A joints file made for another image (e.g. AnimatedDrawings' texture crop) is the likelier problem
        # and is reported as such; an unreadable one is not, and the missing character is.
        try:
            override = load_joints_file(joints_override, w, h, image=rgb)
        except InputError as exc:
            if exc.rule == "character.joints_file":
                raise no_person from exc
            raise
        if not override:
            raise
        local = True
        # Person segmentation finds nothing in a photographed drawing on a busy desk; with the joints known,
        # segment the drawing around them from its local paper instead.
        mres = MaskResult(local_threshold_mask(rgb, override, options.mask), MaskSource.THRESHOLD)
    mask = mres.mask
    height_px = _height_px(mask)
    if joints_override is not None:
        if override is None:
            override = load_joints_file(joints_override, w, h, image=rgb)
        raw, source = override, "override"
    else:
        raw, frame = _detect_joints(rgb, pose_extractor, options.min_joint_visibility)
        source = "pose"
        if not raw:
            raise NoPersonError("character.no_person",
                                "no person was detected in the character image; give a joints file (--joints)",
                                limit="a detected person or a joints file", actual="none")
        raw = add_low_visibility_legs(raw, frame, mask, max(4.0, options.joint_tolerance_fraction * height_px))
    has_face = frame is not None and frame.face is not None
    if mres.source == MaskSource.THRESHOLD and not local \
            and outline_threshold(np.dstack([rgb, mask]), mask, has_face=has_face) is None:
        # A photo on a plain wall, not line art: the threshold mask takes the cast shadow and loses skin as
        # light as the wall; person segmentation settles both (see refine_photo_mask).
        mask = refine_photo_mask(rgb, mask, segmenter, options.mask)
        height_px = _height_px(mask)
    jset = complete_joints(raw, mask, source)
    if mres.source == MaskSource.SEGMENTATION or local:
        # Segmentation drifts onto the floor and props next to the body; cut it to the skeleton's reach.
        # On an illustration the segmentation also takes what lies between the parts (the lit road between
        # the legs, sky between sleeve and skirt): refine by colour within the reach (not for a drawing on a
        # desk: its local threshold mask is already sharp).
        mask = skeleton_envelope(mask, jset.joints, height_px, rgb=None if local else rgb,
                                 unsure_ankles=unsure_ankles(frame))
        height_px = _height_px(mask)
    tolerance = max(4.0, options.joint_tolerance_fraction * height_px)
    check_joints_on_mask(jset.joints, mask, tolerance,
                         names=CORE_JOINTS + ("left_knee", "right_knee", "left_ankle", "right_ankle", "nose"))
    alpha = image[..., 3] if mres.source == MaskSource.ALPHA else None
    if alpha is not None:
        alpha = np.where(mask > 0, alpha, 0).astype(np.uint8)
    background = fill_background(rgb, mask)
    texture = clean_texture(rgb, mask, alpha, background)
    left_hand = right_hand = face = None
    if frame is not None:
        left_hand = frame.left_hand.landmarks.copy() if frame.left_hand is not None else None
        right_hand = frame.right_hand.landmarks.copy() if frame.right_hand is not None else None
        face = frame.face.landmarks.copy() if frame.face is not None else None
    return CharacterRig(
        image_sha256=sha, width=w, height=h, joints=jset.joints, bones=build_bones(jset.joints),
        mask=mask, texture_rgba=texture, background_rgb=background, facing=estimate_facing(jset.joints),
        height_px=height_px, mask_source=mres.source.label, warnings=jset.warnings,
        missing_parts=jset.missing_parts, joint_sources=jset.sources, left_hand=left_hand,
        right_hand=right_hand, face=face, options_digest=options.digest(),
    )
