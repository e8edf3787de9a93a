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
import os
import sys
from collections.abc import Sequence

from backend import logs
from backend.cli import postprocess
from shared_protocol.errors import ProtocolError

EXIT_ERROR = 1


def _top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(
        prog="dreamcad-backend",
        description="Dream CAD backend: serve 3D generation over ZeroMQ, or run it standalone.",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    return parser, parser.add_subparsers(dest="command", required=True, metavar="COMMAND")


def build_parser() -> argparse.ArgumentParser:
    # The subcommand modules import the server, the model registry, zmq...: here, not at the
    # top, so that the postprocess path (postprocess_parser) never loads them.
    from backend import __version__
    from backend.cli import bench, local, remote, service, stats

    parser, commands = _top_parser()
    parser.add_argument("--version", action="version", version=f"dreamcad-backend {__version__}")
    service.add_commands(commands)
    local.add_commands(commands)
    stats.add_commands(commands)
    bench.add_commands(commands)
    remote.add_commands(commands)
    return parser


def postprocess_parser(argv: Sequence[str]) -> argparse.ArgumentParser | None:
    """A parser with the postprocess command only, when ``argv`` asks for that command with
    nothing before it but ``--log-level``; otherwise None (the full parser is needed)."""
    position = 0
    while position < len(argv) and argv[position].startswith("--log-level"):
        position += 1 if "=" in argv[position] else 2
    if position >= len(argv) or argv[position] != postprocess.COMMAND:
        return None
    parser, commands = _top_parser()
    postprocess.add_commands(commands)
    return parser


def single_threaded_blas() -> None:
    """numpy's OpenBLAS to one thread, before numpy is imported (unless the user set it). It
    starts a thread per core that spins after each call, on the cores numba's threads need,
    and nothing of ours wants it: the pipeline's linear algebra is closed-form 3x3 blocks, and
    the models' is torch's own BLAS."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main(argv: Sequence[str] | None = None) -> int:
    whole_process = argv is None  # the command line's own process, not a caller's call
    if whole_process:
        single_threaded_blas()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = (postprocess_parser(argv) or build_parser()).parse_args(argv)
    args.whole_process = whole_process  # postprocess may then end the process itself
    logs.configure(args.log_level)  # serve --log-json switches to JSON lines
    try:
        return int(args.func(args) or 0)
    except ProtocolError as error:
        print(f"error: {error.info.describe()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
