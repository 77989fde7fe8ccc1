"""Running the services' own gRPC servicer classes as Ray Serve deployments behind Serve's gRPC ingress.

Serve's gRPC proxy calls a deployment method named like the RPC with the request message and a
`RayServegRPCContext`. `ServicerDeployment` forwards that to the same servicer object the standalone
server uses, adding what the standalone server's interceptor adds: the internal-token check and the
MotionError -> status mapping. Each service's `app.py` only says which servicer and which resources.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from motion.errors import MotionError, UnauthenticatedError

log = logging.getLogger("motion.rayserve")

TOKEN_METADATA_KEY = "x-motion-internal-token"  # == motion.grpcutil.TOKEN_METADATA_KEY
ERROR_METADATA_KEY = "x-motion-error"  # == motion.grpcutil.ERROR_METADATA_KEY

# Serve's ingress defaults to 5 concurrent requests per replica, which collapses throughput for
# long streaming calls; these are what the apps and deploy/serve/config.yaml use.
DEFAULT_MAX_ONGOING_REQUESTS = 32


class _Aborted(Exception):
    """Raised by ContextAdapter.abort, like grpc's own abort, to unwind the servicer."""


class ContextAdapter:
    """The subset of grpc.ServicerContext the servicers use, on top of Serve's gRPC context."""

    def __init__(self, ray_context: Any) -> None:
        self._ctx = ray_context
        self.aborted = False

    def invocation_metadata(self) -> Any:
        return self._ctx.invocation_metadata() if self._ctx is not None else ()

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.set_code(code)
        self.set_details(details)
        self.aborted = True
        raise _Aborted(details)

    def set_code(self, code: grpc.StatusCode) -> None:
        if self._ctx is not None:
            self._ctx.set_code(code)

    def set_details(self, details: str) -> None:
        if self._ctx is not None:
            self._ctx.set_details(details)

    def set_trailing_metadata(self, metadata: Any) -> None:
        if self._ctx is not None:
            self._ctx.set_trailing_metadata(metadata)

    def code(self) -> Any:
        return self._ctx.code() if self._ctx is not None else None

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


def check_token(ctx: ContextAdapter, token: str) -> None:
    if not token:
        return
    sent = dict(ctx.invocation_metadata() or ()).get(TOKEN_METADATA_KEY, "")
    if not hmac.compare_digest(str(sent).encode(), token.encode()):
        raise UnauthenticatedError(f"auth.internal_token: missing or wrong {TOKEN_METADATA_KEY} metadata",
                                   rule="auth.internal_token")


def _fail(ctx: ContextAdapter, exc: BaseException) -> None:
    if isinstance(exc, MotionError):
        ctx.set_code(exc.code)
        ctx.set_details(exc.message)
        ctx.set_trailing_metadata(((ERROR_METADATA_KEY, json.dumps(exc.to_dict(), default=str)),))
    else:
        log.exception("rpc crashed")
        ctx.set_code(grpc.StatusCode.INTERNAL)
        ctx.set_details(f"internal error: {type(exc).__name__}: {exc}")


def call_unary(method: Callable[[Any, Any], Any], request: Any, ray_context: Any, token: str,
               empty: Callable[[], Any]) -> Any:
    ctx = ContextAdapter(ray_context)
    try:
        check_token(ctx, token)
        return method(request, ctx)
    except _Aborted:
        return empty()
    except Exception as exc:
        _fail(ctx, exc)
        return empty()


def call_stream(method: Callable[[Any, Any], Iterator[Any]], request: Any, ray_context: Any,
                token: str) -> Iterator[Any]:
    ctx = ContextAdapter(ray_context)
    try:
        check_token(ctx, token)
        yield from method(request, ctx)
    except _Aborted:
        return
    except Exception as exc:
        _fail(ctx, exc)


def autoscaling(min_replicas: int = 1, max_replicas: int = 4, target_ongoing_requests: float = 2.0) -> dict[str, Any]:
    """Serve autoscaling config: scale each service on its own queue of ongoing requests."""
    return {
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "target_ongoing_requests": target_ongoing_requests,
        "upscale_delay_s": 10.0,
        "downscale_delay_s": 120.0,
    }


def servicer_functions() -> list[str]:
    """What Serve's gRPC proxy registers (grpc_options.grpc_servicer_functions)."""
    return [
        "motion.v1.pose_service_pb2_grpc.add_PoseServiceServicer_to_server",
        "motion.v1.retarget_service_pb2_grpc.add_RetargetServiceServicer_to_server",
        "motion.v1.render_service_pb2_grpc.add_RenderServiceServicer_to_server",
    ]
