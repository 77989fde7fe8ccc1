"""The numpy geodesic distances of the skinning against scipy's Dijkstra, which they replace.

Distances must be bit-identical (same float sums along the same paths) and the nearest source must follow
scipy's choice, ties included: the rendered weights of a rig must not change with the replacement.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import triangle
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from services.render import skin
from services.render.skin import _geodesic_weights, _mesh_graph, _shortest_paths

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _scipy_graph(vertices: np.ndarray, triangles: np.ndarray) -> csr_matrix:
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    length = np.hypot(*(vertices[edges[:, 0]] - vertices[edges[:, 1]]).T) + 1e-9
    n = len(vertices)
    return csr_matrix((length, (edges[:, 0], edges[:, 1])), shape=(n, n))


def _scipy_geodesic_weights(vertices: np.ndarray, triangles: np.ndarray, raw: np.ndarray,
                            blend_px: np.ndarray) -> np.ndarray:
    """The scipy implementation the numpy one replaced, verbatim in its logic."""
    out = np.zeros_like(raw)
    owner = np.where(raw.max(axis=1) > 0, np.argmax(raw, axis=1), -1)
    graph = _scipy_graph(vertices, triangles)
    for b in range(raw.shape[1]):
        src = np.nonzero(owner == b)[0]
        if not len(src):
            continue
        dist = dijkstra(graph, directed=False, indices=src, min_only=True, limit=3.0 * float(blend_px[b]))
        d = np.nan_to_num(dist, posinf=0.0)
        out[:, b] = np.where(np.isfinite(dist), np.exp(-((d / float(blend_px[b])) ** 2)), 0.0)
    empty = out.sum(axis=1) <= 0
    filled = ~empty
    if empty.any() and filled.any():
        _, _, nearest = dijkstra(graph, directed=False, indices=np.nonzero(filled)[0], min_only=True,
                                 return_predecessors=True)
        reach = empty & (nearest >= 0)
        out[reach] = out[nearest[reach]]
    empty = out.sum(axis=1) <= 0
    out[empty] = raw[empty]
    return out


def _random_polygon(rng: np.random.Generator, centre: tuple[float, float], radius_px: float) -> np.ndarray:
    """A star-shaped polygon with a ragged outline (concave bays make paths bend round them)."""
    n = int(rng.integers(12, 30))
    angle = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius_px * rng.uniform(0.35, 1.0, n)
    return np.stack([centre[0] + r * np.cos(angle), centre[1] + r * np.sin(angle)], axis=1)


def _random_mesh(rng: np.random.Generator, components: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Quality-triangulated random polygons, side by side and unconnected when ``components`` > 1."""
    verts: list[np.ndarray] = []
    tris: list[np.ndarray] = []
    for k in range(components):
        poly = _random_polygon(rng, (300.0 * k, 0.0), 100.0)
        ring = np.arange(len(poly))
        mesh = triangle.triangulate({"vertices": poly, "segments": np.stack([ring, np.roll(ring, -1)], 1)},
                                    f"pq30a{rng.uniform(15, 80):.1f}Q")
        tris.append(mesh["triangles"] + sum(len(v) for v in verts))
        verts.append(mesh["vertices"])
    return np.concatenate(verts), np.concatenate(tris).astype(np.int32)


