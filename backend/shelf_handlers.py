"""Handlers of the model shelf's requests: downloads as jobs, load and release.

Like handlers.py they run on the server thread and only check and queue: a download runs on the
download manager's thread, a load on the device's worker thread. A download's events go to the
client that asked (``watch``) and to any client that watches it later (a reconnect).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import (
    DownloadCancelReply,
    DownloadCancelRequest,
    DownloadReply,
    DownloadRequest,
    DownloadStatusReply,
    DownloadStatusRequest,
    LoadRequest,
    Message,
    ModelStateReply,
    UnloadRequest,
)

if TYPE_CHECKING:
    from backend.downloads.manager import DownloadManager
    from backend.handlers import HandlerContext
    from backend.model_shelf import ModelShelf

LIVE = ("queued", "running")


def download(ctx: HandlerContext, message: DownloadRequest) -> DownloadReply:
    info = _downloads(ctx).request(message.model, message.components, message.only_components)
    if message.watch:
        ctx.subscribe(info.download_id)
    return DownloadReply(download=info)


def download_status(ctx: HandlerContext, message: DownloadStatusRequest) -> DownloadStatusReply:
    manager = _downloads(ctx)
    if message.download_id is None:
        downloads = manager.list()
    else:
        downloads = (manager.require(message.download_id),)
    if message.watch:
        for info in downloads:
            if info.state in LIVE:
                ctx.subscribe(info.download_id)
    return DownloadStatusReply(downloads=downloads)


def download_cancel(ctx: HandlerContext, message: DownloadCancelRequest) -> DownloadCancelReply:
    state = _downloads(ctx).cancel(message.download_id)
    return DownloadCancelReply(download_id=message.download_id, state=state)  # type: ignore[arg-type]


def load(ctx: HandlerContext, message: LoadRequest) -> ModelStateReply:
    return ModelStateReply(model=message.model, states=_shelf(ctx).load(message.model,
                                                                         message.device))


def unload(ctx: HandlerContext, message: UnloadRequest) -> ModelStateReply:
    return ModelStateReply(model=message.model, states=_shelf(ctx).unload(message.model,
                                                                           message.device))


def _downloads(ctx: HandlerContext) -> DownloadManager:
    if ctx.shelf is None or ctx.shelf.downloads is None:
        raise ProtocolError(ErrorCode.INTERNAL_ERROR, "this backend runs no download manager")
    return ctx.shelf.downloads


def _shelf(ctx: HandlerContext) -> ModelShelf:
    if ctx.shelf is None:
        raise ProtocolError(ErrorCode.INTERNAL_ERROR, "this backend has no model shelf")
    return ctx.shelf


SHELF_HANDLERS: dict[type[Message], Callable[[HandlerContext, Message], Message]] = {
    DownloadRequest: download,
    DownloadStatusRequest: download_status,
    DownloadCancelRequest: download_cancel,
    LoadRequest: load,
    UnloadRequest: unload,
}  # type: ignore[dict-item]
