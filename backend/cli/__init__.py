"""``dreamcad-backend``: the backend's command line.

Three groups of subcommands: the service (``serve``, ``keys``), standalone work on this machine
(``generate``, ``postprocess``, ``models``, ``download``, ``doctor``, ``jobs``, ``stats``,
``bench``), and a
client of a running backend for shell scripts and other machines (``ping``, ``submit``,
``status``, ``fetch``, ``cancel``). Every failure prints ``error: <code>: <message>`` and a
hint, and exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from backend import __version__, logs
from backend.cli import bench, local, remote, service, stats
from shared_protocol.errors import ProtocolError

EXIT_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dreamcad-backend",
        description="Dream CAD backend: serve 3D generation over ZeroMQ, or run it standalone.",
    )
    parser.add_argument("--version", action="version", version=f"dreamcad-backend {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    service.add_commands(commands)
    local.add_commands(commands)
    stats.add_commands(commands)
    bench.add_commands(commands)
    remote.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level)  # serve --log-json switches to JSON lines
    try:
        return int(args.func(args) or 0)
    except ProtocolError as error:
        print(f"error: {error.info.describe()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
