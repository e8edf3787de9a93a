"""NestedAdapters: creates, loads, keeps and swaps the inner model through a real registry."""

from __future__ import annotations

from backend.models.builtin.inflate import InflateAdapter
from backend.models.nested import NestedAdapters
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.registry import ModelRegistry


class CountingInflate(InflateAdapter):
    loads = 0
    unloads = 0

    def load(self, device: str, dtype: str = "float32") -> None:
        CountingInflate.loads += 1
        self.placed = (device, dtype)
        super().load(device, dtype)

    def unload(self) -> None:
        CountingInflate.unloads += 1
        super().unload()


def test_keeps_one_and_swaps_on_a_new_id() -> None:
    registry = ModelRegistry(adapters={"inflate": CountingInflate, "procedural": ProceduralAdapter})
    nested = NestedAdapters(registry)
    nested.place("cpu", "float16")
    first = nested.get("inflate")
    assert nested.get("inflate") is first and CountingInflate.loads == 1
    assert first.placed == ("cpu", "float16")
    assert isinstance(nested.get("procedural"), ProceduralAdapter)
    assert CountingInflate.unloads == 1  # the old one went before the new one came
    nested.release()
    assert nested.registry is registry
