"""``serve`` and ``keys``: run the service, and make the CURVE keys a remote service needs."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

import zmq.auth

from backend import logs
from backend.cli.options import (
    add_data_dir,
    add_weights,
    budget_list,
    settings_from,
    weights_from,
)
from backend.disk_space import disk_full_error, is_disk_full
from backend.models.registry import ModelRegistry
from backend.server import BackendServer, ConfigurationError
from backend.settings import DEFAULT_ADDRESS, default_data_dir

log = logging.getLogger(__name__)


def add_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the backend service (ROUTER socket)")
    serve.add_argument("--address", default=DEFAULT_ADDRESS, help=f"default {DEFAULT_ADDRESS}")
    serve.add_argument(
        "--curve-keys",
        type=Path,
        metavar="DIR",
        help="folder made by `keys`; required for non-loopback addresses",
    )
    serve.add_argument(
        "--max-frame-mb",
        type=float,
        default=64.0,
        help="largest binary frame accepted (default 64)",
    )
    serve.add_argument(
        "--device",
        action="append",
        dest="devices",
        metavar="DEV",
        help="worker device, repeatable or comma-separated, e.g. cpu,cpu or cuda:0,cuda:1 "
        "(default: one per GPU, else cpu)",
    )
    serve.add_argument(
        "--vram-budget-mb",
        type=budget_list,
        metavar="MB[,MB...]",
        help="unload least-recently-used models past this much VRAM; one value for every "
        "device or one per device, in --device order",
    )
    serve.add_argument(
        "--min-free-mb",
        type=float,
        default=None,
        metavar="MB",
        help="refuse new jobs (disk_full) once the data directory's disk has this little free "
        "(default 256)",
    )
    serve.add_argument(
        "--operator-key",
        action="append",
        dest="operator_keys",
        type=Path,
        metavar="FILE",
        help="public key file (e.g. DIR/admin.key from `keys --client-name admin`) of a client "
        "that sees and changes every job; repeatable; needs --curve-keys",
    )
    serve.add_argument(
        "--max-queued-per-client",
        type=int,
        metavar="N",
        help="queued jobs one client may have; more are refused with client_queue_full",
    )
    serve.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the workers as Ray actors, one per GPU of the cluster at ADDRESS "
        "(host:port of its head, or `auto`); needs the `cluster` extra",
    )
    serve.add_argument(
        "--ray-resource",
        default="GPU",
        metavar="NAME",
        help="the Ray resource one worker takes per unit (default GPU; a custom resource such "
        "as dreamcad_gpu runs workers on CPU nodes)",
    )
    serve.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip compiling the geometry kernels at start (the first job compiles them)",
    )
    serve.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464; "
        "nothing is served without it)",
    )
    serve.add_argument(
        "--log-json",
        action="store_true",
        help="log one JSON object per line (time, level, logger, message, job_id) on stderr",
    )
    add_data_dir(serve)
    add_weights(serve)
    serve.set_defaults(func=run_serve)

    keys = commands.add_parser("keys", help="make CURVE keys for serving beyond this machine")
    keys.add_argument("--dir", type=Path, help="default: DATA_DIR/curve")
    keys.add_argument("--client-name", default="client", help="name of the client key pair")
    keys.set_defaults(func=run_keys)


def run_serve(args: argparse.Namespace) -> int:
    if args.log_json:
        logs.configure(args.log_level, json_lines=True)
        logs.log_uncaught()
        logging.captureWarnings(True)  # a library's warning is a line like any other
    say = _logged if args.log_json else _printed
    settings = settings_from(args)
    workers = None
    observer = None
    if args.ray:
        # Ray is imported here only: a single machine never loads it.
        from backend.cluster.front_door import ClusterUnavailableError, cluster_workers
        from backend.cluster.observe import ClusterObserver

        observer = ClusterObserver()
        try:
            workers = cluster_workers(
                args.ray, args.ray_resource, settings, weights_from(args), on_event=observer
            )
        except ClusterUnavailableError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    try:
        server = BackendServer(
            settings, ModelRegistry(weights_paths=weights_from(args)), workers=workers
        )
    except Exception as error:
        if not is_disk_full(error):
            raise
        full = disk_full_error(settings.data_dir, "the job store")
        say(logging.ERROR, f"error: {full.info.describe()}")
        return 2
    if observer is not None:
        observer.metrics = server.metrics  # made by the server, after its Ray dispatcher
    try:
        server.start()
    except ConfigurationError as error:
        say(logging.ERROR, f"error: {error}")
        server.close()
        return 2
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    if warning := server.disk_warning():
        say(logging.WARNING, f"warning: {warning}")
    say(logging.INFO, f"dreamcad-backend serving on {settings.address} (data: {settings.data_dir})")
    try:
        server.serve_forever()
    finally:
        server.close()
    log.info("stopped")
    _exit_now(0)
    return 0  # not reached


def _printed(level: int, text: str) -> None:
    print(text, file=sys.stderr if level >= logging.WARNING else sys.stdout, flush=True)


def _logged(level: int, text: str) -> None:
    """With --log-json every line is JSON: what is printed otherwise is logged."""
    log.log(level, text)


def _exit_now(code: int) -> None:
    """End the process now that the service has closed everything it holds.

    Tearing down the thousands of modules the model plug-ins imported takes seconds; the jobs,
    the database and the sockets are already closed, so nothing is lost by skipping it, and
    whoever stopped the backend (the add-on, a test, systemd) sees it gone at once.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_keys(args: argparse.Namespace) -> int:
    folder: Path = args.dir or default_data_dir() / "curve"
    authorized = folder / "authorized_clients"
    authorized.mkdir(parents=True, exist_ok=True)
    if not (folder / "server.key_secret").exists():
        zmq.auth.create_certificates(str(folder), "server")
    zmq.auth.create_certificates(str(folder), args.client_name)
    shutil.copy(folder / f"{args.client_name}.key", authorized / f"{args.client_name}.key")
    print(
        f"keys written to {folder}\n"
        f"  serve with:   dreamcad-backend serve --address tcp://0.0.0.0:5555 "
        f"--curve-keys {folder}\n"
        f"  give clients: {folder / 'server.key'} and {folder / (args.client_name + '.key_secret')}"
        f"\n  (the Blender add-on's preferences take both files)"
    )
    return 0
