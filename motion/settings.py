"""One settings object, read from the environment (MOTION_*) and overridable by CLI flags."""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field, fields, replace
from typing import Any

from motion.errors import InputError


def _default_cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "motion-control"


@dataclass(frozen=True)
class Settings:
    # Where models and content-addressed caches live.
    cache_dir: pathlib.Path = field(default_factory=_default_cache_dir)
    # Pose models (.tflite extracted from the mediapipe 0.10.21 wheel); default cache_dir/models.
    model_dir: pathlib.Path | None = None
    # Object store: "file:///path" (embedded default: cache_dir/store) or "s3://bucket".
    store_url: str = ""
    s3_endpoint: str = "127.0.0.1:8333"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    # Host[:port] clients outside the cluster reach S3 at; presigned download URLs are signed for it when
    # set ("" = the internal s3_endpoint, right for loopback and in-cluster clients).
    s3_public_endpoint: str = ""
    # Pose runtime used when a request does not name one: "auto" (openvino where the CPU computes bf16
    # natively, else litert), "litert", "openvino" (CPU), "torch" or "tensorrt" (GPU nodes).
    pose_runtime: str = "auto"
    # gRPC / metrics.
    bind_host: str = "127.0.0.1"
    grpc_port: int = 0
    metrics_port: int = 0
    # Shared secret the internal services require from the gateway ("" = no check).
    internal_token: str = ""
    log_level: str = "INFO"
    log_json: bool = False

    @property
    def models_path(self) -> pathlib.Path:
        return self.model_dir if self.model_dir is not None else self.cache_dir / "models"

    @property
    def effective_store_url(self) -> str:
        return self.store_url or f"file://{self.cache_dir / 'store'}"

    def with_overrides(self, **kw: Any) -> Settings:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"MOTION_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        return cls(**values)


def _parse(name: str, typ: Any, raw: str) -> Any:
    t = str(typ)
    if "Path" in t:
        return pathlib.Path(raw).expanduser()
    if t in ("int", "<class 'int'>"):
        try:
            value = int(raw)
        except ValueError:
            raise InputError(f"settings.{name}", f"MOTION_{name.upper()} must be an integer", actual=raw) from None
        if name.endswith("_port") and not 0 <= value <= 65535:
            raise InputError(f"settings.{name}", "port out of range", limit="0..65535", actual=value)
        return value
    if t in ("bool", "<class 'bool'>"):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise InputError(f"settings.{name}", f"MOTION_{name.upper()} must be a boolean", actual=raw)
    return raw


def get_settings() -> Settings:
    return Settings.from_env()
