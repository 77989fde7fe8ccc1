"""The deterministic renderer: skinned body-part layers, rasterised with OpenGL, composited, encoded.

Every frame is a pure function of (rig, whole sequence, frame index, options), so any frame range renders
to exactly the pixels of a full render; that is what lets a job be split over several render workers.
"""

from __future__ import annotations

import contextlib
import pathlib
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from motion.errors import InputError
from motion.media import EncoderOptions
from motion.rig import CharacterRig
from motion.skeleton import SkeletonFrame, SkeletonSequence
from services.render.composite import (
    Background,
    BackgroundMode,
    FrameGeometry,
    background_image,
    frame_geometry,
)
from services.render.encode import EncodeStats, encode_frames, rgba_frame_array
from services.render.face import (
    MOUTH_RGB,
    FaceRig,
    face_pose,
    face_rig,
    region_boxes,
    shader_uniforms,
    triangles_in_boxes,
)
from services.render.hands import HandRig, articulate, hand_rig, target_hand
from services.render.layers import RigModel, build_rig_model
from services.render.outline import OUTLINE_SOFT, outline_threshold
from services.render.raster import Rasterizer
from services.render.skin import Part, Skin, bone_transforms, deform, frame_joints, swap_side

# A limb goes behind the torso when its joints are this far (metres, world z) behind the trunk, and comes
# back in front only once it is clearly forward again: the gap stops layers flickering near the plane.
BEHIND_ENTER_M = 0.18
BEHIND_LEAVE_M = 0.08

_LIMB_JOINTS = {
    Part.LEFT_ARM: ("left_elbow", "left_wrist"),
    Part.RIGHT_ARM: ("right_elbow", "right_wrist"),
    Part.LEFT_LEG: ("left_knee", "left_ankle"),
    Part.RIGHT_LEG: ("right_knee", "right_ankle"),
}
_TRUNK = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


# Segment-friendly (every segment opens on a keyframe with identical stream headers, so chunks join
# without re-encoding). x264 "superfast" costs ~8 ms of CPU per 720p frame against ~14 ms for
# "veryfast" (measured on this 2-core node) for ~35 % larger files at the same CRF: on a small CPU
# node the encoder, not the rasteriser, bounds the real-time factor.
# One x264 thread per segment: ranges render in parallel (two or more at once on a node), and x264's frame
# threads only add CPU there (720x1244 superfast: 5.9 ms of CPU a frame with 1 thread, 6.6 with 2, 7.0 with
# 4; two 150-frame ranges side by side: ~7 % less wall and CPU with 1). The bitstream depends on the thread
# count, which is fixed here, so output stays byte-identical across machines.
DEFAULT_ENCODER = EncoderOptions(segment=True, preset="superfast", threads=1)


@dataclass
class RenderOptions:
    resolution: str = "720p"  # "720p" | "1080p": the output's short side
    background: str = "keep"  # keep | solid:#RRGGBB | image:PATH | transparent
    width: int = 0  # explicit output size in pixels (0 = from resolution and the image's aspect)
    height: int = 0
    samples: int = 0  # MSAA samples (0: edges are anti-aliased by the textures' alpha alone)
    encoder: EncoderOptions | None = None
    outlines: bool = True  # line drawings: front limbs' strokes stay on top (services/render/outline.py)


def _name_index() -> dict[str, int]:
    from motion.skeleton import BodyLandmark

    return {lm.name.lower(): int(lm) for lm in BodyLandmark}


def source_frames(seq: SkeletonSequence) -> list[int]:
    """For each frame, the index of the frame whose pose it shows: itself, else the nearest earlier (then
    later) frame with a person; -1 when the sequence has none (the rest pose is shown)."""
    present = [f.present and f.body is not None for f in seq.frames]
    out: list[int] = []
    last = -1
    for i, p in enumerate(present):
        if p:
            last = i
        out.append(last)
    nxt = -1
    for i in range(len(present) - 1, -1, -1):
        if present[i]:
            nxt = i
        if out[i] < 0:
            out[i] = nxt
    return out


