"""The model shelf in the sidebar: each model's state, size, licence and VRAM fit, and its buttons.

Draw code only. A missing model offers Download (a gated licence is named with its link first);
a downloading one a progress bar and Cancel; a present one Load; a loaded one Release; an error
its message and hint. Above the list, the task to find a model for (its tooltip states the
rule, client/best_fit.py) and the one best fit for it, which is also starred in the list.
"""

from __future__ import annotations

import bpy

from .. import live_state
from ..client.best_fit import BestFit, best_fit
from .status_text import wrap

STATE_ICONS = {"missing": "IMPORT", "downloading": "SORTTIME", "present": "CHECKMARK",
               "loading": "TIME", "loaded": "MEMORY", "error": "ERROR"}  # fmt: skip
STATE_WORDS = {"missing": "not downloaded", "downloading": "downloading", "present": "ready",
               "loading": "loading...", "loaded": "loaded", "error": "failed"}  # fmt: skip


def size_text(size_bytes: int) -> str:
    if size_bytes <= 0:
        return "size unknown"
    return f"{size_bytes / 2**30:.1f} GB" if size_bytes >= 2**30 else f"{size_bytes / 2**20:.0f} MB"


def fit_text(vram_mb: int, gpus) -> str:
    """Whether the model's VRAM need fits the most free memory of one GPU now."""
    if not gpus:
        return "CPU only"
    free = max(g.memory_free_mb for g in gpus)
    need = f"{vram_mb / 1024:.1f} GB"
    return f"fits ({need})" if vram_mb <= free else f"too big now ({need} > {free / 1024:.1f})"


class DREAMCAD_PT_shelf(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Dream CAD"
    bl_label = "Model Shelf"
    bl_parent_id = "DREAMCAD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        shelf = live_state.shelf()
        session = live_state.STATE.session
        if shelf is None or session is None or session.hello is None:
            layout.label(text="Connect to see the backend's models", icon="INFO")
            return
        gpus = session.hello.gpus  # refreshed by every ping: the free memory now
        settings = context.scene.dreamcad
        layout.row(align=True).prop(settings, "shelf_task", expand=True)
        models = live_state.models()
        states = {m.id: s.state for m in models if (s := shelf.state_of(m.id)) is not None}
        best = best_fit(models, settings.shelf_task, gpus, states)
        draw_best(layout, best, settings.shelf_task)
        starred = best.model if best is not None else None
        for model in models:
            draw_model(layout.box(), model, shelf, gpus, model.id == starred)


def draw_best(layout: bpy.types.UILayout, best: BestFit | None, task: str) -> None:
    words = {"text": "text", "image": "one image", "multi_image": "views", "texture": "texture"}
    if best is None:
        layout.label(text=f"No model for {words[task]} fits the free GPU memory now", icon="INFO")
        return
    model = live_state.model_info(best.model)
    name = model.name if model is not None else best.model
    later = " (download first)" if best.needs_download else ""
    layout.label(text=f"Best for {words[task]}: {name}{later}", icon="SOLO_ON")


def draw_model(box: bpy.types.UILayout, model, shelf, gpus, best: bool = False) -> None:
    state = shelf.state_of(model.id)
    name = state.state if state else ("present" if model.weights_present else "missing")
    row = box.row(align=True)
    star = " ★" if best else ""
    row.label(text=f"{model.name}{star}", icon=STATE_ICONS[name])
    words = STATE_WORDS[name]
    if name == "loaded" and state is not None and state.vram_mb is not None:
        words += f" ({state.vram_mb / 1024:.1f} GB)"
    row.label(text=words)
    details = box.row()
    details.label(text=size_text(model.download_bytes) if model.weights_repo else "built in")
    details.label(text=fit_text(model.vram_mb, gpus))
    box.label(text=f"Licence: {model.license.split(':')[0]}", icon="COPYRIGHT")
    if name == "missing":
        if model.license_gated:
            link = model.license_url or f"https://huggingface.co/{model.weights_repo}"
            for line in wrap(f"Accept the licence first: {link}"):
                box.label(text=line, icon="ERROR")
        box.operator("dreamcad.download_model", icon="IMPORT").model_id = model.id
    elif name == "downloading" and state is not None:
        progress = shelf.progress.get(model.id)
        row = box.row(align=True)
        row.progress(factor=state.fraction, type="BAR", text=download_text(progress, state))
        op = row.operator("dreamcad.cancel_download", text="", icon="CANCEL")
        op.download_id = state.download_id or ""
    elif name == "present":
        box.operator("dreamcad.load_model", icon="PLAY").model_id = model.id
    elif name == "loaded":
        box.operator("dreamcad.release_model", icon="TRASH").model_id = model.id
    elif name == "error" and state is not None and state.error is not None:
        for line in wrap(state.error.message):
            box.label(text=line, icon="ERROR")
        if state.error.hint:
            for line in wrap(state.error.hint):
                box.label(text=line, icon="INFO")
        retry = "dreamcad.download_model" if not model.weights_present else "dreamcad.load_model"
        box.operator(retry, text="Retry", icon="FILE_REFRESH").model_id = model.id


def download_text(progress, state) -> str:
    if progress is None:
        return f"{state.fraction:.0%}"
    eta = f", {progress.eta_s:.0f} s left" if progress.eta_s is not None else ""
    return (f"{progress.bytes_done / 2**20:.0f}/{progress.bytes_total / 2**20:.0f} MB, "
            f"{progress.speed_bps / 2**20:.1f} MB/s{eta}")  # fmt: skip


CLASSES = (DREAMCAD_PT_shelf,)
