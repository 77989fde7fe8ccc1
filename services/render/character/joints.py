"""The character's joints: from the pose pipeline or a manual override file, then validated.

Override formats:
- ours: ``{"format": "motion-control/character-joints", "version": 1, "width": W, "height": H,
  "joints": {"nose": [x, y], "left_shoulder": [x, y], ...}}`` (BlazePose names, lower case; derived
  names ``hip_center``, ``shoulder_center``, ``neck``, ``head_top`` also accepted). Joints are scaled when
  W x H differs from the image's size.
- AnimatedDrawings ``char_cfg.yaml``: ``{width, height, skeleton: [{name, loc: [x, y], parent}]}``;
  names are mapped onto BlazePose names (``left_hand`` -> ``left_wrist``, ``left_foot`` -> ``left_ankle``,
  ``hip`` -> ``hip_center``, ``torso`` -> ``shoulder_center``, ``neck`` -> ``neck``).

Policy for a cropped character (no legs): the visible part is animated; the rig lists the missing
parts (``left_leg``, ``right_leg``, ``left_shin``, ...) in ``missing_parts`` and says so in ``warnings``.
Missing core joints (shoulders, hips, elbows, wrists, head) are refused with ``character.missing_joints``.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import yaml

from motion.errors import InputError
from motion.rig import HEAD_TOP, HIP_CENTER, SHOULDER_CENTER, add_derived_joints
from motion.skeleton import BodyLandmark, SkeletonFrame

JOINTS_FORMAT = "motion-control/character-joints"
NECK = "neck"

# AnimatedDrawings joint names -> ours ("root" duplicates "hip" and is dropped).
AD_TO_BLAZEPOSE: dict[str, str] = {
    "hip": HIP_CENTER, "torso": SHOULDER_CENTER, "neck": NECK,
    "left_shoulder": "left_shoulder", "left_elbow": "left_elbow", "left_hand": "left_wrist",
    "right_shoulder": "right_shoulder", "right_elbow": "right_elbow", "right_hand": "right_wrist",
    "left_hip": "left_hip", "left_knee": "left_knee", "left_foot": "left_ankle",
    "right_hip": "right_hip", "right_knee": "right_knee", "right_foot": "right_ankle",
}

CORE_JOINTS: tuple[str, ...] = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip",
)
LEG_CHAINS: dict[str, tuple[str, ...]] = {
    "left_leg": ("left_knee", "left_ankle"),
    "right_leg": ("right_knee", "right_ankle"),
}
KNOWN_NAMES = frozenset([b.name.lower() for b in BodyLandmark] + [HIP_CENTER, SHOULDER_CENTER, NECK, HEAD_TOP])


@dataclass
class JointSet:
    joints: dict[str, tuple[float, float]]
    sources: dict[str, str] = field(default_factory=dict)
    missing_parts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# Largest |log(aspect ratio)| difference between the joints file's declared size and the image (~3 %).
MAX_JOINTS_ASPECT_LOG = 0.03


def load_joints_file(path: str | pathlib.Path, width: int, height: int,
                     image: np.ndarray | None = None) -> dict[str, tuple[float, float]]:
    """Reads an override file (our JSON or AnimatedDrawings char_cfg.yaml) in the image's pixels.

    Joints declared for an image of another aspect ratio raise ``character.joints_size_mismatch``, unless
    ``image`` is given and the cropped image they were made for lies beside the file (AnimatedDrawings
    writes ``texture.png`` next to ``char_cfg.yaml``): that crop is then found in ``image`` and the joints
    are carried over.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError("character.joints_file", f"cannot read the joints file {path}: {exc}",
                         actual=str(path)) from exc
    try:
        doc: Any = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InputError("character.joints_file", f"the joints file {path.name} is not valid JSON/YAML: {exc}",
                         actual=path.name) from exc
    if not isinstance(doc, dict):
        raise InputError("character.joints_file", "the joints file must hold a mapping",
                         limit="object", actual=type(doc).__name__)
    raw: dict[str, tuple[float, float]] = {}
    if doc.get("format") == JOINTS_FORMAT:
        entries = doc.get("joints")
        if not isinstance(entries, dict):
            raise InputError("character.joints_file", "`joints` must map names to [x, y]", actual=type(entries).__name__)
        for name, xy in entries.items():
            key = str(name).lower()
            if key not in KNOWN_NAMES:
                raise InputError("character.joints_file", f"unknown joint name {name!r}",
                                 limit="BlazePose landmark names", actual=name)
            raw[key] = _xy(xy, name)
    elif isinstance(doc.get("skeleton"), list):
        for entry in doc["skeleton"]:
            name = str(entry.get("name", "")).lower()
            if name in AD_TO_BLAZEPOSE:
                raw[AD_TO_BLAZEPOSE[name]] = _xy(entry.get("loc"), name)
    else:
        raise InputError("character.joints_file",
                         f"unknown joints file format (expected {JOINTS_FORMAT!r} JSON or an AnimatedDrawings "
                         "char_cfg.yaml)", limit=JOINTS_FORMAT, actual=doc.get("format"))
    declared_w, declared_h = int(doc.get("width") or width), int(doc.get("height") or height)
    if declared_w <= 0 or declared_h <= 0:
        raise InputError("character.joints_file", "width and height must be positive",
                         limit="> 0", actual=f"{declared_w}x{declared_h}")
    # Joints made for another image (typically AnimatedDrawings' cropped texture.png while the image given
    # is the original photo) cannot be mapped by scaling: the crop's offset is unknown. A uniform rescale
    # (same aspect ratio) is fine; anything else would silently put the joints in the wrong places.
    aspect_off = abs(np.log((declared_w / declared_h) / (width / height)))
    if aspect_off > MAX_JOINTS_ASPECT_LOG:
        placed = _joints_from_sibling_crop(path, raw, declared_w, declared_h, image)
        if placed is not None:
            return placed
        raise InputError(
            "character.joints_size_mismatch",
            f"the joints file {path.name} was made for a {declared_w}x{declared_h} image but this image is "
            f"{width}x{height} (another aspect ratio: are these joints for a cropped version, such as "
            "AnimatedDrawings' texture.png? Use that image, or give joints in this image's pixels)",
            limit=f"{width}x{height} or the same aspect ratio", actual=f"{declared_w}x{declared_h}")
    sx, sy = width / declared_w, height / declared_h
    return {k: (x * sx, y * sy) for k, (x, y) in raw.items()}


