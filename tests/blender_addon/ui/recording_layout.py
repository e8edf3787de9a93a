"""A layout that records what draw code asks for, checking every name against Blender's RNA.

Background Blender has no window to draw panels in, so panel ``draw`` methods run against this
instead of a UILayout: each ``prop`` must name a real property of the data it is given, each
``operator`` a registered operator and only its real properties, so a typo fails the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bpy


class OperatorProperties:
    def __init__(self, idname: str, record: dict[str, Any]) -> None:
        module, name = idname.split(".")
        rna = getattr(getattr(bpy.ops, module), name).get_rna_type()  # KeyError: unregistered
        object.__setattr__(self, "_names", {p.identifier for p in rna.properties})
        object.__setattr__(self, "_record", record)

    def __setattr__(self, name: str, value: Any) -> None:
        assert name in self._names, f"operator has no property {name!r}"
        self._record[name] = value


@dataclass
class Call:
    kind: str
    text: str = ""
    data: Any = None
    name: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True


class RecordingLayout:
    def __init__(self, calls: list[Call] | None = None, enabled: bool = True) -> None:
        object.__setattr__(self, "calls", calls if calls is not None else [])
        object.__setattr__(self, "_enabled", enabled)

    def __setattr__(self, name: str, value: Any) -> None:
        assert name in ("enabled", "scale_y", "alert", "active"), f"layout has no {name!r}"
        if name == "enabled":
            object.__setattr__(self, "_enabled", self._enabled and bool(value))

    def _child(self, *_args: Any, **_kwargs: Any) -> RecordingLayout:
        return RecordingLayout(self.calls, self._enabled)

    box = row = column = split = _child

    def label(self, *, text: str = "", icon: str = "NONE", icon_value: int = 0) -> None:
        properties = {"icon_value": icon_value} if icon_value else {}
        self.calls.append(Call("label", text=text, enabled=self._enabled, properties=properties))

    def prop(self, data: Any, name: str, **kwargs: Any) -> None:
        assert name in data.bl_rna.properties, f"{data} has no property {name!r}"
        self.calls.append(Call("prop", text=kwargs.get("text", ""), data=data, name=name,
                               enabled=self._enabled))

    def prop_enum(self, data: Any, name: str, value: str, **_kwargs: Any) -> None:
        items = {i.identifier for i in data.bl_rna.properties[name].enum_items}
        assert value in items, f"{name} has no item {value!r}"
        self.calls.append(Call("prop_enum", text=value, data=data, name=name,
                               enabled=self._enabled))

    def operator(self, idname: str, *, text: str = "", **_kwargs: Any) -> OperatorProperties:
        call = Call("operator", text=text, name=idname, enabled=self._enabled)
        self.calls.append(call)
        return OperatorProperties(idname, call.properties)

    def template_list(self, list_type: str, _list_id: str, data: Any, prop: str,
                      active_data: Any, active_prop: str, **_kwargs: Any) -> None:
        assert hasattr(bpy.types, list_type), f"no UIList {list_type}"
        assert prop in data.bl_rna.properties and active_prop in active_data.bl_rna.properties
        self.calls.append(Call("template_list", name=list_type, data=getattr(data, prop)))

    def template_ID(self, data: Any, name: str, **_kwargs: Any) -> None:
        assert name in data.bl_rna.properties
        self.calls.append(Call("template_ID", data=data, name=name))

    def template_icon(self, *, icon_value: int, scale: float = 1.0) -> None:
        self.calls.append(Call("template_icon", properties={"icon_value": icon_value}))

    def progress(self, *, factor: float, type: str = "BAR", text: str = "") -> None:
        assert 0.0 <= factor <= 1.0
        self.calls.append(Call("progress", text=text, properties={"factor": factor}))

    # --- what the tests ask ------------------------------------------------------------------

    def texts(self, kind: str | None = None) -> list[str]:
        return [c.text for c in self.calls if kind is None or c.kind == kind]

    def find(self, kind: str, **match: Any) -> list[Call]:
        return [c for c in self.calls if c.kind == kind and all(
            getattr(c, k) == v for k, v in match.items())]
