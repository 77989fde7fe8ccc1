"""Static checks of the Dockerfiles (no Docker engine here) and their agreement with the chart."""

from __future__ import annotations

import fnmatch
import json
import pathlib
import re
import shlex
from dataclasses import dataclass, field

import pytest
import yaml

from tests.deploy.chart import CHART_DIR, REPO_ROOT

DOCKER_DIR = REPO_ROOT / "deploy" / "docker"
IMAGES = ("gateway", "worker", "worker-cuda")
CHART_VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, op: str) -> list[str]:
        return [a for o, a in self.instructions if o == op]


def parse(path: pathlib.Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of a Dockerfile (continuations joined, comments dropped)."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            stages.append(Stage(base=rest.split()[0]))
        elif not stages and op == "ARG":
            name, _, default = rest.partition("=")
            global_args[name] = default
        elif stages:
            stages[-1].instructions.append((op, rest.strip()))
    return global_args, stages


def resolve(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), value)


def stage_args(stage: Stage) -> dict[str, str]:
    out = {}
    for a in stage.args("ARG"):
        name, _, default = a.partition("=")
        out[name] = default
    return out


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for spec in stage.args("ENV"):
        for token in shlex.split(spec):
            key, sep, value = token.partition("=")
            if sep:
                env[key] = value
    return env


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's last-match-wins rule for a path relative to the context."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if pat == "**" or fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat + "/*") or path.startswith(pat + "/"):
            result = not negate
    return result


def dockerignore(image: str) -> list[str]:
    text = (DOCKER_DIR / f"Dockerfile.{image}.dockerignore").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("image", IMAGES)
def test_image_runs_as_chart_uid_with_healthcheck(image: str) -> None:
    _, stages = parse(DOCKER_DIR / f"Dockerfile.{image}")
    final = stages[-1]
    users = final.args("USER")
    assert users, "the final stage must switch to a non-root user"
    uid = resolve(users[-1], stage_args(final)).split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    # Numeric and equal to the chart's runAsUser, so runAsNonRoot can verify it.
    assert int(uid) == CHART_VALUES["podSecurityContext"]["runAsUser"]
    (healthcheck,) = final.args("HEALTHCHECK")
    assert "CMD" in healthcheck


@pytest.mark.parametrize("image", IMAGES)
def test_image_bakes_models_at_build_time_where_chart_expects_them(image: str) -> None:
    _, stages = parse(DOCKER_DIR / f"Dockerfile.{image}")
    runs = " ".join(a for s in stages for a in s.args("RUN"))
    assert "motionctl models fetch --model-dir /opt/motion/models" in runs
    assert "motionctl models verify --model-dir /opt/motion/models" in runs
    env = env_of(stages[-1])
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
    for key in ("MOTION_MODEL_DIR", "MOTION_CACHE_DIR"):
        assert re.search(rf"name: {key}\n\s+value: {re.escape(env[key])}\n", helpers), key
    # Nothing fetches at start: the entry points are plain servers.
    entry = " ".join(stages[-1].args("CMD") + stages[-1].args("ENTRYPOINT"))
    assert "fetch" not in entry


@pytest.mark.parametrize("image", IMAGES)
def test_base_images_are_pinned_with_explicit_tags(image: str) -> None:
    global_args, stages = parse(DOCKER_DIR / f"Dockerfile.{image}")
    for stage in stages:
        base = resolve(stage.base, global_args)
        if base in {s.base for s in stages} - {stage.base} or base == "build":
            continue
        name, _, tag = base.rpartition(":")
        assert name and tag and tag != "latest", base


@pytest.mark.parametrize("image", IMAGES)
def test_copied_sources_exist_and_pass_dockerignore(image: str) -> None:
    patterns = dockerignore(image)
    _, stages = parse(DOCKER_DIR / f"Dockerfile.{image}")
    copies = [a for s in stages for a in s.args("COPY") if not a.startswith("--from")]
    assert copies
    for spec in copies:
        *sources, _dest = spec.split()
        for src in sources:
            assert (REPO_ROOT / src).exists(), src
            assert not ignored(src, patterns), f"{src} is excluded by the dockerignore"
    for junk in (".git", ".venv", "out", "tests", "motion/__pycache__"):
        assert ignored(junk, patterns), junk


@pytest.mark.parametrize("image", ["worker", "worker-cuda"])
def test_worker_image_ray_version_matches_chart_with_probe_tools(image: str) -> None:
    _, stages = parse(DOCKER_DIR / f"Dockerfile.{image}")
    args = {k: v for s in stages for k, v in stage_args(s).items()}
    assert args["RAY_VERSION"] == CHART_VALUES["ray"]["rayVersion"]
    runs = " ".join(a for s in stages for a in s.args("RUN"))
    assert '"ray[serve]==${RAY_VERSION}"' in runs
    # KubeRay's injected probes call wget; its commands run under bash.
    assert re.search(r"\bwget\b", runs)
    assert re.search(r"\blibegl1\b", runs)


def test_cuda_worker_ships_torch_tensorrt_and_nvidia_egl_vendor() -> None:
    global_args, stages = parse(DOCKER_DIR / "Dockerfile.worker-cuda")
    final = stages[-1]
    base = resolve(final.base, global_args)
    assert base.startswith("nvidia/cuda:") and "runtime" in base
    args = stage_args(final)
    assert args["TORCH_VERSION"] == "2.13.0"
    assert args["TENSORRT_PACKAGE"].startswith("tensorrt")
    runs = " ".join(final.args("RUN"))
    assert '"torch==${TORCH_VERSION}"' in runs and '"${TENSORRT_PACKAGE}"' in runs
    vendor = re.search(r"printf '(.*?)'\s*\\?\s*>\s*(/usr/share/glvnd/egl_vendor.d/\S+\.json)", runs)
    assert vendor, "the NVIDIA EGL vendor file must be written"
    content = json.loads(vendor.group(1).encode().decode("unicode_escape"))
    assert content["ICD"]["library_path"] == "libEGL_nvidia.so.0"
    env = env_of(final)
    assert set(env["NVIDIA_DRIVER_CAPABILITIES"].split(",")) >= {"compute", "utility", "graphics", "video"}


def test_gateway_image_serves_what_the_chart_runs() -> None:
    _, stages = parse(DOCKER_DIR / "Dockerfile.gateway")
    final = stages[-1]
    (entrypoint,) = final.args("ENTRYPOINT")
    (cmd,) = final.args("CMD")
    assert json.loads(entrypoint) + json.loads(cmd) == CHART_VALUES["gateway"]["command"]
    env = env_of(final)
    assert int(env["MOTION_GRPC_PORT"]) == CHART_VALUES["gateway"]["grpcPort"]
    assert int(env["MOTION_METRICS_PORT"]) == CHART_VALUES["gateway"]["metricsPort"]
    (healthcheck,) = final.args("HEALTHCHECK")
    assert '"motion.healthcheck"' in healthcheck
    assert (REPO_ROOT / "motion" / "healthcheck.py").is_file()


def test_makefile_images_target_builds_every_dockerfile() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    for image in IMAGES:
        assert f"-f deploy/docker/Dockerfile.{image} " in makefile, image


def test_dockerignore_parser_applies_last_match_with_negation() -> None:
    patterns = ["**", "!motion/", "motion/secret.txt"]
    assert ignored("tests", patterns)
    assert not ignored("motion/cli.py", patterns)
    assert ignored("motion/secret.txt", patterns)
