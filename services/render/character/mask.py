"""The character's mask, cut-out texture and hole-filled background.

Mask sources, in order: the PNG alpha channel when it is not fully opaque (``alpha``); a colour/threshold
segmentation when the image border is a plain, near-uniform background such as paper or a studio wall
(``threshold``); otherwise person segmentation with MediaPipe's ``selfie_segmentation`` model
(``segmentation``). A segmentation mask is then cut to the skeleton's reach and refined by colour around
it (``skeleton_envelope``): on an illustration with a busy background it otherwise takes the road between
the legs and the sky between the parts.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import cv2
import numpy as np

from motion.errors import NoPersonError


class MaskSource(IntEnum):
    ALPHA = 1
    THRESHOLD = 2
    SEGMENTATION = 3
    OVERRIDE = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass
class MaskOptions:
    # Border pixels whose Lab distance to the border median is below this count as background.
    border_uniform_max: float = 20.0
    # Fraction of border pixels that must be background for the image to count as "plain background".
    border_plain_fraction: float = 0.8
    # selfie_segmentation probability threshold.
    segmentation_threshold: float = 0.5
    # Smallest accepted character, as a fraction of the image area.
    min_area_fraction: float = 0.01
    # Snap the segmentation outline to image edges with GrabCut (about 0.6 s per image on 2 cores).
    refine_segmentation: bool = True


@dataclass
class MaskResult:
    mask: np.ndarray  # (H, W) uint8 0/255
    source: MaskSource
    border_background_fraction: float = 0.0


def _largest_components(binary: np.ndarray, keep_fraction: float = 0.15) -> np.ndarray:
    """Keeps the largest connected component plus any component at least keep_fraction of its size
    (a drawing's detached hat or hand survives; specks of paper texture do not)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return np.zeros_like(binary)
    areas = stats[1:, cv2.CC_STAT_AREA]
    biggest = int(areas.max())
    keep = [i + 1 for i, a in enumerate(areas) if a >= keep_fraction * biggest]
    return np.where(np.isin(labels, keep), 255, 0).astype(np.uint8)


def _fill_enclosed(fg: np.ndarray) -> np.ndarray:
    """Fills every background region that does not touch the image border (holes inside the outline)."""
    n, labels = cv2.connectedComponents((fg == 0).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, border[border > 0])
    return np.where(outside, 0, 255).astype(np.uint8)


def border_background_fraction(rgb: np.ndarray, options: MaskOptions) -> float:
    """Fraction of border pixels close (in Lab) to the border's median colour: ~1 for paper/studio walls."""
    b = max(2, min(rgb.shape[:2]) // 100)
    # Only the border strips are converted (Lab is per pixel: the same values as converting the image).
    strips = [rgb[:b], rgb[-b:], rgb[:, :b], rgb[:, -b:]]
    border = np.concatenate([cv2.cvtColor(np.ascontiguousarray(s), cv2.COLOR_RGB2LAB).reshape(-1, 3)
                             for s in strips]).astype(np.float32)
    med = np.median(border, axis=0)
    return float((np.linalg.norm(border - med, axis=1) < options.border_uniform_max).mean())


def threshold_mask(rgb: np.ndarray, options: MaskOptions | None = None) -> np.ndarray:
    """Segments a drawing or figure on a plain background (paper, wall) by its difference from the local
    background colour, then closes strokes into a solid silhouette."""
    options = options or MaskOptions()
    h, w = rgb.shape[:2]
    scale = min(h, w) / 500.0  # kernel sizes are tuned for a ~500 px short side
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    # Adaptive threshold follows uneven lighting across a photographed page.
    block = max(15, int(round(115 * scale)) | 1)
    dark = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, block, 8)
    # Coloured fills (crayon, marker) can be as light as the paper: catch them by chroma distance too.
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    bsz = max(2, min(h, w) // 100)
    border = np.concatenate([lab[:bsz].reshape(-1, 3), lab[-bsz:].reshape(-1, 3),
                             lab[:, :bsz].reshape(-1, 3), lab[:, -bsz:].reshape(-1, 3)])
    med = np.median(border, axis=0)
    spread = np.percentile(np.linalg.norm(border - med, axis=1), 95)
    dist = np.linalg.norm(lab - med, axis=2)
    colour = (dist > max(3.0 * spread, 25.0)).astype(np.uint8) * 255
    fg = cv2.bitwise_or(dark, colour)
    k = max(3, int(round(3 * scale)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel, iterations=2)
    fg = cv2.dilate(fg, kernel, iterations=2)
    # Small parts count too (a foot separated from the body by a light sock or a white outline); specks of
    # paper texture are far smaller than 2 % of the body.
    fg = _largest_components(fg, keep_fraction=0.02)
    fg = _fill_enclosed(fg)
    # One more pixel so the outline covers the anti-aliased outer edge of the stroke (matches the
    # AnimatedDrawings reference masks: IoU 0.96-0.99 on ../shared/data/drawings).
    fg = cv2.dilate(fg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    return _largest_components(fg, keep_fraction=0.02)


class SelfieSegmenter:
    """MediaPipe selfie_segmentation (256x256 RGB in [0, 1] -> person probability), run with LiteRT."""

    def __init__(self, model_path: pathlib.Path | None = None, num_threads: int = 2) -> None:
        if model_path is None:
            from services.pose.models import ensure_models

            model_path = ensure_models()["selfie_segmentation"]
        from ai_edge_litert.interpreter import Interpreter

        self._interp = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self._interp.allocate_tensors()
        inp = self._interp.get_input_details()[0]
        self._in_index = inp["index"]
        self._in_hw = (int(inp["shape"][1]), int(inp["shape"][2]))
        self._out_index = self._interp.get_output_details()[0]["index"]

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 person probability at the image's size."""
        h, w = rgb.shape[:2]
        # Letterbox to a square so the person's proportions are kept.
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        square = cv2.copyMakeBorder(rgb, top, side - h - top, left, side - w - left, cv2.BORDER_REPLICATE)
        x = cv2.resize(square, (self._in_hw[1], self._in_hw[0]), interpolation=cv2.INTER_AREA)
        self._interp.set_tensor(self._in_index, (x.astype(np.float32) / 255.0)[None])
        self._interp.invoke()
        prob = np.squeeze(self._interp.get_tensor(self._out_index)).astype(np.float32)
        prob = cv2.resize(prob, (side, side), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(prob[top: top + h, left: left + w])


def segmentation_mask(rgb: np.ndarray, segmenter: SelfieSegmenter | None = None,
                      options: MaskOptions | None = None) -> np.ndarray:
    options = options or MaskOptions()
    segmenter = segmenter or SelfieSegmenter()
    prob = segmenter.probability(rgb)
    # Smooth the upsampled 256 px probability so the outline follows image edges less blockily.
    prob = cv2.GaussianBlur(prob, (0, 0), max(1.0, min(rgb.shape[:2]) / 512.0))
    fg = (prob > options.segmentation_threshold).astype(np.uint8) * 255
    fg = _largest_components(fg, keep_fraction=0.3)
    if options.refine_segmentation and fg.any():
        fg = _grabcut_refine(rgb, fg)
        fg = _largest_components(fg, keep_fraction=0.3)
    return _fill_holes(fg)


def _grabcut_refine(rgb: np.ndarray, mask: np.ndarray, work_side_px: int = 512, band_fraction: float = 0.03
                    ) -> np.ndarray:
    """Snaps the coarse (256 px) segmentation outline to image edges with GrabCut in a band around it.

    The eroded mask is sure foreground, beyond the dilated mask sure background, the band between is
    decided by colour models; run at ``work_side_px`` to keep it well under a second.
    """
    h, w = mask.shape
    s = min(1.0, work_side_px / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    k = max(3, int(band_fraction * max(size)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    gc = np.full(m.shape, cv2.GC_BGD, np.uint8)
    gc[cv2.dilate(m, kernel) > 0] = cv2.GC_PR_BGD
    gc[m > 0] = cv2.GC_PR_FGD
    gc[cv2.erode(m, kernel) > 0] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    # GrabCut seeds its colour models with k-means on OpenCV's global RNG, whose state depends on whatever
    # ran before in the process: the same image then gave masks a few pixels apart. A fixed seed keeps
    # every analysis of an image identical.
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), gc, (0, 0, 0, 0), bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return mask  # degenerate colour models (e.g. a flat image): keep the segmentation as it is
    out = np.where((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD), 255.0, 0.0).astype(np.float32)
    return (cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR) > 127).astype(np.uint8) * 255


def _fill_holes(fg: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(fg)
    cv2.drawContours(out, contours, -1, 255, thickness=cv2.FILLED)
    return out


# A threshold-mask pixel counts as the person when it lies within this fraction of the image's short side of
# the person segmentation (the threshold outline is the sharper one; the segmentation says what is person).
PHOTO_AGREE_FRACTION = 0.025
# Segmentation is trusted only when it roughly agrees with the threshold mask (intersection over union):
# on a drawing the person model finds little or something else, and the drawing's mask stays as it is.
PHOTO_MIN_IOU = 0.6
# Segmented pixels within this Lab distance of the wall's colour are wall (between the legs, the
# segmentation's rim), not a missed arm.
PHOTO_WALL_DELTA = 10.0
# A missed part is added when it is at least this fraction of the threshold mask's area.
PHOTO_MIN_ADDED = 0.002


def refine_photo_mask(rgb: np.ndarray, mask: np.ndarray, segmenter: SelfieSegmenter | None = None,
                      options: MaskOptions | None = None) -> np.ndarray:
    """A photo's threshold mask checked against person segmentation.

    On a plain studio wall the threshold mask takes the person's cast shadow (darker than the wall) and
    loses skin or clothes as light as the wall. The shadow then moved with the torso as a grey panel and the
    lost forearm stayed painted on the background as a ghost that the viewer (and a pose detector) took
    for the arm. Kept: threshold pixels near the segmented person; added: segmented pixels the threshold
    missed that differ from the wall (the segmentation's coarse, stair-stepped outline and the wall it
    encloses between the legs are not taken).
    """
    options = options or MaskOptions()
    seg = segmentation_mask(rgb, segmenter, options) > 0
    thr = mask > 0
    union = int((seg | thr).sum())
    if not union or int((seg & thr).sum()) < PHOTO_MIN_IOU * union:
        return mask
    k = max(3, int(round(PHOTO_AGREE_FRACTION * min(mask.shape[:2]))) | 1)
    near = cv2.dilate(seg.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    b = max(2, min(rgb.shape[:2]) // 100)
    border = np.concatenate([lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3),
                             lab[:, -b:].reshape(-1, 3)])
    wall = np.linalg.norm(lab - np.median(border, axis=0), axis=2) < PHOTO_WALL_DELTA
    core = cv2.erode(seg.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    added = (core & ~thr & ~wall).astype(np.uint8)
    added = cv2.morphologyEx(added, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    # Only sizeable parts (a forearm): specks are shadowed wall in a crotch or an armpit.
    n, comp, stats, _ = cv2.connectedComponentsWithStats(added, connectivity=8)
    big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= PHOTO_MIN_ADDED * int(thr.sum())]
    added = np.isin(comp, big).astype(np.uint8)
    joined = np.where((thr & near) | (added > 0), 255, 0).astype(np.uint8)
    # Close the seam between the threshold outline and what was added (only there: elsewhere closing
    # would fill the wall in a crotch or an armpit).
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    closed = cv2.morphologyEx(joined, cv2.MORPH_CLOSE, kernel)
    seam = cv2.dilate(added, kernel, iterations=2) > 0
    joined = np.where(seam, closed, joined).astype(np.uint8)
    return _largest_components(joined, keep_fraction=0.02)


def has_real_alpha(image: np.ndarray) -> bool:
    """True when the image has an alpha channel that actually hides something (not fully opaque)."""
    return image.ndim == 3 and image.shape[2] == 4 and int(image[..., 3].min()) < 250


def compute_mask(image: np.ndarray, options: MaskOptions | None = None,
                 segmenter: SelfieSegmenter | None = None) -> MaskResult:
    """The character mask by the first source that applies (see the module docstring)."""
    options = options or MaskOptions()
    h, w = image.shape[:2]
    if has_real_alpha(image):
        mask = np.where(image[..., 3] >= 128, 255, 0).astype(np.uint8)
        result = MaskResult(_largest_components(mask, keep_fraction=0.05), MaskSource.ALPHA)
    else:
        rgb = np.ascontiguousarray(image[..., :3])
        plain = border_background_fraction(rgb, options)
        if plain >= options.border_plain_fraction:
            result = MaskResult(threshold_mask(rgb, options), MaskSource.THRESHOLD, plain)
        else:
            result = MaskResult(segmentation_mask(rgb, segmenter, options), MaskSource.SEGMENTATION, plain)
    area = float((result.mask > 0).mean())
    if area < options.min_area_fraction:
        raise NoPersonError("character.no_person",
                            f"no character found in the image (mask source {result.source.label} covers "
                            f"{area:.2%} of it)", limit=options.min_area_fraction, actual=round(area, 4))
    del h, w
    return result


def clean_texture(rgb: np.ndarray, mask: np.ndarray, alpha: np.ndarray | None = None,
                  background: np.ndarray | None = None, edge_px: int = 3, bleed_px: int = 6,
                  background_delta: float = 12.0) -> np.ndarray:
    """RGBA cut-out with straight alpha, cleaned of background colour at its edge.

    Pixels within ``edge_px`` of the outline whose colour is within ``background_delta`` (Lab) of the
    background behind them (``background``: the hole-filled image) are paper or wall caught by the mask;
    they, and ``bleed_px`` beyond the outline, get colours pushed outward from the character's own pixels,
    so neither the alpha edge nor bilinear filtering in the renderer shows a halo. A stroke drawn right at
    the edge differs from the background and is kept.
    """
    h, w = mask.shape[:2]
    # Nothing changes farther from the mask than the colour push reaches (one pixel per round) plus the 3x3
    # blurs' reach: work in the mask's box grown by that much. Blurs and erosion see zeros at the window's
    # edge exactly as they would in the whole image, so the result is the same pixel for pixel.
    rows, cols = np.flatnonzero((mask > 0).any(axis=1)), np.flatnonzero((mask > 0).any(axis=0))
    y0, y1, x0, x1 = 0, h, 0, w
    if len(rows):
        grow_px = 2 * edge_px + bleed_px + 3
        y0, y1 = max(0, int(rows[0]) - grow_px), min(h, int(rows[-1]) + grow_px + 1)
        x0, x1 = max(0, int(cols[0]) - grow_px), min(w, int(cols[-1]) + grow_px + 1)
    win = (slice(y0, y1), slice(x0, x1))
    rgb_w = np.ascontiguousarray(rgb[win])
    mask_w = np.ascontiguousarray(mask[win])
    m = mask_w > 0
    inner = cv2.erode(mask_w, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * edge_px + 1, 2 * edge_px + 1))) > 0
    known_b = inner.copy()
    band = m & ~inner
    d_cb = None
    if background is not None:
        lab = cv2.cvtColor(rgb_w, cv2.COLOR_RGB2LAB).astype(np.float32)
        bg_lab = cv2.cvtColor(np.ascontiguousarray(background[win]), cv2.COLOR_RGB2LAB).astype(np.float32)
        d_cb = np.linalg.norm(lab - bg_lab, axis=2)
        known_b |= band & (d_cb > background_delta)
    if not known_b.any():
        known_b = m
    known = known_b.astype(np.float32)
    colour = rgb_w.astype(np.float32) * known[..., None]
    out = rgb_w.astype(np.float32)
    for _ in range(2 * edge_px + bleed_px):
        num = cv2.blur(colour, (3, 3))
        den = cv2.blur(known, (3, 3))
        grow = (den > 1e-6) & (known == 0)
        if not grow.any():
            break
        colour[grow] = num[grow] / den[grow][:, None]
        out[grow] = colour[grow]
        known[grow] = 1.0
    out_u8 = np.clip(out, 0, 255).astype(np.uint8)
    result = np.zeros((h, w, 4), np.uint8)
    result[..., :3] = rgb
    result[y0:y1, x0:x1, :3] = out_u8
    if alpha is None:
        cover = m.astype(np.float32)
        if background is not None and d_cb is not None:
            # Edge matting: a band pixel C between the character colour F (pushed outward above) and the
            # background B behind it is covered by alpha ~ |C - B| / |F - B|. Without it the wall or paper
            # caught by the mask turns into an opaque rim of edge colour: a grey halo once scaled up.
            f_lab = cv2.cvtColor(out_u8, cv2.COLOR_RGB2LAB).astype(np.float32)
            d_fb = np.linalg.norm(f_lab - bg_lab, axis=2)
            est = np.clip(d_cb / np.maximum(d_fb, 1.0), 0.0, 1.0)
            # Where the character's own colour is close to the background nothing can be told apart: keep.
            est[d_fb < background_delta] = 1.0
            cover = np.where(band, np.minimum(cover, est), cover)
        # A 1 px feather so the cut-out's outline is anti-aliased.
        result[y0:y1, x0:x1, 3] = cv2.GaussianBlur(np.clip(cover * 255.0 + 0.5, 0, 255).astype(np.uint8), (3, 3),
                                                   0.7)
    else:
        result[..., 3] = alpha.astype(np.uint8)
    return result


def fill_background(rgb: np.ndarray, mask: np.ndarray, dilate_px: int = 7, work_side_px: int = 512) -> np.ndarray:
    """The image with the character's hole (mask dilated by ``dilate_px``) inpainted (Telea).

    Inpainting runs at ``work_side_px`` on the long side and only the hole is replaced at full size: Telea's
    cost grows with the hole's area, and a smooth fill needs no full-resolution detail.
    """
    h, w = rgb.shape[:2]
    hole = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1)))
    s = min(1.0, work_side_px / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
    small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
    filled = cv2.inpaint(small, small_hole, 5, cv2.INPAINT_TELEA)
    big = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    out = rgb.copy()
    out[hole > 0] = big[hole > 0]
    return out


# Envelope radii around the skeleton, as fractions of the character's height: a dress or a wide coat may
# reach this far from the trunk, a sleeve or trouser leg this far from its limb bone.
_TRUNK_REACH = 0.28
_LIMB_REACH = 0.11
# Legs get less: the floor between and beside the feet is the commonest thing segmentation adds.
_LEG_REACH = 0.065


# A segmentation mask refined by colour (``rgb`` given to skeleton_envelope): the detector's ankles on a
# drawn figure often sit well above the shoes (long stylised shins), so each leg's envelope runs on past
# the ankle by this fraction of the shin; the colour model, not the cut, then tells shoe from floor.
_SOLE_EXTENSION = 0.6
# Colour refinement trimap, as fractions of the character's height: within _CORE_REACH of a bone is surely
# the character; within the tight reach probably (a limb's own width); the rest of the envelope probably
# background (floor between the feet, sky seen between arm and skirt), everything else surely background.
_CORE_REACH = 0.006
_TIGHT_TRUNK_REACH = 0.07
_TIGHT_HEAD_REACH = 0.1
_TIGHT_LIMB_REACH = 0.05
_TIGHT_LEG_REACH = 0.035
_GRABCUT_ROUNDS = 1
# Holes the colour refinement opens inside the figure smaller than this fraction of its area are filled.
_MAX_FILLED_HOLE = 0.004


def _bone_segments(joints: dict[str, np.ndarray], extend_soles: bool) -> list[tuple[str, Any, np.ndarray,
                                                                                  np.ndarray]]:
    """(name, part, a, b) for every bone whose joints are known, plus a sole (``left_sole``) past each
    ankle when asked."""
    from services.render.skin import BONE_SPECS, Part

    out = [(spec.name, spec.part, joints[spec.parent], joints[spec.child]) for spec in BONE_SPECS
           if spec.parent in joints and spec.child in joints]
    if extend_soles and "nose" in joints and "head_top" in joints:
        # The crown: hair (dark on a night sky) and what is worn on it lie beyond the nose.
        out.append(("head", Part.TORSO, joints["nose"], joints["head_top"]))
    if extend_soles:
        for side, part in (("left", Part.LEFT_LEG), ("right", Part.RIGHT_LEG)):
            knee, ankle = joints.get(f"{side}_knee"), joints.get(f"{side}_ankle")
            if knee is not None and ankle is not None:
                out.append((f"{side}_sole", part, ankle, ankle + _SOLE_EXTENSION * (ankle - knee)))
    return out


def skeleton_envelope(mask: np.ndarray, joints: dict[str, tuple[float, float]], height_px: float,
                      rgb: np.ndarray | None = None, unsure_ankles: tuple[str, ...] = ()) -> np.ndarray:
    """The mask cut to the region a body with these joints can occupy.

    Person segmentation (and GrabCut after it) happily includes the floor the feet stand on, a shadow, or a
    prop next to the body; those would then be skinned to the nearest bone and swing with the legs. Pixels
    farther from every bone than a body part can reach, or below the feet, are dropped; then only the
    connected parts that touch the skeleton are kept. With ``rgb`` the envelope is then refined by colour
    (see ``_skeleton_grabcut``): an illustration on a busy background (a lit road between the legs, sky
    between arm and skirt) is otherwise kept wherever it lies within a body part's reach.
    ``unsure_ankles`` ("left", "right"): ankles the detector placed with low visibility, in practice well
    above the shoe; the segmentation below them along the shin is then taken as the character's foot.
    """
    from services.render.skin import Part, complete_joints, segment_distance

    full = complete_joints(joints)
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if not len(ys) or height_px <= 0:
        return mask
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    keep = np.zeros(len(pts), dtype=bool)
    segments = _bone_segments(full, extend_soles=rgb is not None)
    for name, part, a, b in segments:
        reach = (_TRUNK_REACH if part == Part.TORSO
                 else _LEG_REACH if part in (Part.LEFT_LEG, Part.RIGHT_LEG) else _LIMB_REACH) * height_px
        if name in ("neck", "head"):
            reach = 0.14 * height_px  # the head: hair and hats, not the wall beside it
        # Only pixels not kept yet and inside the segment's box grown by its reach (plus a pixel against
        # rounding) can be within reach: the distance is computed for those alone (``ys`` is sorted, so the
        # box's rows are one slice).
        lo, hi = np.minimum(a, b) - reach - 1.0, np.maximum(a, b) + reach + 1.0
        i0, i1 = int(np.searchsorted(ys, lo[1], side="left")), int(np.searchsorted(ys, hi[1], side="right"))
        row_xs = xs[i0:i1]
        idx = i0 + np.flatnonzero(~keep[i0:i1] & (row_xs >= lo[0]) & (row_xs <= hi[0]))
        keep[idx[segment_distance(pts[idx], a, b) <= reach]] = True
    feet = [full[n][1] for n in ("left_heel", "right_heel", "left_foot_index", "right_foot_index",
                                 "left_ankle", "right_ankle") if n in full]
    feet += [float(b[1]) for name, _, _, b in segments if name.endswith("_sole")]
    if feet:
        keep &= pts[:, 1] <= max(feet) + 0.03 * height_px
    out = np.zeros_like(mask)
    out[ys[keep], xs[keep]] = 255
    if rgb is not None:
        out = _skeleton_grabcut(rgb, out, segments, height_px, unsure_ankles)
    # Keep the components that contain a joint (a cut may leave a detached island of floor).
    n, labels = cv2.connectedComponents(out, connectivity=8)
    if n <= 1:
        return mask
    hit = set()
    for x, y in full.values():
        xi, yi = int(round(float(x))), int(round(float(y)))
        if 0 <= xi < w and 0 <= yi < h and labels[yi, xi] > 0:
            hit.add(int(labels[yi, xi]))
    if not hit:
        return mask
    result = np.where(np.isin(labels, sorted(hit)), 255, 0).astype(np.uint8)
    # An opening removes the thin bridges the cut leaves where floor touched a foot.
    k = max(3, int(0.006 * height_px) | 1)
    opened = cv2.morphologyEx(result, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return opened if opened.any() else result


def _skeleton_grabcut(rgb: np.ndarray, mask: np.ndarray, segments: list[tuple[str, Any, np.ndarray, np.ndarray]],
                      height_px: float, unsure_ankles: tuple[str, ...] = (), work_side_px: int = 512
                      ) -> np.ndarray:
    """The envelope-cut segmentation mask refined by GrabCut on a trimap built from the skeleton.

    Person segmentation on an illustration covers whatever lies between the body parts (the lit road
    between the legs, the sky between a sleeve and the skirt) and the envelope keeps it when it is within a
    part's reach. Near the bones the pixels are the character's; the rest of the envelope is only probably
    background, and colour models learnt from the surely-outside background (the same road, the same sky)
    take it off. Runs at ``work_side_px``; the result never grows the mask.
    """
    from services.render.skin import Part, segment_distance

    h, w = mask.shape
    s = min(1.0, work_side_px / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST) > 0
    # Pixel centres in full-size coordinates, per axis: each segment only looks at the grid rectangle its
    # largest threshold can reach (plus a pixel against rounding), not at every pixel.
    gx = (np.arange(size[0]).astype(np.float64) + 0.5) / s - 0.5
    gy = (np.arange(size[1]).astype(np.float64) + 0.5) / s - 0.5
    core = np.zeros(m.shape, dtype=bool)
    tight = np.zeros(m.shape, dtype=bool)
    for name, part, a, b in segments:
        reach = (_TIGHT_HEAD_REACH if name in ("neck", "head") else _TIGHT_TRUNK_REACH if part == Part.TORSO
                 else _TIGHT_LEG_REACH if part in (Part.LEFT_LEG, Part.RIGHT_LEG) else _TIGHT_LIMB_REACH)
        # A sole is a guess: surely the character only below an ankle the detector was unsure of (dark
        # shoes on a dark road are otherwise given to the road).
        sure = not name.endswith("_sole") or name[: -len("_sole")] in unsure_ankles
        core_px = max(1.0 / s, _CORE_REACH * height_px)
        lo = np.minimum(a, b) - max(reach * height_px, core_px) - 1.0
        hi = np.maximum(a, b) + max(reach * height_px, core_px) + 1.0
        x0, x1 = int(np.searchsorted(gx, lo[0], side="left")), int(np.searchsorted(gx, hi[0], side="right"))
        y0, y1 = int(np.searchsorted(gy, lo[1], side="left")), int(np.searchsorted(gy, hi[1], side="right"))
        if x1 <= x0 or y1 <= y0:
            continue
        px, py = np.meshgrid(gx[x0:x1], gy[y0:y1])
        d = segment_distance(np.stack([px.ravel(), py.ravel()], axis=1), a, b).reshape(y1 - y0, x1 - x0)
        tight[y0:y1, x0:x1] |= d <= reach * height_px
        if name in ("neck", "head"):
            # The head is where person segmentation is surest and colour least telling (dark hair before a
            # wooden door): the segmentation stands there.
            core[y0:y1, x0:x1] |= d <= reach * height_px
        if sure:
            core[y0:y1, x0:x1] |= d <= core_px
    core &= m
    tight &= m
    if not core.any() or not (~m).any():
        return mask
    gc = np.full(m.shape, cv2.GC_BGD, np.uint8)
    gc[m] = cv2.GC_PR_BGD
    gc[tight] = cv2.GC_PR_FGD
    gc[core] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)  # see _grabcut_refine: the same image must always give the same mask
    try:
        # One round: the colour models stay those of the trimap (what is near the bones, what is outside).
        # More rounds let the glow kept in the first pull the lilac sky beside it into the figure's model.
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), gc, (0, 0, 0, 0), bgd, fgd, _GRABCUT_ROUNDS,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return mask
    fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    # Small holes (a star on the dress, a glint of road through a glowing sleeve) are the character's.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(1 - fg, connectivity=4)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    limit = _MAX_FILLED_HOLE * max(1, int(fg.sum()))
    small_holes = [i for i in range(1, n) if i not in border and stats[i, cv2.CC_STAT_AREA] <= limit]
    fg[np.isin(labels, small_holes)] = 1
    out = (cv2.resize(fg.astype(np.float32) * 255.0, (w, h), interpolation=cv2.INTER_LINEAR) > 127)
    return np.where(out & (mask > 0), 255, 0).astype(np.uint8)


def local_threshold_mask(rgb: np.ndarray, joints: dict[str, tuple[float, float]],
                         options: MaskOptions | None = None, margin_fraction: float = 0.35) -> np.ndarray:
    """Threshold segmentation in a window around given joints, keeping what touches the skeleton.

    For a drawing photographed with its surroundings (a hand, the table, other doodles on the page): the
    whole image has no plain border, but the paper right around the figure does. Raises
    ``character.no_person`` when nothing is found there.
    """
    h, w = rgb.shape[:2]
    pts = np.array(list(joints.values()), dtype=np.float64).reshape(-1, 2)
    if not len(pts):
        raise NoPersonError("character.no_person", "no joints to segment the character around",
                            limit=">= 1 joint", actual=0)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    margin = margin_fraction * float(max(hi - lo)) + 8.0
    x0, y0 = (max(0, int(v - margin)) for v in lo)
    x1, y1 = int(min(w, hi[0] + margin + 1)), int(min(h, hi[1] + margin + 1))
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    # Kernel sizes in threshold_mask scale with the crop; very large crops are segmented at ~1000 px.
    s = min(1.0, 1000.0 / max(crop.shape[:2]))
    small = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1.0 else crop
    fg = threshold_mask(small, options)
    if s < 1.0:
        fg = (cv2.resize(fg, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR) > 127).astype(
            np.uint8) * 255
    n, labels = cv2.connectedComponents(fg, connectivity=8)
    # Components a joint lies on or near (hand-placed joints on a stick figure sit beside the stroke).
    reach = max(3, int(0.03 * float(max(hi - lo))))
    hit: set[int] = set()
    for x, y in pts - np.array([x0, y0]):
        xi, yi = int(round(x)), int(round(y))
        win = labels[max(0, yi - reach): yi + reach + 1, max(0, xi - reach): xi + reach + 1]
        hit.update(int(v) for v in np.unique(win) if v > 0)
    out = np.zeros((h, w), np.uint8)
    if hit:
        out[y0:y1, x0:x1] = np.where(np.isin(labels, sorted(hit)), 255, 0).astype(np.uint8)
    if not out.any():
        raise NoPersonError("character.no_person", "no drawn figure found around the given joints",
                            limit="strokes near the joints", actual="none")
    return out
