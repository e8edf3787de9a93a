"""The parameter checks both sides of the wire run (backend admission, the add-on's panel)."""

from __future__ import annotations

import math

import pytest

from shared_protocol.errors import ProtocolError
from shared_protocol.messages import ParameterSchema
from shared_protocol.parameters import check_parameter, resolve_parameters

SCHEMA = (
    ParameterSchema("steps", "int", 30, minimum=1, maximum=200),
    ParameterSchema("guidance", "float", 7.5, minimum=0.0, maximum=30.0),
    ParameterSchema("mode", "choice", "fast", choices=("fast", "best")),
    ParameterSchema("tiling", "bool", False),
    ParameterSchema("negative", "str", ""),
)


def test_defaults_fill_and_resolving_twice_changes_nothing() -> None:
    resolved = resolve_parameters(SCHEMA, {"guidance": 3})
    assert resolved == {"steps": 30, "guidance": 3.0, "mode": "fast", "tiling": False,
                        "negative": ""}  # fmt: skip
    assert isinstance(resolved["guidance"], float)
    assert resolve_parameters(SCHEMA, resolved) == resolved


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("steps", 0, "out_of_range"),
        ("steps", 2.0, "invalid_parameter"),
        ("steps", True, "invalid_parameter"),
        ("guidance", math.nan, "invalid_parameter"),
        ("guidance", math.inf, "invalid_parameter"),
        ("guidance", 31, "out_of_range"),
        ("mode", "slow", "invalid_parameter"),
        ("tiling", 1, "invalid_parameter"),
        ("negative", "x" * 5000, "invalid_parameter"),
        ("unknown", 1, "invalid_parameter"),
    ],
)
def test_each_bad_value_gets_its_code_and_a_relative_field(name, value, code) -> None:
    with pytest.raises(ProtocolError) as caught:
        resolve_parameters(SCHEMA, {name: value})
    assert (caught.value.info.code, caught.value.info.field) == (code, f"parameters.{name}")


def test_the_panel_label_reads_in_the_message() -> None:
    with pytest.raises(ProtocolError) as caught:
        check_parameter(SCHEMA[0], 500, label="MVDream's Steps")
    assert caught.value.info.message.startswith("MVDream's Steps is 500")
    assert "[1, 200]" in caught.value.info.hint
