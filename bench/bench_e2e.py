"""End-to-end benchmark: `animate()` (the API behind `motionctl animate`) on a 10 s, 30 fps real video with a
real character, at 720p and 1080p; prints the real-time factor (wall / video duration) and the per-stage
split the orchestrator reports (pose (decode included), rig, retarget, render (encode included), join), plus
the clip's decode cost measured alone (`decode_only`).

`cli_720p` times the same run as `motionctl animate` in a fresh process from outside (interpreter start and
imports included), what a user of the CLI waits for.

The clip is cut from a real dance video of ../shared/data (first 10 s, resampled to 30 fps) into a temporary
file. Each run gets a fresh local store (MOTION_STORE_URL), so the pose stage is never a cache hit. The machine
may be shared: the 1-minute load average and the process CPU time per video frame (steadier than wall time
under load; pose and render run in this process) are printed with each figure.

Run: `python -m bench --only e2e` (`--quick`: 3 s clip, 720p only) or `python -m bench.bench_e2e`.
Knobs: `--e2e-video NAME`, `--e2e-character NAME[,NAME]` (default: an anime illustration and a photo),
`--e2e-seconds S`, `--e2e-resolutions 720p,1080p`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import tempfile
import time
from typing import Any

E2E_VIDEO = "musepose__ubc_91bxAN6BjAS.mp4"  # 720x940, 29.97 fps, 12.2 s, one dancer, full body
# An anime illustration (large, detailed texture: the costlier render) and a photo of a man.
E2E_CHARACTERS = ("musepose__ref.png", "musev__man.jpg")
E2E_FPS = 30.0


def make_clip(src: pathlib.Path, dst: pathlib.Path, seconds: float, fps: float = E2E_FPS) -> pathlib.Path:
    """The first `seconds` of `src` resampled to `fps` (constant frame rate), H.264 MP4 without audio."""
    from motion.media import VideoWriter, iter_frames, probe_video

    info = probe_video(src)
    w, h = info.width - info.width % 2, info.height - info.height % 2
    with VideoWriter(dst, w, h, fps) as writer:
        for fr in iter_frames(src, fps=fps, max_duration_s=seconds):
            writer.write(fr.rgb[:h, :w])
    return dst


def decode_cost(clip: pathlib.Path) -> dict[str, float]:
    """Decode + RGB conversion alone (the pose stage includes it; the orchestrator does not split it out)."""
    from motion.media import iter_frames

    t0, c0, n = time.perf_counter(), time.process_time(), 0
    for _ in iter_frames(clip):
        n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": n, "wall_s": round(wall, 3), "cpu_ms_per_frame": round(1000 * cpu / max(n, 1), 2)}


def _cpu_s() -> float:
    """CPU time of this process and its reaped children (encoders may run as subprocesses)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_once(image: pathlib.Path, video: pathlib.Path, resolution: str, work: pathlib.Path) -> dict[str, Any]:
    from services.render.animate import AnimateOptions, animate

    store_dir = work / f"store-{resolution}-{time.monotonic_ns()}"
    store_dir.mkdir(parents=True)
    out = work / f"out-{resolution}.mp4"
    old = os.environ.get("MOTION_STORE_URL")
    os.environ["MOTION_STORE_URL"] = f"file://{store_dir}"  # fresh store: no pose/render cache hits
    try:
        load_before = os.getloadavg()[0]
        cpu0 = _cpu_s()
        res = animate(image, video, out, AnimateOptions(resolution=resolution, sound=False))
        cpu = _cpu_s() - cpu0
    finally:
        if old is None:
            os.environ.pop("MOTION_STORE_URL", None)
        else:
            os.environ["MOTION_STORE_URL"] = old
    frames = max(res.frames, 1)
    return {
        "resolution": resolution,
        "output_size": f"{res.width_px}x{res.height_px}",
        "frames": res.frames,
        "duration_s": round(res.duration_s, 3),
        "wall_s": round(res.wall_s, 3),
        "real_time_factor": round(res.real_time_factor, 3),
        "stage_s": {k: round(v, 3) for k, v in res.stage_s.items()},
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_frame": round(1000 * cpu / frames, 1),
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "output_bytes": out.stat().st_size,
    }


def run_cli(image: pathlib.Path, video: pathlib.Path, resolution: str, work: pathlib.Path) -> dict[str, Any]:
    """`motionctl animate` as its own process, timed from outside: what a user waits for, interpreter start
    and imports included (animate()'s own wall time starts after them)."""
    import subprocess
    import sys

    store_dir = work / f"cli-store-{resolution}-{time.monotonic_ns()}"
    store_dir.mkdir(parents=True)
    out = work / f"cli-{resolution}.mp4"
    env = dict(os.environ, MOTION_STORE_URL=f"file://{store_dir}")
    cmd = [sys.executable, "-m", "motion.cli", "animate", "--image", str(image), "--video", str(video), "-o",
           str(out), "--resolution", resolution, "--no-sound", "--json"]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"motionctl animate failed ({proc.returncode}): {proc.stderr[-2000:]}")
    duration = float(json.loads(proc.stdout).get("duration_s", 0.0)) or 1.0
    return {"wall_s": round(wall, 3), "real_time_factor": round(wall / duration, 3),
            "load_average_1min_before": round(load_before, 2)}


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    data = pathlib.Path(getattr(args, "data", None) or pathlib.Path(__file__).resolve().parents[2] / "shared" / "data")
    quick = bool(getattr(args, "quick", False))
    seconds = float(getattr(args, "e2e_seconds", 0) or (3.0 if quick else 10.0))
    resolutions = str(getattr(args, "e2e_resolutions", "") or ("720p" if quick else "720p,1080p")).split(",")
    src = data / "videos" / str(getattr(args, "e2e_video", "") or E2E_VIDEO)
    names = str(getattr(args, "e2e_character", "") or ",".join(E2E_CHARACTERS[:1] if quick else E2E_CHARACTERS))
    images = [data / "characters" / n.strip() for n in names.split(",") if n.strip()]
    out: dict[str, Any] = {"cpu_count": os.cpu_count(), "video": src.name, "clip_s": seconds, "clip_fps": E2E_FPS}
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        work = pathlib.Path(tmp)
        clip = make_clip(src, work / "clip.mp4", seconds)
        out["decode_only"] = decode_cost(clip)
        for image in images:
            per: dict[str, Any] = {}
            for resolution in resolutions:
                per[resolution] = run_once(image, clip, resolution.strip(), work)
            # The same at the first resolution through the CLI, in a fresh process.
            per[f"cli_{resolutions[0].strip()}"] = run_cli(image, clip, resolutions[0].strip(), work)
            out[image.stem[:24]] = per
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--e2e-seconds", type=float, default=0.0)
    p.add_argument("--e2e-resolutions", default="")
    p.add_argument("--e2e-video", default="")
    p.add_argument("--e2e-character", default="")
    print(json.dumps(run(p.parse_args()), indent=2))
