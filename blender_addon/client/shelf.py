"""The model shelf as the add-on sees it: each model's state and the backend's downloads (no bpy).

Filled from ``hello_reply`` and every ``ping_reply`` (``model_states``: the backend is the truth,
so a restart mid-download shows up at the next ping) and from download events between pings,
so the progress bar moves smoothly. The panel reads it; operators send requests through the
session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared_protocol.messages import (
    DownloadFinishedEvent,
    DownloadInfo,
    DownloadProgress,
    DownloadProgressEvent,
    HelloReply,
    Message,
    ModelState,
)


@dataclass
class Shelf:
    states: dict[str, tuple[ModelState, ...]] = field(default_factory=dict)
    progress: dict[str, DownloadProgress] = field(default_factory=dict)  # by model
    finished: dict[str, DownloadInfo] = field(default_factory=dict)  # last ended, by model
    recommended: tuple[str, ...] = ()

    def from_hello(self, hello: HelloReply) -> None:
        self.recommended = hello.recommended
        self.from_states(hello.model_states)

    def from_states(self, states: tuple[ModelState, ...]) -> None:
        grouped: dict[str, list[ModelState]] = {}
        for state in states:
            grouped.setdefault(state.model, []).append(state)
        self.states = {model: tuple(found) for model, found in grouped.items()}
        for model in list(self.progress):
            if not any(s.state == "downloading" for s in self.states.get(model, ())):
                del self.progress[model]

    def event(self, message: Message) -> bool:
        """Take a download event; False for any other message."""
        if isinstance(message, DownloadProgressEvent):
            self.progress[message.model] = message.progress
            self.states[message.model] = (
                ModelState(message.model, "downloading", download_id=message.download_id,
                           fraction=message.progress.fraction),
            )  # fmt: skip
            return True
        if isinstance(message, DownloadFinishedEvent):
            info = message.download
            self.finished[info.model] = info
            self.progress.pop(info.model, None)
            state = "present" if info.state == "succeeded" else "missing"
            if info.state == "failed":
                self.states[info.model] = (ModelState(info.model, "error", error=info.error),)
            else:
                self.states[info.model] = (ModelState(info.model, state),)
            return True
        return False

    def state_of(self, model: str) -> ModelState | None:
        """The most telling state of a model (loaded beats present; first device first)."""
        found = self.states.get(model, ())
        for name in ("downloading", "loading", "loaded", "error", "present", "missing"):
            for state in found:
                if state.state == name:
                    return state
        return None
