"""Regenerate Python code for protos/motion/v1 into motion/v1 (run via `make proto`).

`python tools/gen_proto.py --out DIR` writes into DIR instead (used by the staleness test).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    import grpc_tools
    from grpc_tools import protoc  # dev dependency only

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(PROTO_ROOT.glob("motion/v1/*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    pkg = out_dir / "motion" / "v1"
    for init in (out_dir / "motion" / "__init__.py", pkg / "__init__.py"):
        if init.parent == pkg and not init.exists():
            init.write_text('"""Generated protobuf code for motion.v1 (make proto)."""\n')
    return sorted(pkg.glob("*_pb2*.py*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT)
    args = parser.parse_args()
    files = generate(args.out)
    print(f"generated {len(files)} files under {args.out / 'motion' / 'v1'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