def _xy(value: Any, name: str) -> tuple[float, float]:
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError, KeyError):
        raise InputError("character.joints_file", f"joint {name!r} must be [x, y]", limit="[x, y]",
                         actual=value) from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InputError("character.joints_file", f"joint {name!r} is not finite", actual=[x, y])
    return x, y


def joints_from_frame(frame: SkeletonFrame, width: int, height: int,
                      min_visibility: float = 0.5) -> dict[str, tuple[float, float]]:
    """Body landmarks the detector saw (visibility >= min_visibility) that lie inside the image."""
    if not frame.present or frame.body is None:
        return {}
    out: dict[str, tuple[float, float]] = {}
    margin = 0.01 * max(width, height)
    for lm in BodyLandmark:
        x, y, _z, vis, _pres = (float(v) for v in frame.body[lm])
        if vis >= min_visibility and -margin <= x <= width + margin and -margin <= y <= height + margin:
            out[lm.name.lower()] = (min(max(x, 0.0), width - 1.0), min(max(y, 0.0), height - 1.0))
    return out


# A leg's lower joints the detector placed with at least this visibility are taken when their parent joint
# was and they lie on the mask: on stylised legs (an illustration's long shins in tights) BlazePose places
# the ankle on the leg with visibility ~0.4, and without it the shin stayed unrigged and swung with the thigh.
LOW_VISIBILITY_LEG = 0.3
_LEG_PARENTS = (("left_ankle", "left_knee"), ("right_ankle", "right_knee"))


def add_low_visibility_legs(joints: dict[str, tuple[float, float]], frame: SkeletonFrame, mask: np.ndarray,
                            tolerance_px: float, min_visibility: float = LOW_VISIBILITY_LEG
                            ) -> dict[str, tuple[float, float]]:
    """``joints`` plus the ankles seen with ``min_visibility`` whose knee is known and that lie within
    ``tolerance_px`` of the mask."""
    if not frame.present or frame.body is None:
        return joints
    h, w = mask.shape[:2]
    r = int(tolerance_px)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)) > 0
    out = dict(joints)
    for name, parent in _LEG_PARENTS:
        if name in out or parent not in out:
            continue
        x, y, _z, vis, _pres = (float(v) for v in frame.body[BodyLandmark[name.upper()]])
        xi, yi = int(round(x)), int(round(y))
        if vis >= min_visibility and 0 <= xi < w and 0 <= yi < h and _near_mask(mask, kernel, xi, yi):
            out[name] = (x, y)
    return out


