"""Download jobs against a local folder served as the hub over real HTTP (no network).

Progress (bytes, files, speed, ETA), cancel, resume after cancel and after a restart (the
manager closed and made again on the same database), checksum failure, gated repos, offline and
a disk too small for the download.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.downloads.manager import DownloadManager
from backend.models.base import WeightFile, WeightsSource
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.registry import ModelRegistry
from shared_protocol.messages import DownloadFinishedEvent, DownloadProgressEvent
from tests.support.local_hub import COMMIT, LocalHub

REPO_ID = "tests/tiny"
BIG = os.urandom(3 * 2**20)  # 3 MiB: 48 blocks, enough to cancel in the middle
SMALL = b'{"tiny": true}'


def adapter_class(sha_of_big: str, gated: bool = False) -> type[ProceduralAdapter]:
    class Tiny(ProceduralAdapter):
        id = "tiny"
        weights = WeightsSource(
            REPO_ID,
            "main",
            (WeightFile("config.json"), WeightFile("weights/model.bin", sha_of_big, len(BIG))),
            gated=gated,
        )

    return Tiny


class Recorder:
    """What the manager published, and a way to wait for a download's end."""

    def __init__(self) -> None:
        self.events: list = []
        self.ended = threading.Event()

    def __call__(self, key: str, message) -> None:
        self.events.append(message)
        if isinstance(message, DownloadFinishedEvent):
            self.ended.set()

    def progress(self) -> list:
        return [e.progress for e in self.events if isinstance(e, DownloadProgressEvent)]

    def finished(self) -> DownloadFinishedEvent:
        assert self.ended.wait(30), "the download never ended"
        return [e for e in self.events if isinstance(e, DownloadFinishedEvent)][-1]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    hub = LocalHub(tmp_path / "hub").start()
    hub.add(REPO_ID, "config.json", SMALL)
    hub.add(REPO_ID, "weights/model.bin", BIG)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    yield hub
    hub.stop()


def manager_for(tmp_path: Path, cls, recorder: Recorder) -> tuple[DownloadManager, ModelRegistry]:
    registry = ModelRegistry(adapters={"tiny": cls})
    manager = DownloadManager(tmp_path / "downloads.sqlite3", registry, recorder, 0.05)
    manager.start()
    return manager, registry


def test_download_reports_progress_and_lands_where_the_registry_looks(hub, tmp_path) -> None:
    recorder = Recorder()
    manager, registry = manager_for(tmp_path, adapter_class(hashlib.sha256(BIG).hexdigest()),
                                    recorder)  # fmt: skip
    assert registry.weights_dir("tiny") is None
    info = manager.request("tiny")
    assert manager.request("tiny").download_id == info.download_id  # one live download a model
    end = recorder.finished()
    manager.close()
    assert end.download.state == "succeeded", end.download.error
    progress = recorder.progress()
    final = progress[-1]
    assert final.bytes_done == final.bytes_total == len(BIG) + len(SMALL)
    assert final.files_done == final.files_total == 2 and final.fraction == 1.0
    assert [p.bytes_done for p in progress] == sorted(p.bytes_done for p in progress)
    assert any(p.speed_bps > 0 for p in progress) and final.eta_s == 0.0
    folder = registry.weights_dir("tiny")
    assert folder is not None and folder.name == COMMIT
    assert (folder / "weights" / "model.bin").read_bytes() == BIG


def test_cancel_keeps_the_partial_file_and_the_next_download_resumes(hub, tmp_path) -> None:
    hub.delay_s = 0.02
    recorder = Recorder()
    manager, registry = manager_for(tmp_path, adapter_class(hashlib.sha256(BIG).hexdigest()),
                                    recorder)  # fmt: skip
    info = manager.request("tiny")
    deadline = time.monotonic() + 20
    while not any(p.bytes_done > 2**20 for p in recorder.progress()):
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    manager.cancel(info.download_id)
    end = recorder.finished()
    assert end.download.state == "cancelled" and end.download.error.code == "cancelled"
    stopped_at = max(p.bytes_done for p in recorder.progress())
    assert stopped_at < len(BIG)
    hub.delay_s = 0.0
    recorder.ended.clear()
    again = manager.request("tiny")
    assert again.download_id != info.download_id
    assert recorder.finished().download.state == "succeeded"
    manager.close()
    resumed = [start for path, start in hub.ranges if path == "weights/model.bin"]
    assert resumed[0] == 0 and resumed[-1] > 2**20 - len(SMALL)  # asked for the rest only
    assert hub.served_bytes < 2 * len(BIG)
    assert (registry.weights_dir("tiny") / "weights" / "model.bin").read_bytes() == BIG


def test_a_restart_mid_download_resumes_it(hub, tmp_path) -> None:
    hub.delay_s = 0.02
    recorder = Recorder()
    cls = adapter_class(hashlib.sha256(BIG).hexdigest())
    manager, _ = manager_for(tmp_path, cls, recorder)
    info = manager.request("tiny")
    while not any(p.bytes_done > 2**20 for p in recorder.progress()):
        time.sleep(0.02)
    manager.close()  # the backend stops: the download stays "running" in the database
    assert not recorder.ended.is_set()
    hub.delay_s = 0.0
    again = Recorder()
    manager, registry = manager_for(tmp_path, cls, again)
    end = again.finished()
    manager.close()
    assert end.download.download_id == info.download_id and end.download.state == "succeeded"
    assert hub.ranges[-1][1] > 2**20 - len(SMALL)
    assert (registry.weights_dir("tiny") / "weights" / "model.bin").read_bytes() == BIG


def test_a_file_that_is_not_the_pinned_one_fails_and_is_deleted(hub, tmp_path) -> None:
    recorder = Recorder()
    manager, registry = manager_for(tmp_path, adapter_class("0" * 64), recorder)
    manager.request("tiny")
    end = recorder.finished()
    manager.close()
    assert end.download.state == "failed"
    assert end.download.error.code == "checksum_mismatch"
    assert "weights/model.bin" in end.download.error.message
    assert registry.weights_dir("tiny") is None
    assert not list((tmp_path / "hf" / "hub").rglob("*.incomplete"))


def test_gated_and_offline_say_what_to_do(hub, tmp_path, monkeypatch) -> None:
    hub.gated.add(REPO_ID)
    recorder = Recorder()
    manager, _ = manager_for(tmp_path, adapter_class(""), recorder)
    manager.request("tiny")
    gated = recorder.finished().download.error
    assert gated.code == "weights_missing" and "licence must be accepted" in gated.message
    assert f"huggingface.co/{REPO_ID}" in gated.hint
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recorder.ended.clear()
    manager.request("tiny")
    offline = recorder.finished().download.error
    manager.close()
    assert "cannot reach the Hugging Face hub" in offline.message
    assert "DREAMCAD_WEIGHTS_TINY" in offline.hint


def test_a_download_bigger_than_the_free_disk_is_refused(hub, tmp_path, monkeypatch) -> None:
    huge = 1 << 60

    class Huge(ProceduralAdapter):
        id = "tiny"
        weights = WeightsSource(REPO_ID, "main", (WeightFile("weights/model.bin", "", huge),))

    recorder = Recorder()
    manager, _ = manager_for(tmp_path, Huge, recorder)
    manager.request("tiny")
    end = recorder.finished()
    manager.close()
    assert end.download.error.code == "disk_full" and "HF_HOME" in end.download.error.hint
    assert hub.ranges == []  # refused before a byte was asked for
