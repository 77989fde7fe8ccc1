"""Pose, retarget and render as Ray Serve applications behind Serve's gRPC ingress, with the gateway
in front, on a local Ray inside a network namespace that only has loopback (`unshare -n`): Ray binds
every interface whatever it is told, so the namespace keeps it off the network."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import av
import pytest

from tests.gateway.media import trim_video

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _unshare_ok() -> str:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) not installed"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n not permitted here: {probe.stderr.strip()[:200]}"
    return ""


def test_job_succeeds_through_ray_serve_ingress_with_unshared_network(
    shared_data: pathlib.Path, repo_root: pathlib.Path, tmp_path: pathlib.Path
):
    pytest.importorskip("ray.serve", reason="ray[serve] not installed (pip install 'ray[serve]>=2.40,<3')")
    reason = _unshare_ok()
    if reason:
        pytest.skip(reason)
    video = trim_video(shared_data / "videos/controlnext__svd2_video_01.mp4", tmp_path / "reference.mp4",
                       seconds=3.0, fps=10, short_side_px=340)
    image = shared_data / "characters/musev__man.jpg"
    build_dir = repo_root / "build" / "ray-test"
    shutil.rmtree(build_dir, ignore_errors=True)
    cmd = (f"ip link set lo up && exec {sys.executable} -m tests.integration.ray_mesh "
           f"--image {image} --video {video} --build-dir {build_dir}")
    proc = subprocess.run(["unshare", "-n", "sh", "-c", cmd], cwd=repo_root, capture_output=True, text=True,
                          timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no summary (rc={proc.returncode})\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    summary = json.loads(lines[-1])
    assert summary["state"] == "JOB_STATE_SUCCEEDED", (summary, proc.stderr[-3000:])
    assert summary["render_workers_healthy"] == 2, summary
    with av.open(summary["result_path"]) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == 30
    shutil.rmtree(build_dir, ignore_errors=True)
