"""Client subcommands for a running backend: ping, submit, status, fetch, cancel.

Each speaks the protocol through shared_protocol.client, like the Blender add-on does; an
error reply exits non-zero with its code, message and hint.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from backend.cli import extra_files
from backend.cli.options import (
    add_address,
    add_request,
    client_keys,
    mesh_fields,
    model_from,
    params_from,
    task_from,
    views_from,
)
from backend.cli.terminal import ProgressBar
from shared_protocol.client import BackendClient, error_from_wire
from shared_protocol.messages import (
    CancelReply,
    CancelRequest,
    FetchReply,
    FetchRequest,
    ImageInput,
    JobFailedEvent,
    PingReply,
    PingRequest,
    ProgressEvent,
    ResultEvent,
    StatusReply,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
)

MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}


def add_commands(commands: argparse._SubParsersAction) -> None:
    ping = commands.add_parser("ping", help="round trip to a running backend, with GPU telemetry")
    add_address(ping)
    ping.set_defaults(func=run_ping)

    submit = commands.add_parser("submit", help="submit a job to a running backend")
    add_request(submit)
    add_address(submit)
    submit.add_argument("--wait", action="store_true", help="follow progress, then fetch")
    submit.add_argument("--priority", type=int, default=0)
    submit.set_defaults(func=run_submit)

    status = commands.add_parser("status", help="a job's state and progress")
    status.add_argument("job_id")
    add_address(status)
    status.set_defaults(func=run_status)

    fetch = commands.add_parser("fetch", help="download a finished job's asset")
    fetch.add_argument("job_id")
    fetch.add_argument("-o", "--output", type=Path)
    add_address(fetch)
    fetch.set_defaults(func=run_fetch)

    cancel = commands.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id")
    add_address(cancel)
    cancel.set_defaults(func=run_cancel)


def connect(args: argparse.Namespace) -> BackendClient:
    return BackendClient(args.address, curve=client_keys(args.curve_keys))


def run_ping(args: argparse.Namespace) -> int:
    with connect(args) as client:
        started = time.perf_counter()
        reply = client.request(PingRequest(), args.timeout)
        assert isinstance(reply, PingReply)
        rtt_ms = (time.perf_counter() - started) * 1000
    gpus = (
        ", ".join(f"{g.name} ({g.memory_free_mb}/{g.memory_total_mb} MB free)" for g in reply.gpus)
        or "no GPU"
    )
    workers = ", ".join(
        f"{w.device} {'ok' if w.alive else 'DOWN'}"
        + (f" ({w.restarts} restarts, last: {w.last_error})" if w.restarts else "")
        for w in reply.workers
    )
    disk = "" if reply.disk_free_mb is None else f"; {reply.disk_free_mb:.0f} MB disk free"
    print(
        f"pong from {args.address} in {rtt_ms:.2f} ms: {gpus}; "
        f"{reply.queued_jobs} queued, {reply.running_jobs} running; "
        f"workers: {workers or 'none'}{disk}; instance {reply.instance_id[:8]}"
    )
    return 0


def run_submit(args: argparse.Namespace) -> int:
    images = tuple(
        ImageInput(
            data=path.read_bytes(), media_type=MEDIA_TYPES.get(path.suffix.lower(), ""), view=view
        )  # type: ignore[arg-type]
        for path, view in zip(args.image, views_from(args), strict=True)
    )
    message = SubmitRequest(
        model=model_from(args),
        task=task_from(args),
        prompt=args.prompt,  # type: ignore[arg-type]
        images=images,
        seed=args.seed,
        target_faces=args.faces,
        texture_size=args.texture_size,
        pbr=not args.no_pbr,
        output_format=args.format,
        parameters=params_from(args),
        priority=args.priority,
        **mesh_fields(args),
        watch=args.wait,
    )
    with connect(args) as client:
        reply = client.request(message, args.timeout)
        assert isinstance(reply, SubmitReply)
        print(
            f"job {reply.job_id} queued at position {reply.queue_position} (seed {reply.seed})",
            flush=True,
        )
        if not args.wait:
            return 0
        result = follow(client, reply.job_id)
        output = args.output or Path(f"{reply.job_id}.{result.manifest.format}")
        output.write_bytes(result.asset)
        print(f"wrote {output} ({result.manifest.faces} faces)")
        for path in extra_files.fetch_remote(
            client, reply.job_id, result.manifest, output, max(args.timeout, 60.0)
        ):
            print(f"wrote {path}")
    return 0


def follow(client: BackendClient, job_id: str) -> ResultEvent:
    """Show a job's progress until it ends; raise its error if it failed."""
    bar = ProgressBar()
    try:
        while True:
            envelope = client.receive(timeout_s=1.0)
            if envelope is None:
                continue
            event = envelope.message
            if isinstance(event, ProgressEvent) and event.job_id == job_id:
                bar(event.progress)
            elif isinstance(event, ResultEvent) and event.job_id == job_id:
                return event
            elif isinstance(event, JobFailedEvent) and event.job_id == job_id:
                raise error_from_wire(event.error)
    finally:
        bar.close()


def run_status(args: argparse.Namespace) -> int:
    with connect(args) as client:
        reply = client.request(StatusRequest(job_id=args.job_id), args.timeout)
    assert isinstance(reply, StatusReply)
    print(json.dumps(asdict(reply.job), indent=2))
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    timeout_s = max(args.timeout, 60.0)
    with connect(args) as client:
        reply = client.request(FetchRequest(job_id=args.job_id), timeout_s)
        assert isinstance(reply, FetchReply)
        output = args.output or Path(f"{reply.job_id}.{reply.manifest.format}")
        output.write_bytes(reply.asset)
        print(f"wrote {output} ({reply.manifest.faces} faces)")
        for path in extra_files.fetch_remote(client, args.job_id, reply.manifest, output,
                                             timeout_s):  # fmt: skip
            print(f"wrote {path}")
    return 0


def cancel_remote(args: argparse.Namespace, job_id: str) -> str:
    with connect(args) as client:
        reply = client.request(CancelRequest(job_id=job_id), args.timeout)
    assert isinstance(reply, CancelReply)
    return reply.state


def run_cancel(args: argparse.Namespace) -> int:
    print(f"{args.job_id}: {cancel_remote(args, args.job_id)}")
    return 0
