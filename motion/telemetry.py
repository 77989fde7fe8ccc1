"""Logging and metrics shared by every component.

Logs: ``configure_logging(level, json=True)`` makes every line one JSON object with ``ts``, ``level``,
``logger``, ``message`` and, inside ``with job_context(job_id):``, the ``job_id`` (a contextvar, so it
follows the job through threads started with ``contextvars.copy_context()`` and through asyncio).

Metrics: names follow ``motion_<component>_<thing>_<unit>`` (Prometheus conventions). ``counter``,
``histogram`` and ``gauge`` return the already registered collector when called twice with the
same name, so modules can declare their metrics at import time without clashing.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json as jsonlib
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any, TypeVar

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

from motion.errors import InputError

_JOB_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("motion_job_id", default=None)
_HANDLER_NAME = "motion-telemetry"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Record attributes every LogRecord has; anything else came in through `extra=` and is logged as a field.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}

# Buckets for stage and RPC durations: 5 ms .. 10 min (video jobs can take minutes).
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
_NAME_PART = re.compile(r"^[a-z][a-z0-9_]*$")
UNITS = ("total", "seconds", "bytes", "frames", "ratio", "info", "jobs", "requests", "pixels", "fps")


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tag every log line inside the block with ``job_id``."""
    token = _JOB_ID.set(job_id)
    try:
        yield
    finally:
        _JOB_ID.reset(token)


def current_job_id() -> str | None:
    return _JOB_ID.get()


class _JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = _JOB_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, job_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        line: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None) or _JOB_ID.get()
        if job_id:
            line["job_id"] = job_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key != "job_id" and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return jsonlib.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines for terminals; the job id appears in brackets when set."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(job)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        job_id = getattr(record, "job_id", None) or _JOB_ID.get()
        record.job = f" [job {job_id}]" if job_id else ""
        return super().format(record)


def parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    name = level.strip().upper()
    if name not in LEVELS:
        raise InputError("settings.log_level", "unknown log level", limit="|".join(LEVELS), actual=level)
    return int(getattr(logging, name))


def configure_logging(
    level: str | int = "INFO", json: bool = True, stream: IO[str] | None = None
) -> logging.Handler:
    """Install one handler on the root logger (replacing the one a previous call installed)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(_JobIdFilter())
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    return handler


def configure_from_settings(settings: Any) -> logging.Handler:
    """``configure_logging`` from a :class:`motion.settings.Settings` (log_level, log_json)."""
    return configure_logging(settings.log_level, json=settings.log_json)


def metric_name(component: str, thing: str, unit: str) -> str:
    """``motion_<component>_<thing>_<unit>``, each part lower_snake_case; ``unit=""`` for plain counts."""
    for part, value in (("component", component), ("thing", thing), ("unit", unit or "none")):
        if not _NAME_PART.match(value):
            raise InputError("telemetry.metric_name", f"metric {part} must be lower_snake_case", actual=value)
    if unit and unit not in UNITS:
        raise InputError("telemetry.metric_unit", "unknown metric unit", limit="|".join(UNITS), actual=unit)
    return f"motion_{component}_{thing}_{unit}" if unit else f"motion_{component}_{thing}"


_CollectorT = TypeVar("_CollectorT", Counter, Gauge, Histogram)
_COLLECTORS: dict[str, Any] = {}


def _get_or_create(
    kind: type[_CollectorT], name: str, doc: str, labels: Sequence[str], **kw: Any
) -> _CollectorT:
    existing = _COLLECTORS.get(name)
    if existing is not None:
        if not isinstance(existing, kind) or tuple(existing._labelnames) != tuple(labels):
            raise InputError(
                "telemetry.metric_redefined",
                f"metric {name} already exists with another type or labels",
                limit=f"{type(existing).__name__}{tuple(existing._labelnames)}",
                actual=f"{kind.__name__}{tuple(labels)}",
            )
        return existing
    collector = kind(name, doc, labelnames=tuple(labels), **kw)
    _COLLECTORS[name] = collector
    return collector


def counter(component: str, thing: str, doc: str, labels: Sequence[str] = (), unit: str = "total") -> Counter:
    return _get_or_create(Counter, metric_name(component, thing, unit), doc, labels)


def gauge(component: str, thing: str, doc: str, labels: Sequence[str] = (), unit: str = "jobs") -> Gauge:
    return _get_or_create(Gauge, metric_name(component, thing, unit), doc, labels)


def histogram(
    component: str,
    thing: str,
    doc: str,
    labels: Sequence[str] = (),
    unit: str = "seconds",
    buckets: Sequence[float] = DURATION_BUCKETS_S,
) -> Histogram:
    return _get_or_create(Histogram, metric_name(component, thing, unit), doc, labels, buckets=tuple(buckets))


def render_metrics() -> str:
    """The default registry in Prometheus text format (what /metrics serves)."""
    return prometheus_client.generate_latest().decode()
