"""Drawing the mannequin with OpenCV: shaded body parts painted back to front by depth.

Every part is the convex hull of projected 3D shapes (spheres for limbs, ellipse cross-sections for
the torso, an ellipsoid for the head), filled with anti-aliasing and shaded from a distance
transform (rounded look) plus a directional light. All geometry is derived from the 33 landmarks,
so any pose in world metres can be drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from motion.samples.camera import PinholeCamera
from motion.skeleton import N_BODY, BodyLandmark

B = BodyLandmark
RGB = tuple[int, int, int]
_SHIFT = 4  # sub-pixel bits for cv2 polygons
_SCALE = 1 << _SHIFT


@dataclass(frozen=True)
class Palette:
    skin: RGB = (224, 172, 138)
    hair: RGB = (58, 40, 30)
    shirt: RGB = (40, 110, 190)
    pants: RGB = (50, 52, 70)
    shoes: RGB = (235, 235, 235)
    lips: RGB = (170, 70, 70)
    iris: RGB = (70, 50, 35)
    wall_top: RGB = (206, 212, 220)
    wall_bottom: RGB = (180, 186, 196)
    floor: RGB = (150, 120, 92)
    shirt_stripes: RGB | None = None  # drawn on the shirt when set (makes deformation visible)
    outline: RGB | None = None  # cartoon ink lines around every part when set
    outline_px: int = 2

    @classmethod
    def from_seed(cls, seed: int) -> Palette:
        rng = np.random.default_rng(seed + 7919)
        skins = ((236, 188, 150), (224, 172, 138), (198, 140, 100), (160, 110, 75), (120, 80, 55))
        hairs = ((40, 30, 25), (90, 60, 35), (150, 110, 60), (25, 25, 25))
        shirts = ((40, 110, 190), (190, 50, 50), (40, 150, 90), (220, 150, 40), (140, 70, 160))
        pants = ((50, 52, 70), (40, 60, 110), (80, 70, 60), (30, 30, 35))
        walls = (((206, 212, 220), (180, 186, 196)), ((222, 214, 200), (196, 186, 170)),
                 ((200, 215, 205), (172, 188, 178)))
        wall = walls[int(rng.integers(len(walls)))]
        return cls(
            skin=skins[int(rng.integers(len(skins)))], hair=hairs[int(rng.integers(len(hairs)))],
            shirt=shirts[int(rng.integers(len(shirts)))], pants=pants[int(rng.integers(len(pants)))],
            wall_top=wall[0], wall_bottom=wall[1],
            floor=((150, 120, 92), (120, 110, 100), (165, 140, 110))[int(rng.integers(3))],
        )


# Part labels (for the occlusion flags of the ground truth).
PART_NAMES: tuple[str, ...] = (
    "torso_upper", "torso_lower", "neck", "head", "hair", "face", "nose", "left_ear", "right_ear",
    "left_upper_arm", "left_forearm", "left_hand", "right_upper_arm", "right_forearm", "right_hand",
    "left_thigh", "left_shin", "left_foot", "right_thigh", "right_shin", "right_foot",
)
LABEL = {name: i for i, name in enumerate(PART_NAMES)}


def _lm(name: str) -> int:
    """Landmark index by upper-case name, e.g. ``LEFT_WRIST``."""
    return int(BodyLandmark[name])


def _owners() -> dict[int, tuple[int, ...]]:
    face = (LABEL["head"], LABEL["face"], LABEL["nose"])
    own: dict[int, tuple[int, ...]] = {}
    for lm in (B.NOSE, B.LEFT_EYE_INNER, B.LEFT_EYE, B.LEFT_EYE_OUTER, B.RIGHT_EYE_INNER, B.RIGHT_EYE,
               B.RIGHT_EYE_OUTER, B.MOUTH_LEFT, B.MOUTH_RIGHT):
        own[lm] = face
    own[B.LEFT_EAR] = (LABEL["left_ear"], LABEL["head"], LABEL["hair"])
    own[B.RIGHT_EAR] = (LABEL["right_ear"], LABEL["head"], LABEL["hair"])
    for side in ("left", "right"):
        s = side.upper()
        own[_lm(f"{s}_SHOULDER")] = (LABEL["torso_upper"], LABEL[f"{side}_upper_arm"])
        own[_lm(f"{s}_ELBOW")] = (LABEL[f"{side}_upper_arm"], LABEL[f"{side}_forearm"])
        own[_lm(f"{s}_WRIST")] = (LABEL[f"{side}_forearm"], LABEL[f"{side}_hand"])
        for k in ("PINKY", "INDEX", "THUMB"):
            own[_lm(f"{s}_{k}")] = (LABEL[f"{side}_hand"],)
        own[_lm(f"{s}_HIP")] = (LABEL["torso_lower"], LABEL[f"{side}_thigh"])
        own[_lm(f"{s}_KNEE")] = (LABEL[f"{side}_thigh"], LABEL[f"{side}_shin"])
        own[_lm(f"{s}_ANKLE")] = (LABEL[f"{side}_shin"], LABEL[f"{side}_foot"])
        own[_lm(f"{s}_HEEL")] = (LABEL[f"{side}_foot"],)
        own[_lm(f"{s}_FOOT_INDEX")] = (LABEL[f"{side}_foot"],)
    return own


LANDMARK_OWNERS = _owners()
_FACE_POINTS = (B.NOSE, B.LEFT_EYE_INNER, B.LEFT_EYE, B.LEFT_EYE_OUTER, B.RIGHT_EYE_INNER, B.RIGHT_EYE,
                B.RIGHT_EYE_OUTER, B.LEFT_EAR, B.RIGHT_EAR, B.MOUTH_LEFT, B.MOUTH_RIGHT)


@dataclass
class RenderedFrame:
    """One drawn frame: colour, coverage, and where each landmark is and whether it can be seen."""

    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray  # (H, W) uint8, 255 where the figure covers the pixel
    points_px: np.ndarray  # (33, 2) float64
    visible: np.ndarray  # (33,) bool: inside the frame and not hidden by another part
    labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), np.int16))


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


class _Canvas:
    """Float RGB image + coverage + part labels, painted one polygon at a time."""

    def __init__(self, background: np.ndarray, light_dir: tuple[float, float] = (-0.45, -0.9),
                 outline: RGB | None = None, outline_px: int = 2) -> None:
        self.outline = outline
        self.outline_px = outline_px
        self.rgb = background.astype(np.float32)
        self.h, self.w = background.shape[:2]
        self.alpha = np.zeros((self.h, self.w), np.float32)
        self.labels = np.full((self.h, self.w), -1, np.int16)
        self.light = np.array(light_dir, np.float32) / float(np.hypot(*light_dir))

    def paint(self, hull: np.ndarray, colour: RGB, label: int, shaded: bool = True,
              pattern: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
              pattern_colour: RGB | None = None) -> None:
        if hull.shape[0] < 3 or not np.all(np.isfinite(hull)):
            return
        x0 = max(int(math.floor(hull[:, 0].min())) - 2, 0)
        y0 = max(int(math.floor(hull[:, 1].min())) - 2, 0)
        x1 = min(int(math.ceil(hull[:, 0].max())) + 3, self.w)
        y1 = min(int(math.ceil(hull[:, 1].max())) + 3, self.h)
        if x1 - x0 < 1 or y1 - y0 < 1:
            return
        pad = self.outline_px + 1 if self.outline is not None else 0
        x0, y0 = max(x0 - pad, 0), max(y0 - pad, 0)
        x1, y1 = min(x1 + pad, self.w), min(y1 + pad, self.h)
        poly = np.round((hull - (x0, y0)) * _SCALE).astype(np.int32)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [poly], 255, cv2.LINE_AA, shift=_SHIFT)
        edge = None
        if self.outline is not None and shaded:
            edge = np.zeros_like(mask)
            cv2.polylines(edge, [poly], True, 255, self.outline_px, cv2.LINE_AA, shift=_SHIFT)
            mask = np.maximum(mask, edge)
        a = mask.astype(np.float32) / 255.0
        if not a.any():
            return
        base = np.array(colour, np.float32)
        if pattern is not None and pattern_colour is not None:
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            m = pattern(xx, yy)[..., None]
            col = base * (1 - m) + np.array(pattern_colour, np.float32) * m
        else:
            col = np.broadcast_to(base, (y1 - y0, x1 - x0, 3))
        if shaded:
            inside = (mask >= 128).astype(np.uint8)
            dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
            r = max(float(dist.max()), 1.0)
            round_ = np.sqrt(dist / r)
            cx, cy = hull[:, 0].mean() - x0, hull[:, 1].mean() - y0
            yy2, xx2 = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float32)
            g = np.clip(((xx2 - cx) * self.light[0] + (yy2 - cy) * self.light[1]) / (2.5 * r), -1.0, 1.0)
            shade = 0.55 + 0.45 * round_ + 0.18 * g
            col = col * shade[..., None]
        if edge is not None and self.outline is not None:
            e = (edge.astype(np.float32) / 255.0)[..., None]
            col = col * (1 - e) + np.array(self.outline, np.float32) * e
        roi = self.rgb[y0:y1, x0:x1]
        roi *= (1.0 - a)[..., None]
        roi += np.clip(col, 0, 255) * a[..., None]
        np.maximum(self.alpha[y0:y1, x0:x1], a, out=self.alpha[y0:y1, x0:x1])
        self.labels[y0:y1, x0:x1][a >= 0.5] = label


def _circle_2d(centre: np.ndarray, radius_px: float, n: int = 20) -> np.ndarray:
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radius_px * np.cos(ang), centre[1] + radius_px * np.sin(ang)], axis=1)


def _hull(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    if pts.shape[0] < 3:
        return pts.astype(np.float64)
    return cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)


def _spheres_hull(cam: PinholeCamera, centres: list[np.ndarray], radii_m: list[float]) -> np.ndarray:
    c = np.array(centres, np.float64)
    p = cam.project(c)
    s = cam.scale_px_per_m(c)
    pts = np.concatenate([_circle_2d(p[i], radii_m[i] * float(s[i])) for i in range(len(centres))])
    return _hull(pts)


def _ring(centre: np.ndarray, ax_u: np.ndarray, ax_v: np.ndarray, ru: float, rv: float, n: int = 20) -> np.ndarray:
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return centre + np.outer(np.cos(ang) * ru, ax_u) + np.outer(np.sin(ang) * rv, ax_v)


@dataclass
class _Part:
    depth_m: float
    draw: Callable[[_Canvas], None]


def _painter(hull: np.ndarray, colour: RGB, label: int) -> Callable[[_Canvas], None]:
    def draw(cv: _Canvas) -> None:
        cv.paint(hull, colour, label)

    return draw


def _head_frame(lm: np.ndarray, head_scale: float) -> tuple[np.ndarray, np.ndarray]:
    ears_mid = (lm[B.LEFT_EAR] + lm[B.RIGHT_EAR]) / 2
    x = _unit(lm[B.LEFT_EAR] - lm[B.RIGHT_EAR])
    eyes_mid = (lm[B.LEFT_EYE] + lm[B.RIGHT_EYE]) / 2
    mouth_mid = (lm[B.MOUTH_LEFT] + lm[B.MOUTH_RIGHT]) / 2
    up = _unit(eyes_mid - mouth_mid)
    up = _unit(up - float(np.dot(up, x)) * x)
    fwd = np.cross(x, up)
    rot = np.stack([x, up, fwd], axis=1)  # columns: head x, y, z in world
    # Head centre sits at eye level, behind the eyes (see mannequin.head_landmarks).
    centre = ears_mid + rot @ (head_scale * np.array([0.0, 0.012, 0.005]))
    return centre, rot


def _build_parts(lm: np.ndarray, cam: PinholeCamera, pal: Palette, head_scale: float) -> list[_Part]:
    parts: list[_Part] = []
    depth = lambda p: float(cam.to_camera(np.asarray(p))[2])  # noqa: E731

    def capsule(a: np.ndarray, b: np.ndarray, ra: float, rb: float, colour: RGB, label: str,
                depth_bias_m: float = 0.0) -> None:
        mid = (a + b) / 2
        hull = _spheres_hull(cam, [a, mid, b], [ra, (ra + rb) / 2, rb])
        parts.append(_Part(depth(mid) + depth_bias_m, lambda cv: cv.paint(hull, colour, LABEL[label])))

    # Torso: hull of elliptic cross-sections, twisting from the hip axis to the shoulder axis.
    hip_c = (lm[B.LEFT_HIP] + lm[B.RIGHT_HIP]) / 2
    sh_c = (lm[B.LEFT_SHOULDER] + lm[B.RIGHT_SHOULDER]) / 2
    spine = sh_c - hip_c
    up = _unit(spine)
    hip_x = _unit(lm[B.LEFT_HIP] - lm[B.RIGHT_HIP])
    sh_x = _unit(lm[B.LEFT_SHOULDER] - lm[B.RIGHT_SHOULDER])

    def section(frac: float, half_w: float, half_d: float) -> np.ndarray:
        t = min(max(frac, 0.0), 1.0)
        x = _unit((1 - t) * hip_x + t * sh_x)
        x = _unit(x - float(np.dot(x, up)) * up)
        z = np.cross(x, up)
        return _ring(hip_c + frac * spine, x, z, half_w, half_d)

    lower = np.concatenate([section(-0.17, 0.150, 0.10), section(0.0, 0.165, 0.105), section(0.30, 0.145, 0.095)])
    upper = np.concatenate([section(0.27, 0.147, 0.097), section(0.6, 0.160, 0.105), section(0.86, 0.178, 0.10),
                            section(1.0, 0.165, 0.08), section(1.06, 0.10, 0.06)])
    hull_lower = _hull(cam.project(lower))
    hull_upper = _hull(cam.project(upper))
    stripes = pal.shirt_stripes
    period = max(float(cam.scale_px_per_m(sh_c)) * 0.05, 3.0)

    def stripe_pattern(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        return (np.sin(yy * (2 * np.pi / period)) > 0.3).astype(np.float32)

    parts.append(_Part(depth(hip_c), lambda cv: cv.paint(hull_lower, pal.pants, LABEL["torso_lower"])))
    parts.append(_Part(depth(hip_c + 0.6 * spine) - 0.001, lambda cv: cv.paint(
        hull_upper, pal.shirt, LABEL["torso_upper"], pattern=stripe_pattern if stripes else None,
        pattern_colour=stripes)))

    for side in ("left", "right"):
        s = side.upper()
        sh, el, wr = lm[_lm(f"{s}_SHOULDER")], lm[_lm(f"{s}_ELBOW")], lm[_lm(f"{s}_WRIST")]
        capsule(sh, el, 0.05, 0.044, pal.shirt, f"{side}_upper_arm")
        capsule(el, wr, 0.041, 0.031, pal.skin, f"{side}_forearm")
        _hand_part(parts, cam, lm, s, side, pal)
        hip, kn, an = lm[_lm(f"{s}_HIP")], lm[_lm(f"{s}_KNEE")], lm[_lm(f"{s}_ANKLE")]
        # Thighs go behind the pelvis unless clearly in front of it, so hip joints do not show as caps.
        capsule(hip, kn, 0.088, 0.060, pal.pants, f"{side}_thigh", depth_bias_m=0.1)
        capsule(kn, an, 0.056, 0.042, pal.pants, f"{side}_shin")
        heel, toe = lm[_lm(f"{s}_HEEL")], lm[_lm(f"{s}_FOOT_INDEX")]
        foot_hull = _spheres_hull(cam, [an, heel + 0.02 * _unit(an - heel), 0.5 * (heel + toe) + 0.01 * up,
                                        toe - 0.02 * _unit(toe - heel)], [0.045, 0.035, 0.04, 0.03])
        parts.append(_Part(depth((an + toe + heel) / 3), _painter(foot_hull, pal.shoes, LABEL[f"{side}_foot"])))

    centre, rot = _head_frame(lm, head_scale)
    parts.append(_Part(depth(centre), lambda cv: _draw_head(cv, cam, lm, centre, rot, sh_c, pal, head_scale)))
    return parts


def _hand_part(parts: list[_Part], cam: PinholeCamera, lm: np.ndarray, s: str, side: str, pal: Palette) -> None:
    wr, ix, pk, th = lm[_lm(f"{s}_WRIST")], lm[_lm(f"{s}_INDEX")], lm[_lm(f"{s}_PINKY")], lm[_lm(f"{s}_THUMB")]
    knuckles = (ix + pk) / 2
    hd = _unit(knuckles - wr)
    label = LABEL[f"{side}_hand"]
    palm = _spheres_hull(cam, [wr, ix, pk, (wr + pk) / 2], [0.026, 0.02, 0.018, 0.022])
    fingers = []
    for i, length in enumerate((0.075, 0.082, 0.078, 0.062)):
        base = ix + (pk - ix) * (i / 3.0)
        # Fingers curl a little towards the palm so the hand does not look like a paddle.
        tip = base + length * _unit(hd + 0.25 * _unit(np.cross(_unit(pk - ix), hd)))
        fingers.append(_spheres_hull(cam, [base, (base + tip) / 2, tip], [0.0105, 0.0095, 0.008]))
    thumb_base = wr + 0.3 * (th - wr)
    thumb_tip = th + 0.03 * _unit(th - thumb_base)
    fingers.append(_spheres_hull(cam, [thumb_base, th, thumb_tip], [0.015, 0.011, 0.009]))

    def draw(cv: _Canvas) -> None:
        cv.paint(palm, pal.skin, label)
        for f in fingers:
            cv.paint(f, pal.skin, label)

    parts.append(_Part(float(cam.to_camera((wr + knuckles) / 2)[2]), draw))


def _ellipsoid_points(centre: np.ndarray, rot: np.ndarray, radii: np.ndarray, n_lat: int = 14,
                      n_lon: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Surface points (world) and their local coordinates on an ellipsoid."""
    lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    unit = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], axis=-1).reshape(-1, 3)
    local = unit * radii
    world = centre + local @ rot.T
    return world, local