def _near_mask(mask: np.ndarray, kernel: np.ndarray, x: int, y: int) -> bool:
    """The mask dilated by the (odd, centred, symmetric) ``kernel``, at one pixel: a mask pixel under the
    kernel placed there. Two lookups, not a dilation of the whole image by a kernel tens of pixels wide."""
    h, w = mask.shape[:2]
    r_y, r_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    y0, y1, x0, x1 = max(0, y - r_y), min(h, y + r_y + 1), max(0, x - r_x), min(w, x + r_x + 1)
    under = kernel[y0 - (y - r_y): y1 - (y - r_y), x0 - (x - r_x): x1 - (x - r_x)]
    return bool((mask[y0:y1, x0:x1] > 0)[under].any())


# Below this visibility a detected ankle is "unsure": on the stylised legs of an illustration BlazePose
# then places it well above the shoe (the mask's colour refinement takes the shoe below it as the foot).
UNSURE_ANKLE_VISIBILITY = 0.6


def unsure_ankles(frame: SkeletonFrame | None) -> tuple[str, ...]:
    """The sides ("left", "right") whose ankle the detector saw with less than UNSURE_ANKLE_VISIBILITY."""
    if frame is None or not frame.present or frame.body is None:
        return ()
    return tuple(side for side in ("left", "right")
                 if float(frame.body[BodyLandmark[f"{side.upper()}_ANKLE"]][3]) < UNSURE_ANKLE_VISIBILITY)


def _ray_to_mask_edge(mask: np.ndarray, start: np.ndarray, direction: np.ndarray, max_px: float) -> np.ndarray:
    """The last mask pixel along start + t*direction (t >= 0), stopping after a gap of a few pixels."""
    h, w = mask.shape
    d = direction / max(np.linalg.norm(direction), 1e-6)
    last, gap = start.copy(), 0
    for t in np.arange(0.0, max_px, 1.0):
        p = start + t * d
        xi, yi = int(round(p[0])), int(round(p[1]))
        if not (0 <= xi < w and 0 <= yi < h):
            break
        if mask[yi, xi]:
            last, gap = p, 0
        else:
            gap += 1
            if gap > 3:
                break
    return last


def complete_joints(joints: dict[str, tuple[float, float]], mask: np.ndarray, source: str) -> JointSet:
    """Derives centres, the nose (when only a neck is given) and the head top; finds missing parts."""
    sources = {k: source for k in joints}
    j = dict(joints)
    missing_core = [n for n in CORE_JOINTS if n not in j]
    # Centres may stand in for a missing pair only when the file gave them explicitly.
    if missing_core:
        raise InputError("character.missing_joints",
                         f"the character's skeleton is incomplete: missing {', '.join(missing_core)} "
                         "(give a joints file with --joints)", limit=list(CORE_JOINTS), actual=missing_core)
    j = add_derived_joints(j)
    for k in (HIP_CENTER, SHOULDER_CENTER):
        sources.setdefault(k, "derived")
    sc, hc = np.array(j[SHOULDER_CENTER]), np.array(j[HIP_CENTER])
    up = sc - hc
    spine_px = float(np.linalg.norm(up))
    if spine_px < 2.0:
        raise InputError("character.missing_joints", "the shoulders and hips coincide: no torso",
                         limit="spine >= 2 px", actual=round(spine_px, 2))
    if "nose" not in j:
        if NECK in j:
            neck = np.array(j[NECK])
            top = _ray_to_mask_edge(mask > 0, neck, neck - sc if np.linalg.norm(neck - sc) > 1 else up, 2 * spine_px)
            j["nose"] = tuple(float(v) for v in (neck + 0.5 * (top - neck)))  # type: ignore[assignment]
        else:
            raise InputError("character.missing_joints", "the character's head is missing: no nose or neck joint",
                             limit=["nose"], actual=["nose"])
        sources["nose"] = "derived"
    nose = np.array(j["nose"])
    head_dir = nose - sc if np.linalg.norm(nose - sc) > 1 else up
    if HEAD_TOP not in j:
        top = _ray_to_mask_edge(mask > 0, nose, head_dir, 1.5 * spine_px)
        if np.linalg.norm(top - nose) < 1.0:
            top = nose + 0.35 * spine_px * head_dir / np.linalg.norm(head_dir)
        j[HEAD_TOP] = (float(top[0]), float(top[1]))
        sources[HEAD_TOP] = "derived"
    missing_parts: list[str] = []
    warnings: list[str] = []
    for part, chain in LEG_CHAINS.items():
        absent = [n for n in chain if n not in j]
        if not absent:
            continue
        missing_parts.append(part if absent[0] == chain[0] else part.replace("_leg", "_shin"))
    if missing_parts:
        warnings.append(f"character.cropped: the character's {', '.join(missing_parts)} are not visible; only the "
                        "visible part is animated (missing parts follow the motion but have no texture)")
    return JointSet(j, sources, missing_parts, warnings)


