"""Pose benchmark: speed of our whole-body extraction vs MediaPipe 0.10.21's legacy Holistic on the same
1080p frames, agreement with Holistic on real videos, and PCK@0.05 on the sample kit's drawn performer.

Our pipeline runs with the services' default runtime (MOTION_POSE_RUNTIME, "auto": openvino where the CPU computes
bf16 natively, else litert); the speed section also runs litert, the reference, for comparison.

MediaPipe runs only inside a throwaway venv (default /tmp/mpref, created on first use from the pinned wheel);
it is never imported by the project. Run: `python -m bench` (all; `--quick`: fewer frames and videos) or
`python -m bench.bench_pose`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

import av
import numpy as np

REF_VENV = pathlib.Path(os.environ.get("MOTION_MP_REF_VENV", "/tmp/mpref"))
SPEED_VIDEO = "musepose__dance.mp4"  # real 1080x1920 video
AGREEMENT_VIDEOS = ("musepose__ubc_91BjuE6irxS.mp4", "musepose__ubc_91bxAN6BjAS.mp4", "animate_x__dance_1.mp4",
                    "unianimate__source_video.mp4")

# Executed by the venv's python: reads frames from .npy, runs legacy Holistic, writes landmarks in pixels.
_REF_SCRIPT = '''
import sys, time
import numpy as np


def main():
    import mediapipe as mp
    frames = np.load(sys.argv[1], mmap_mode="r")
    n, h, w = frames.shape[:3]
    body = np.full((n, 33, 4), np.nan, np.float32)
    hands = np.full((n, 2, 21, 3), np.nan, np.float32)
    face = np.full((n, 468, 3), np.nan, np.float32)
    times = np.zeros(n, np.float64)
    cpu0 = time.process_time()
    holistic = mp.solutions.holistic.Holistic(static_image_mode=False, model_complexity=1,
                                              smooth_landmarks=True, refine_face_landmarks=False)
    for i in range(n):
        rgb = np.ascontiguousarray(frames[i])
        t0 = time.perf_counter()
        res = holistic.process(rgb)
        times[i] = time.perf_counter() - t0
        if res.pose_landmarks is not None:
            body[i] = [(p.x * w, p.y * h, p.z * w, p.visibility) for p in res.pose_landmarks.landmark]
        for k, lm in enumerate((res.left_hand_landmarks, res.right_hand_landmarks)):
            if lm is not None:
                hands[i, k] = [(p.x * w, p.y * h, p.z * w) for p in lm.landmark]
        if res.face_landmarks is not None:
            face[i] = [(p.x * w, p.y * h, p.z * w) for p in res.face_landmarks.landmark][:468]
    cpu_s = time.process_time() - cpu0
    holistic.close()
    np.savez(sys.argv[2], body=body, hands=hands, face=face, times=times, cpu_s=cpu_s)


main()
'''


def ensure_ref_venv(venv: pathlib.Path = REF_VENV) -> pathlib.Path:
    """python of a throwaway venv with mediapipe==0.10.21 (it pins numpy<2/protobuf<5: keep it apart)."""
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import mediapipe"], capture_output=True).returncode == 0:
        return py
    from services.pose.models import _download_wheel

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _download_wheel(pathlib.Path(tmp), timeout_s=600)
        subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True)
    return py


def read_frames(path: pathlib.Path, n: int) -> tuple[np.ndarray, float]:
    out = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or 30)
        for fr in c.decode(s):
            out.append(fr.to_ndarray(format="rgb24"))
            if len(out) >= n:
                break
    return np.stack(out), fps


def run_reference(py: pathlib.Path, frames: np.ndarray, workdir: pathlib.Path) -> dict[str, np.ndarray]:
    frames_path, out_path, script = workdir / "frames.npy", workdir / "ref.npz", workdir / "ref.py"
    np.save(frames_path, frames)
    script.write_text(_REF_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    subprocess.run([str(py), str(script), str(frames_path), str(out_path)], check=True, env=env,
                   capture_output=True)
    with np.load(out_path) as z:
        return {k: z[k] for k in z.files}


def default_runtime() -> tuple[str, str]:
    """(runtime, precision) our pipeline uses when a request names no runtime."""
    from services.pose.service import resolve_default_runtime

    name = resolve_default_runtime()
    if name == "openvino":
        from services.pose.runtime_openvino import resolve_precision

        return name, resolve_precision()
    return name, "f32"


def run_ours(frames: np.ndarray, fps: float, hands: bool = True, face: bool = True,
             num_threads: int = 1, track_rois: bool = True, runtime: str | None = None) -> dict[str, Any]:
    """Our pipeline over in-memory frames through the streaming (pipelined) path; wall time in `total_s`.
    `runtime` None = the services' default."""
    from services.pose.pipeline import PoseExtractor, PoseOptions

    runtime = runtime or default_runtime()[0]
    n = len(frames)
    body = np.full((n, 33, 4), np.nan, np.float32)
    hand_arr = np.full((n, 2, 21, 3), np.nan, np.float32)
    face_arr = np.full((n, 468, 3), np.nan, np.float32)
    opts = PoseOptions(runtime=runtime, hands=hands, face=face, num_threads=num_threads, track_rois=track_rois)
    with PoseExtractor(opts) as ex:
        list(ex.process_frames([(0, 0.0, frames[0])]))  # warm-up (XNNPACK packs weights on first use)
        ex.reset()
        t0, cpu0 = time.perf_counter(), time.process_time()
        for f, _ in ex.process_frames((i, i / fps, frames[i]) for i in range(n)):
            i = f.index
            if f.present and f.body is not None:
                body[i] = f.body[:, :4]
            for k, h in enumerate((f.left_hand, f.right_hand)):
                if h is not None:
                    hand_arr[i, k] = h.landmarks[:, :3]
            if f.face is not None:
                face_arr[i] = f.face.landmarks[:, :3]
        total_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    return {"body": body, "hands": hand_arr, "face": face_arr, "total_s": total_s, "cpu_s": cpu_s}


