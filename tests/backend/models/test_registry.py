"""Adapter discovery, weights resolution and the LRU VRAM budget, with real adapter classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.models.base import ModelAdapter, WeightFile, WeightsSource
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.registry import (
    CacheEvent,
    ModelCache,
    ModelRegistry,
    discover_adapters,
    weights_env_var,
)
from shared_protocol.errors import ErrorCode, ProtocolError


class SizedAdapter(ModelAdapter):
    """A real (tiny) adapter that records loads and unloads; its weights are one text file."""

    tasks = ("text",)
    license = "MIT"
    weights = WeightsSource("org/sized", "abc123", (WeightFile("weights.txt"),))
    events: list[str] = []

    def _load(self, device: str, dtype: str) -> None:
        self.payload = (self.weights_dir / "weights.txt").read_text()
        self.events.append(f"load {self.id}")

    def _generate(self, request, progress, cancel):  # not exercised here
        raise NotImplementedError

    def _release(self) -> None:
        self.events.append(f"unload {self.id}")


def sized(model_id: str, vram: int) -> type[SizedAdapter]:
    return type(model_id, (SizedAdapter,), {"id": model_id, "name": model_id, "vram_mb": vram})


def test_entry_points_find_builtin_models() -> None:
    assert discover_adapters()["procedural"] is ProceduralAdapter


def test_weights_env_var_name() -> None:
    assert weights_env_var("hunyuan3d-2mini") == "DREAMCAD_WEIGHTS_HUNYUAN3D_2MINI"


def test_weights_from_env_and_missing_weights_error(tmp_path, monkeypatch) -> None:
    a = sized("a", 100)
    registry = ModelRegistry({"a": a})
    monkeypatch.delenv(weights_env_var("a"), raising=False)
    cache = ModelCache(registry, "cpu", None)
    with pytest.raises(ProtocolError) as caught:
        cache.acquire("a")
    assert caught.value.code is ErrorCode.WEIGHTS_MISSING
    assert "DREAMCAD_WEIGHTS_A" in caught.value.hint
    (tmp_path / "weights.txt").write_text("w")
    monkeypatch.setenv(weights_env_var("a"), str(tmp_path))
    assert cache.acquire("a").payload == "w"
    info = registry.create("a").info()
    assert info.weights_present and info.available


def test_lru_unloads_least_recently_used_past_the_budget(tmp_path) -> None:
    (tmp_path / "weights.txt").write_text("w")
    classes = {m: sized(m, 400) for m in "abc"}
    registry = ModelRegistry(classes, weights_paths={m: tmp_path for m in "abc"})
    SizedAdapter.events.clear()
    cache = ModelCache(registry, "cpu", budget_mb=900)
    cache.acquire("a"), cache.acquire("b"), cache.acquire("a")  # b is now least recent
    cache.acquire("c")
    assert cache.loaded() == ["a", "c"]
    assert SizedAdapter.events == ["load a", "load b", "unload b", "load c"]


def test_unknown_model_lists_installed() -> None:
    with pytest.raises(ProtocolError) as caught:
        ModelRegistry({"procedural": ProceduralAdapter}).create("nope")
    assert caught.value.code is ErrorCode.UNKNOWN_MODEL and "procedural" in str(caught.value)


def test_a_model_in_use_is_never_unloaded_to_make_room(tmp_path) -> None:
    """A running job's model (and a composite's inner models) stay loaded past the budget."""
    (tmp_path / "weights.txt").write_text("w")
    classes = {m: sized(m, 400) for m in "abcd"}
    registry = ModelRegistry(classes, weights_paths={m: tmp_path for m in "abcd"})
    SizedAdapter.events.clear()
    cache = ModelCache(registry, "cpu", budget_mb=900)
    cache.acquire("c")
    with cache.using("a"), cache.using("b"):  # an outer model and its inner one
        assert cache.loaded() == ["a", "b"]  # c (idle) made room; a and b (held) stay
        cache.acquire("c")  # over budget, nothing idle to unload: loaded anyway
        assert cache.loaded() == ["a", "b", "c"]
    cache.acquire("d")  # nothing held now: back within the budget, oldest first
    assert cache.loaded() == ["c", "d"]
    assert SizedAdapter.events.count("load a") == 1  # never loaded twice


def test_hub_cache_snapshot_is_found(tmp_path, monkeypatch) -> None:
    """A snapshot laid out as huggingface_hub writes it is found at the pinned revision."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    a = sized("a", 1)
    snapshot = tmp_path / "models--org--sized" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    registry = ModelRegistry({"a": a})
    assert registry.weights_dir("a") is None
    (snapshot / "weights.txt").write_text("w")
    assert Path(registry.weights_dir("a")) == snapshot



