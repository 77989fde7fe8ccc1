"""Settings come from MOTION_* variables; bad values raise InputError naming the rule, limit and value."""

from __future__ import annotations

import pathlib

import pytest

from motion.errors import InputError
from motion.settings import Settings


def test_from_env_parses_typed_values_with_motion_variables() -> None:
    settings = Settings.from_env(
        {
            "MOTION_GRPC_PORT": "50051",
            "MOTION_METRICS_PORT": "0",
            "MOTION_S3_SECURE": "yes",
            "MOTION_LOG_JSON": "0",
            "MOTION_STORE_URL": "s3://motion",
            "MOTION_CACHE_DIR": "~/cache-here",
            "UNRELATED": "ignored",
        }
    )
    assert settings.grpc_port == 50051 and settings.metrics_port == 0
    assert settings.s3_secure is True and settings.log_json is False
    assert settings.store_url == "s3://motion"
    assert settings.cache_dir == pathlib.Path("~/cache-here").expanduser()


def test_defaults_bind_loopback_and_use_local_store_with_empty_env(tmp_path: pathlib.Path) -> None:
    settings = Settings.from_env({})
    assert settings.bind_host == "127.0.0.1"
    assert Settings(cache_dir=tmp_path).effective_store_url == f"file://{tmp_path / 'store'}"
    assert Settings(cache_dir=tmp_path).models_path == tmp_path / "models"


@pytest.mark.parametrize("raw", ["70000", "-1"])
def test_from_env_raises_input_error_with_port_out_of_range(raw: str) -> None:
    with pytest.raises(InputError) as exc:
        Settings.from_env({"MOTION_GRPC_PORT": raw})
    assert exc.value.rule == "settings.grpc_port"
    assert exc.value.limit == "0..65535" and exc.value.actual == int(raw)


def test_from_env_raises_input_error_with_non_integer_port() -> None:
    with pytest.raises(InputError) as exc:
        Settings.from_env({"MOTION_METRICS_PORT": "80a"})
    assert exc.value.rule == "settings.metrics_port" and exc.value.actual == "80a"


def test_from_env_raises_input_error_with_bad_boolean() -> None:
    with pytest.raises(InputError) as exc:
        Settings.from_env({"MOTION_S3_SECURE": "maybe"})
    assert exc.value.rule == "settings.s3_secure" and exc.value.actual == "maybe"


def test_with_overrides_keeps_values_with_none_flags() -> None:
    base = Settings(grpc_port=1234)
    assert base.with_overrides(grpc_port=None, internal_token="t").grpc_port == 1234
    assert base.with_overrides(grpc_port=99).grpc_port == 99
