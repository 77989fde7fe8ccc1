"""API keys -> tenants. Keys come from a file (MOTION_API_KEYS_FILE, JSON or YAML) or the environment
(MOTION_API_KEYS="key1=tenantA,key2=tenantB"), never from code."""

from __future__ import annotations

import hmac
import json
import os
import pathlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from motion.errors import InputError, UnauthenticatedError

API_KEY_METADATA = "x-api-key"
# Tenants name folders in the object store: keep them to safe characters.
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
MIN_KEY_CHARS = 8


@dataclass(frozen=True)
class ApiKeys:
    tenants_by_key: Mapping[str, str] = field(default_factory=dict)

    def tenant_for(self, key: str | None) -> str:
        """The caller's tenant; UNAUTHENTICATED for a missing or unknown key."""
        if not key:
            raise UnauthenticatedError(f"missing API key (metadata {API_KEY_METADATA!r})")
        found = ""
        # Compare every key in constant time so timing does not reveal prefixes of valid keys.
        for candidate, tenant in self.tenants_by_key.items():
            if hmac.compare_digest(candidate.encode(), key.encode()):
                found = tenant
        if not found:
            raise UnauthenticatedError("unknown API key")
        return found

    def __len__(self) -> int:
        return len(self.tenants_by_key)


def _check(mapping: Mapping[str, Any], source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, tenant in mapping.items():
        key, tenant = str(key).strip(), str(tenant).strip()
        if len(key) < MIN_KEY_CHARS:
            raise InputError("auth.api_key_length", f"API key in {source} is too short", limit=MIN_KEY_CHARS,
                             actual=len(key))
        if not _TENANT_RE.match(tenant):
            raise InputError("auth.tenant_name", f"tenant name in {source} has unsafe characters",
                             limit=_TENANT_RE.pattern, actual=tenant)
        out[key] = tenant
    return out


def parse_env(value: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, tenant = item.partition("=")
        if not sep:
            raise InputError("auth.api_keys_env", "MOTION_API_KEYS entries must be key=tenant", actual=item[:4] + "…")
        pairs[key] = tenant
    return _check(pairs, "MOTION_API_KEYS")


def parse_file(path: pathlib.Path) -> dict[str, str]:
    """Accepts {"keys": {key: tenant}}, {key: tenant}, or a list of {"key":..., "tenant":...}."""
    text = path.read_text()
    doc: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(doc, dict) and "keys" in doc:
        doc = doc["keys"]
    if isinstance(doc, list):
        doc = {str(e["key"]): str(e["tenant"]) for e in doc}
    if not isinstance(doc, dict):
        raise InputError("auth.api_keys_file", "API keys file must map keys to tenants", actual=type(doc).__name__)
    return _check(doc, str(path))


def load_api_keys(env: Mapping[str, str] | None = None) -> ApiKeys:
    env = os.environ if env is None else env
    keys: dict[str, str] = {}
    path = env.get("MOTION_API_KEYS_FILE", "")
    if path:
        p = pathlib.Path(path).expanduser()
        if not p.is_file():
            raise InputError("auth.api_keys_file", "MOTION_API_KEYS_FILE does not exist", actual=str(p))
        keys.update(parse_file(p))
    if env.get("MOTION_API_KEYS"):
        keys.update(parse_env(env["MOTION_API_KEYS"]))
    return ApiKeys(keys)


def metadata_value(metadata: Any, name: str) -> str | None:
    for k, v in metadata or ():
        if k == name:
            return str(v)
    return None