def depth_states(seq: SkeletonSequence, parts: list[Part], src: list[int] | None = None) -> np.ndarray:
    """(T, n_parts) depth keys per frame: 1 = behind the torso, -1 = in front, 0 = the torso.

    Computed over the whole sequence with hysteresis, so it is the same whichever range is rendered.
    """
    idx = _name_index()
    if src is None:
        src = source_frames(seq)
    keys = np.zeros((len(seq.frames), len(parts)), dtype=np.float64)
    behind = {p: False for p in parts}
    for t in range(len(seq.frames)):
        s = src[t]
        frame = seq.frames[s] if s >= 0 else None
        pts = None
        if frame is not None:
            pts = frame.world if frame.world is not None else frame.body
        for j, part in enumerate(parts):
            if part == Part.TORSO:
                continue
            if pts is not None:
                z = np.asarray(pts, dtype=np.float64)[:, 2]
                if frame is not None and frame.world is None:
                    z = z / max(float(seq.height), 1.0) * 1.7  # image z is in pixels; metres-ish scale
                names: tuple[str, ...] = _LIMB_JOINTS[part]
                if frame is not None and frame.mirrored:
                    names = tuple(swap_side(n) for n in names)  # the layer follows the other side's joints
                rel = float(np.mean(z[[idx[n] for n in names]]) - np.mean(z[[idx[n] for n in _TRUNK]]))
                if behind[part] and rel < BEHIND_LEAVE_M:
                    behind[part] = False
                elif not behind[part] and rel > BEHIND_ENTER_M:
                    behind[part] = True
                # Among limbs on the same side of the torso, the farther one is drawn first.
                keys[t, j] = (1.0 if behind[part] else -1.0) + 0.001 * float(np.clip(rel, -0.9, 0.9))
            else:
                keys[t, j] = -1.0
    return keys


_STATES_LOCK = threading.Lock()
_STATES: dict[tuple[int, tuple[int, ...]], tuple[weakref.ref[SkeletonSequence], int, list[int], np.ndarray]] = {}


def _sequence_states(seq: SkeletonSequence, parts: list[Part]) -> tuple[list[int], np.ndarray]:
    """``source_frames`` and ``depth_states`` of a sequence, computed once per sequence object and layer set:
    every range of a job builds a Renderer and would redo both over the whole sequence (~30 ms of GIL-held
    Python a range for 300 frames). Entries die with their sequence (weak reference)."""
    key = (id(seq), tuple(int(p) for p in parts))
    with _STATES_LOCK:
        hit = _STATES.get(key)
        if hit is not None and hit[0]() is seq and hit[1] == len(seq.frames):
            return hit[2], hit[3]
    src = source_frames(seq)
    depth = depth_states(seq, parts, src)
    with _STATES_LOCK:
        for k in [k for k, v in _STATES.items() if v[0]() is None]:
            del _STATES[k]
        _STATES[key] = (weakref.ref(seq), len(seq.frames), src, depth)
    return src, depth


@dataclass
class _FrameInputs:
    positions_px: np.ndarray
    indices: np.ndarray
    outline: np.ndarray | None
    face_span: tuple[int, int] | None
    face: dict[str, tuple[float, ...]] | None


