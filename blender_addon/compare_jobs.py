"""Compare's jobs: which models may take part, one request per model, and picking them up again.

``eligible`` says which models can run the panel's input now (their tasks include it and their
weights are here); ``compare_requests`` makes one SubmitRequest per chosen model from the
panel's settings, all with the same seed, each keyed into the compare (client/compare.py).
``resume`` runs after the backend's job list arrives (a reconnect, a restarted backend, or a
new Blender session): the jobs of compares whose row is in this .blend are watched again, and
finished ones fetched, so their results still land in the row. ``this_file_compares`` is what
the panel's table shows.
"""

from __future__ import annotations

import dataclasses
import random

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ImageInput, ModelInfo, SubmitRequest
from shared_protocol.parameters import check_parameter

from . import compare_row
from .client.compare import Compare, CompareKey, compares, parse_key
from .client.session import Session
from .compare_properties import ticked
from .properties import MAX_SEED, build_submit_request, parameter_schema, parameter_value

MIN_MODELS = 2
MAX_SHOWN = 3  # compares in the panel's table, newest first


def eligible(model: ModelInfo, task: str) -> tuple[bool, str]:
    """Whether ``model`` can take part in a compare of ``task`` input, and if not, why."""
    if task not in model.tasks:
        return False, f"takes {', '.join(model.tasks)} input"
    if not model.weights_present:
        return False, "weights not downloaded"
    if not model.available:
        return False, model.unavailable_reason or "unavailable"
    return True, ""


def chosen_models(settings, models: tuple[ModelInfo, ...]) -> list[ModelInfo]:
    """The ticked models that can run the panel's input, in the backend's order."""
    wanted = set(ticked(settings.compare))
    return [m for m in models if m.id in wanted and eligible(m, settings.task)[0]]


def compare_requests(settings, models: list[ModelInfo], images: tuple[ImageInput, ...],
                     compare_id: str, *, max_prompt_chars: int | None = None,
                     ) -> list[SubmitRequest]:  # fmt: skip
    """One request per model: the panel's input and settings, one seed, keyed into the compare."""
    if len(models) < MIN_MODELS:
        raise ProtocolError(
            ErrorCode.MISSING_FIELD, f"Compare needs at least {MIN_MODELS} models that take "
            f"{settings.task} input; {len(models)} ticked", field="compare.models",
            hint="Tick the models to compare in the Compare section.",
        )  # fmt: skip
    seed = random.randrange(MAX_SEED) if settings.randomize_seed else settings.seed
    requests = []
    for index, model in enumerate(models):
        base = build_submit_request(settings, model, images, max_prompt_chars=max_prompt_chars)
        key = CompareKey(compare_id, index, model.id)
        requests.append(dataclasses.replace(
            base, seed=seed, parameters=shared_parameters(settings, model), request_key=str(key),
            name=f"{base.name or 'compare'} · {model.id}"[:200],
        ))  # fmt: skip
    return requests


def shared_parameters(settings, model: ModelInfo) -> dict:
    """The panel's parameter values that ``model`` also has and accepts; its defaults for the
    rest (the panel shows one model's parameters; a value out of another's range is dropped)."""
    values = {}
    for item in settings.parameters:
        schema = parameter_schema(model, item.name)
        if schema is None:
            continue
        try:
            values[item.name] = check_parameter(schema, parameter_value(item), label=item.name)
        except ProtocolError:
            continue
    return values


def this_file_compares(session: Session | None) -> list[Compare]:
    """The compares whose row is in this .blend, newest first (at most ``MAX_SHOWN``)."""
    if session is None:
        return []
    found = [c for c in compares(session.jobs.values()).values()
             if compare_row.row_origin(c.compare_id) is not None]
    return found[::-1][:MAX_SHOWN]


def wants_result(job_id: str, request_key: str | None) -> bool | None:
    """For a compare job: whether its result should land in a row now (its compare's row is in
    this file and it is not there yet). None for a job that is not part of a compare."""
    key = parse_key(request_key)
    if key is None:
        return None
    if compare_row.row_origin(key.compare_id) is None:
        return False
    return job_id not in compare_row.landed_job_ids(key.compare_id)


def resume(session: Session) -> list[str]:
    """Watch again, or fetch, the jobs of this file's compares that have not landed; their ids.

    Jobs submitted by this session are watched again by the session itself (client/session.py);
    these are the ones the backend's list brought back: after Blender or the add-on restarted.
    """
    resumed = []
    for compare in compares(session.jobs.values()).values():
        if compare_row.row_origin(compare.compare_id) is None:
            continue
        landed = compare_row.landed_job_ids(compare.compare_id)
        for entry in compare.entries:
            job = entry.job
            if job.job_id in landed or job.submitted_here:
                continue
            if not job.finished:
                session.watch(job.job_id)
            elif job.state == "succeeded" and not job.result_received:
                session.fetch(job.job_id)
            else:
                continue
            resumed.append(job.job_id)
    return resumed
