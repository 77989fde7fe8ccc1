"""The generated motion/v1 code matches protos/ (make proto was run) and imports from any directory."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from tests.conftest import REPO_ROOT

GENERATED = REPO_ROOT / "motion" / "v1"


def test_generated_code_matches_protos_with_fresh_generation(tmp_path: pathlib.Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "gen_proto.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    fresh_dir = tmp_path / "motion" / "v1"
    fresh = {p.name: p.read_bytes() for p in fresh_dir.glob("*_pb2*.py*")}
    committed = {p.name: p.read_bytes() for p in GENERATED.glob("*_pb2*.py*")}
    protos = sorted(p.stem for p in (REPO_ROOT / "protos" / "motion" / "v1").glob("*.proto"))
    assert fresh, "gen_proto.py wrote nothing"
    assert sorted({name.split("_pb2")[0] for name in fresh}) == protos
    missing = sorted(set(fresh) - set(committed))
    extra = sorted(set(committed) - set(fresh))
    stale = sorted(name for name in set(fresh) & set(committed) if fresh[name] != committed[name])
    assert not (missing or extra or stale), (
        f"motion/v1 is stale, run `make proto`: missing={missing} extra={extra} differing={stale}"
    )


def test_generated_modules_import_with_foreign_working_directory(tmp_path: pathlib.Path) -> None:
    modules = sorted(f"motion.v1.{p.stem}" for p in GENERATED.glob("*_pb2*.py"))
    assert any(m.endswith("_pb2_grpc") for m in modules)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok')"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code, *modules],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
