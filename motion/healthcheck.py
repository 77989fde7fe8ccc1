"""`python -m motion.healthcheck`: exit 0 when a gRPC server reports SERVING (grpc.health.v1).

The container images use it as their HEALTHCHECK (Kubernetes uses native gRPC probes instead).
Exit codes: 0 SERVING, 1 anything else (NOT_SERVING, unknown service, unreachable, timeout), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from motion.errors import InputError
from motion.settings import Settings


@dataclass(frozen=True)
class HealthCheckOptions:
    target: str
    # "" asks for the server's overall status; a full name (motion.v1.PoseService) asks for one service.
    service: str = ""
    timeout_s: float = 3.0


@dataclass(frozen=True)
class HealthCheckResult:
    serving: bool
    status: str  # SERVING, NOT_SERVING, SERVICE_UNKNOWN, UNKNOWN or the gRPC error code name
    detail: str = ""


def check(options: HealthCheckOptions) -> HealthCheckResult:
    """One Health/Check call; never raises for an unhealthy or unreachable server."""
    if options.timeout_s <= 0:
        raise InputError("healthcheck.timeout_s", "timeout must be positive", limit="> 0", actual=options.timeout_s)
    with grpc.insecure_channel(options.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=options.service), timeout=options.timeout_s)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
            details = err.details() if hasattr(err, "details") else str(err)
            if code == grpc.StatusCode.NOT_FOUND:
                return HealthCheckResult(False, "SERVICE_UNKNOWN", details or "")
            return HealthCheckResult(False, code.name, details or "")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return HealthCheckResult(response.status == health_pb2.HealthCheckResponse.SERVING, status)


def default_target(settings: Settings) -> str:
    """The local server the settings describe (what a container's HEALTHCHECK probes)."""
    port = settings.grpc_port
    if port <= 0:
        raise InputError("healthcheck.target", "no --target and MOTION_GRPC_PORT is unset", limit="1..65535",
                         actual=port)
    return f"127.0.0.1:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motion.healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="host:port (default: 127.0.0.1:$MOTION_GRPC_PORT)")
    parser.add_argument("--service", default="", help="full service name; empty = the whole server")
    parser.add_argument("--timeout-s", type=float, default=3.0)
    args = parser.parse_args(argv)
    try:
        target = args.target or default_target(Settings.from_env())
        result = check(HealthCheckOptions(target=target, service=args.service, timeout_s=args.timeout_s))
    except InputError as exc:
        print(f"healthcheck: error: {exc.message}", file=sys.stderr)
        return 2
    print(f"{target} {args.service or '(server)'}: {result.status}" + (f" ({result.detail})" if result.detail else ""))
    return 0 if result.serving else 1


if __name__ == "__main__":
    sys.exit(main())
