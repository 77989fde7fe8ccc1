"""JSON logs carry ts/level/logger/message and the job id; metric helpers enforce the naming scheme."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from motion.errors import InputError
from motion.telemetry import configure_logging, counter, current_job_id, histogram, job_context, metric_name


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    previous_level, previous_handlers = root.level, list(root.handlers)
    handler = configure_logging("DEBUG", json=True, stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        assert [h for h in root.handlers if h not in previous_handlers] == []


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_log_has_fields_and_job_id_with_job_context(log_stream: io.StringIO) -> None:
    log = logging.getLogger("motion.test")
    log.info("before")
    with job_context("job-123"):
        assert current_job_id() == "job-123"
        log.warning("inside %s", "job", extra={"stage": "pose"})
    log.info("after")
    before, inside, after = _lines(log_stream)
    assert set(before) == {"ts", "level", "logger", "message"}
    assert inside["job_id"] == "job-123" and inside["stage"] == "pose"
    assert (
        inside["message"] == "inside job"
        and inside["level"] == "WARNING"
        and inside["logger"] == "motion.test"
    )
    assert str(inside["ts"]).endswith("Z") and "T" in str(inside["ts"])
    assert "job_id" not in after and current_job_id() is None


def test_job_id_follows_work_with_copied_context_in_thread(log_stream: io.StringIO) -> None:
    with job_context("job-thread"):
        ctx = contextvars.copy_context()
    worker = threading.Thread(target=ctx.run, args=(logging.getLogger("motion.worker").info, "from thread"))
    worker.start()
    worker.join()
    assert _lines(log_stream)[-1]["job_id"] == "job-thread"


def test_json_log_includes_traceback_with_exception(log_stream: io.StringIO) -> None:
    try:
        raise ValueError("bad frame")
    except ValueError:
        logging.getLogger("motion.test").exception("failed")
    line = _lines(log_stream)[-1]
    assert line["level"] == "ERROR" and "ValueError: bad frame" in str(line["exc"])


def test_text_log_shows_job_id_with_plain_format() -> None:
    stream = io.StringIO()
    handler = configure_logging("INFO", json=False, stream=stream)
    try:
        with job_context("job-7"):
            logging.getLogger("motion.text").info("hello")
        logging.getLogger("motion.text").debug("hidden at INFO")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "[job job-7]" in text and "hello" in text and "hidden" not in text


def test_configure_logging_raises_input_error_with_unknown_level() -> None:
    with pytest.raises(InputError) as exc:
        configure_logging("LOUD")
    assert exc.value.rule == "settings.log_level" and exc.value.actual == "LOUD"


def test_metric_name_follows_scheme_and_rejects_bad_parts_with_validation() -> None:
    assert metric_name("render", "frames", "total") == "motion_render_frames_total"
    with pytest.raises(InputError) as exc:
        metric_name("Render", "frames", "total")
    assert exc.value.rule == "telemetry.metric_name"
    with pytest.raises(InputError) as exc:
        metric_name("render", "frames", "furlongs")
    assert exc.value.rule == "telemetry.metric_unit"


def test_collectors_are_shared_and_redefinition_refused_with_same_name() -> None:
    first = counter("testing", "widgets", "widgets made", labels=("kind",))
    assert counter("testing", "widgets", "widgets made", labels=("kind",)) is first
    with pytest.raises(InputError) as exc:
        counter("testing", "widgets", "widgets made", labels=("colour",))
    assert exc.value.rule == "telemetry.metric_redefined"
    hist = histogram("testing", "stage_duration", "stage time", labels=("stage",))
    hist.labels("pose").observe(0.3)
    assert hist.labels("pose")._sum.get() == pytest.approx(0.3)
