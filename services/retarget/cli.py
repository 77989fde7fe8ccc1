"""`motionctl` subcommands of the retarget service."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds this service's subcommands (none yet)."""