def _draw_head(cv: _Canvas, cam: PinholeCamera, lm: np.ndarray, centre: np.ndarray, rot: np.ndarray,
               sh_c: np.ndarray, pal: Palette, scale: float) -> None:
    radii = scale * np.array([0.079, 0.112, 0.098])
    to_cam = cam.towards_camera(centre)
    skin = pal.skin
    darker: RGB = (int(skin[0] * 0.85), int(skin[1] * 0.85), int(skin[2] * 0.85))

    # Neck first: the head covers its top.
    neck_top = centre + rot @ (scale * np.array([0.0, -0.07, -0.02]))
    neck_hull = _spheres_hull(cam, [sh_c, (sh_c + neck_top) / 2, neck_top], [0.055, 0.05, 0.05])
    cv.paint(neck_hull, darker, LABEL["neck"])

    def disc(c_local: tuple[float, float, float], ru: float, rv: float, colour: RGB, label: str,
             u_ax: int = 0, v_ax: int = 1, min_facing: float = 0.1) -> None:
        c = centre + rot @ (scale * np.array(c_local))
        normal = _unit(rot @ (np.array(c_local) / radii ** 2))
        if float(np.dot(normal, cam.towards_camera(c))) < min_facing:
            return
        ring = _ring(c, rot[:, u_ax], rot[:, v_ax], scale * ru, scale * rv, 16)
        cv.paint(_hull(cam.project(ring)), colour, LABEL[label], shaded=False)

    ear_specs = ((0.080, "left_ear"), (-0.080, "right_ear"))
    ear_facing = [float(np.dot(rot[:, 0] * np.sign(x), to_cam)) for x, _ in ear_specs]

    def ear(i: int) -> None:
        x, label = ear_specs[i]
        c = centre + rot @ (scale * np.array([x, -0.012, -0.008]))
        ring = _ring(c, rot[:, 1], rot[:, 2], scale * 0.032, scale * 0.021, 16)
        cv.paint(_hull(cam.project(ring)), skin, LABEL[label])

    for i in range(2):
        if ear_facing[i] <= 0.35:
            ear(i)
    world, _ = _ellipsoid_points(centre, rot, radii)
    cv.paint(_hull(cam.project(world)), skin, LABEL["head"])

    # Hair: the visible part of two caps on a slightly larger ellipsoid.
    hw, hl = _ellipsoid_points(centre, rot, radii * 1.05)
    normals = (hl / (radii * 1.05) ** 2) @ rot.T
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    facing = np.einsum("ij,ij->i", normals, cam.towards_camera(hw))
    for region in (hl[:, 1] > scale * 0.042, (hl[:, 2] < -scale * 0.03) & (hl[:, 1] > -scale * 0.075)):
        sel = region & (facing > -0.02)
        if int(sel.sum()) >= 3:
            cv.paint(_hull(cam.project(hw[sel])), pal.hair, LABEL["hair"])

    # Face: eyes (white, iris, pupil), brows, nose, mouth.
    for x in (0.033, -0.033):
        disc((x, 0.0, 0.083), 0.016, 0.0095, (245, 245, 240), "face")
        disc((x, 0.0, 0.0845), 0.0078, 0.0078, pal.iris, "face")
        disc((x, 0.0, 0.0855), 0.0038, 0.0038, (15, 15, 15), "face")
        disc((x, 0.022, 0.081), 0.017, 0.0035, pal.hair, "face")
    disc((0.0, -0.062, 0.086), 0.024, 0.008, pal.lips, "face")
    nose = centre + rot @ (scale * np.array([0.0, -0.030, 0.100]))
    if float(np.dot(rot[:, 2], to_cam)) > -0.3:
        bridge = centre + rot @ (scale * np.array([0.0, 0.0, 0.088]))
        cv.paint(_spheres_hull(cam, [bridge, nose], [scale * 0.009, scale * 0.016]), darker, LABEL["nose"])
    for i in range(2):
        if ear_facing[i] > 0.35:
            ear(i)


