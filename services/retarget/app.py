"""Ray Serve application of the RetargetService (the same servicer as `python -m services.retarget`).

Serve's gRPC ingress routes `motion.v1.RetargetService/*` calls with metadata `application: retarget`.
Retargeting is CPU-light (thousands of frames/s), so replicas are small and take many requests each.
Build it with `build_app({...})` (the `import_path` of the Helm chart's serve config).
"""

from __future__ import annotations

from typing import Any

from ray import serve

from motion.v1 import retarget_service_pb2
from services.gateway.rayserve import DEFAULT_MAX_ONGOING_REQUESTS, autoscaling, call_unary


@serve.deployment(
    name="RetargetService",
    max_ongoing_requests=DEFAULT_MAX_ONGOING_REQUESTS,
    autoscaling_config=autoscaling(min_replicas=1, max_replicas=4),
    ray_actor_options={"num_cpus": 1, "num_gpus": 0},
)
class RetargetDeployment:
    def __init__(self, store_url: str = "") -> None:
        from motion.settings import Settings
        from motion.storage import open_store
        from services.retarget.service import RetargetServicer, RetargetWorker

        settings = Settings.from_env()
        self.token = settings.internal_token
        self.servicer = RetargetServicer(RetargetWorker(open_store(store_url or None, settings)))

    def Retarget(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802 - gRPC name
        return call_unary(self.servicer.Retarget, request, grpc_context, self.token,
                          retarget_service_pb2.RetargetResponse)


def build_app(args: dict[str, Any] | None = None) -> Any:
    """Application builder: args `store_url`."""
    args = dict(args or {})
    deployment: Any = RetargetDeployment  # a serve Deployment, typed as the class for mypy
    return deployment.bind(str(args.get("store_url", "")))
