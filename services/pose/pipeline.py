"""Whole-body pose extraction (body, hands, face) around the MediaPipe legacy .tflite models.

Body: pose detector (letterbox 224, [-1, 1], SSD anchors, weighted NMS) -> rotated ROI -> landmark model
(256, [0, 1]) -> heatmap refinement -> inverse projection; the next frame's ROI comes from the smoothed
auxiliary landmarks; when the pose flag drops we re-detect in the same frame (MediaPipe waits a frame).
Hands (holistic style): ROI from the body's wrist/index/pinky, refined by hand_recrop, hand landmark model.
Face: ROI from the body's face points, refined by the short-range face detector, face landmark model.

Frames with no person are `SkeletonFrame.missing`; a video where no frame has a person raises
`InputError("pose.no_person")`.
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from motion.errors import InputError
from motion.media import iter_frames, probe_video
from motion.skeleton import (
    N_BODY,
    N_FACE,
    N_HAND,
    BodyLandmark,
    Face,
    FaceExpression,
    Hand,
    SkeletonFrame,
    SkeletonSequence,
)
from services.pose import geometry as g
from services.pose.filters import (
    BODY_AUX_FILTER,
    BODY_IMAGE_FILTER,
    BODY_WORLD_FILTER,
    LandmarkSmoother,
    OneEuroParams,
)
from services.pose.models import WHEEL_SHA256, ensure_models
from services.pose.runtime import Model, get_runtime

# 2: tracked hand/face ROIs skip hand_recrop and the face detector; 3: no hand/face model runs when the body puts
# that part's whole search ROI outside the frame (other frames' output is unchanged).
PIPELINE_VERSION = 3
# Hands and face in holistic use the same image-landmark filter constants as the body.
HAND_FILTER = OneEuroParams(min_cutoff=0.05, beta=80.0)
FACE_FILTER = OneEuroParams(min_cutoff=0.05, beta=80.0)
# A lost person is searched near where they were for this long before we take the largest one again.
REACQUIRE_WINDOW_S = 1.0
FACE_ROI_KEEP_FRAMES = 3
ProgressFn = Callable[[int, int], None]
FrameSink = Callable[[SkeletonFrame, np.ndarray], None]
# A landmark run that passed its flag: hand (pixels, world, score, selfie 'Left' prob., next frame's ROI) and
# face (pixels, score, next frame's ROI). The next ROI is computed once, for the tracking test and the state.
_HandHit = tuple[np.ndarray, np.ndarray, float, float, g.Rect]
_FaceHit = tuple[np.ndarray, float, g.Rect]

# pose_landmark_full's outputs by name: landmarks (39x5), pose flag, segmentation mask 256x256 (never read; the
# litert runtime drops it and its decoder, ~35 % of the model's CPU time), heatmap 64x64x39, world (39x3).
POSE_LM_LANDMARKS, POSE_LM_FLAG, POSE_LM_SEGMENTATION, POSE_LM_HEATMAP, POSE_LM_WORLD = (
    "Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4")

_POSE_ANCHORS = g.ssd_anchors(g.POSE_ANCHORS)
_FACE_ANCHORS = g.ssd_anchors(g.FACE_ANCHORS)


@dataclass
class PoseOptions:
    runtime: str = "litert"
    hands: bool = True
    face: bool = True
    smoothing: bool = True
    # 0 = follow the largest person; k >= 1 = the k-th person from the left where people first appear.
    track_id: int = 0
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    max_duration_s: float = 0.0  # 0 = the whole video
    # XNNPACK threads per model. The body and the three parts (each with its own interpreter) already run in
    # parallel threads, so on 2 free cores 1 thread is faster (1080p whole body: ~33 vs ~30 frames/s, and
    # ~8 ms less CPU a frame); on a machine loaded by other work 2 can win on wall time.
    num_threads: int = 1
    # Hands/face keep last frame's landmark-derived ROI without running hand_recrop / the face detector
    # while the result stays on the body's wrist/nose and passes RoiTracking's test (see _hand, _face).
    track_rois: bool = True

    def validate(self) -> None:
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"pose.{name}", f"{name} must be within [0, 1]", limit="0..1", actual=v)
        if self.max_duration_s < 0:
            raise InputError("pose.max_duration_s", "max_duration_s must be >= 0", limit=">=0",
                             actual=self.max_duration_s)
        if self.track_id < 0:
            raise InputError("pose.track_id", "track_id must be >= 0", limit=">=0", actual=self.track_id)

    def digest(self) -> str:
        """Identifies everything that changes the output (num_threads does not)."""
        d = asdict(self)
        d.pop("num_threads")
        d.update(pipeline_version=PIPELINE_VERSION, models=WHEEL_SHA256)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


@dataclass
class _BodyResult:
    body: np.ndarray  # (33, 5) px
    world: np.ndarray  # (33, 5) m
    aux: np.ndarray  # (2, 5) px
    score: float
    roi: g.Rect
    track_id: int = 1


@dataclass
class _InFlight:
    """A frame whose body is done and whose parts (left hand, right hand, face) may still be running."""

    index: int
    t_s: float
    rgb: np.ndarray
    res: _BodyResult | None
    parts: tuple[Future[Hand | None] | None, Future[Hand | None] | None, Future[Face | None] | None]


@dataclass
class _Tracker:
    roi: g.Rect | None = None
    last_center: np.ndarray | None = None
    last_seen_s: float = -1e9
    track_id: int = 0
    hand_rois: dict[str, g.Rect] = field(default_factory=dict)
    face_roi: g.Rect | None = None
    face_misses: int = 0
    # Where the body's wrist / nose was when the hand / face ROI above was set (see PoseOptions.track_rois).
    hand_anchors: dict[str, np.ndarray] = field(default_factory=dict)
    face_anchor: np.ndarray | None = None
    smoothers: dict[str, LandmarkSmoother] = field(default_factory=dict)

    def smoother(self, key: str, params: OneEuroParams, with_visibility: bool = True) -> LandmarkSmoother:
        s = self.smoothers.get(key)
        if s is None:
            s = self.smoothers[key] = LandmarkSmoother(params, 0.1 if with_visibility else None)
        return s

    def reset_filters(self, *keys: str) -> None:
        for k in keys:
            if k in self.smoothers:
                self.smoothers[k].reset()


def sha256_file(path: str | pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80, 80)))


# uint8 crop -> float32 model input in one pass: bit-identical to `crop.astype(np.float32) * k` (or `/ 255`),
# which makes two full-size temporaries (~0.6 ms vs ~0.04 ms for a 256x256 crop; five crops a frame).
# Crops may be RGBA (see _crop_source): the 4th channel is dropped first by OpenCV (~0.01 ms; numpy reading the
# strided 3-of-4-channel view directly took ~0.4 ms for 256x256).
_INV_255 = np.float32(1.0 / 255.0)
_TWO_255 = np.float32(2.0 / 255.0)


def _rgb(crop: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(crop, cv2.COLOR_RGBA2RGB) if crop.shape[2] == 4 else crop


def _unit(crop: np.ndarray) -> np.ndarray:
    return np.multiply(_rgb(crop), _INV_255, dtype=np.float32)


def _unit_div(crop: np.ndarray) -> np.ndarray:
    return np.divide(_rgb(crop), np.float32(255.0), dtype=np.float32)


def _signed(crop: np.ndarray) -> np.ndarray:
    x = np.multiply(_rgb(crop), _TWO_255, dtype=np.float32)
    x -= np.float32(1.0)
    return x


# Up to this many pixels a frame, crops are cut from an RGBA copy (see _crop_source).
RGBA_CROP_MAX_PIXELS = 1920 * 1088


def _crop_source(rgb: np.ndarray) -> np.ndarray:
    """The frame the model crops are cut from. OpenCV's bilinear warp is vectorised for 4 channels and not
    for 3, and the RGB channels of an RGBA crop are bit-identical to the RGB crop: the five crops of a 720p
    frame cost ~1.2 ms from RGBA, conversion included, vs ~2.5 ms from RGB. The conversion grows with the
    frame (the crops do not): about even at 1080p, a loss at 4K, where the RGB frame is used as it is.
    The model-running methods below take this image as `img` (RGB or RGBA; inputs use its first 3 channels)."""
    img = np.ascontiguousarray(rgb[:, :, :3])
    if img.shape[0] * img.shape[1] > RGBA_CROP_MAX_PIXELS:
        return img
    return cv2.cvtColor(img, cv2.COLOR_RGB2RGBA)


def selfie_label_to_anatomical(p_left_selfie: float) -> str:
    """MediaPipe's hand model labels hands as seen in a mirrored selfie image; in normal (non-mirrored)
    video its "Left" is the performer's right hand."""
    return "right" if p_left_selfie >= 0.5 else "left"


