"""gRPC bootstrap shared by every service: one ``serve()`` and one ``channel()``.

``serve`` starts a server with grpc.health.v1, server reflection, an interceptor that checks the
internal shared secret (``x-motion-internal-token``; health exempt), maps ``MotionError`` to its
status code, logs failures and records Prometheus metrics, plus a ``/metrics`` HTTP endpoint.
SIGTERM (and Ctrl-C during ``wait()``) stops it gracefully: in-flight RPCs get ``grace_s`` to finish.

Clients use ``channel(target, token)`` (retries UNAVAILABLE with backoff, sends the token) and
``error_from_rpc(err)`` to get the typed ``MotionError`` a server raised back.
"""

from __future__ import annotations

import hmac
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import prometheus_client
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from motion import errors
from motion.errors import MotionError, UnauthenticatedError, UnavailableError
from motion.settings import Settings
from motion.telemetry import counter, gauge, histogram

log = logging.getLogger("motion.grpc")

TOKEN_METADATA_KEY = "x-motion-internal-token"
ERROR_METADATA_KEY = "x-motion-error"  # JSON of MotionError.to_dict(), so clients can rebuild the error
HEALTH_SERVICE = health.SERVICE_NAME
# Probes (kubelet, load balancers) carry no token.
TOKEN_EXEMPT_PREFIXES = (f"/{HEALTH_SERVICE}/",)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

REQUESTS = counter(
    "grpc",
    "requests",
    "gRPC requests handled, by service, method and status code",
    labels=("service", "method", "code"),
)
DURATION = histogram(
    "grpc",
    "request_duration",
    "gRPC request latency (streams: until the last message)",
    labels=("service", "method", "code"),
)
IN_FLIGHT = gauge(
    "grpc", "in_flight", "gRPC requests being handled now", labels=("service", "method"), unit="requests"
)

# A servicer's registration function from *_pb2_grpc (add_FooServicer_to_server) and the servicer.
ServicerPair = tuple[Callable[[Any, grpc.Server], None], Any]


def _split_method(full_method: str) -> tuple[str, str]:
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