def agreement(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, Any]:
    ob, rb = ours["body"], ref["body"]
    both = ~np.isnan(ob[:, 0, 0]) & ~np.isnan(rb[:, 0, 0])
    height = np.nanmax(rb[:, :, 1], axis=1) - np.nanmin(rb[:, :, 1], axis=1)  # person height in px
    body_d = np.linalg.norm(ob[both, :, :2] - rb[both, :, :2], axis=-1).mean(axis=1) / height[both]
    hand_d = []
    for k in range(2):
        hb = ~np.isnan(ours["hands"][:, k, 0, 0]) & ~np.isnan(ref["hands"][:, k, 0, 0])
        d = np.linalg.norm(ours["hands"][hb, k, :, :2] - ref["hands"][hb, k, :, :2], axis=-1).mean(axis=1)
        hand_d.extend((d / height[hb]).tolist())
    fb = ~np.isnan(ours["face"][:, 0, 0]) & ~np.isnan(ref["face"][:, 0, 0])
    face_d = np.linalg.norm(ours["face"][fb, :, :2] - ref["face"][fb, :, :2], axis=-1).mean(axis=1) / height[fb]
    n = len(ob)
    return {
        "frames": n,
        "body_mean_dist_pct_height": round(float(body_d.mean() * 100), 3) if both.any() else None,
        "hands_mean_dist_pct_height": round(float(np.mean(hand_d) * 100), 3) if hand_d else None,
        "face_mean_dist_pct_height": round(float(face_d.mean() * 100), 3) if fb.any() else None,
        "body_detect_rate_ours": round(float((~np.isnan(ob[:, 0, 0])).mean()), 4),
        "body_detect_rate_mediapipe": round(float((~np.isnan(rb[:, 0, 0])).mean()), 4),
        "hands_detect_rate_ours": round(float((~np.isnan(ours["hands"][:, :, 0, 0])).mean()), 4),
        "hands_detect_rate_mediapipe": round(float((~np.isnan(ref["hands"][:, :, 0, 0])).mean()), 4),
        "face_detect_rate_ours": round(float((~np.isnan(ours["face"][:, 0, 0])).mean()), 4),
        "face_detect_rate_mediapipe": round(float((~np.isnan(ref["face"][:, 0, 0])).mean()), 4),
    }


