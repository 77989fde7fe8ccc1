"""A tiny PoseService used to exercise motion.grpcutil over real gRPC (in-process and as a subprocess).

`python -m tests.foundation.pose_echo_server` serves it on 127.0.0.1, prints "PORT <grpc> <metrics>"
and blocks until SIGTERM.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc

from motion.errors import InputError
from motion.grpcutil import RunningServer, serve
from motion.settings import Settings
from motion.v1 import pose_service_pb2 as pb
from motion.v1 import pose_service_pb2_grpc as pb_grpc
from motion.v1.common_pb2 import Progress

SERVICE = "motion.v1.PoseService"


class PoseEcho(pb_grpc.PoseServiceServicer):
    """Behaviour chosen by the request's video key: ok, bad (InputError), crash, abort, slow."""

    def ExtractVideo(self, request: pb.ExtractVideoRequest, context: grpc.ServicerContext) -> Any:
        key = request.video.key
        if key == "bad":
            raise InputError("video.min_duration_s", "video is too short", limit=1.0, actual=0.2)
        if key == "crash":
            raise RuntimeError("boom")
        if key == "abort":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such video")
        if key.startswith("slow"):
            time.sleep(float(key.removeprefix("slow:") or 1.0))
        return pb.ExtractVideoResponse(frame_count=len(key))

    def StreamExtractVideo(
        self, request: pb.ExtractVideoRequest, context: grpc.ServicerContext
    ) -> Iterator[Any]:
        for done in range(1, 4):
            if request.video.key == "bad" and done == 2:
                raise InputError("video.corrupt", "cannot decode frame", limit=None, actual=done)
            yield pb.ExtractVideoResponse(progress=Progress(stage="pose", done=done, total=3))


def start(settings: Settings, **kw: Any) -> RunningServer:
    return serve([(pb_grpc.add_PoseServiceServicer_to_server, PoseEcho())], [SERVICE], settings, **kw)


def main() -> int:
    server = start(Settings.from_env(), port=0, metrics_port=0, grace_s=10.0)
    print(f"PORT {server.port} {server.metrics_port}", flush=True)
    server.wait()
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