def face_expression(face_px: np.ndarray) -> FaceExpression:
    """Jaw opening, per-eye openness and head yaw/pitch/roll from the 468-point mesh (pixels, z in px)."""
    p = face_px[:, :3].astype(np.float64)
    face_h = float(np.linalg.norm(p[152, :2] - p[10, :2])) or 1.0
    # Inner lips 13/14 gap over face height; ~0.15 is a wide-open mouth.
    jaw = float(np.clip(np.linalg.norm(p[14, :2] - p[13, :2]) / face_h / 0.15, 0.0, 1.0))

    def eye_open(top: int, bottom: int, inner: int, outer: int) -> float:
        w = float(np.linalg.norm(p[outer, :2] - p[inner, :2])) or 1.0
        # Eye aspect ratio ~0.3 when open, ~0.05 when shut.
        return float(np.clip((np.linalg.norm(p[top, :2] - p[bottom, :2]) / w - 0.05) / 0.25, 0.0, 1.0))

    # Mesh indices are the subject's own sides: 33/133/159/145 right eye, 263/362/386/374 left eye.
    right_eye = eye_open(159, 145, 133, 33)
    left_eye = eye_open(386, 374, 362, 263)
    x_axis = p[263] - p[33]  # subject's right eye corner -> left eye corner (image +x when facing camera)
    y_axis = p[152] - p[10]  # forehead -> chin (image +y)
    x_axis /= np.linalg.norm(x_axis) or 1.0
    y_axis -= x_axis * float(np.dot(y_axis, x_axis))
    y_axis /= np.linalg.norm(y_axis) or 1.0
    z_axis = np.cross(x_axis, y_axis)  # points away from the camera for a frontal face
    r = np.stack([x_axis, y_axis, z_axis], axis=1)
    yaw = math.degrees(math.asin(float(np.clip(-r[2, 0], -1, 1))))
    pitch = math.degrees(math.atan2(float(r[2, 1]), float(r[2, 2])))
    roll = math.degrees(math.atan2(float(r[1, 0]), float(r[0, 0])))
    return FaceExpression(jaw_open=jaw, left_eye_open=left_eye, right_eye_open=right_eye,
                          head_yaw_deg=yaw, head_pitch_deg=pitch, head_roll_deg=roll)


