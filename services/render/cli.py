"""`motionctl` subcommands of the render service: `animate` (the whole embedded pipeline) and `render-serve`."""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import shutil
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from motion.cli import add_common_flags, emit


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `animate` and `render-serve`."""
    p = sub.add_parser("animate", help="make a character image perform the motion of a reference video")
    p.add_argument("--image", type=pathlib.Path, required=True, help="character image (PNG/JPEG)")
    p.add_argument("--video", type=pathlib.Path, required=True, help="reference video with one performer")
    p.add_argument("-o", "--output", type=pathlib.Path, required=True, help="output .mp4 (.webm when transparent)")
    p.add_argument("--resolution", choices=["720p", "1080p"], default="720p", help="output short side")
    p.add_argument("--orientation", choices=["video", "image"], default="video",
                   help="video: keep the performer's turns (<= 30 s); image: face the way the character is drawn (<= 10 s)")
    p.add_argument("--background", default="keep", help="keep | solid:#RRGGBB | image:PATH | transparent")
    p.add_argument("--no-sound", action="store_true", help="drop the reference video's audio")
    p.add_argument("--loop", action="store_true", help="blend the end into the start for seamless looping")
    p.add_argument("--joints", type=pathlib.Path, default=None,
                   help="manual character joints (our JSON or AnimatedDrawings char_cfg.yaml)")
    p.add_argument("--export-skeleton", type=pathlib.Path, default=None,
                   help="write the retargeted skeleton: BVH when the name ends in .bvh, JSON otherwise")
    p.add_argument("--report", type=pathlib.Path, default=None, help="write the per-job quality report JSON")
    p.add_argument("--preview", type=pathlib.Path, default=None, help="write a small side-by-side preview MP4")
    p.add_argument("--contact-sheet", type=pathlib.Path, default=None, help="write a PNG grid of rendered frames")
    p.add_argument("--prompt", default="", help="accepted; ignored by the deterministic renderer")
    p.add_argument("--negative-prompt", default="", help="accepted; ignored by the deterministic renderer")
    p.add_argument("--cfg", type=float, default=None, help="accepted; ignored by the deterministic renderer")
    p.add_argument("--model-dir", type=pathlib.Path, default=None)
    add_common_flags(p)
    p.set_defaults(func=_cmd_animate)

    s = sub.add_parser("render-serve", help="serve the gRPC RenderService on 127.0.0.1")
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--store", default=None, help="object store URL (default from settings)")
    s.set_defaults(func=_cmd_serve)


def _cmd_animate(args: argparse.Namespace) -> int:
    from services.render.animate import AnimateOptions, animate

    opts = AnimateOptions(
        resolution=args.resolution, orientation=args.orientation, background=args.background,
        sound=not args.no_sound, loop=args.loop, joints=args.joints, export_skeleton=args.export_skeleton,
        report=args.report, preview=args.preview, contact_sheet=args.contact_sheet, prompt=args.prompt,
        negative_prompt=args.negative_prompt, cfg=args.cfg, model_dir=args.model_dir)
    with native_stderr_filter() as stream, StageProgress(enabled=not (args.quiet or args.json),
                                                         stream=stream) as progress:
        res = animate(args.image, args.video, args.output, opts, progress=progress)
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in res.stage_s.items())
    human = (f"wrote {res.output} ({res.width_px}x{res.height_px}, {res.frames} frames at {res.fps:g} fps, "
             f"{res.duration_s:.2f} s) in {res.wall_s:.1f} s, real-time factor {res.real_time_factor:.2f}\n"
             f"stages: {stages}")
    if res.ignored_options:
        human += f"\nignored by the deterministic renderer: {', '.join(res.ignored_options)}"
    for w in res.warnings:
        human += f"\nwarning: {w}"
    emit(args, res.to_dict(), human)
    return 0


# Printed by the TFLite runtime (C++, straight to fd 2) for every interpreter; TF_CPP_MIN_LOG_LEVEL does not
# silence it in ai-edge-litert (checked), so the CLI drops exactly these lines from fd 2.
NATIVE_NOISE_PREFIXES: tuple[bytes, ...] = (b"INFO: Created TensorFlow Lite XNNPACK delegate",)


@contextlib.contextmanager
def native_stderr_filter(prefixes: tuple[bytes, ...] = NATIVE_NOISE_PREFIXES) -> Iterator[TextIO]:
    """Routes fd 2 through a pipe that drops native log lines starting with ``prefixes``; yields a stream on the
    real stderr (for progress bars, so the terminal check still sees a TTY). A no-op when stderr has no fd."""
    try:
        sys.stderr.flush()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield sys.stderr  # e.g. pytest's capture: nothing native to filter here
        return
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    real = os.fdopen(os.dup(saved), "w", buffering=1)

    def pump() -> None:
        pending = b""
        while chunk := os.read(read_fd, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = b"".join(ln + b"\n" for ln in lines if not ln.startswith(prefixes))
            # A partial line is held only while it could still become a dropped one.
            if pending and not any(p.startswith(pending[:len(p)]) for p in prefixes):
                out, pending = out + pending, b""
            if out:
                os.write(saved, out)
        if pending:
            os.write(saved, pending)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield real
    finally:
        sys.stderr.flush()
        real.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump reads EOF and ends
        thread.join(timeout=2.0)
        os.close(read_fd)
        real.close()
        os.close(saved)


class StageProgress:
    """Per-stage progress on stderr: a tqdm bar on a terminal; otherwise (logs, CI) one line per stage at most
    every ~10 %, so a captured log stays short."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, step_fraction: float = 0.1) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.step_fraction = step_fraction
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stage = ""
        self._bar: Any = None
        self._last_printed = -1.0
        # Render ranges finish on several worker threads at once.
        self._lock = threading.Lock()

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        with self._lock:
            self._report(stage, done, total)

    def _report(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self._close_bar()
            self._stage, self._last_printed = stage, -1.0
            if self.tty:
                from tqdm import tqdm

                # A pty can report 0 columns (no window yet); tqdm would then draw nothing.
                width = shutil.get_terminal_size((100, 24)).columns or 100
                self._bar = tqdm(total=total, desc=stage, file=self.stream, unit="f" if total > 1 else "it",
                                 leave=True, ncols=width)
        if self._bar is not None:
            if self._bar.total != total:
                self._bar.total = total
            self._bar.update(max(0, min(done, total) - self._bar.n))
            return
        fraction = min(done, total) / total
        if self._last_printed >= 1.0:
            return
        if done >= total or self._last_printed < 0 or fraction - self._last_printed >= self.step_fraction - 1e-9:
            # One line per stage start, every ~10 %, and at the end; single-step stages print only when done.
            if total == 1 and done < total:
                return
            print(f"{stage}: {done}/{total} ({fraction:.0%})", file=self.stream, flush=True)
            self._last_printed = fraction


def _cmd_serve(args: argparse.Namespace) -> int:
    from services.render.__main__ import serve

    return serve(port=args.port, store_url=args.store)
