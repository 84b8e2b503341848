"""The ``diffevo`` command line: ``diffevo demo`` (more subcommands join here)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffevo", description="Diffusion Evolution, fast.")
    sub = parser.add_subparsers(dest="command", required=True)
    from .commands import bench, demo, info, rl, run

    demo.add_parser(sub)
    run.add_parser(sub)
    bench.add_parser(sub)
    info.add_parser(sub)
    rl.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
