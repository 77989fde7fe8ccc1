"""Code fingerprints for cache keys.

Cached stage outputs (skeletons, rigs, retargeted sequences, rendered segments) are keyed by their inputs'
content hashes, their options and the digest of the code that computes them, so a new release of a stage
never serves results of the old one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pathlib
from functools import cache

# The packages/modules whose source decides each stage's output.
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "pose": ("services.pose", "motion.skeleton", "motion.media"),
    "rig": ("services.render.character", "services.pose", "motion.rig", "motion.media"),
    "retarget": ("services.retarget", "motion.skeleton", "motion.rig"),
    "render": ("services.render", "motion.rig", "motion.skeleton", "motion.media"),
}


def _source_files(module: str) -> tuple[pathlib.Path, list[pathlib.Path]]:
    """(root, files): a package's .py files below it, or a module's own file."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(module)
    origin = pathlib.Path(spec.origin)
    if spec.submodule_search_locations:  # a package: every .py file below it
        root = pathlib.Path(next(iter(spec.submodule_search_locations)))
        return root, sorted(root.rglob("*.py"))
    return origin.parent, [origin]


@cache
def code_digest(*modules: str) -> str:
    """16 hex chars of sha256 over the source files of ``modules`` (paths relative to each root, sorted)."""
    h = hashlib.sha256()
    for module in sorted(set(modules)):
        root, files = _source_files(module)
        for path in files:
            h.update(module.encode() + b"\0" + path.relative_to(root).as_posix().encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def stage_digest(stage: str) -> str:
    """The code digest of one stage (``pose``, ``rig``, ``retarget``, ``render``)."""
    return code_digest(*STAGE_SOURCES[stage])