def pck_on_samples(workdir: pathlib.Path, threshold: float = 0.05, runtime: str = "litert") -> dict[str, Any]:
    """PCK@threshold of person height over the 12 limb joints on the sample kit's drawn performer."""
    from motion.samples.kit import PerformerOptions, load_ground_truth, write_performer_video
    from motion.skeleton import LIMB_JOINTS
    from services.pose.pipeline import PoseExtractor, PoseOptions

    video, gt_path = workdir / "performer.mp4", workdir / "performer.joints.json"
    write_performer_video(video, gt_path, PerformerOptions(duration_s=4.0, audio=False))
    gt = load_ground_truth(gt_path)
    with PoseExtractor(PoseOptions(runtime=runtime, hands=False, face=False)) as ex:
        seq = ex.process_video(video)
    correct = total = 0
    for i, f in enumerate(seq.frames[: len(gt)]):
        pts, vis = gt.points_px[i], gt.visible[i]
        height = float(pts[:, 1].max() - pts[:, 1].min())
        for j in LIMB_JOINTS:
            if not vis[j]:
                continue
            total += 1
            if f.present and f.body is not None and np.hypot(*(f.body[j, :2] - pts[j])) <= threshold * height:
                correct += 1
    return {"pck": round(correct / total, 4) if total else None, "joints_scored": total, "frames": len(gt)}


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    data = pathlib.Path(getattr(args, "data", None) or pathlib.Path(__file__).resolve().parents[2] / "shared" / "data")
    quick = bool(getattr(args, "quick", False))
    n_speed = int(getattr(args, "pose_frames", 0) or (30 if quick else 90))
    n_agree = int(getattr(args, "pose_agree_frames", 0) or (40 if quick else 120))
    rounds = 1 if quick else 2
    runtime, precision = default_runtime()
    out: dict[str, Any] = {"cpu_count": os.cpu_count(), "runtime": runtime, "precision": precision}
    py = ensure_ref_venv()
    with tempfile.TemporaryDirectory(prefix="bench-pose-") as tmp:
        work = pathlib.Path(tmp)
        frames, fps = read_frames(data / "videos" / SPEED_VIDEO, n_speed)
        # The machine is shared: alternate the runs and keep each one's best.
        refs, ourss, literts = [], [], []
        for _ in range(rounds):
            refs.append(run_reference(py, frames, work))
            ourss.append(run_ours(frames, fps, runtime=runtime))
            if runtime != "litert":
                literts.append(run_ours(frames, fps, runtime="litert"))
        ref = min(refs, key=lambda r: float(r["times"].sum()))
        ours = min(ourss, key=lambda r: float(r["total_s"]))
        litert = min(literts, key=lambda r: float(r["total_s"])) if literts else ours
        body_only = run_ours(frames, fps, hands=False, face=False, runtime=runtime)
        # Throughput over the same in-memory frames (decode excluded on both sides).
        n = len(frames)
        mp_fps = n / float(ref["times"].sum())
        our_fps = n / float(ours["total_s"])
        out["speed_1080p"] = {
            "video": SPEED_VIDEO, "frames": n, "size": f"{frames.shape[2]}x{frames.shape[1]}",
            "runtime": f"{runtime} ({precision})",
            "ours_whole_body_fps": round(our_fps, 2),
            "ours_body_only_fps": round(n / float(body_only["total_s"]), 2),
            "litert_whole_body_fps": round(n / float(litert["total_s"]), 2),
            "mediapipe_holistic_fps": round(mp_fps, 2),
            "ratio": round(our_fps / mp_fps, 3),
            # CPU time per frame depends less on the other load on the machine than wall time does.
            "ours_cpu_ms_per_frame": round(1000 * float(ours["cpu_s"]) / n, 1),
            "litert_cpu_ms_per_frame": round(1000 * float(litert["cpu_s"]) / n, 1),
            "mediapipe_cpu_ms_per_frame": round(1000 * float(ref["cpu_s"]) / n, 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "agreement": agreement(ours, ref),
        }
        del frames
        per_video = {}
        for name in AGREEMENT_VIDEOS[:2] if quick else AGREEMENT_VIDEOS:
            path = data / "videos" / name
            if not path.exists():
                continue
            frames, fps = read_frames(path, n_agree)
            per_video[name] = agreement(run_ours(frames, fps, runtime=runtime), run_reference(py, frames, work))
        out["agreement"] = per_video
        try:
            out["pck_samples"] = pck_on_samples(work, runtime=runtime)
        except (ImportError, AttributeError) as exc:
            out["pck_samples"] = {"skipped": f"sample kit unavailable: {exc}"}
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=None)
    p.add_argument("--pose-frames", type=int, default=90)
    p.add_argument("--pose-agree-frames", type=int, default=120)
    p.add_argument("--quick", action="store_true")
    print(json.dumps(run(p.parse_args()), indent=2))