def _iter_video(path: pathlib.Path, max_duration_s: float) -> Iterator[tuple[int, float, np.ndarray]]:
    for fr in iter_frames(path, max_duration_s=max_duration_s or None):
        yield fr.index, fr.timestamp_s, fr.rgb


class _Prefetch:
    """Decodes ahead in a thread with a bounded queue (bounded memory; the decoder releases the GIL)."""

    _END = object()

    def __init__(self, it: Iterator[tuple[int, float, np.ndarray]], depth: int = 4) -> None:
        self._q: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._exc: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(it,), daemon=True, name="pose-decode")
        self._thread.start()

    def _run(self, it: Iterator[tuple[int, float, np.ndarray]]) -> None:
        try:
            for item in it:
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # re-raised in the consumer
            self._exc = exc
        finally:
            while not self._stop.is_set():
                try:
                    self._q.put(self._END, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        while True:
            item = self._q.get()
            if item is self._END:
                if self._exc is not None:
                    raise self._exc
                return
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _load_models(rt: Any, paths: dict[str, pathlib.Path],
                 wanted: dict[str, tuple[str, tuple[str, ...]]]) -> dict[str, Model]:
    """Loads every (model name, unused outputs) in ``wanted``; two at a time where the runtime allows it.

    OpenVINO loads a compiled blob in ~40 ms of one core with the GIL released, eight of them in a row were
    ~0.35 s of a run's start with the second core mostly idle (the rig build alone uses less than one).
    """
    def load(item: tuple[str, tuple[str, ...]]) -> Model:
        name, unused = item
        model: Model = rt.load(paths[name], unused_outputs=unused) if unused else rt.load(paths[name])
        return model

    if not getattr(rt, "parallel_load", False) or len(wanted) < 2:
        return {key: load(item) for key, item in wanted.items()}
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="pose-load") as pool:
        futures = {key: pool.submit(load, item) for key, item in wanted.items()}
        return {key: f.result() for key, f in futures.items()}


