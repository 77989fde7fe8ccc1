"""Runs a real job through Ray Serve's gRPC ingress; meant to run inside `unshare -n` (loopback only).

Starts weed mini (S3), a local Ray with `_temp_dir` under the build folder, the pose, retarget and
render Serve applications behind one gRPC ingress, and the gateway (in this process) pointed at the
ingress; submits one job and prints a JSON summary on the last line of stdout.

    python -m tests.integration.ray_mesh --image I --video V --build-dir build/ray-test
"""

from __future__ import annotations

import argparse
import json
import pathlib
import secrets
import sys
import time
import uuid

from motion.settings import Settings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--image", type=pathlib.Path, required=True)
    p.add_argument("--video", type=pathlib.Path, required=True)
    p.add_argument("--build-dir", type=pathlib.Path, required=True)
    p.add_argument("--timeout-s", type=float, default=300.0)
    a = p.parse_args(argv)

    import ray
    from ray import serve
    from ray.serve.config import gRPCOptions

    from motion.storage.weed import WeedMini
    from motion.v1 import gateway_service_pb2 as gw
    from services.gateway.auth import ApiKeys
    from services.gateway.cli import GatewayClient
    from services.gateway.mesh import free_port
    from services.gateway.rayserve import servicer_functions
    from services.gateway.server import GatewayConfig, GatewayServer

    a.build_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    summary: dict[str, object] = {}
    with WeedMini(a.build_dir / "s3") as weed:
        env = weed.env("raymesh")
        env["MOTION_INTERNAL_TOKEN"] = token
        env["MOTION_LOG_JSON"] = "1"
        t0 = time.monotonic()
        # Logical CPUs are scheduling slots, not cores: one per replica (pose, retarget, render) plus room.
        ray.init(
            num_cpus=4, include_dashboard=False, _temp_dir=str((a.build_dir / "ray").resolve()),
            runtime_env={"env_vars": env}, log_to_driver=False,
        )
        try:
            ingress_port = free_port()
            serve.start(
                http_options={"host": "127.0.0.1", "port": free_port()},
                grpc_options=gRPCOptions(port=ingress_port, grpc_servicer_functions=servicer_functions()),
            )
            from services.pose.app import build_app as pose_app
            from services.render.app import build_app as render_app
            from services.retarget.app import build_app as retarget_app

            for name, build in (("pose", pose_app), ("retarget", retarget_app), ("render", render_app)):
                # Apps without a route prefix are not reachable through the proxies (gRPC included).
                serve.run(build({}), name=name, route_prefix=f"/{name}")
            summary["serve_start_s"] = round(time.monotonic() - t0, 1)
            ingress = f"127.0.0.1:{ingress_port}"
            settings = weed.settings("raymesh", Settings(internal_token=token, grpc_port=0, metrics_port=0))
            config = GatewayConfig(pose_addr=ingress, retarget_addr=ingress, render_addrs=[ingress, ingress],
                                   owner="ray-gateway", ray_serve=True, frames_per_range=16)
            with GatewayServer(settings, config, api_keys=ApiKeys({"ray-test-key": "alpha"})) as server:
                with GatewayClient(f"127.0.0.1:{server.port}", "ray-test-key") as client:
                    t1 = time.monotonic()
                    job = client.create(gw.CreateJobRequest(
                        request_id=uuid.uuid4().hex, image_data=a.image.read_bytes(), image_filename=a.image.name,
                        video_data=a.video.read_bytes(), video_filename=a.video.name,
                    ))
                    deadline = time.monotonic() + a.timeout_s
                    while time.monotonic() < deadline:
                        job = client.call("GetJob", gw.GetJobRequest(name=job.name))
                        if job.state in (gw.JOB_STATE_SUCCEEDED, gw.JOB_STATE_FAILED, gw.JOB_STATE_CANCELLED):
                            break
                        time.sleep(0.5)
                    summary["job_s"] = round(time.monotonic() - t1, 1)
                    # What motion_render_workers_healthy reports behind Serve (its Healthz, per render address).
                    summary["render_workers_healthy"] = server.render_health()
                    summary["state"] = gw.JobState.Name(job.state)
                    summary["error"] = job.error_message
                    if job.result.key:
                        data = server.store.get_bytes(job.result)
                        out = a.build_dir / "result.mp4"
                        out.write_bytes(data)
                        summary["result_bytes"] = len(data)
                        summary["result_path"] = str(out)
        finally:
            serve.shutdown()
            ray.shutdown()
    print(json.dumps(summary), flush=True)
    return 0 if summary.get("state") == "JOB_STATE_SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