class Renderer:
    """Renders frames of a retargeted sequence with one rig; holds a GL context (a context manager)."""

    def __init__(self, rig: CharacterRig, opts: RenderOptions | None = None, model: RigModel | None = None) -> None:
        self.rig = rig
        self.opts = opts or RenderOptions()
        self.background = Background.parse(self.opts.background)
        self.geometry: FrameGeometry = frame_geometry(rig.width, rig.height, self.opts.resolution,
                                                      self.opts.width, self.opts.height)
        self.model = model if model is not None else build_rig_model(rig)
        if not self.model.layers:
            raise InputError("render.no_layers", "the character has no drawable body parts",
                             limit=">= 1 layer", actual=0)
        layers = self.model.layers
        self.parts = [layer.part for layer in layers]
        counts = [len(layer.mesh.vertices) for layer in layers]
        self._vertex_offset = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._rest = np.concatenate([layer.mesh.vertices for layer in layers])
        self._skin = Skin.concatenate([layer.skin for layer in layers])
        uvs = self._rest / np.array([rig.width, rig.height], dtype=np.float64)
        layer_ids = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
        self._tri = [layer.mesh.triangles.astype(np.int32) + int(self._vertex_offset[i])
                     for i, layer in enumerate(layers)]
        textures = np.stack([layer.texture_premul for layer in layers])
        bg = background_image(self.background, self.geometry, rig.background_rgb)
        self._raster = Rasterizer(self.geometry.width_px, self.geometry.height_px, textures, uvs, layer_ids,
                                  bg, samples=self.opts.samples,
                                  straight_alpha=self.background.mode == BackgroundMode.TRANSPARENT,
                                  texture_scale=self.geometry.scale)
        # Face warps (blink, jaw) act on the layer holding the head, when the face is big enough to show them.
        self.face: FaceRig | None = (face_rig(rig.face, self.geometry.scale)
                                     if Part.TORSO in self.parts else None)
        self._face_layer = self.parts.index(Part.TORSO) if self.face is not None else -1
        # Only the head layer's triangles that touch the eye/mouth regions go through the (costly) face
        # warp program: they are moved to the end of that layer's triangle list, a fixed split per rig.
        self._face_triangles = 0
        if self.face is not None:
            i = self._face_layer
            hit = triangles_in_boxes(self._rest, self._tri[i], region_boxes(self.face))
            self._tri[i] = np.concatenate([self._tri[i][~hit], self._tri[i][hit]])
            self._face_triangles = int(hit.sum())
        # Finger bones where the character's hands were detected and are big enough in the output.
        self.hands: list[HandRig] = []
        for side, part, lm in (("left", Part.LEFT_ARM, rig.left_hand), ("right", Part.RIGHT_ARM, rig.right_hand)):
            if part in self.parts:
                i = self.parts.index(part)
                cand = np.arange(self._vertex_offset[i], self._vertex_offset[i + 1])
                hand = hand_rig(side, lm, self._rest, cand, self.geometry.scale)
                if hand is not None and len(hand.vertex_index):
                    self.hands.append(hand)
        # Line drawings keep every front limb's strokes on top (overlapping fat legs keep their outlines).
        self.outline_luma = outline_threshold(rig.texture_rgba, rig.mask, has_face=rig.face is not None)
        if not self.opts.outlines:
            self.outline_luma = None
        if self.outline_luma is not None:
            self._raster.set_outline(self.outline_luma, OUTLINE_SOFT)
        self._cache_key: int | None = None
        self._src: list[int] = []
        self._depth = np.zeros((0, len(layers)))

    @property
    def alpha(self) -> bool:
        return self.background.mode == BackgroundMode.TRANSPARENT

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._raster.close()

    # ---- per frame ---------------------------------------------------------------------------------
    def _prepare(self, seq: SkeletonSequence) -> None:
        key = id(seq)
        if self._cache_key != key or len(self._src) != len(seq.frames):
            self._src, self._depth = _sequence_states(seq, self.parts)
            self._cache_key = key

    def deformed_vertices(self, frame: SkeletonFrame | None) -> np.ndarray:
        """All layers' vertices (V, 2) in character-image pixels for one frame (rest pose for None)."""
        model = self.model
        target = frame_joints(frame) if frame is not None else model.joints
        tf = bone_transforms(model.bones, target)
        rest = self._rest
        for hand in self.hands:
            lm = target_hand(frame, hand.side)
            if lm is not None:
                rest = articulate(rest, hand, lm)
        # All layers in one call: every layer's skin indexes the same bones.
        return deform(rest, self._skin, tf)

    def draw_order(self, frame_index: int | None) -> list[int]:
        """Layer indices back to front for a frame (rest order: limbs over the torso)."""
        if frame_index is None or not len(self._depth):
            keys = np.array([0.0 if p == Part.TORSO else -1.0 for p in self.parts])
        else:
            keys = self._depth[frame_index]
        # Stable sort on (-key, part) keeps ties deterministic.
        return sorted(range(len(self.parts)), key=lambda i: (-float(keys[i]), int(self.parts[i])))

    def render_frame(self, seq: SkeletonSequence | None, index: int | None, i420: bool = False) -> np.ndarray:
        """One frame as (H, W, 4) uint8 straight-alpha RGBA (``seq=None``: the rest pose), or as packed
        I420 (H * 3/2, W) with ``i420``."""
        self._submit(self._frame_inputs(seq, index), i420)
        return self._raster.read(i420=i420)

    def _frame_inputs(self, seq: SkeletonSequence | None, index: int | None) -> _FrameInputs:
        """Everything a frame's drawing needs, computed on the CPU without touching GL state."""
        frame = None
        if seq is not None and index is not None:
            self._prepare(seq)
            s = self._src[index]
            frame = seq.frames[s] if s >= 0 else None
        verts = self.deformed_vertices(frame)
        g = self.geometry
        pos = verts * g.scale + np.array(g.offset_px)
        order = self.draw_order(index if seq is not None else None)
        indices = np.concatenate([self._tri[i] for i in order])
        face = self._face_uniforms(frame)
        face_span = None
        if face is not None:
            first = sum(len(self._tri[i]) for i in order[:order.index(self._face_layer)])
            face_span = (first + len(self._tri[self._face_layer]) - self._face_triangles, self._face_triangles)
        outline = None
        if self.outline_luma is not None:
            keys = self._depth[index] if seq is not None and index is not None and len(self._depth) else None
            front = [i for i in order if self.parts[i] != Part.TORSO and (keys is None or keys[i] < 0)]
            outline = np.concatenate([self._tri[i] for i in front]) if front else None
        return _FrameInputs(pos, indices, outline, face_span, face)

    def _submit(self, inputs: _FrameInputs, i420: bool) -> None:
        if inputs.face is not None:  # else no face_span either: the head draws as the plain texture
            self._raster.set_face(inputs.face, MOUTH_RGB)
        self._raster.submit(inputs.positions_px, inputs.indices, inputs.outline, inputs.face_span, i420=i420)

    def _face_uniforms(self, frame: SkeletonFrame | None) -> dict[str, tuple[float, ...]] | None:
        """This frame's face warp uniforms; None when there is none (the head draws as the plain texture)."""
        if self.face is None or not self._face_triangles:
            return None
        pose = face_pose(self.face, frame)
        if pose.neutral:
            return None
        return shader_uniforms(self.face, pose)

    def render_frames(self, seq: SkeletonSequence, start: int = 0, end: int | None = None,
                      i420: bool = False, out: Callable[[], np.ndarray] | None = None) -> Iterator[np.ndarray]:
        """Frames [start, end) of ``seq``; each is independent of which range is asked for. With ``i420``
        (opaque output only, see ``supports_i420``) frames come as packed BT.709 I420 for the encoder.
        ``out`` (RGBA only): makes each frame's (H, W, 4) array, e.g. ``encode.rgba_frame_array`` so pixels land
        in the encoder's own frame."""
        stop = len(seq.frames) if end is None or end <= 0 else min(end, len(seq.frames))
        if start < 0 or start > stop:
            raise InputError("render.frame_range", "frame range is outside the sequence",
                             limit=f"0 <= start <= {stop}", actual=[start, end])
        # One frame in flight: frame i rasterises (llvmpipe's threads; a GPU) while the CPU skins frame i + 1.
        # Each frame's pixels depend only on its own inputs, so this is the same as rendering them one by one.
        if start >= stop:
            return
        self._submit(self._frame_inputs(seq, start), i420)
        for i in range(start, stop):
            nxt = self._frame_inputs(seq, i + 1) if i + 1 < stop else None
            pixels = self._raster.read(i420=i420, out=out() if out is not None and not i420 else None)
            if nxt is not None:
                # The reader may hold on to ``pixels`` (a fresh buffer per read) while the next frame draws.
                self._submit(nxt, i420)
            yield pixels

    @property
    def supports_i420(self) -> bool:
        return self._raster.supports_i420

    @property
    def prefers_i420(self) -> bool:
        return self._raster.prefers_i420