class PoseExtractor:
    """Runs the whole-body pipeline; use as a context manager (it holds models and a worker thread)."""

    def __init__(self, options: PoseOptions | None = None, model_dir: str | pathlib.Path | None = None) -> None:
        self.options = options or PoseOptions()
        self.options.validate()
        paths = ensure_models(model_dir)
        rt = get_runtime(self.options.runtime, num_threads=self.options.num_threads)
        wanted: dict[str, tuple[str, tuple[str, ...]]] = {
            "pose_det": ("pose_detection", ()),
            "pose_lm": ("pose_landmark_full", (POSE_LM_SEGMENTATION,)),
        }
        if self.options.hands:
            for side in ("left", "right"):
                wanted[f"hand_lm_{side}"] = ("hand_landmark_full", ())
                wanted[f"recrop_{side}"] = ("hand_recrop", ())
        if self.options.face:
            wanted["face_det"] = ("face_detection_short_range", ())
            wanted["face_lm"] = ("face_landmark", ())
        loaded = _load_models(rt, paths, wanted)
        self._pose_det: Model = loaded["pose_det"]
        self._pose_lm: Model = loaded["pose_lm"]
        # Per side: the left and right hands run in parallel workers, and an interpreter is not re-entrant
        # (one shared instance made the two hand workers wait on each other's lock).
        self._hand_lm_side: dict[str, Model] = {}
        self._recrop_side: dict[str, Model] = {}
        if self.options.hands:
            for side in ("left", "right"):
                self._hand_lm_side[side] = loaded[f"hand_lm_{side}"]
                self._recrop_side[side] = loaded[f"recrop_{side}"]
        self._hand_lm: Model | None = self._hand_lm_side.get("left")
        self._recrop: Model | None = self._recrop_side.get("left")
        self._face_det: Model | None = loaded.get("face_det")
        self._face_lm: Model | None = loaded.get("face_lm")
        # One single-thread executor per part: a part's consecutive frames must run in order (its ROI and
        # filter carry state), different parts are independent.
        self._part_pools = {name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pose-{name}")
                            for name in ("left", "right", "face")}
        self._tracker = _Tracker()  # body state (caller's thread)
        self._parts_state = _Tracker()  # hand ROIs and hand/face filters (parts worker)
        # Model runs by kind (the parts' threads count too, hence the lock): how much work tracking saves.
        self.stats = {"detector_runs": 0, "frames": 0, "hand_recrop_runs": 0, "hand_landmark_runs": 0,
                      "face_detector_runs": 0, "face_landmark_runs": 0}
        self._stats_lock = threading.Lock()

    def __enter__(self) -> PoseExtractor:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for pool in self._part_pools.values():
            pool.shutdown(wait=True)
        # Runtimes that pool compiled models (openvino) get them back now rather than when the extractor is
        # collected, so the next extractor in this process reuses them; litert models have nothing to close.
        models = [self._pose_det, self._pose_lm, self._face_det, self._face_lm,
                  *self._hand_lm_side.values(), *self._recrop_side.values()]
        for model in models:
            close = getattr(model, "close", None)
            if close is not None:
                close()

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    # ---- body ---------------------------------------------------------------------------------------------
    def _detect(self, img: np.ndarray) -> list[g.Detection]:
        self.stats["detector_runs"] += 1
        boxed, lb = g.letterbox_image(img, 224)
        x = _signed(boxed)
        boxes, scores = self._pose_det.run(x[None])
        dets = g.decode_detections(boxes[0], scores[0], _POSE_ANCHORS, 224, 4,
                                   self.options.min_detection_confidence)
        return [g.detection_to_image(d, lb) for d in g.weighted_nms(dets, 0.3)]

    @staticmethod
    def _detection_roi(det: g.Detection, w: int, h: int) -> g.Rect:
        kp = det.keypoints * np.array([w, h], np.float32)
        return g.alignment_rect(kp[0], kp[1], math.pi / 2).transform(1.25, 1.25)

    def _pick(self, dets: list[g.Detection], w: int, h: int, t_s: float) -> g.Rect | None:
        if not dets:
            return None
        rois = [self._detection_roi(d, w, h) for d in dets]
        tr = self._tracker
        if tr.last_center is not None and t_s - tr.last_seen_s <= REACQUIRE_WINDOW_S:
            # Re-acquire the same person: nearest to where they were, if near enough.
            dist = [math.hypot(r.x_center - tr.last_center[0], r.y_center - tr.last_center[1]) / r.size_px
                    for r in rois]
            best = int(np.argmin(dist))
            if dist[best] < 0.5:
                return rois[best]
        if self.options.track_id >= 1 and tr.track_id == 0:
            order = sorted(range(len(rois)), key=lambda i: rois[i].x_center)
            k = self.options.track_id - 1
            if k < len(order):
                tr.track_id = self.options.track_id
                return rois[order[k]]
        roi = max(rois, key=lambda r: r.size_px)
        if self.options.track_id == 0:
            tr.track_id += 1  # a new track: possibly another person, so the filters start afresh
        tr.reset_filters("body", "world", "aux")
        return roi

    def _landmarks(self, img: np.ndarray, roi: g.Rect) -> _BodyResult | None:
        crop = roi.crop(img, 256, 256)
        outs = dict(zip(self._pose_lm.output_names, self._pose_lm.run(_unit(crop)[None]), strict=True))
        raw, flag, heatmap, world_raw = (outs[k][0] for k in (POSE_LM_LANDMARKS, POSE_LM_FLAG, POSE_LM_HEATMAP,
                                                                   POSE_LM_WORLD))
        score = float(flag.reshape(-1)[0])
        if score < self.options.min_tracking_confidence:
            return None
        lm = raw.reshape(39, 5).astype(np.float32)
        norm = lm.copy()
        norm[:, :3] /= 256.0
        norm = g.refine_from_heatmap(norm, heatmap)
        px = roi.project(norm)
        px[:, 3] = _sigmoid(lm[:, 3])
        px[:, 4] = _sigmoid(lm[:, 4])
        world = np.zeros((N_BODY, 5), np.float32)
        world[:, :3] = g.rotate_xy(world_raw.reshape(39, 3)[:N_BODY], roi.rotation)
        world[:, 3:] = px[:N_BODY, 3:]
        return _BodyResult(px[:N_BODY], world, px[N_BODY:N_BODY + 2], score, roi)

    def _body(self, img: np.ndarray, t_s: float, static: bool) -> _BodyResult | None:
        h, w = img.shape[:2]
        tr = self._tracker
        res = None
        if tr.roi is not None and not static:
            res = self._landmarks(img, tr.roi)
        if res is None:
            roi = self._pick(self._detect(img), w, h, t_s)
            if roi is not None:
                res = self._landmarks(img, roi)
        if res is None:
            tr.roi = None
            tr.reset_filters("body", "world", "aux")
            return None
        if self.options.smoothing and not static:
            scale = res.roi.size_px
            res.body = tr.smoother("body", BODY_IMAGE_FILTER)(res.body, t_s, scale)
            res.world = tr.smoother("world", BODY_WORLD_FILTER)(res.world, t_s)
            res.aux = tr.smoother("aux", BODY_AUX_FILTER, with_visibility=False)(res.aux, t_s, scale)
        tr.roi = None if static else g.alignment_rect(res.aux[0], res.aux[1], math.pi / 2).transform(1.25, 1.25)
        tr.last_center = np.array([res.roi.x_center, res.roi.y_center])
        res.track_id = max(1, tr.track_id)
        tr.last_seen_s = t_s
        return res

    # ---- hands --------------------------------------------------------------------------------------------
    @staticmethod
    def _hand_rough(body: np.ndarray, side: str) -> g.Rect | None:
        """HandDetectionsFromPoseToRects + scale 2.7: the hand_recrop model's ROI from the body's hand points."""
        wi, pi, ii = (15, 17, 19) if side == "left" else (16, 18, 20)
        if body[wi, 3] < 0.1:
            return None
        wrist, pinky, index = body[wi, :2], body[pi, :2], body[ii, :2]
        middle = (2.0 * index + pinky) / 3.0
        side_px = 2.0 * float(np.hypot(*(middle - wrist)))
        if side_px < 2.0:
            return None
        return g.Rect(float(middle[0]), float(middle[1]), side_px, side_px,
                      g.rotation_from_points(wrist, middle, math.pi / 2)).transform(2.7, 2.7, shift_y=-0.1)

    def _hand_roi(self, img: np.ndarray, body: np.ndarray, side: str) -> g.Rect | None:
        if self._recrop is None:  # hands/face disabled in the options
            return None
        rough = self._hand_rough(body, side)
        if rough is None:
            return None
        crop = rough.crop(img, 256, 256)
        self._count("hand_recrop_runs")
        (pts,) = self._recrop_side[side].run(_unit(crop)[None])
        p = pts.reshape(2, 2) / 256.0
        p_img = rough.project(p)
        return g.alignment_rect(p_img[0], p_img[1], -math.pi / 2).transform(1.0, 1.0, shift_y=-0.1)

    def _hand(self, img: np.ndarray, body: np.ndarray, side: str) -> tuple[Hand | None, float]:
        """The performer's `side` hand and MediaPipe's raw selfie 'Left' probability (for checks)."""
        if self._hand_lm is None:  # hands disabled in the options
            return None, float("nan")
        prev = self._parts_state.hand_rois.pop(side, None)
        wrist = body[15 if side == "left" else 16]
        if wrist[3] < 0.1:
            return None, float("nan")
        rough = self._hand_rough(body, side)
        if rough is not None and rough.outside(img.shape[1], img.shape[0]):
            # The body puts the hand (and the whole search area around it, ~2.7 hands wide) outside the frame:
            # no model can see it there (a crop would be replicated border pixels), so none runs.
            self._parts_state.hand_anchors.pop(side, None)
            return None, float("nan")
        found = None
        tried: dict[int, _HandHit | None] = {}
        anchor = self._parts_state.hand_anchors.pop(side, None)
        if self.options.track_rois and prev is not None and anchor is not None and \
                math.hypot(float(wrist[0] - anchor[0]), float(wrist[1] - anchor[1])) < 0.1 * prev.size_px:
            # Tracked hand: the body's wrist barely moved, so RoiTracking would keep the last ROI; when the hand
            # found there is on the body's wrist and its next ROI passes the same test, hand_recrop (and a
            # second landmark run) are skipped. A moving wrist takes the full path (no wasted landmark run).
            found = tried[id(prev)] = self._hand_at(img, prev, side)
            if found is not None and self._hand_tracked(found, prev, wrist):
                return self._hand_found(side, found, wrist)
            found = None
        # RoiTracking (holistic): last frame's landmark-derived ROI is kept while the pose-derived one
        # (body -> hand_recrop) agrees with it; if the hand flag rejects the chosen ROI, the other is tried.
        recrop = self._hand_roi(img, body, side)
        candidates = [r for r in (recrop, prev) if r is not None]
        if prev is not None and recrop is not None and g.rects_close(prev, recrop, 40.0, 0.2, 0.4):
            candidates = [prev, recrop]
        for roi in candidates:
            found = tried[id(roi)] if id(roi) in tried else self._hand_at(img, roi, side)
            if found is not None:
                break
        if found is None:
            return None, float("nan")
        return self._hand_found(side, found, wrist)

    def _hand_found(self, side: str, found: _HandHit, wrist: np.ndarray) -> tuple[Hand, float]:
        px, world, score, p_left_selfie, next_roi = found
        self._parts_state.hand_rois[side] = next_roi
        self._parts_state.hand_anchors[side] = wrist[:2].copy()
        return Hand(landmarks=px, handedness=side, score=score, world=world), p_left_selfie

    @staticmethod
    def _hand_tracked(found: _HandHit, prev: g.Rect, body_wrist: np.ndarray) -> bool:
        """The hand found in the last ROI is the body's hand (its wrist within half a hand of the body's
        wrist; the ROI is ~2 hands wide) and its next ROI passes RoiTracking's test against the last one."""
        px = found[0]
        near = math.hypot(float(px[0, 0] - body_wrist[0]), float(px[0, 1] - body_wrist[1])) < 0.25 * prev.size_px
        return near and g.rects_close(prev, found[4], 40.0, 0.2, 0.4)

    def _hand_at(self, img: np.ndarray, roi: g.Rect, side: str = "left") -> _HandHit | None:
        """Hand landmark model on one ROI: (pixels (21, 5), world (21, 5), score, selfie 'Left' prob., the
        next frame's ROI from these landmarks)."""
        if self._hand_lm is None:
            return None
        crop = roi.crop(img, 224, 224)
        self._count("hand_landmark_runs")
        model = self._hand_lm_side.get(side, self._hand_lm)
        raw, flag, handed, world_raw = (o[0] for o in model.run(_unit_div(crop)[None]))
        score = float(flag.reshape(-1)[0])
        if score < 0.5:
            return None
        lm = raw.reshape(21, 3) / 224.0
        lm[:, 2] /= 0.4  # normalize_z of hand_landmark_cpu
        px = np.zeros((N_HAND, 5), np.float32)
        px[:, :3] = roi.project(lm)
        px[:, 3:] = score
        world = np.zeros((N_HAND, 5), np.float32)
        world[:, :3] = g.rotate_xy(world_raw.reshape(21, 3), roi.rotation)
        world[:, 3:] = score
        return px, world, score, float(handed.reshape(-1)[0]), g.hand_landmarks_rect(px)

    # ---- face ---------------------------------------------------------------------------------------------
    @staticmethod
    def _face_rough(body: np.ndarray, scale: float) -> g.Rect | None:
        """Square ROI around the body's face points 0..10, rotated by the eyes (right eye 5 -> left eye 2)."""
        pts = body[:11]
        if float(np.mean(pts[:, 3])) < 0.3:
            return None
        lo, hi = pts[:, :2].min(axis=0), pts[:, :2].max(axis=0)
        rect = g.Rect(float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2, float(hi[0] - lo[0]),
                      float(hi[1] - lo[1]), g.rotation_from_points(pts[5], pts[2], 0.0)).transform(scale, scale)
        return rect if rect.size_px >= 4 else None

    def _face_roi(self, img: np.ndarray, body: np.ndarray) -> g.Rect | None:
        if self._face_det is None:  # hands/face disabled in the options
            return None
        rough = self._face_rough(body, 3.0)
        if rough is None:
            return None
        crop = rough.crop(img, 128, 128, border_zero=True)
        self._count("face_detector_runs")
        scores, boxes = self._face_det.run(_signed(crop)[None])
        dets = g.weighted_nms(g.decode_detections(boxes[0], scores[0], _FACE_ANCHORS, 128, 6, 0.5), 0.3)
        if not dets:
            return None
        det = max(dets, key=lambda d: d.score)
        center = rough.project(np.array([[(det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2]]))[0]
        kps = rough.project(det.keypoints)
        bw = float(det.box[2] - det.box[0]) * rough.width
        bh = float(det.box[3] - det.box[1]) * rough.height
        return g.Rect(float(center[0]), float(center[1]), bw, bh,
                      g.rotation_from_points(kps[0], kps[1], 0.0)).transform(2.0, 2.0, shift_y=-0.1)

    def _face(self, img: np.ndarray, body: np.ndarray, expression: bool = True) -> Face | None:
        """The face mesh; `expression=False` leaves the expression at its default (the caller computes it
        from the smoothed mesh)."""
        if self._face_lm is None:  # face disabled in the options
            return None
        rough = self._face_rough(body, 3.0)
        if rough is not None and rough.outside(img.shape[1], img.shape[0]):
            # The body's face points (and the 3x search area around them) are outside the frame: nothing to see.
            self._face_missed()
            return None
        prev = self._parts_state.face_roi
        found = None
        tried: dict[int, _FaceHit | None] = {}
        anchor = self._parts_state.face_anchor
        if self.options.track_rois and prev is not None and anchor is not None and \
                math.hypot(float(body[0, 0] - anchor[0]), float(body[0, 1] - anchor[1])) < 0.05 * prev.size_px:
            # Tracked face: the body's nose barely moved, so RoiTracking would keep the last ROI; when the mesh
            # found there sits on the body's nose and its next ROI passes the same test, the face detector is
            # skipped. A moving head takes the full path (no wasted mesh run).
            found = tried[id(prev)] = self._face_at(img, prev)
            if found is not None and self._face_tracked(found, prev, body):
                return self._face_found(found, body, expression)
            found = None
        # RoiTracking (holistic): last frame's mesh-derived ROI is kept while the detector-refined ROI from
        # the body agrees with it; when the detector misses, the last ROI gets a try (the face flag decides).
        det_roi = self._face_roi(img, body)
        candidates = [r for r in (det_roi, prev) if r is not None]
        if prev is not None and det_roi is not None and g.rects_close(prev, det_roi, 15.0, 0.1, 0.1):
            candidates = [prev, det_roi]
        for roi in candidates:
            found = tried[id(roi)] if id(roi) in tried else self._face_at(img, roi)
            if found is not None:
                break
        if found is None:
            self._face_missed()
            return None
        return self._face_found(found, body, expression)

    def _face_missed(self) -> None:
        # A face lost for a frame or two (motion blur) is often back at the same place: keep its ROI.
        self._parts_state.face_misses += 1
        if self._parts_state.face_misses > FACE_ROI_KEEP_FRAMES:
            self._parts_state.face_roi = None

    def _face_found(self, found: _FaceHit, body: np.ndarray, expression: bool) -> Face:
        px, score, next_roi = found
        self._parts_state.face_roi = next_roi
        self._parts_state.face_anchor = body[0, :2].copy()
        self._parts_state.face_misses = 0
        return Face(landmarks=px, score=score, expression=face_expression(px) if expression else FaceExpression())

    @staticmethod
    def _face_tracked(found: _FaceHit, prev: g.Rect, body: np.ndarray) -> bool:
        """The mesh found in the last ROI is this body's face (mesh nose tip 1 within a fifth of the ROI of the
        body's nose) and its next ROI passes RoiTracking's face test against the last one."""
        if float(body[0, 3]) < 0.5:
            return False  # the body's nose is unsure: let the detector confirm the face
        px = found[0]
        near = math.hypot(float(px[1, 0] - body[0, 0]), float(px[1, 1] - body[0, 1])) < 0.2 * prev.size_px
        return near and g.rects_close(prev, found[2], 15.0, 0.1, 0.1)

    def _face_at(self, img: np.ndarray, roi: g.Rect) -> _FaceHit | None:
        """Face landmark model on one ROI: (pixels (468, 5), score, the next frame's ROI from this mesh) or None
        when the face flag is low."""
        if self._face_lm is None:
            return None
        crop = roi.crop(img, 192, 192)
        self._count("face_landmark_runs")
        mesh, flag = self._face_lm.run(_unit_div(crop)[None])
        score = float(_sigmoid(flag.reshape(-1))[0])
        if score < 0.5:
            return None
        px = np.zeros((N_FACE, 5), np.float32)
        px[:, :3] = roi.project(mesh.reshape(N_FACE, 3) / 192.0)
        px[:, 3:] = score
        return px, score, g.face_landmarks_rect(px)

    # ---- frames -------------------------------------------------------------------------------------------
    # A frame runs in stages: the body (detector/tracker; the next frame's ROI depends on it) and the parts
    # (left hand, right hand, face), which depend only on this frame's body and their own state (ROI, filter).
    # In videos each part runs in its own single-thread executor, so a part's frames stay in order while the
    # parts of frame t and the body of frame t+1 run side by side (the runtimes release the GIL). One worker
    # for all parts left the body thread idle: the two hand models alone cost more than the body model.
    def _hand_part(self, t_s: float, img: np.ndarray, res: _BodyResult | None, side: str,
                   static: bool) -> Hand | None:
        ps = self._parts_state
        if res is None or not self.options.hands:
            ps.hand_rois.pop(side, None)
            ps.hand_anchors.pop(side, None)
            ps.reset_filters(f"{side}_hand")
            return None
        hand, _ = self._hand(img, res.body, side)
        if hand is None:
            ps.reset_filters(f"{side}_hand")
        elif self.options.smoothing and not static:
            scale = float(np.ptp(hand.landmarks[:, :2], axis=0).mean()) or 1.0
            hand.landmarks = ps.smoother(f"{side}_hand", HAND_FILTER, False)(hand.landmarks, t_s, scale)
        return hand

    def _face_part(self, t_s: float, img: np.ndarray, res: _BodyResult | None, static: bool) -> Face | None:
        ps = self._parts_state
        if res is None or not self.options.face:
            ps.face_roi = None
            ps.face_anchor = None
            ps.reset_filters("face")
            return None
        smooth = self.options.smoothing and not static
        face = self._face(img, res.body, expression=not smooth)
        if face is None:
            ps.reset_filters("face")
        elif smooth:
            scale = float(np.ptp(face.landmarks[:, :2], axis=0).mean()) or 1.0
            face.landmarks = ps.smoother("face", FACE_FILTER, False)(face.landmarks, t_s, scale)
            face.expression = face_expression(face.landmarks)
        return face

    @staticmethod
    def _assemble(index: int, t_s: float, res: _BodyResult | None, left: Hand | None, right: Hand | None,
                  face: Face | None) -> SkeletonFrame:
        if res is None:
            return SkeletonFrame.missing(index, t_s)
        l_sh, r_sh = res.world[BodyLandmark.LEFT_SHOULDER], res.world[BodyLandmark.RIGHT_SHOULDER]
        yaw = math.degrees(math.atan2(float(l_sh[2] - r_sh[2]), float(l_sh[0] - r_sh[0])))
        return SkeletonFrame(
            index=index, timestamp_s=t_s, present=True, body=res.body, world=res.world,
            left_hand=left, right_hand=right, face=face, score=res.score,
            track_id=res.track_id, body_yaw_deg=yaw,
        )

    def _parts(self, index: int, t_s: float, img: np.ndarray, res: _BodyResult | None,
               static: bool) -> SkeletonFrame:
        left = self._hand_part(t_s, img, res, "left", static)
        right = self._hand_part(t_s, img, res, "right", static)
        face = self._face_part(t_s, img, res, static)
        return self._assemble(index, t_s, res, left, right, face)

    def _frame(self, index: int, t_s: float, rgb: np.ndarray, static: bool) -> SkeletonFrame:
        self.stats["frames"] += 1
        src = _crop_source(rgb)
        return self._parts(index, t_s, src, self._body(src, t_s, static), static)

    def process_frames(self, frames: Iterable[tuple[int, float, np.ndarray]]
                       ) -> Iterator[tuple[SkeletonFrame, np.ndarray]]:
        """Video frames (index, timestamp_s, rgb) in order -> (skeleton frame, rgb), pipelined (see above).
        At most a few frames are in flight, so memory stays bounded."""
        pending: deque[_InFlight] = deque()

        def done(item: _InFlight) -> tuple[SkeletonFrame, np.ndarray]:
            lf, rf, ff = item.parts
            left = lf.result() if lf is not None else None
            right = rf.result() if rf is not None else None
            face = ff.result() if ff is not None else None
            return self._assemble(item.index, item.t_s, item.res, left, right, face), item.rgb

        for index, t_s, rgb in frames:
            self.stats["frames"] += 1
            img = np.ascontiguousarray(rgb[:, :, :3])
            src = _crop_source(img)
            res = self._body(src, t_s, False)
            parts: tuple[Future[Hand | None] | None, Future[Hand | None] | None, Future[Face | None] | None] = (
                self._part_pools["left"].submit(self._hand_part, t_s, src, res, "left", False)
                if self.options.hands else None,
                self._part_pools["right"].submit(self._hand_part, t_s, src, res, "right", False)
                if self.options.hands else None,
                self._part_pools["face"].submit(self._face_part, t_s, src, res, False)
                if self.options.face else None,
            )
            pending.append(_InFlight(index, t_s, img, res, parts))
            while pending and (len(pending) > 2 or all(f is None or f.done() for f in pending[0].parts)):
                yield done(pending.popleft())
        while pending:
            yield done(pending.popleft())

    def process_image(self, rgb: np.ndarray) -> SkeletonFrame:
        """Skeleton of one still image (static mode: always detect, no smoothing)."""
        img = np.asarray(rgb)
        if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype != np.uint8:
            raise InputError("image.format", "expected an (H, W, 3|4) uint8 RGB(A) image",
                             limit="(H, W, 3|4) uint8", actual=f"{img.shape} {img.dtype}")
        if img.shape[2] == 4:
            # Characters with alpha: put them on white so the detector sees a figure, not a black hole.
            a = img[:, :, 3:4].astype(np.float32) / 255.0
            img = (img[:, :, :3].astype(np.float32) * a + 255.0 * (1.0 - a)).astype(np.uint8)
        self.reset()
        frame = self._frame(0, 0.0, np.ascontiguousarray(img), static=True)
        self.reset()
        return frame

    def reset(self) -> None:
        """Forget the tracked person and the filters (the next frame starts a new video)."""
        self._tracker = _Tracker()
        self._parts_state = _Tracker()

    def process_frame(self, rgb: np.ndarray, timestamp_s: float, index: int = 0) -> SkeletonFrame:
        """One frame of a video in order (tracking and smoothing carry over from the previous call)."""
        return self._frame(index, timestamp_s, np.ascontiguousarray(rgb[:, :, :3]), static=False)

    def iter_video(self, path: str | pathlib.Path) -> Iterator[tuple[SkeletonFrame, np.ndarray]]:
        """Streams (skeleton frame, RGB frame) pairs (bounded memory: decode runs a few frames ahead)."""
        self.reset()
        prefetch = _Prefetch(_iter_video(pathlib.Path(path), self.options.max_duration_s))
        try:
            yield from self.process_frames(prefetch)
        finally:
            prefetch.close()

    def process_video(self, path: str | pathlib.Path, progress: ProgressFn | None = None,
                      frame_sink: FrameSink | None = None) -> SkeletonSequence:
        """The whole video as a SkeletonSequence; `frame_sink(frame, rgb)` sees each frame as it is done
        (e.g. to draw an overlay without holding the video in memory)."""
        path = pathlib.Path(path)
        info = _video_info(path)
        total = int(round(info.duration_s * info.fps)) or info.frame_count
        if self.options.max_duration_s:
            total = min(total, int(math.ceil(self.options.max_duration_s * info.fps)))
        frames: list[SkeletonFrame] = []
        for frame, rgb in self.iter_video(path):
            frames.append(frame)
            if frame_sink is not None:
                frame_sink(frame, rgb)
            if progress is not None:
                progress(len(frames), max(total, len(frames)))
        width, height, fps = info.width, info.height, info.fps
        if not frames:
            raise InputError("video.corrupt", "the video has no decodable frames", limit=">=1 frame", actual=0)
        present = sum(f.present for f in frames)
        if present == 0:
            raise InputError("pose.no_person", "no person was found in any frame of the video",
                             limit=">=1 frame with a person", actual=0)
        warnings = []
        if present < len(frames):
            warnings.append(f"pose.missing_frames: no person in {len(frames) - present} of {len(frames)} frames")
        duration = info.duration_s
        return SkeletonSequence(
            fps=fps, width=width, height=height, frames=frames, source_sha256=sha256_file(path),
            options_digest=self.options.digest(), source_duration_s=duration,
            trimmed_s=max(0.0, duration - len(frames) / fps) if self.options.max_duration_s else 0.0,
            warnings=warnings,
        )


@dataclass
class _VideoFacts:
    width: int
    height: int
    fps: float  # the rate iter_frames delivers (average rate capped at 60)
    frame_count: int
    duration_s: float


def _video_info(path: pathlib.Path) -> _VideoFacts:
    vi = probe_video(path)
    return _VideoFacts(vi.width, vi.height, min(float(vi.fps), 60.0), vi.frame_count, vi.duration_s)
