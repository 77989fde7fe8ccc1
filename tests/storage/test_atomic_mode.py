"""Files written atomically are ordinary files (mode 0644), not mkstemp's owner-only 0600."""

from __future__ import annotations

import pathlib
import stat

from motion.storage.atomic import atomic_write_bytes


def test_atomic_write_leaves_readable_file_with_default_mode(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "result.mp4"
    atomic_write_bytes(out, b"data")
    assert out.read_bytes() == b"data"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["result.mp4"]  # no temporary file left