def test_components_are_found_by_path_env_or_hub_cache(tmp_path, monkeypatch) -> None:
    """An optional component: `--weights ID:NAME=PATH` first, then DREAMCAD_WEIGHTS_<ID>_<NAME>,
    then the HF cache snapshot holding each declared folder's model_index.json."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    textured = type("textured", (SizedAdapter,), {
        "id": "textured", "name": "textured",
        "components": {"paint": WeightsSource("org/paint", "def456", folders=("paint-v1",))},
    })  # fmt: skip
    monkeypatch.delenv("DREAMCAD_WEIGHTS_TEXTURED_PAINT", raising=False)
    registry = ModelRegistry({"textured": textured})
    assert registry.component_dir("textured", "paint") is None
    assert registry.create("textured").component_dirs == {}

    snapshot = tmp_path / "hub" / "models--org--paint" / "snapshots" / "def456"
    (snapshot / "paint-v1").mkdir(parents=True)
    assert registry.component_dir("textured", "paint") is None  # the folder alone is not enough
    (snapshot / "paint-v1" / "model_index.json").write_text("{}")
    assert registry.create("textured").component_dirs == {"paint": snapshot}

    monkeypatch.setenv("DREAMCAD_WEIGHTS_TEXTURED_PAINT", str(tmp_path / "from-env"))
    assert registry.component_dir("textured", "paint") == tmp_path / "from-env"
    given = ModelRegistry({"textured": textured}, {"textured:paint": tmp_path / "given"})
    assert given.component_dir("textured", "paint") == tmp_path / "given"


def test_gpu_workers_load_models_in_their_cuda_dtype() -> None:
    """A CUDA worker loads each model in the dtype its upstream runs in; CPU always float32."""
    loads: list[tuple[str, str]] = []

    class Recording(SizedAdapter):
        weights = None
        cuda_dtype = "bfloat16"

        def _load(self, device: str, dtype: str) -> None:
            loads.append((device, dtype))

    registry = ModelRegistry({"half": type("half", (Recording,), {"id": "half", "name": "h"})})
    ModelCache(registry, "cuda:0", None).acquire("half")  # the recorder never touches the GPU
    ModelCache(registry, "cpu", None).acquire("half")
    ModelCache(registry, "cuda:1", None).acquire("half", "float32")
    assert loads == [("cuda:0", "bfloat16"), ("cpu", "float32"), ("cuda:1", "float32")]
    from backend.models.hunyuan3d.adapter import Hunyuan3D2MiniAdapter
    from backend.models.sf3d.adapter import SF3DAdapter

    assert (SF3DAdapter.cuda_dtype, Hunyuan3D2MiniAdapter.cuda_dtype) == ("bfloat16", "float16")


def test_cache_listeners_hear_every_load_and_unload(tmp_path) -> None:
    (tmp_path / "weights.txt").write_text("w")
    classes = {m: sized(m, 400) for m in "abc"}
    registry = ModelRegistry(classes, weights_paths={m: tmp_path for m in "abc"})
    heard: list[CacheEvent] = []

    def broken(event: CacheEvent) -> None:
        raise RuntimeError("an observer's bug")

    registry.cache_listeners.extend([broken, heard.append])  # the bug stops neither
    cache = ModelCache(registry, "cuda:1", budget_mb=900)
    cache.acquire("a"), cache.acquire("b"), cache.acquire("a"), cache.acquire("c")
    cache.clear()
    assert [(e.kind, e.model_id) for e in heard] == [
        ("load", "a"), ("load", "b"), ("unload", "b"), ("load", "c"),
        ("unload", "a"), ("unload", "c"),
    ]  # fmt: skip
    assert {e.device for e in heard} == {"cuda:1"} and {e.vram_mb for e in heard} == {400}
    assert all(e.seconds >= 0 for e in heard) and cache.loaded() == []


def test_a_source_checkout_reads_our_models_from_pyproject() -> None:
    """Run from a checkout without ``pip install`` (no package metadata), the backend must still
    find its own models: pyproject.toml's table is what the installed metadata says."""
    from importlib import metadata

    from backend.models.registry import ENTRY_POINT_GROUP, source_checkout_entry_points

    installed = {
        (e.name, e.value)
        for e in metadata.entry_points(group=ENTRY_POINT_GROUP)
        if e.dist is not None and e.dist.name == "dreamcad"
    }
    from_source = {(e.name, e.value) for e in source_checkout_entry_points()}
    assert from_source == installed
    assert ("triposr", "backend.models.triposr.adapter:TripoSRAdapter") in from_source


def test_the_pyproject_table_is_read_only_when_the_package_is_not_installed(tmp_path) -> None:
    from backend.models.registry import PYPROJECT, model_entry_points

    extra = PYPROJECT.read_text().replace(
        '[project.entry-points."dreamcad.models"]\n',
        '[project.entry-points."dreamcad.models"]\n'
        'extra-stand-in = "backend.models.builtin.procedural:ProceduralAdapter"\n',
    )
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(extra)
    installed = {e.name for e in model_entry_points("dreamcad", pyproject)}
    source = {e.name for e in model_entry_points("no-such-distribution-installed", pyproject)}
    assert "extra-stand-in" not in installed and "extra-stand-in" in source
    assert installed <= source


def test_the_cli_of_a_bare_checkout_lists_our_models(tmp_path) -> None:
    """A real process with no dreamcad metadata: this environment's packages minus our own
    dist-info and editable hook, no site processing (-S), the checkout on PYTHONPATH."""
    import subprocess
    import sys
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    bare = tmp_path / "site"
    bare.mkdir()
    for entry in site.iterdir():
        if not entry.name.startswith(("dreamcad-", "__editable__")) and entry.suffix != ".pth":
            (bare / entry.name).symlink_to(entry)
    repo = Path(__file__).resolve().parents[3]
    listed = subprocess.run(
        [sys.executable, "-S", "-m", "backend.cli", "models", "--json"],
        env={"PYTHONPATH": f"{bare}:{repo}", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert '"triposr"' in listed.stdout and '"mesh-optimize"' in listed.stdout
