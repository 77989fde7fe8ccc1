"""Ray Serve application of the PoseService (the same servicer as `python -m services.pose`).

Serve's gRPC ingress routes `motion.v1.PoseService/*` calls with metadata `application: pose` here.
Build it with `build_app({...})` (the `import_path` of deploy/serve/config.yaml).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ray import serve

from motion.v1 import pose_service_pb2
from services.gateway.rayserve import DEFAULT_MAX_ONGOING_REQUESTS, autoscaling, call_stream, call_unary


@serve.deployment(
    name="PoseService",
    max_ongoing_requests=DEFAULT_MAX_ONGOING_REQUESTS,
    autoscaling_config=autoscaling(min_replicas=1, max_replicas=4),
    # Inference is light on a GPU: several replicas share one (fractional GPU); CPU-only by default.
    ray_actor_options={"num_cpus": 1, "num_gpus": 0},
)
class PoseDeployment:
    def __init__(self, store_url: str = "", model_dir: str = "") -> None:
        from motion.settings import Settings
        from motion.storage import open_store
        from services.pose.service import PoseServicer, PoseWorker

        settings = Settings.from_env()
        self.token = settings.internal_token
        store = open_store(store_url or None, settings)
        self.servicer = PoseServicer(PoseWorker(store, model_dir=model_dir or settings.models_path))

    def ExtractVideo(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802 - gRPC name
        return call_unary(self.servicer.ExtractVideo, request, grpc_context, self.token,
                          pose_service_pb2.ExtractVideoResponse)

    def StreamExtractVideo(self, request: Any, grpc_context: Any = None) -> Iterator[Any]:  # noqa: N802
        yield from call_stream(self.servicer.StreamExtractVideo, request, grpc_context, self.token)

    def ExtractImage(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802 - gRPC name
        return call_unary(self.servicer.ExtractImage, request, grpc_context, self.token,
                          pose_service_pb2.ExtractImageResponse)


def build_app(args: dict[str, Any] | None = None) -> Any:
    """Application builder: args `store_url`, `model_dir`, `num_gpus` (e.g. 0.25 on a GPU node)."""
    args = dict(args or {})
    options: dict[str, Any] = {}
    if "num_gpus" in args:
        options["ray_actor_options"] = {"num_cpus": 1, "num_gpus": float(args["num_gpus"])}
    # serve.deployment turned the class into a Deployment (typed as the class for mypy).
    deployment: Any = PoseDeployment
    if options:
        deployment = deployment.options(**options)
    return deployment.bind(str(args.get("store_url", "")), str(args.get("model_dir", "")))
