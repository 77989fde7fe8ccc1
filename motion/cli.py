"""`motionctl`: the command-line entry point. Each area registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from motion import __version__
from motion.errors import MotionError

# Modules that add subcommands; each defines register(subparsers) -> None.
COMMAND_MODULES = (
    "motion.samples.cli",
    "motion.media.cli",
    "services.pose.cli",
    "services.retarget.cli",
    "services.render.cli",
    "services.gateway.cli",
)


def add_common_flags(p: argparse.ArgumentParser) -> None:
    """--quiet / --json, shared by commands that report results."""
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or chatter")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def emit(args: argparse.Namespace, result: dict[str, Any], human: str | None = None) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    elif not getattr(args, "quiet", False):
        print(human if human is not None else "\n".join(f"{k}: {v}" for k, v in result.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="motionctl",
        description="Motion Control: make a still character image perform the motion of a reference video.",
    )
    parser.add_argument("--version", action="version", version=f"motionctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        rc = func(args)
    except MotionError as exc:
        if getattr(args, "json", False):
            print(json.dumps(exc.to_dict(), default=str), file=sys.stderr)
        else:
            print(f"motionctl: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
