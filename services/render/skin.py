"""Bones, per-frame bone transforms and skinning of 2D meshes.

Each bone's transform maps its rest segment onto the frame's target segment: a rotation about the parent
joint, a stretch along the bone axis only (foreshortening must not thin the limb) and a translation that
puts the parent joint on its target. Vertices blend up to ``MAX_INFLUENCES`` bones. Blending is done on
the polar parts (rotation angle and rest-space stretch) about a per-vertex pivot — the joint shared by its
two strongest bones — so a bent elbow rotates the skin around the joint instead of averaging two positions
(linear blending would collapse the elbow, the candy-wrapper artefact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from motion.skeleton import BodyLandmark, SkeletonFrame

MAX_INFLUENCES = 4
# Skin blends between two bones within this fraction of the shorter bone's length of their shared joint.
JOINT_BAND = 0.1
# The neck bone owns skin from this fraction of its length above the shoulder line.
NECK_START = 0.15


class Part(IntEnum):
    """Body-part layers (each is a separately drawn mesh)."""

    TORSO = 0  # trunk, neck and head
    LEFT_ARM = 1
    RIGHT_ARM = 2
    LEFT_LEG = 3
    RIGHT_LEG = 4


@dataclass(frozen=True)
class BoneSpec:
    name: str
    parent: str
    child: str
    part: Part
    min_stretch: float
    max_stretch: float
    open_end: bool = False  # the last bone of a chain (head, hand, foot) also owns what lies past its end


# The renderer's bones. Joint names are BlazePose names plus virtual joints (see ``frame_joints``).
BONE_SPECS: tuple[BoneSpec, ...] = (
    BoneSpec("spine", "hip_center", "shoulder_center", Part.TORSO, 0.5, 1.6),
    BoneSpec("shoulders", "left_shoulder", "right_shoulder", Part.TORSO, 0.25, 1.6),
    BoneSpec("hips", "left_hip", "right_hip", Part.TORSO, 0.25, 1.6),
    # The head turns about the neck base; stretching it along the neck would distort the face.
    BoneSpec("neck", "shoulder_center", "nose", Part.TORSO, 0.85, 1.15, open_end=True),
    BoneSpec("left_upper_arm", "left_shoulder", "left_elbow", Part.LEFT_ARM, 0.3, 1.6),
    BoneSpec("left_forearm", "left_elbow", "left_wrist", Part.LEFT_ARM, 0.3, 1.6),
    BoneSpec("left_hand", "left_wrist", "left_hand_tip", Part.LEFT_ARM, 0.6, 1.4, open_end=True),
    BoneSpec("right_upper_arm", "right_shoulder", "right_elbow", Part.RIGHT_ARM, 0.3, 1.6),
    BoneSpec("right_forearm", "right_elbow", "right_wrist", Part.RIGHT_ARM, 0.3, 1.6),
    BoneSpec("right_hand", "right_wrist", "right_hand_tip", Part.RIGHT_ARM, 0.6, 1.4, open_end=True),
    BoneSpec("left_thigh", "left_hip", "left_knee", Part.LEFT_LEG, 0.3, 1.6),
    BoneSpec("left_shin", "left_knee", "left_ankle", Part.LEFT_LEG, 0.3, 1.6),
    BoneSpec("left_foot", "left_ankle", "left_foot_index", Part.LEFT_LEG, 0.5, 1.5, open_end=True),
    BoneSpec("right_thigh", "right_hip", "right_knee", Part.RIGHT_LEG, 0.3, 1.6),
    BoneSpec("right_shin", "right_knee", "right_ankle", Part.RIGHT_LEG, 0.3, 1.6),
    BoneSpec("right_foot", "right_ankle", "right_foot_index", Part.RIGHT_LEG, 0.5, 1.5, open_end=True),
)

# Torso bone a limb layer hangs from (its root region blends into it, so the joint never opens).
LIMB_ROOT_BONE = {Part.LEFT_ARM: "shoulders", Part.RIGHT_ARM: "shoulders",
                  Part.LEFT_LEG: "hips", Part.RIGHT_LEG: "hips"}


def complete_joints(joints: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """Joint positions as arrays plus the virtual joints the bones use (centres, hand tips)."""
    out = {k: np.asarray(v, dtype=np.float64)[:2] for k, v in joints.items()}
    for centre, a, b in (("hip_center", "left_hip", "right_hip"),
                         ("shoulder_center", "left_shoulder", "right_shoulder")):
        if centre not in out and a in out and b in out:
            out[centre] = (out[a] + out[b]) / 2.0
    for side in ("left", "right"):
        tips = [out[f"{side}_{n}"] for n in ("index", "pinky") if f"{side}_{n}" in out]
        if tips and f"{side}_hand_tip" not in out:
            out[f"{side}_hand_tip"] = np.mean(tips, axis=0)
    return out


_BODY_NAMES = tuple((lm.name.lower(), int(lm)) for lm in BodyLandmark)  # per frame, enum iteration is slow


def frame_joints(frame: SkeletonFrame) -> dict[str, np.ndarray]:
    """Target joints of one retargeted frame (character pixels)."""
    if frame.body is None:
        return {}
    body = np.asarray(frame.body, dtype=np.float64)
    out = complete_joints({name: (float(body[i, 0]), float(body[i, 1])) for name, i in _BODY_NAMES})
    # The hand's own landmarks give its orientation more reliably than the body's index/pinky points.
    for side, hand in (("left", frame.left_hand), ("right", frame.right_hand)):
        if hand is not None and hand.landmarks is not None and float(hand.score) > 0.3:
            lm = np.asarray(hand.landmarks, dtype=np.float64)
            direction = lm[9, :2] - lm[0, :2]  # wrist -> middle finger MCP
            n = float(np.hypot(*direction))
            if n > 1e-6 and f"{side}_wrist" in out and f"{side}_hand_tip" in out:
                length = float(np.hypot(*(out[f"{side}_hand_tip"] - out[f"{side}_wrist"])))
                out[f"{side}_hand_tip"] = out[f"{side}_wrist"] + direction / n * length
    if frame.mirrored:
        # Facing away from the drawn side (see services/retarget): joints are the true projection, so the
        # anatomical left arm is on the image's left. The character's image-left limbs follow it, i.e. the
        # drawing is shown mirrored about the body's axis instead of its arms crossing over its chest.
        out = {swap_side(k): v for k, v in out.items()}
    return out


def swap_side(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


@dataclass
class Bones:
    """The bones a rig supports and their rest geometry."""

    specs: list[BoneSpec]
    rest_parent: np.ndarray  # (B, 2)
    rest_child: np.ndarray  # (B, 2)
    rest_joints: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def for_joints(cls, joints: dict[str, np.ndarray]) -> Bones:
        specs = [s for s in BONE_SPECS if s.parent in joints and s.child in joints
                 and float(np.hypot(*(joints[s.child] - joints[s.parent]))) > 1.0]
        rp = np.array([joints[s.parent] for s in specs], dtype=np.float64).reshape(-1, 2)
        rc = np.array([joints[s.child] for s in specs], dtype=np.float64).reshape(-1, 2)
        return cls(specs, rp, rc, {k: np.asarray(v, dtype=np.float64)[:2] for k, v in joints.items()})

    def index(self, name: str) -> int:
        for i, s in enumerate(self.specs):
            if s.name == name:
                return i
        return -1


TRUNK_BONES = ("spine", "shoulders", "hips")
# Trunk corners in order around the quad (sectors are between consecutive corners, about the centre).
TRUNK_CORNERS = ("left_shoulder", "right_shoulder", "right_hip", "left_hip")


@dataclass
class TrunkMap:
    """Piecewise-affine map of the trunk quad onto its target: four triangles (two consecutive corners and
    the centre), each extended outward as a sector about the centre.

    The shoulder line, hip line and spine (centre of the shoulders to centre of the hips, which passes
    through the quad's centre) all map exactly onto their targets, which no blend of three rigid bones can
    do when the shoulders tilt against the hips (those bones then disagreed by up to ~5 degrees).
    """

    rest_centre: np.ndarray  # (2,)
    rest_corners: np.ndarray  # (4, 2)
    angle_rad: np.ndarray  # (4,) polar rotation of each sector's affine map
    stretch: np.ndarray  # (4, 2, 2) polar (symmetric) part
    linear: np.ndarray  # (4, 2, 2)
    offset: np.ndarray  # (4, 2)

    def sector(self, points: np.ndarray) -> np.ndarray:
        """(N,) sector index of rest points: the angular wedge about the centre between two corners."""
        ang = np.arctan2(*(self.rest_corners - self.rest_centre)[:, ::-1].T)
        p = np.arctan2(points[:, 1] - self.rest_centre[1], points[:, 0] - self.rest_centre[0])
        out = np.zeros(len(points), dtype=np.int64)
        for k in range(4):
            a0, a1 = ang[k], ang[(k + 1) % 4]
            span = (a1 - a0) % (2 * np.pi)
            rel = (p - a0) % (2 * np.pi)
            # Corner order may run either way round; the wedge is the one not containing the other corners.
            if span > np.pi:
                span, rel = 2 * np.pi - span, (a0 - p) % (2 * np.pi)
            out[rel <= span] = k
        return out


@dataclass
class BoneTransforms:
    angle_rad: np.ndarray  # (B,) rotation
    stretch: np.ndarray  # (B, 2, 2) symmetric stretch in rest space
    linear: np.ndarray  # (B, 2, 2) rotation @ stretch
    offset: np.ndarray  # (B, 2)
    trunk: TrunkMap | None = None  # replaces the trunk bones' transforms per vertex when present
    trunk_bones: np.ndarray | None = None  # (B,) bool: which bones the trunk map replaces


def _trunk_map(bones: Bones, target: dict[str, np.ndarray]) -> TrunkMap | None:
    rest = bones.rest_joints
    if not all(n in rest and n in target for n in TRUNK_CORNERS):
        return None
    rc = np.array([rest[n] for n in TRUNK_CORNERS], dtype=np.float64)
    tc = np.array([target[n] for n in TRUNK_CORNERS], dtype=np.float64)
    r0, t0 = rc.mean(axis=0), tc.mean(axis=0)
    lin = np.zeros((4, 2, 2))
    for k in range(4):
        j = (k + 1) % 4
        src = np.stack([rc[k] - r0, rc[j] - r0], axis=1)
        dst = np.stack([tc[k] - t0, tc[j] - t0], axis=1)
        det_src = float(np.linalg.det(src))
        if abs(det_src) < 1e-6:
            return None
        lin[k] = dst @ np.linalg.inv(src)
        if float(np.linalg.det(lin[k])) <= 1e-3:
            return None  # a folded or flipped trunk: the rigid bones handle it better
    angle = np.arctan2(lin[:, 1, 0] - lin[:, 0, 1], lin[:, 0, 0] + lin[:, 1, 1])
    stretch = _rot(-angle) @ lin
    stretch = 0.5 * (stretch + np.swapaxes(stretch, 1, 2))  # symmetric up to rounding
    offset = t0 - np.einsum("kij,j->ki", lin, r0)
    return TrunkMap(r0, rc, angle, stretch, lin, offset)


def _rot(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def bone_transforms(bones: Bones, target: dict[str, np.ndarray]) -> BoneTransforms:
    """Transforms taking each rest bone onto its target (bones without targets keep the spine's motion)."""
    n = len(bones.specs)
    rd = bones.rest_child - bones.rest_parent
    rest_len = np.hypot(rd[:, 0], rd[:, 1])
    rest_dir = rd / rest_len[:, None]
    angle = np.zeros(n)
    s = np.ones(n)
    tp = bones.rest_parent.copy()
    for i, spec in enumerate(bones.specs):
        if spec.parent in target and spec.child in target:
            d = target[spec.child] - target[spec.parent]
            length = float(np.hypot(*d))
            if length > 1e-6:
                angle[i] = np.arctan2(d[1], d[0]) - np.arctan2(rd[i, 1], rd[i, 0])
                s[i] = np.clip(length / rest_len[i], spec.min_stretch, spec.max_stretch)
            tp[i] = target[spec.parent]
    angle = (angle + np.pi) % (2 * np.pi) - np.pi
    outer = rest_dir[:, :, None] * rest_dir[:, None, :]
    stretch = np.eye(2)[None] + (s - 1.0)[:, None, None] * outer
    linear = _rot(angle) @ stretch
    offset = tp - np.einsum("bij,bj->bi", linear, bones.rest_parent)
    trunk = _trunk_map(bones, target)
    trunk_bones = np.array([sp.name in TRUNK_BONES for sp in bones.specs], dtype=bool)
    if trunk is None or not trunk_bones.any():
        return BoneTransforms(angle, stretch, linear, offset)
    return BoneTransforms(angle, stretch, linear, offset, trunk, trunk_bones)


@dataclass
class Skin:
    """Per-vertex influences: bone indices and weights (rows sum to 1), plus the blending pivot."""

    bone_index: np.ndarray  # (V, K) int32
    weight: np.ndarray  # (V, K) float64, sorted by decreasing weight
    pivot: np.ndarray  # (V, 2) rest-space pivot
    trunk_index: np.ndarray | None = None  # (V, K) cache: bone_index with trunk bones -> trunk sectors

    @classmethod
    def concatenate(cls, skins: list[Skin]) -> Skin:
        """One skin for several meshes' vertices stacked in order (deformed in a single call)."""
        return cls(np.concatenate([s.bone_index for s in skins]), np.concatenate([s.weight for s in skins]),
                   np.concatenate([s.pivot for s in skins]))


def segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each point (N,2) to the segment a-b."""
    ab = b - a
    # The projection stays a matrix product (BLAS fuses its multiply-adds: an elementwise sum differs in the
    # last bit and would move pixels across reach thresholds); the rest runs per coordinate, without the
    # (N, 2) temporaries and strided hypot that made this the rig build's hot spot.
    t = ((points - a) @ ab) / max(float(ab @ ab), 1e-12)
    np.clip(t, 0.0, 1.0, out=t)
    return np.asarray(np.hypot(points[:, 0] - (a[0] + t * ab[0]), points[:, 1] - (a[1] + t * ab[1])))


def _bone_coordinates(points: np.ndarray, a: np.ndarray, b: np.ndarray,
                      open_end: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(distance past the segment's ends along its axis, distance from its axis line) of each point;
    with ``open_end`` the segment extends without limit past ``b``."""
    ab = b - a
    length = max(float(np.hypot(*ab)), 1e-9)
    u = ab / length
    rel = points - a
    t = rel @ u
    along = np.maximum(0.0, -t) if open_end else np.maximum(0.0, np.maximum(-t, t - length))
    lateral = np.abs(rel[:, 0] * u[1] - rel[:, 1] * u[0])
    return along, lateral


def compute_skin(vertices: np.ndarray, triangles: np.ndarray, bones: Bones, allowed: np.ndarray,
                 scale_px: float, smoothing_iterations: int = 1, seed: np.ndarray | None = None) -> Skin:
    """Weights from inverse distance to the allowed bones, smoothed over the mesh's edges.

    ``allowed`` is (V, B) in [0, 1] (bool or a smooth falloff): how much each bone may move each vertex (a limb's own bones; its root
    region also the torso bone it hangs from). ``seed`` (default ``allowed``) restricts the initial
    weights; smoothing then spreads them within ``allowed``. ``scale_px`` sets the blend width at joints.
    """
    n_v, n_b = len(vertices), len(bones.specs)
    raw = np.zeros((n_v, n_b))
    blend_px = max(0.35 * scale_px, 1.0)
    for b in range(n_b):
        spec = bones.specs[b]
        start = bones.rest_parent[b]
        if spec.name == "neck":
            # The head's bone starts a little above the shoulder line: the shoulders' skin must stay with
            # the trunk (half-weighting it to the head bent the shoulder line by ~5 degrees).
            start = start + NECK_START * (bones.rest_child[b] - start)
        along, lateral = _bone_coordinates(vertices, start, bones.rest_child[b], spec.open_end)
        # A bone pulls fully along its own length and fades within ~a third of a limb width past its
        # ends (limbs stay rigid between joints and bend only at them); sideways a limb bone fades
        # slowly, so a wide sleeve or skirt still follows it. Torso bones are as wide as the torso, so
        # they fade sooner sideways (the shoulder line must not pull the head).
        side_px = max((0.5 if spec.part == Part.TORSO else 2.0) * scale_px, 1.0)
        raw[:, b] = np.exp(-((along / blend_px) ** 2)) / (1.0 + (lateral / side_px) ** 4)
    allowed = np.asarray(allowed, dtype=np.float64)
    raw = raw * allowed if seed is None else raw * allowed * seed
    if len(triangles):
        rest_len = np.hypot(*(bones.rest_child - bones.rest_parent).T)
        # Bend within a band around each joint narrow enough that a bone's middle stays rigid.
        # A bone's weight spreads into its neighbours, so the band is set by the shorter bone at each of
        # its joints (the trunk bones all meet the neck at the shoulder line).
        short = rest_len.copy()
        for i, si in enumerate(bones.specs):
            for j, sj in enumerate(bones.specs):
                touch = {si.parent, si.child} & {sj.parent, sj.child}
                if touch or (si.name in TRUNK_BONES and sj.name == "neck"):
                    short[i] = min(short[i], rest_len[j])
        blend = np.minimum(blend_px, np.maximum(JOINT_BAND * short, 1.0))
        raw = _geodesic_weights(vertices, triangles, raw, blend) * allowed
    raw = _normalise(raw)
    # Laplacian smoothing over the mesh graph widens the blend where bones meet, so skin never creases.
    if smoothing_iterations and len(triangles):
        edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
        edges = np.concatenate([edges, edges[:, ::-1]])
        deg = np.bincount(edges[:, 0], minlength=n_v).astype(np.float64)
        for _ in range(smoothing_iterations):
            acc = np.zeros_like(raw)
            np.add.at(acc, edges[:, 0], raw[edges[:, 1]])
            avg = acc / np.maximum(deg, 1.0)[:, None]
            raw = (0.5 * raw + 0.5 * avg) * allowed
            raw = _normalise(raw)
    raw = _angular_hinge_weights(vertices, bones, raw, scale_px)
    k = min(MAX_INFLUENCES, max(n_b, 1))
    order = np.argsort(-raw, axis=1, kind="stable")[:, :k]
    w = np.take_along_axis(raw, order, axis=1)
    w = np.where(w < 0.02, 0.0, w)  # tiny influences only add jitter
    w = _normalise(w)
    pivot = vertices.astype(np.float64).copy()
    if k >= 2:
        for i, j in {(int(a), int(b)) for a, b in order[:, :2]}:
            shared = _shared_joint(bones, i, j)
            if shared is None:
                continue
            sel = (order[:, 0] == i) & (order[:, 1] == j) & (w[:, 1] > 0)
            pivot[sel] = shared
    return Skin(order.astype(np.int32), w, pivot)


# Elbows and knees: skin within this many limb half-thicknesses of the joint splits between the two bones
# by its angle about the joint, fading back to the distance weights over one more half-thickness.
HINGE_REACH = 1.5
# Within this angle (degrees) of either bone's axis the skin stays fully on that bone: the bones' middles
# stay rigid (the exact rig check), and the joint may still bend by the arc less twice this before folding.
HINGE_AXIS_DEG = 15.0
# Only joints drawn nearly straight (the inner angle between the bones at rest, degrees, at least this): a
# limb drawn folded keeps its distance weights (its forearm lies beside the upper arm, see
# _geodesic_weights).
HINGE_MIN_REST_DEG = 120.0
_HINGES = (("left_upper_arm", "left_forearm"), ("right_upper_arm", "right_forearm"),
           ("left_thigh", "left_shin"), ("right_thigh", "right_shin"))


def _angular_hinge_weights(vertices: np.ndarray, bones: Bones, raw: np.ndarray, scale_px: float) -> np.ndarray:
    """Splits the two bones' weight around an elbow or knee by the vertex's angle about the joint.

    With weights that fall off with distance, the blend band is a strip across the limb: on the inside of a
    strongly bent elbow the skin in that strip turns past the skin beside it (deformed angle = rest angle +
    weight x bend is not monotonic in the rest angle), and the folded triangles showed as a dark crease or
    shards. With the weight linear in the angle from one bone's axis to the other's (t = angle / arc), each
    side of the joint is compressed or stretched evenly and nothing folds until the bend closes the arc.
    Vertices near a bone's axis keep weight 0 or 1, so the bones themselves stay exact.
    """
    out = raw
    reach = HINGE_REACH * max(scale_px, 1.0)
    for upper, lower in _HINGES:
        a, b = bones.index(upper), bones.index(lower)
        if a < 0 or b < 0:
            continue
        joint = bones.rest_child[a]
        to_a = bones.rest_parent[a] - joint
        to_b = bones.rest_child[b] - joint
        beta = (np.arctan2(to_b[1], to_b[0]) - np.arctan2(to_a[1], to_a[0])) % (2 * np.pi)
        inner = min(beta, 2 * np.pi - beta)
        if np.degrees(inner) < HINGE_MIN_REST_DEG:
            continue
        rel = vertices - joint
        r = np.hypot(rel[:, 0], rel[:, 1])
        pair = raw[:, a] + raw[:, b]
        # The limb's own skin near the joint (not the torso's, nor a hand lying over the elbow).
        sel = (r < 2.0 * reach) & (pair > 0.5)
        if not sel.any():
            continue
        phi = (np.arctan2(rel[sel, 1], rel[sel, 0]) - np.arctan2(to_a[1], to_a[0])) % (2 * np.pi)
        dead = np.radians(HINGE_AXIS_DEG)
        t = np.where(phi <= beta, (phi - dead) / (beta - 2 * dead),
                     (2 * np.pi - phi - dead) / (2 * np.pi - beta - 2 * dead))
        t = np.clip(t, 0.0, 1.0)
        old_t = raw[sel, b] / pair[sel]
        fade = np.clip(2.0 - r[sel] / reach, 0.0, 1.0)  # 1 within reach, 0 at twice the reach
        new_t = fade * t + (1.0 - fade) * old_t
        if out is raw:
            out = raw.copy()
        idx = np.nonzero(sel)[0]
        out[idx, a] = pair[sel] * (1.0 - new_t)
        out[idx, b] = pair[sel] * new_t
    return out


@dataclass(frozen=True)
class _MeshGraph:
    """A mesh's edges in both directions, sorted by destination vertex (for per-destination minima)."""

    n_vertices: int
    source: np.ndarray  # (E,) int64, the edge's start vertex
    length_px: np.ndarray  # (E,) float64
    target: np.ndarray  # (D,) int64, the vertices with an incoming edge
    first_edge: np.ndarray  # (D,) int64, each target's first incoming edge
    slot: np.ndarray  # (E,) int64, the edge's destination as an index into ``target``


def _mesh_graph(vertices: np.ndarray, triangles: np.ndarray) -> _MeshGraph:
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0).astype(np.int64)
    # The epsilon keeps coincident vertices connected and every step adding to a path's length (which
    # makes the relaxation's fixed point unique, see _shortest_paths).
    length = np.hypot(*(vertices[edges[:, 0]] - vertices[edges[:, 1]]).T) + 1e-9
    src = np.concatenate([edges[:, 0], edges[:, 1]])
    dst = np.concatenate([edges[:, 1], edges[:, 0]])
    order = np.argsort(dst, kind="stable")
    src, dst, length = src[order], dst[order], np.concatenate([length, length])[order]
    new_target = np.ones(len(dst), dtype=bool)
    new_target[1:] = dst[1:] != dst[:-1]
    first = np.flatnonzero(new_target)
    return _MeshGraph(len(vertices), src, length, dst[first], first, np.cumsum(new_target) - 1)


def _shortest_paths(graph: _MeshGraph, sources: np.ndarray, limit_px: float = np.inf,
                    nearest_source: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(distance over the mesh to the nearest of ``sources``, inf past ``limit_px`` or without a path;
    with ``nearest_source`` that source's vertex index, else and where none -1).

    A label-correcting relaxation in numpy replacing scipy's Dijkstra, whose import cost 0.2-0.4 CPU-s per
    process (taken from the pose stage the rig build runs beside) for meshes of a few hundred vertices.
    Each sweep relaxes every edge at once until nothing changes. A distance is the float sum along its
    path in path order, as Dijkstra adds, and as every edge adds to the sum the fixed point is unique: the
    distances equal Dijkstra's bit for bit.

    Ties follow scipy's Dijkstra (1.17: its heap of (-distance, vertex) pairs pops the higher index first
    among equal distances): a vertex takes the source of its shortest-path predecessor with the least
    distance, of equally distant ones the highest index. So the nearest source matches scipy's too, also
    where two sources are at exactly the same distance (a contour vertex midway between two evenly spaced
    ones).
    """
    dist = np.full(graph.n_vertices, np.inf)
    dist[sources] = 0.0
    tgt, first = graph.target, graph.first_edge
    while len(tgt):
        cand = dist[graph.source] + graph.length_px
        # Pruning at the limit every sweep keeps a limited search local: it ends a few hops out.
        cand[cand > limit_px] = np.inf
        best = np.minimum.reduceat(cand, first)
        better = best < dist[tgt]
        if not better.any():
            break
        dist[tgt[better]] = best[better]
    nearest = np.full(graph.n_vertices, -1, dtype=np.int64)
    if not nearest_source:
        return dist, nearest
    nearest[sources] = sources
    if not len(tgt):
        return dist, nearest
    # Each vertex's predecessor by the tie rule above, then each follows its chain up to its source.
    src_dist = dist[graph.source]
    tight = (src_dist + graph.length_px == dist[tgt][graph.slot]) & np.isfinite(src_dist)
    least = np.minimum.reduceat(np.where(tight, src_dist, np.inf), first)
    pick = np.where(tight & (src_dist == least[graph.slot]), graph.source, -1)
    parent = np.full(graph.n_vertices, -1, dtype=np.int64)
    parent[tgt] = np.maximum.reduceat(pick, first)
    parent[sources] = sources
    # Pointer jumping: after k rounds each vertex points 2^k steps up its chain.
    for _ in range(graph.n_vertices.bit_length() + 1):
        up = np.where(parent >= 0, parent[parent], -1)
        if np.array_equal(up, parent):
            break
        parent = up
    return dist, parent


def _geodesic_weights(vertices: np.ndarray, triangles: np.ndarray, raw: np.ndarray,
                      blend_px: np.ndarray) -> np.ndarray:
    """Weights by distance *over the mesh* from the region each bone owns.

    Every vertex is owned by its strongest bone by the Euclidean falloff; a bone then reaches other
    vertices only by walking the mesh from its own region. A folded forearm lying beside its upper arm, or
    a hand pressed against the head, is then far (geodesically) from the other bone although close in the
    image, so it does not get dragged along (Euclidean blending tore shards off such poses).
    """
    n_v, n_b = raw.shape
    out = np.zeros_like(raw)
    has = raw.max(axis=1) > 0
    owner = np.where(has, np.argmax(raw, axis=1), -1)
    graph = _mesh_graph(vertices, triangles)
    for b in range(n_b):
        src = np.nonzero(owner == b)[0]
        if not len(src):
            continue
        # Beyond 3 blend widths exp(-(d/blend)^2) is < 1e-4: stop the search there.
        dist, _ = _shortest_paths(graph, src, limit_px=3.0 * float(blend_px[b]))
        d = np.nan_to_num(dist, posinf=0.0)
        out[:, b] = np.where(np.isfinite(dist), np.exp(-((d / float(blend_px[b])) ** 2)), 0.0)
    # Vertices no bone reaches (a limb layer's overlap into the torso, away from the root joint) take the
    # weights of the nearest weighted vertex over the mesh: they must move with the skin they are attached
    # to, not fall back to some fixed bone and stretch the triangles between them into shards.
    empty = out.sum(axis=1) <= 0
    filled = ~empty
    if empty.any() and filled.any():
        _, nearest = _shortest_paths(graph, np.nonzero(filled)[0], nearest_source=True)
        reach = empty & (nearest >= 0)
        out[reach] = out[nearest[reach]]
    empty = out.sum(axis=1) <= 0
    out[empty] = raw[empty]
    return out


def _normalise(w: np.ndarray) -> np.ndarray:
    total = w.sum(axis=1, keepdims=True)
    out = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    # A vertex with no allowed bone follows the first bone rigidly rather than vanishing.
    empty = total[:, 0] <= 0
    if np.any(empty) and w.shape[1]:
        out[empty, 0] = 1.0
    return out


def _shared_joint(bones: Bones, i: int, j: int) -> np.ndarray | None:
    a, b = bones.specs[i], bones.specs[j]
    ends_a = {a.parent: bones.rest_parent[i], a.child: bones.rest_child[i]}
    for name in (b.parent, b.child):
        if name in ends_a:
            return np.asarray(ends_a[name])
    return None


def deform(vertices: np.ndarray, skin: Skin, tf: BoneTransforms) -> np.ndarray:
    """Deformed vertex positions (V, 2) for one frame's bone transforms (``vertices`` are the rest
    positions the skin was computed for)."""
    bi, w, q = skin.bone_index, skin.weight, skin.pivot
    lin_t, off_t, ang_t, st_t = tf.linear, tf.offset, tf.angle_rad, tf.stretch
    if tf.trunk is not None and tf.trunk_bones is not None:
        # Trunk bones act through the vertex's sector of the piecewise-affine trunk map (see TrunkMap):
        # the sectors are 4 more entries in the transform table, and which one a vertex uses depends only
        # on its rest position, so the lookup is computed once per skin.
        n_b = len(tf.linear)
        if skin.trunk_index is None or skin.trunk_index.shape != bi.shape:
            sec = tf.trunk.sector(vertices)
            skin.trunk_index = np.where(tf.trunk_bones[bi], n_b + sec[:, None], bi).astype(np.int32)
        bi = skin.trunk_index
        lin_t = np.concatenate([lin_t, tf.trunk.linear])
        off_t = np.concatenate([off_t, tf.trunk.offset])
        ang_t = np.concatenate([ang_t, tf.trunk.angle_rad])
        st_t = np.concatenate([st_t, tf.trunk.stretch])
    # Plain broadcasting instead of einsum: this runs once per frame over every vertex.
    lin, off, ang, st = lin_t[bi], off_t[bi], ang_t[bi], st_t[bi]  # (V,K,2,2), (V,K,2), (V,K), (V,K,2,2)
    wq = w[:, :, None]
    moved = lin[..., 0] * q[:, None, 0:1] + lin[..., 1] * q[:, None, 1:2] + off  # (V,K,2)
    moved_pivot = (wq * moved).sum(axis=1)
    base = ang[:, 0]
    delta = (ang - base[:, None] + np.pi) % (2 * np.pi) - np.pi
    angle = base + (w * delta).sum(axis=1)
    stretch = (wq[..., None] * st).sum(axis=1)  # (V,2,2)
    d = vertices - q
    lx = stretch[:, 0, 0] * d[:, 0] + stretch[:, 0, 1] * d[:, 1]
    ly = stretch[:, 1, 0] * d[:, 0] + stretch[:, 1, 1] * d[:, 1]
    c, s = np.cos(angle), np.sin(angle)
    out = np.empty_like(moved_pivot)
    out[:, 0] = moved_pivot[:, 0] + c * lx - s * ly
    out[:, 1] = moved_pivot[:, 1] + s * lx + c * ly
    return out