def _counted(frames: Iterator[np.ndarray], total: int, progress: Callable[[int, int], None]) -> Iterator[np.ndarray]:
    for n, frame in enumerate(frames, start=1):
        yield frame
        progress(n, total)


def render_video(rig: CharacterRig, seq: SkeletonSequence, out_path: str | pathlib.Path,
                 opts: RenderOptions | None = None, audio_from: str | pathlib.Path | None = None,
                 start: int = 0, end: int | None = None, stats: EncodeStats | None = None,
                 model: RigModel | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 renderer: Renderer | None = None) -> pathlib.Path:
    """Renders frames [start, end) and encodes them (H.264 MP4; VP9+alpha WebM for ``transparent``).

    Audio from ``audio_from`` is cut to the same time span. A range render is a segment that
    ``motion.media.concat_segments`` joins without re-encoding. ``renderer``: an open Renderer for this rig
    and these options, created in this thread, to use instead of a new one (it is left open); a frame's
    pixels do not depend on what the renderer drew before.
    """
    opts = opts or RenderOptions()
    out = pathlib.Path(out_path)
    stop = len(seq.frames) if end is None or end <= 0 else min(end, len(seq.frames))
    if stop <= start:
        raise InputError("render.frame_range", "nothing to render in the frame range",
                         limit=f"start < {stop}", actual=[start, end])
    with contextlib.nullcontext(renderer) if renderer is not None else Renderer(rig, opts, model=model) as r:
        if r.alpha and out.suffix.lower() not in (".webm", ".mov"):
            raise InputError("output.format", "transparent output is VP9 WebM (.webm) or ProRes (.mov)",
                             limit=".webm|.mov", actual=out.suffix)
        enc = opts.encoder or DEFAULT_ENCODER
        audio_start_s = start / seq.fps if seq.fps > 0 else 0.0
        # H.264 MP4 is yuv420p: a GPU converts colours in a shader; on llvmpipe swscale from RGBA in the
        # writer thread costs less CPU than the shader pass (see Rasterizer.prefers_i420).
        i420 = r.prefers_i420 and not r.alpha and out.suffix.lower() in (".mp4", ".m4v")
        # H.264 from RGBA: the rasteriser reads each frame into the PyAV frame the writer converts (no copy).
        direct = not i420 and not r.alpha and out.suffix.lower() in (".mp4", ".m4v", ".mov")
        w, h = r.geometry.width_px, r.geometry.height_px
        frames = r.render_frames(seq, start, stop, i420=i420,
                                 out=(lambda: rgba_frame_array(w, h)) if direct else None)
        if progress is not None:
            frames = _counted(frames, stop - start, progress)
        result = encode_frames(
            frames, out, r.geometry.width_px, r.geometry.height_px, seq.fps,
            audio_from=audio_from, audio_start_s=audio_start_s,
            audio_duration_s=(stop - start) / seq.fps if seq.fps > 0 else None,
            alpha=r.alpha, options=enc)
    if stats is not None:
        stats.frames, stats.render_s, stats.encode_s, stats.wall_s = (
            result.frames, result.render_s, result.encode_s, result.wall_s)
    return out