def render_background(cam: PinholeCamera, pal: Palette) -> np.ndarray:
    """Wall and wooden floor seen by ``cam`` (deterministic), (H, W, 3) uint8."""
    h, w = cam.height_px, cam.width_px
    wall_z = -2.0
    horizon = cam.project(np.array([0.0, 0.0, wall_z]))[1]
    img = np.zeros((h, w, 3), np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    t = np.clip(ys / max(horizon, 1.0), 0, 1)
    wall = (1 - t)[..., None] * np.array(pal.wall_top, np.float32) + t[..., None] * np.array(pal.wall_bottom,
                                                                                          np.float32)
    img[:] = wall
    floor_rows = ys[:, 0] >= horizon
    # The floor darkens away from the camera a little.
    depth_t = np.clip((ys - horizon) / max(h - horizon, 1.0), 0, 1)
    floor = np.array(pal.floor, np.float32) * (0.8 + 0.2 * depth_t)[..., None]
    img[floor_rows] = np.broadcast_to(floor, (h, 1, 3))[floor_rows]
    out = np.clip(img, 0, 255).astype(np.uint8)
    line = tuple(int(c * 0.85) for c in pal.floor)
    for x in np.arange(-6.0, 6.01, 0.35):
        a = cam.project(np.array([x, 0.0, wall_z]))
        b = cam.project(np.array([x, 0.0, cam.distance_m - 0.5]))
        cv2.line(out, (int(a[0] * _SCALE), int(a[1] * _SCALE)), (int(b[0] * _SCALE), int(b[1] * _SCALE)),
                 line, 1, cv2.LINE_AA, _SHIFT)
    skirting = tuple(int(c * 0.7) for c in pal.wall_bottom)
    hy = int(round(horizon))
    cv2.rectangle(out, (0, hy - max(h // 80, 2)), (w, hy), skirting, -1)
    return out


def _shadows(cv: _Canvas, cam: PinholeCamera, lm: np.ndarray) -> None:
    """Soft contact shadows on the floor under the feet and the body."""
    hip_c = (lm[B.LEFT_HIP] + lm[B.RIGHT_HIP]) / 2
    shadow = np.zeros((cv.h, cv.w), np.uint8)
    spots = [(np.array([hip_c[0], 0.0, hip_c[2]]), 0.30, 0.18, 0.5)]
    for s in ("LEFT", "RIGHT"):
        an = lm[_lm(f"{s}_ANKLE")]
        lift = max(float(an[1]) - 0.08, 0.0)
        spots.append((np.array([an[0], 0.0, an[2] + 0.04]), 0.13, 0.09, max(1.0 - 4 * lift, 0.3)))
    for c, rx, rz, strength in spots:
        ring = _ring(c, np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), rx, rz, 24)
        poly = np.round(cam.project(ring) * _SCALE).astype(np.int32)
        cv2.fillPoly(shadow, [poly], int(90 * strength), cv2.LINE_AA, _SHIFT)
    k = max(int(cam.height_px / 60) | 1, 3)
    blurred = cv2.GaussianBlur(shadow, (k, k), 0)
    cv.rgb *= (1.0 - blurred.astype(np.float32) / 255.0)[..., None]


def render_frame(landmarks_m: np.ndarray, camera: PinholeCamera, palette: Palette | None = None,
                 background: np.ndarray | None = None, head_scale: float = 1.0,
                 shadows: bool = True) -> RenderedFrame:
    """Draws the mannequin whose 33 landmarks (world metres, (33, 3)) are given.

    ``background`` is an (H, W, 3) uint8 image; None draws on black (use ``alpha`` as the mask).
    """
    lm = np.asarray(landmarks_m, np.float64)
    if lm.shape != (N_BODY, 3):
        raise ValueError(f"landmarks_m must have shape (33, 3), got {lm.shape}")
    pal = palette or Palette()
    bg = background if background is not None else np.zeros((camera.height_px, camera.width_px, 3), np.uint8)
    cv = _Canvas(bg, outline=pal.outline, outline_px=pal.outline_px)
    if shadows and background is not None:
        _shadows(cv, camera, lm)
    parts = _build_parts(lm, camera, pal, head_scale)
    # Back to front; the stable sort keeps construction order on exact ties.
    for part in sorted(parts, key=lambda p: -p.depth_m):
        part.draw(cv)
    pts = camera.project(lm)
    visible = np.zeros(N_BODY, bool)
    centre, rot = _head_frame(lm, head_scale)
    for i in range(N_BODY):
        x, y = pts[i]
        if not (0 <= x < camera.width_px and 0 <= y < camera.height_px):
            continue
        if i in _FACE_POINTS:
            normal = _unit(lm[i] - centre)
            if float(np.dot(normal, camera.towards_camera(lm[i]))) < 0.05:
                continue
        label = int(cv.labels[int(y), int(x)])
        visible[i] = label in LANDMARK_OWNERS[i]
    rgb = np.clip(cv.rgb + 0.5, 0, 255).astype(np.uint8)
    alpha = np.clip(cv.alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return RenderedFrame(rgb=rgb, alpha=alpha, points_px=pts, visible=visible, labels=cv.labels)


def render_performer(pose3d: np.ndarray, size: tuple[int, int] = (720, 1280), seed: int = 0,
                     camera: PinholeCamera | None = None) -> np.ndarray:
    """The sample scene (wall, floor, mannequin) for one pose, (H, W, 3) uint8 RGB.

    ``pose3d`` is (33, 3) world metres (see ``motion.samples.mannequin``); ``size`` is (width, height).
    """
    cam = camera or PinholeCamera.framing(size[0], size[1])
    pal = Palette.from_seed(seed)
    return render_frame(pose3d, cam, pal, render_background(cam, pal)).rgb
