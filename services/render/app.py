"""Ray Serve application of the RenderService (the same servicer as `python -m services.render`).

Serve's gRPC ingress routes `motion.v1.RenderService/*` calls with metadata `application: render`.
On GPU nodes each replica takes a whole GPU (EGL on the NVIDIA driver, NVENC); CPU-only by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ray import serve

from motion.v1 import render_service_pb2
from services.gateway.rayserve import DEFAULT_MAX_ONGOING_REQUESTS, autoscaling, call_stream, call_unary


@serve.deployment(
    name="RenderService",
    max_ongoing_requests=DEFAULT_MAX_ONGOING_REQUESTS,
    autoscaling_config=autoscaling(min_replicas=1, max_replicas=4, target_ongoing_requests=1.0),
    ray_actor_options={"num_cpus": 1, "num_gpus": 0},
)
class RenderDeployment:
    def __init__(self, store_url: str = "", model_dir: str = "") -> None:
        from motion.settings import Settings
        from motion.storage import open_store
        from services.render.service import RenderServicer, RenderWorker

        settings = Settings.from_env()
        self.token = settings.internal_token
        worker = RenderWorker(open_store(store_url or None, settings), model_dir=model_dir or settings.models_path)
        self.servicer = RenderServicer(worker)

    def BuildRig(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802 - gRPC name
        return call_unary(self.servicer.BuildRig, request, grpc_context, self.token,
                          render_service_pb2.BuildRigResponse)

    def RenderRange(self, request: Any, grpc_context: Any = None) -> Iterator[Any]:  # noqa: N802 - gRPC name
        yield from call_stream(self.servicer.RenderRange, request, grpc_context, self.token)


def build_app(args: dict[str, Any] | None = None) -> Any:
    """Application builder: args `store_url`, `model_dir`, `num_gpus` (1 on a GPU node)."""
    args = dict(args or {})
    deployment: Any = RenderDeployment  # a serve Deployment, typed as the class for mypy
    if "num_gpus" in args:
        deployment = deployment.options(ray_actor_options={"num_cpus": 1, "num_gpus": float(args["num_gpus"])})
    return deployment.bind(str(args.get("store_url", "")), str(args.get("model_dir", "")))