class MotionServerInterceptor(grpc.ServerInterceptor):
    """Token check, MotionError → status mapping, logging and metrics for every RPC kind."""

    def __init__(self, token: str = "") -> None:
        self._token = token.encode()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        full_method: str = handler_call_details.method  # type: ignore[attr-defined]
        service, method = _split_method(full_method)
        check_token = bool(self._token) and not full_method.startswith(TOKEN_EXEMPT_PREFIXES)
        wrap = _Wrapper(service, method, self._token if check_token else b"")
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                wrap.unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                wrap.streaming(handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                wrap.unary(handler.stream_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                wrap.streaming(handler.stream_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler


@dataclass
class _Wrapper:
    service: str
    method: str
    token: bytes  # empty: no check for this method

    def _authenticate(self, context: grpc.ServicerContext) -> None:
        if not self.token:
            return
        sent = dict(context.invocation_metadata() or ()).get(TOKEN_METADATA_KEY, "")
        sent_bytes = sent.encode() if isinstance(sent, str) else bytes(sent)
        if not hmac.compare_digest(sent_bytes, self.token):
            raise UnauthenticatedError(
                f"auth.internal_token: missing or wrong {TOKEN_METADATA_KEY} metadata",
                rule="auth.internal_token",
            )

    def _record(self, code: grpc.StatusCode, started: float) -> None:
        REQUESTS.labels(self.service, self.method, code.name).inc()
        DURATION.labels(self.service, self.method, code.name).observe(time.perf_counter() - started)

    def _fail(self, exc: BaseException, context: grpc.ServicerContext, started: float) -> None:
        """Record, log and turn ``exc`` into a status; re-raises (abort always raises)."""
        prior = context.code()  # type: ignore[attr-defined]
        if not isinstance(exc, MotionError) and prior not in (None, grpc.StatusCode.OK):
            # The servicer already aborted with its own status: keep it.
            self._record(prior, started)
            raise exc
        if isinstance(exc, MotionError):
            code, details, payload = exc.code, exc.message, exc.to_dict()
            log.warning(
                "rpc failed: %s",
                exc.message,
                extra={
                    "rpc": f"{self.service}/{self.method}",
                    "code": code.name,
                    "rule": exc.details.get("rule"),
                },
            )
        else:
            code, details = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
            payload = {"error": "InternalError", "code": code.name, "message": details}
            log.exception("rpc crashed", extra={"rpc": f"{self.service}/{self.method}", "code": code.name})
        self._record(code, started)
        context.set_trailing_metadata(((ERROR_METADATA_KEY, json.dumps(payload, default=str)),))
        context.abort(code, details)

    def unary(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                with IN_FLIGHT.labels(self.service, self.method).track_inprogress():
                    self._authenticate(context)
                    response = behavior(request, context)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                self._fail(exc, context, started)
                raise
            code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
            self._record(code, started)
            return response

        return handle

    def streaming(self, behavior: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            try:
                with IN_FLIGHT.labels(self.service, self.method).track_inprogress():
                    self._authenticate(context)
                    yield from behavior(request, context)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                self._fail(exc, context, started)
                raise
            code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
            self._record(code, started)

        return handle


@dataclass
class RunningServer:
    """A started server: port, health servicer, /metrics endpoint; stop() it or use it in a with block."""

    server: grpc.Server
    host: str
    port: int
    health: health.HealthServicer
    service_names: tuple[str, ...]
    grace_s: float
    metrics_port: int | None = None
    _metrics_httpd: Any = None
    _stopped: threading.Event = field(default_factory=threading.Event)
    _previous_sigterm: Any = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def set_serving(self, service: str, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        self.health.set(service, status)

    def stop(self, grace_s: float | None = None) -> None:
        """Report NOT_SERVING, let in-flight RPCs finish for ``grace_s``, then close /metrics."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(self.grace_s if grace_s is None else grace_s).wait()
        if self._metrics_httpd is not None:
            self._metrics_httpd.shutdown()
            self._metrics_httpd.server_close()
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        log.info("grpc server stopped", extra={"address": self.address})

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the server terminates (stop(), SIGTERM); Ctrl-C stops it gracefully too."""
        try:
            return bool(self.server.wait_for_termination(timeout_s))
        except KeyboardInterrupt:
            log.info("interrupted: stopping gracefully")
            self.stop()
            return True

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(0)


def start_metrics_server(host: str, port: int) -> tuple[Any, int]:
    """Serve the default Prometheus registry at http://host:port/metrics; port 0 picks a free one."""
    try:
        httpd, _thread = prometheus_client.start_http_server(port, addr=host)
    except OSError as exc:
        raise UnavailableError(
            f"grpc.metrics_bind: cannot serve /metrics on {host}:{port}: {exc}", rule="grpc.metrics_bind"
        ) from None
    return httpd, int(httpd.server_port)


def serve(
    servicers: Sequence[ServicerPair],
    service_names: Sequence[str],
    settings: Settings | None = None,
    port: int | None = None,
    *,
    metrics_port: int | None = None,
    max_workers: int = 8,
    grace_s: float = 5.0,
    install_signal_handlers: bool = True,
) -> RunningServer:
    """Start a gRPC server on ``settings.bind_host`` (127.0.0.1 by default) and return its handle.

    ``service_names`` are the full names (``motion.v1.PoseService``) reported by health and
    reflection. ``port``/``metrics_port`` default to the settings (0 = pick a free port); pass
    ``metrics_port=-1`` to run without /metrics.
    """
    settings = settings or Settings.from_env()
    port = settings.grpc_port if port is None else port
    metrics_port = settings.metrics_port if metrics_port is None else metrics_port
    host = settings.bind_host
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[MotionServerInterceptor(settings.internal_token)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
        ],
    )
    for add_fn, servicer in servicers:
        add_fn(servicer, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = tuple(service_names)
    reflection.enable_server_reflection((*names, HEALTH_SERVICE, reflection.SERVICE_NAME), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise UnavailableError(f"grpc.bind: cannot listen on {address}: {exc}", rule="grpc.bind") from None
    if bound == 0:
        raise UnavailableError(f"grpc.bind: cannot listen on {address}", rule="grpc.bind")
    httpd, bound_metrics = (None, None)
    if metrics_port >= 0:
        httpd, bound_metrics = start_metrics_server(host, metrics_port)
    server.start()
    running = RunningServer(server, host, bound, health_servicer, names, grace_s, bound_metrics, httpd)
    for name in ("", *names):
        running.set_serving(name, True)
    if install_signal_handlers and threading.current_thread() is threading.main_thread():

        def _on_signal(signum: int, _frame: Any) -> None:
            log.info("signal %s: stopping gracefully", signal.Signals(signum).name)
            # stop() blocks for the grace period; keep the signal handler itself short.
            threading.Thread(target=running.stop, name="grpc-stop", daemon=True).start()

        running._previous_sigterm = signal.signal(signal.SIGTERM, _on_signal)
    log.info(
        "grpc server listening",
        extra={
            "address": running.address,
            "services": list(names),
            "metrics_port": bound_metrics,
            "token_required": bool(settings.internal_token),
        },
    )
    return running


class _TokenClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, token: str) -> None:
        self._token = token

    def _details(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), (TOKEN_METADATA_KEY, self._token)]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


def retry_service_config(
    max_attempts: int = 4, initial_backoff_s: float = 0.2, max_backoff_s: float = 5.0
) -> str:
    """Service config retrying UNAVAILABLE (a restarting or not-yet-ready server) with backoff."""
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{}],
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": f"{initial_backoff_s}s",
                        "maxBackoff": f"{max_backoff_s}s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def channel(target: str, token: str | None = None, *, max_attempts: int = 4) -> grpc.Channel:
    """An insecure channel (loopback / in-cluster) that retries UNAVAILABLE and sends ``token``."""
    options = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", retry_service_config(max_attempts)),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    ch = grpc.insecure_channel(target, options=options)
    if token:
        return grpc.intercept_channel(ch, _TokenClientInterceptor(token))
    return ch


def wait_for_ready(ch: grpc.Channel, timeout_s: float = 10.0) -> None:
    try:
        grpc.channel_ready_future(ch).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise UnavailableError(
            f"grpc.unreachable: channel not ready within {timeout_s} s",
            rule="grpc.unreachable",
            limit=timeout_s,
        ) from None


def health_status(target: str, service: str = "", timeout_s: float = 5.0) -> str:
    """``SERVING`` / ``NOT_SERVING`` / ``SERVICE_UNKNOWN`` from grpc.health.v1 at ``target``."""
    with grpc.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


_ERROR_CLASSES: dict[str, type[MotionError]] = {
    name: cls for name, cls in vars(errors).items() if isinstance(cls, type) and issubclass(cls, MotionError)
}
_CODE_CLASSES: dict[grpc.StatusCode, type[MotionError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InputError,
    grpc.StatusCode.NOT_FOUND: errors.NotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: errors.UnauthenticatedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhaustedError,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPreconditionError,
    grpc.StatusCode.UNAVAILABLE: errors.UnavailableError,
}


def error_from_rpc(err: grpc.RpcError) -> MotionError:
    """Rebuild the MotionError a motion server raised (type, rule, limit, actual) from a failed call."""
    code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
    details: str = err.details() or ""  # type: ignore[attr-defined]
    payload: dict[str, Any] = {}
    for key, value in err.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == ERROR_METADATA_KEY:
            try:
                payload = json.loads(value)
            except ValueError:
                payload = {}
    cls = _ERROR_CLASSES.get(str(payload.get("error")), _CODE_CLASSES.get(code, MotionError))
    extra = {k: v for k, v in payload.items() if k not in ("error", "code", "message")}
    if issubclass(cls, errors.InputError):
        rule = str(extra.pop("rule", "") or "rpc.invalid_argument")
        message = details.removeprefix(f"{rule}: ")
        return cls(rule, message, limit=extra.get("limit"), actual=extra.get("actual"))
    exc = cls(details or code.name, **extra)
    if cls is MotionError:
        exc.code = code
    return exc
