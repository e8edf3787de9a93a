"""Folding an inner adapter's stages into one outer stage."""

from __future__ import annotations

from backend.models.common.stage_folding import RESOLUTION, FoldedProgress


def test_inner_stages_map_in_order_and_never_go_back() -> None:
    seen: list[tuple[str, int, int]] = []
    folded = FoldedProgress(lambda s, i, n, *a: seen.append((s, i, n)), "outer",
                            {"a": 0.25, "b": 0.75})
    folded("a", 1, 2)
    folded("a", 2, 2)
    folded("b", 1, 3)
    folded("a", 0, 2)  # a late report from an earlier stage must not move the bar back
    folded("b", 3, 3)
    positions = [i for _, i, _ in seen]
    assert positions == [125, 250, 500, 500, RESOLUTION]
    assert all(s == "outer" and n == RESOLUTION for s, _, n in seen)


def test_undeclared_inner_stage_gets_a_share() -> None:
    seen: list[int] = []
    folded = FoldedProgress(lambda s, i, n, *a: seen.append(i), "outer", {})
    folded("x", 1, 1)
    folded("y", 1, 1)
    folded.finish()
    assert seen[0] > 0 and seen == sorted(seen) and seen[-1] == RESOLUTION
