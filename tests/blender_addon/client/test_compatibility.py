"""client/compatibility.py: the backend's version read from its refusal, and what to upgrade."""

from __future__ import annotations


def test_incompatibility_hint_names_the_side_to_upgrade(addon) -> None:
    hint = addon.client.compatibility.incompatibility_hint
    assert "add-on" in hint(99) and "backend" in hint(0) and "older of the two" in hint(None)


def test_version_is_read_from_the_refusal_text(addon) -> None:
    read = addon.client.compatibility.version_in_refusal
    assert read("message speaks protocol 1; this side speaks 0") == 0
    assert read("this side speaks 12") == 12
    assert read("something else went wrong") is None