def _scipy_nearest(graph: csr_matrix, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dist, _, nearest = dijkstra(graph, directed=False, indices=sources, min_only=True, return_predecessors=True)
    return dist, np.where(nearest < 0, -1, nearest)


@pytest.mark.parametrize("seed", range(12))
def test_limited_distances_equal_scipy_bit_for_bit_with_random_meshes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vertices, triangles = _random_mesh(rng, components=1 + seed % 2)
    graph, reference = _mesh_graph(vertices, triangles), _scipy_graph(vertices, triangles)
    for _ in range(4):
        sources = rng.choice(len(vertices), size=int(rng.integers(1, 12)), replace=False)
        full = dijkstra(reference, directed=False, indices=sources, min_only=True)
        # The limit is one vertex's exact distance: scipy keeps a vertex right at the limit.
        reached = np.sort(full[np.isfinite(full)])
        limit_px = float(reached[int(rng.uniform(0.2, 0.8) * len(reached))])
        expected = dijkstra(reference, directed=False, indices=sources, min_only=True, limit=limit_px)
        got, _ = _shortest_paths(graph, sources, limit_px=limit_px)
        assert np.isfinite(expected).sum() > len(sources)  # the search went somewhere
        assert (np.isinf(expected) & np.isfinite(full)).any()  # and the limit stopped it
        assert (expected == limit_px).any()
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("seed", range(12))
def test_nearest_source_equals_scipy_with_random_meshes(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    vertices, triangles = _random_mesh(rng, components=1 + seed % 3)
    # A vertex outside every triangle (as a mesh may keep) is reached by nothing.
    vertices = np.concatenate([vertices, [[-500.0, -500.0]]])
    sources = rng.choice(len(vertices) - 1, size=int(rng.integers(2, 40)), replace=False)
    expected_dist, expected_nearest = _scipy_nearest(_scipy_graph(vertices, triangles), sources)
    dist, nearest = _shortest_paths(_mesh_graph(vertices, triangles), sources, nearest_source=True)
    assert np.array_equal(dist, expected_dist)
    assert np.array_equal(nearest, expected_nearest)
    assert nearest[-1] == -1 and np.isinf(dist[-1])
    assert len(np.unique(nearest[nearest >= 0])) == len(sources)


def test_unreached_component_stays_infinite_and_unassigned_with_sources_in_one_component() -> None:
    vertices, triangles = _random_mesh(np.random.default_rng(7), components=2)
    second = vertices[:, 0] > 150.0
    sources = np.flatnonzero(~second)[:3]
    dist, nearest = _shortest_paths(_mesh_graph(vertices, triangles), sources, nearest_source=True)
    assert np.isinf(dist[second]).all() and (nearest[second] == -1).all()
    assert np.isfinite(dist[~second]).all() and np.isin(nearest[~second], sources).all()


def test_nearest_source_follows_scipy_on_exact_ties_with_regular_grid() -> None:
    # Integer grid spacing makes many vertices exactly equidistant from two sources: the choice between
    # them must still be scipy's (the skin weights copied from the nearest source depend on it).
    xs, ys = np.meshgrid(np.arange(12.0), np.arange(9.0))
    vertices = np.stack([xs.ravel(), ys.ravel()], axis=1) * 4.0
    idx = np.arange(vertices.shape[0]).reshape(xs.shape)
    quads = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], -1).reshape(-1, 4)
    triangles = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]).astype(np.int32)
    reference = _scipy_graph(vertices, triangles)
    sources = np.array([idx[4, 1], idx[4, 9], idx[0, 5], idx[8, 5]])
    per_source = dijkstra(reference, directed=False, indices=sources)
    ties = (per_source == per_source.min(axis=0)).sum(axis=0) > 1
    assert ties.sum() > 5  # the grid really has exact ties
    expected_dist, expected_nearest = _scipy_nearest(reference, sources)
    dist, nearest = _shortest_paths(_mesh_graph(vertices, triangles), sources, nearest_source=True)
    assert np.array_equal(dist, expected_dist)
    # Every vertex gets a source at its least distance, scipy's where there is no tie ...
    chosen = per_source[[list(sources).index(v) for v in nearest], np.arange(len(nearest))]
    assert np.array_equal(chosen, per_source.min(axis=0))
    assert np.array_equal(nearest[~ties], expected_nearest[~ties])
    # ... and on ties the same one as scipy 1.17's heap order (the rig's weights then did not change when
    # scipy was replaced); another scipy may break ties otherwise, which says nothing about this code.
    import scipy

    if scipy.__version__.startswith("1.17."):
        assert np.array_equal(nearest, expected_nearest)


def test_geodesic_weights_equal_scipy_version_with_real_character(shared_data: pathlib.Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from services.render.character import analyse_character
    from services.render.layers import build_rig_model

    calls: list[tuple[np.ndarray, ...]] = []

    def record(vertices: np.ndarray, triangles: np.ndarray, raw: np.ndarray, blend_px: np.ndarray) -> np.ndarray:
        out = _geodesic_weights(vertices, triangles, raw, blend_px)
        calls.append((vertices, triangles, raw, np.asarray(blend_px), out))
        return out

    monkeypatch.setattr(skin, "_geodesic_weights", record)
    model = build_rig_model(analyse_character(shared_data / "characters" / "musepose__ref.png"))
    assert len(calls) == len(model.layers) >= 5
    for vertices, triangles, raw, blend_px, out in calls:
        assert np.array_equal(out, _scipy_geodesic_weights(vertices, triangles, raw, blend_px))
        # Each bone's limited search too, distance for distance.
        owner = np.where(raw.max(axis=1) > 0, np.argmax(raw, axis=1), -1)
        graph, reference = _mesh_graph(vertices, triangles), _scipy_graph(vertices, triangles)
        for b in np.unique(owner[owner >= 0]):
            src = np.flatnonzero(owner == b)
            limit_px = 3.0 * float(blend_px[b])
            expected = dijkstra(reference, directed=False, indices=src, min_only=True, limit=limit_px)
            assert np.array_equal(_shortest_paths(graph, src, limit_px=limit_px)[0], expected)


def test_rig_model_build_imports_no_scipy_with_fresh_process() -> None:
    # scipy's import cost ~0.3 CPU-s per run, taken from the pose stage the rig build runs beside.
    code = ("import sys\n"
            "from services.render.layers import build_rig_model\n"
            "from tests.render.synthetic import make_character\n"
            "model = build_rig_model(make_character())\n"
            "assert len(model.layers) >= 5\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
