"""Standalone subcommands on this machine: generate, postprocess, models, download, doctor, jobs.

``generate`` runs the same code path as a queued job (backend.jobs.runner), without a server,
with a progress bar on the terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from backend.cancellation import CancelToken
from backend.cli import extra_files, postprocess
from backend.cli.options import (
    add_address,
    add_data_dir,
    add_request,
    add_weights,
    mesh_fields,
    model_from,
    params_from,
    settings_from,
    task_from,
    views_from,
    weights_from,
)
from backend.cli.remote import cancel_remote
from backend.cli.terminal import ProgressBar
from backend.doctor import run_checks
from backend.handlers import model_infos
from backend.models.registry import ModelCache, ModelRegistry
from backend.telemetry import detect_devices
from shared_protocol.codec import from_wire, to_wire
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import (
    ImageInput,
    SubmitRequest,
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser("generate", help="generate one asset here, without a server")
    add_request(generate)
    generate.add_argument("--device", help="cpu, cuda:0, ... (default: first GPU, else cpu)")
    add_weights(generate)
    add_data_dir(generate)  # where --source-job's job is
    generate.set_defaults(func=run_generate)

    postprocess.add_commands(commands)  # its own module: a lean import path

    models = commands.add_parser("models", help="installed models and whether they can run here")
    models.add_argument("--json", action="store_true")
    add_weights(models)
    models.set_defaults(func=run_models)

    download = commands.add_parser("download", help="fetch a model's weights from the HF hub")
    download.add_argument("model")
    download.add_argument(
        "--with",
        dest="components",
        action="append",
        default=[],
        metavar="COMPONENT",
        help="also fetch an optional component (e.g. paint for the Hunyuan3D texture stage)",
    )
    download.add_argument(
        "--only", action="store_true", help="with --with: fetch only the components"
    )
    download.set_defaults(func=run_download)

    warmup = commands.add_parser(
        "warmup", help="compile the geometry kernels now (once per install; setup runs it)"
    )
    warmup.add_argument(
        "--device",
        dest="devices",
        action="append",
        default=[],
        metavar="DEVICE",
        help="also build the compiled GPU stages on this device (e.g. cuda:0; repeatable)",
    )
    warmup.set_defaults(func=run_warmup)

    doctor = commands.add_parser("doctor", help="check GPU, driver, torch, disk and weights")
    add_data_dir(doctor)
    doctor.set_defaults(func=run_doctor)

    jobs = commands.add_parser("jobs", help="list or cancel jobs in the local job store")
    jobs.add_argument("action", choices=("list", "cancel"))
    jobs.add_argument("job_id", nargs="?")
    jobs.add_argument("--state", action="append", default=[], help="filter, repeatable")
    add_data_dir(jobs)
    add_address(jobs)
    jobs.set_defaults(func=run_jobs)


def run_generate(args: argparse.Namespace) -> int:
    from backend.jobs.admission import admit
    from backend.jobs.runner import run_job

    registry = ModelRegistry(weights_paths=weights_from(args))
    # The same gate as a submit to the server: the request is checked by the protocol's codec
    # (ranges, views), then admitted (model, images, parameters, seed).
    submit = checked_message(
        SubmitRequest(
            model=model_from(args),
            task=task_from(args),  # type: ignore[arg-type]
            prompt=args.prompt,
            images=tuple(
                ImageInput(data=_read(path), view=view)  # type: ignore[arg-type]
                for path, view in zip(args.image, views_from(args), strict=True)
            ),
            seed=args.seed,
            target_faces=args.faces,
            texture_size=args.texture_size,
            pbr=not args.no_pbr,
            output_format=args.format,
            parameters=params_from(args),
            **mesh_fields(args),
        )
    )
    admission = admit(registry, submit)
    spec = admission.spec
    mesh = _input_mesh(args, admission)
    device = args.device or detect_devices()[0]
    output = args.output or Path(f"{spec.name or spec.model}-{spec.seed}.{args.format}")
    bar = ProgressBar()
    try:
        result = run_job(
            ModelCache(registry, device, None),
            spec,
            admission.request.images,
            bar,
            CancelToken(),
            mesh=mesh,
        )
    finally:
        bar.close()
    output.write_bytes(result.asset)
    manifest = result.manifest
    print(
        f"wrote {output} ({manifest.faces} faces, seed {manifest.seed}, "
        f"{sum(manifest.timings_s.values()):.2f} s)"
    )
    for path in extra_files.write_local(output, result.extra_files):
        print(f"wrote {path}")
    for warning in manifest.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _input_mesh(args: argparse.Namespace, admission):
    """The mesh of a texture / optimize run: the --mesh file, or --source-job's raw output in
    the local job store (--data-dir), read the way a worker reads it."""
    from backend.geometry.mesh_input import read_glb

    if admission.encoded_mesh is not None:
        return read_glb(admission.encoded_mesh, "mesh", admission.spec.name)
    if args.source_job is None:
        return None
    from backend.geometry.raw_store import load_raw
    from backend.jobs.sources import source_raw_path
    from backend.jobs.store import JobStore

    settings = settings_from(args)
    store = JobStore(settings.db_path, settings.jobs_dir)
    try:
        return load_raw(source_raw_path(store, args.source_job))
    finally:
        store.close()


def run_models(args: argparse.Namespace) -> int:
    registry = ModelRegistry(weights_paths=weights_from(args))
    infos = model_infos(registry)
    if args.json:
        print(json.dumps([asdict(info) for info in infos], indent=2))
        return 0
    print(f"{'model':<20} {'tasks':<22} {'weights':<9} {'VRAM MB':>8}  {'runs here':<10} licence"
          " (terms: --json, or the model card)")
    for info in infos:
        print(
            f"{info.id:<20} {','.join(info.tasks):<22} "
            f"{'yes' if info.weights_present else 'missing':<9} {info.vram_mb:>8}  "
            f"{'yes' if info.available else 'no':<10} {info.license.split(':')[0]}"
        )
        if info.unavailable_reason:
            print(f"{'':<20} -> {info.unavailable_reason}")
        for name, source in registry.adapter_class(info.id).components.items():
            found = registry.component_dir(info.id, name) is not None
            state = "present" if found else f"missing: download {info.id} --with {name} --only"
            print(f"{'':<20} + component {name} ({source.repo_id}): {state}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    """Fetch here, in the foreground: the same resumable, checked transfer as a download job."""
    from backend.cli.terminal import DownloadBar
    from backend.downloads.transfer import Transfer, plan, sources_of

    cls = ModelRegistry().adapter_class(args.model)
    components = tuple(args.components)
    sources_of(cls, components, args.only)  # an unknown component fails before anything else
    files = plan(cls, components, args.only, on_step=lambda name: print(f"listing {name}",
                                                                          flush=True))  # fmt: skip
    bar = DownloadBar()
    try:
        Transfer(files, bar, CancelToken()).run()
    finally:
        bar.close()
    registry = ModelRegistry()
    if cls.weights is not None and not (args.only and components):
        print(f"{args.model}: weights in {registry.weights_dir(args.model)}")
    for component in dict.fromkeys([*cls.required_components, *components]):
        folder = registry.component_dir(args.model, component)
        print(f"{args.model} {component}: weights in {folder}")
    return 0


def run_warmup(args: argparse.Namespace) -> int:
    from backend.geometry.warmup import warm_up

    print("compiling the geometry kernels (cached on disk: only the first run is slow)")
    total = warm_up(
        lambda label, seconds: print(f"  {label:<58} {seconds:6.1f} s", flush=True),
        devices=args.devices,
    )
    print(f"geometry kernels ready in {total:.1f} s")
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    checks = run_checks(settings_from(args).data_dir, ModelRegistry())
    for check in checks:
        print(f"[{check.status}] {check.name:<24} {check.detail}")
        if check.hint:
            print(f"{'':>7}{'':<24} fix: {check.hint}")
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def run_jobs(args: argparse.Namespace) -> int:
    from backend.jobs.queue import JobQueue
    from backend.jobs.store import JobStore

    settings = settings_from(args)
    store = JobStore(settings.db_path, settings.jobs_dir)
    if args.action == "list":
        print(f"{'job':<17} {'state':<10} {'model':<16} {'progress':>8}  prompt/name")
        for record in store.list(args.state, 200):
            fraction = (record.progress or {}).get("fraction", 0.0)
            print(
                f"{record.job_id:<17} {record.state:<10} {record.model:<16} "
                f"{fraction:>7.0%}  {record.name or record.prompt[:40]}"
            )
        return 0
    if not args.job_id:
        raise SystemExit("jobs cancel needs a JOB_ID")
    try:
        state = cancel_remote(args, args.job_id)  # a running job is only reachable via the server
    except ProtocolError as error:
        if error.code not in (ErrorCode.TIMEOUT, ErrorCode.BACKEND_UNREACHABLE):
            raise
        JobQueue(store, publish=lambda _job_id, _event: None).cancel_offline(args.job_id)
        state = "cancelled (in the job store: no backend answered)"
    print(f"{args.job_id}: {state}")
    return 0


def checked_message(message: SubmitRequest) -> SubmitRequest:
    """``message`` as the server would decode it: every field checked by the protocol codec."""
    frames: list[bytes] = []
    wire = to_wire(message, frames)
    return from_wire(SubmitRequest, wire, frames, "body", set())


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE, f"cannot read {path}: {error.strerror}", field="--image"
        ) from None
