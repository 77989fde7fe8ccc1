"""Gateway throughput and latency: N concurrent jobs (default 20) from 3 tenants through the local mesh.

The mesh is the real one (`motionctl serve all` wiring): weed mini S3, pose, retarget, 2 render workers
and the gateway as separate processes on 127.0.0.1. Inputs: the first 3 s of a real reference video at
10 fps (short side 340 px) and three real characters. Every job gets its own solid background colour,
so every job renders and encodes its own video; the skeleton is extracted once and reused (cache).
Figures: wall time of the jobs, jobs per minute, latency (create -> succeeded) p50 / p95 / max, failures.
Run: `python -m bench --only gateway [--gateway-jobs 20]`.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import threading
import time
import uuid
from typing import Any

REFERENCE = "videos/controlnext__svd2_video_01.mp4"
CHARACTERS = ("characters/musev__man.jpg", "characters/moore_aa__anyone-11.png", "characters/moore_aa__anyone-3.png")
KEYS = {"bench-key-alpha": "alpha", "bench-key-beta0": "beta", "bench-key-gamma": "gamma"}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return ordered[idx]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from motion.v1 import gateway_service_pb2 as gw
    from motion.v1 import render_service_pb2
    from services.gateway.cli import GatewayClient
    from services.gateway.mesh import LocalMesh, MeshOptions
    from tests.gateway.media import trim_video

    data = pathlib.Path(args.data)
    if not (data / REFERENCE).is_file():
        return {"skipped": f"no real data under {data}"}
    n_jobs = int(getattr(args, "gateway_jobs", 6 if args.quick else 20))
    workers = int(getattr(args, "gateway_render_workers", 2))
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_s:
        tmp = pathlib.Path(tmp_s)
        video = trim_video(data / REFERENCE, tmp / "reference.mp4", seconds=3.0, fps=10, short_side_px=340)
        images = [data / c for c in CHARACTERS]
        tenants = list(KEYS.values())
        key_of = {t: k for k, t in KEYS.items()}
        options = MeshOptions(data_dir=tmp / "mesh", render_workers=workers, api_keys=KEYS,
                              gateway_env={"MOTION_GATEWAY_MAX_QUEUE": "32", "MOTION_GATEWAY_CONCURRENCY": "2"})
        t_start = time.perf_counter()
        with LocalMesh(options) as mesh:
            startup_s = time.perf_counter() - t_start
            latencies: list[float] = []
            states: list[str] = []
            lock = threading.Lock()

            def one(i: int) -> None:
                tenant = tenants[i % len(tenants)]
                image = images[i % len(images)]
                opts = gw.JobOptions(background=render_service_pb2.Background(
                    mode=render_service_pb2.BACKGROUND_MODE_SOLID, color=f"#{(i * 2654435761) % 0xFFFFFF:06x}"))
                req = gw.CreateJobRequest(request_id=uuid.uuid4().hex, image_data=image.read_bytes(),
                                          image_filename=image.name, video_data=video.read_bytes(),
                                          video_filename=video.name, options=opts)
                t0 = time.perf_counter()
                with GatewayClient(mesh.addrs["gateway"], key_of[tenant]) as client:
                    job = client.create(req, max_wait_s=600)
                    updates = list(client.watch(job.name))
                    last = updates[-1] if updates else job
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    states.append(gw.JobState.Name(last.state))

            t0 = time.perf_counter()
            threads = [threading.Thread(target=one, args=(i,)) for i in range(n_jobs)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall_s = time.perf_counter() - t0
    succeeded = states.count("JOB_STATE_SUCCEEDED")
    return {
        "jobs": n_jobs,
        "render_workers": workers,
        "succeeded": succeeded,
        "failed": n_jobs - succeeded,
        "mesh_startup_s": round(startup_s, 2),
        "jobs_wall_s": round(wall_s, 2),
        "throughput_jobs_per_min": round(60.0 * succeeded / wall_s, 2) if wall_s > 0 else 0.0,
        "latency_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p95_s": round(_percentile(latencies, 0.95), 2) if latencies else None,
        "latency_max_s": round(max(latencies), 2) if latencies else None,
        "frames_per_job": 30,
    }
