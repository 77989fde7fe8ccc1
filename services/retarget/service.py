"""gRPC adapter of the retarget service, plus the store-facing domain code it calls (``RetargetWorker``).

The worker reads the performer ``SkeletonSequence`` and the ``CharacterRig`` from the object store by
ObjectRef and writes the retargeted sequence content-addressed under ``retargeted/``. Results are cached:
an index object ``retargeted/by-input/<digest>.ref`` (digest of both inputs' sha256 and the options)
points at the result, so the same inputs are a cache hit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import grpc

from motion.errors import InputError
from motion.fingerprint import stage_digest
from motion.rig import CharacterRig
from motion.skeleton import SkeletonSequence
from motion.v1 import common_pb2, retarget_service_pb2, retarget_service_pb2_grpc
from services.retarget.retarget import RetargetOptions, retarget_with_report

RESULT_PREFIX = "retargeted"
SKELETON_CONTENT_TYPE = "application/x-protobuf"
SERVICE_NAME = retarget_service_pb2.DESCRIPTOR.services_by_name["RetargetService"].full_name

_ORIENTATION = {
    common_pb2.ORIENTATION_UNSPECIFIED: "video",
    common_pb2.ORIENTATION_VIDEO: "video",
    common_pb2.ORIENTATION_IMAGE: "image",
}


def options_from_proto(msg: retarget_service_pb2.RetargetOptions, has_options: bool = True) -> RetargetOptions:
    """Proto -> RetargetOptions. An absent options message means the defaults (video, feet pinned)."""
    if not has_options:
        return RetargetOptions()
    if msg.orientation not in _ORIENTATION:
        raise InputError("retarget.orientation", "unknown orientation", limit=sorted(_ORIENTATION),
                         actual=int(msg.orientation))
    if msg.loop_blend_s < 0:
        raise InputError("retarget.loop_blend_s", "loop_blend_s must be >= 0", limit=">= 0", actual=msg.loop_blend_s)
    return RetargetOptions(orientation=_ORIENTATION[msg.orientation], loop=msg.loop,
                           loop_blend_s=msg.loop_blend_s, pin_feet=msg.pin_feet)


@dataclass
class RetargetOutcome:
    skeleton: common_pb2.ObjectRef
    trimmed_s: float
    frame_count: int
    warnings: list[str] = field(default_factory=list)
    cache_hit: bool = False
    foot_skate_before_px: float = 0.0
    foot_skate_after_px: float = 0.0


def _sha(ref: common_pb2.ObjectRef, data: bytes) -> str:
    return ref.sha256 or hashlib.sha256(data).hexdigest()


class RetargetWorker:
    """Retargets stored skeletons onto stored rigs (no gRPC here; ``RetargetServicer`` adapts it)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def retarget(self, skeleton_ref: common_pb2.ObjectRef, rig_ref: common_pb2.ObjectRef,
                 options: RetargetOptions) -> RetargetOutcome:
        for label, ref in (("skeleton", skeleton_ref), ("rig", rig_ref)):
            if not ref.key:
                raise InputError(f"retarget.{label}_ref", f"the request has no {label} object reference",
                                 limit="an ObjectRef with a key", actual="")
        seq_bytes = self.store.get_bytes(skeleton_ref)
        rig_bytes = self.store.get_bytes(rig_ref)
        digest = hashlib.sha256(json.dumps({
            "skeleton": _sha(skeleton_ref, seq_bytes), "rig": _sha(rig_ref, rig_bytes), "options": options.digest(),
            "code": stage_digest("retarget"),
        }, sort_keys=True).encode()).hexdigest()
        index_key = f"{RESULT_PREFIX}/by-input/{digest}.json"
        if self.store.exists(index_key):
            doc = self.store.get_json(index_key)
            ref = common_pb2.ObjectRef(**doc["skeleton"])
            if self.store.exists(ref):
                return RetargetOutcome(ref, float(doc["trimmed_s"]), int(doc["frame_count"]),
                                       list(doc.get("warnings", [])), cache_hit=True,
                                       foot_skate_before_px=float(doc.get("foot_skate_before_px", 0.0)),
                                       foot_skate_after_px=float(doc.get("foot_skate_after_px", 0.0)))
        performer = SkeletonSequence.from_bytes(seq_bytes)
        rig = CharacterRig.load(self.store, rig_ref)
        result = retarget_with_report(performer, rig, options)
        data = result.sequence.to_bytes()
        ref = self.store.put_content_addressed(data, RESULT_PREFIX, ".pb", SKELETON_CONTENT_TYPE)
        outcome = RetargetOutcome(ref, result.trimmed_s, len(result.sequence.frames), list(result.sequence.warnings),
                                  foot_skate_before_px=result.foot_skate_before_px,
                                  foot_skate_after_px=result.foot_skate_after_px)
        self.store.put_json(index_key, {
            "skeleton": {"bucket": ref.bucket, "key": ref.key, "sha256": ref.sha256, "size_bytes": ref.size_bytes,
                         "content_type": ref.content_type},
            "trimmed_s": outcome.trimmed_s, "frame_count": outcome.frame_count, "warnings": outcome.warnings,
            "foot_skate_before_px": outcome.foot_skate_before_px, "foot_skate_after_px": outcome.foot_skate_after_px,
        })
        return outcome


class RetargetServicer(retarget_service_pb2_grpc.RetargetServiceServicer):
    def __init__(self, worker: RetargetWorker) -> None:
        self.worker = worker

    def Retarget(self, request: retarget_service_pb2.RetargetRequest,  # noqa: N802 - gRPC method name
                 context: grpc.ServicerContext) -> retarget_service_pb2.RetargetResponse:
        options = options_from_proto(request.options, request.HasField("options"))
        out = self.worker.retarget(request.skeleton, request.rig, options)
        return retarget_service_pb2.RetargetResponse(
            skeleton=out.skeleton, trimmed_s=out.trimmed_s, frame_count=out.frame_count,
            warnings=out.warnings, cache_hit=out.cache_hit)
