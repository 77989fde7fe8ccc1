"""Every motionctl command answers --help, and --version works."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from motion import __version__
from motion.cli import build_parser, main


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for action in parser._actions:  # argparse has no public walk over subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append(prefix + (name,))
                out.extend(_subcommands(sub, prefix + (name,)))
    return out


def test_version_prints_package_version_with_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_describes_every_command_with_help_flag(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _subcommands(build_parser())
    assert commands, "motionctl registers no commands"
    for cmd in commands:
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0, cmd
        text = capsys.readouterr().out
        assert "usage: motionctl " + " ".join(cmd) in text, cmd


def test_entry_point_runs_as_module_with_subprocess() -> None:
    proc = subprocess.run([sys.executable, "-m", "motion.cli", "--help"], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "motionctl" in proc.stdout
