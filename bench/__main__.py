"""`python -m bench [--data DIR] [--out DIR] [--only NAME ...] [--quick] [--key value ...]`

Imports every `bench/bench_*.py` module, calls its `run(args) -> dict`, prints one table of
figures (nested dicts are flattened to dotted names) and writes the results as JSON under --out
(`<name>.json` per module and `summary.json`). Extra `--key value` flags are passed through on
`args` (dashes become underscores; numbers are parsed) for module-specific knobs such as
`--pose-frames 30`. A module that fails is reported and the others still run; the exit status
is 1 if any failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import platform
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

BENCH_DIR = pathlib.Path(__file__).resolve().parent
DEFAULT_DATA = BENCH_DIR.parent.parent / "shared" / "data"


def discover() -> list[str]:
    """Module names (without the `bench_` prefix), sorted."""
    return sorted(p.stem[len("bench_") :] for p in BENCH_DIR.glob("bench_*.py"))


def _coerce(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA, help="real media (../shared/data)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench"), help="where JSON results go")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only this module (e.g. media or bench_media); repeatable")
    p.add_argument("--quick", action="store_true", help="fewer frames: a smoke run, figures are noisier")
    p.add_argument("--list", action="store_true", help="list the benchmark modules and exit")
    args, extra = p.parse_known_args(argv)
    # Pass-through knobs: --pose-frames 30 -> args.pose_frames = 30; a bare --flag -> True.
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--"):
            p.error(f"unexpected argument {token!r}")
        key = token[2:]
        value: Any = True
        if "=" in key:
            key, raw = key.split("=", 1)
            value = _coerce(raw)
        elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            value = _coerce(extra[i + 1])
            i += 1
        setattr(args, key.replace("-", "_"), value)
        i += 1
    return args


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    if isinstance(value, list | tuple):
        text = ", ".join(_fmt(v) for v in value)
        return f"[{text}]" if len(text) < 60 else f"[{len(value)} values]"
    return str(value)


def print_table(results: dict[str, dict[str, Any]]) -> None:
    rows = [(name, key, _fmt(val)) for name, res in results.items() for key, val in flatten(res)]
    if not rows:
        print("no figures")
        return
    w_mod = max(len("module"), *(len(r[0]) for r in rows))
    w_key = max(len("figure"), *(len(r[1]) for r in rows))
    print(f"{'module':<{w_mod}}  {'figure':<{w_key}}  value")
    print(f"{'-' * w_mod}  {'-' * w_key}  {'-' * 5}")
    for mod, key, val in rows:
        print(f"{mod:<{w_mod}}  {key:<{w_key}}  {val}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    wanted = {n.removeprefix("bench_") for n in args.only}
    unknown = wanted - set(names)
    if unknown:
        print(f"python -m bench: no such benchmark: {', '.join(sorted(unknown))} (have: {', '.join(names)})",
              file=sys.stderr)
        return 2
    selected = [n for n in names if not wanted or n in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    for name in selected:
        print(f"== bench_{name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            res = module.run(args)
            if not isinstance(res, dict):
                raise TypeError(f"bench_{name}.run returned {type(res).__name__}, not a dict")
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            res = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
        res = {**res, "wall_s": round(time.perf_counter() - t0, 2)}
        results[name] = res
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=2, sort_keys=True, default=str) + "\n")
    summary = {"machine": machine, "results": results, "failed": failed}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    print_table(results)
    print(f"\nJSON: {args.out}/summary.json", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