def check_joints_on_mask(joints: dict[str, tuple[float, float]], mask: np.ndarray, tolerance_px: float,
                         names: tuple[str, ...] | None = None) -> None:
    """Raises character.joints_outside_mask naming every checked joint farther than tolerance_px from it."""
    inside = (mask > 0).astype(np.uint8)
    # Distance from each background pixel to the nearest mask pixel.
    dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3)
    h, w = mask.shape
    bad: dict[str, float] = {}
    for name in names if names is not None else tuple(joints):
        if name not in joints:
            continue
        x, y = joints[name]
        xi, yi = int(round(x)), int(round(y))
        d = float(dist[yi, xi]) if 0 <= xi < w and 0 <= yi < h else float("inf")
        if d > tolerance_px:
            bad[name] = round(d, 1) if math.isfinite(d) else -1.0
    if bad:
        raise InputError("character.joints_outside_mask",
                         "joints lie outside the character: " + ", ".join(
                             f"{k} ({v:.0f} px away)" if v >= 0 else f"{k} (outside the image)" for k, v in bad.items()),
                         limit=round(tolerance_px, 1), actual=bad)


def estimate_facing(joints: dict[str, tuple[float, float]], side_ratio: float = 0.3) -> str:
    """front/back from which side the anatomical left shoulder is on; left/right when the shoulders are
    nearly on top of each other (narrow relative to the spine), from where the nose points."""
    ls, rs = np.array(joints["left_shoulder"]), np.array(joints["right_shoulder"])
    spine = np.linalg.norm(np.array(joints[SHOULDER_CENTER]) - np.array(joints[HIP_CENTER]))
    width = ls[0] - rs[0]
    if abs(width) < side_ratio * spine:
        nose_dx = joints["nose"][0] - joints[SHOULDER_CENTER][0]
        return "left" if nose_dx < 0 else "right"
    return "front" if width > 0 else "back"


# Template-match score (normalised cross-correlation) below which a sibling crop is not trusted.
MIN_CROP_MATCH = 0.6


def _sibling_crop(path: pathlib.Path, width: int, height: int) -> pathlib.Path | None:
    """The image a joints file was made for, when it sits beside it with the declared size."""
    names = ["texture.png"]
    if path.name.endswith("char_cfg.yaml"):
        names.insert(0, path.name[: -len("char_cfg.yaml")] + "texture.png")
    for name in names:
        cand = path.with_name(name)
        if cand.is_file():
            img = cv2.imread(str(cand), cv2.IMREAD_UNCHANGED)
            if img is not None and img.shape[:2] == (height, width):
                return cand
    return None


def locate_crop(image_gray: np.ndarray, crop_gray: np.ndarray, work_side_px: int = 600
                ) -> tuple[float, float, float, float]:
    """(score, scale, x, y): where a (possibly rescaled) crop lies in the image, by multi-scale template
    matching on a ``work_side_px`` copy, refined once at twice that resolution."""
    s0 = min(1.0, work_side_px / max(image_gray.shape))
    small = cv2.resize(image_gray, None, fx=s0, fy=s0, interpolation=cv2.INTER_AREA)
    best = (-1.0, 1.0, 0.0, 0.0)
    for scale in np.geomspace(0.1, 40.0, 90):  # crop pixels -> image pixels
        f = scale * s0
        t = cv2.resize(crop_gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        if t.shape[0] >= small.shape[0] or t.shape[1] >= small.shape[1] or min(t.shape[:2]) < 12:
            continue
        _, v, _, loc = cv2.minMaxLoc(cv2.matchTemplate(small, t, cv2.TM_CCOEFF_NORMED))
        if v > best[0]:
            best = (float(v), float(scale), loc[0] / s0, loc[1] / s0)
    return best


def _joints_from_sibling_crop(path: pathlib.Path, raw: dict[str, tuple[float, float]], declared_w: int,
                              declared_h: int, image: np.ndarray | None) -> dict[str, tuple[float, float]] | None:
    if image is None:
        return None
    crop_path = _sibling_crop(path, declared_w, declared_h)
    if crop_path is None:
        return None
    crop = cv2.imread(str(crop_path), cv2.IMREAD_COLOR)
    if crop is None:
        return None
    gray = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    score, scale, x0, y0 = locate_crop(gray, cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY))
    if score < MIN_CROP_MATCH:
        return None
    return {k: (x0 + x * scale, y0 + y * scale) for k, (x, y) in raw.items()}
