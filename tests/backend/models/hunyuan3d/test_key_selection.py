"""FlashVDM's adaptive key selection on small random tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from backend.models.hunyuan3d.key_selection import (
    KeySelection,
    keys_kept,
    select_keys,
    selective_attention,
)


def _qkv(points: int = 40, keys: int = 30, batch: int = 1):
    generator = torch.Generator().manual_seed(0)
    shape = (batch, 2, keys, 4)
    return (
        torch.randn((batch, 2, points, 4), generator=generator),
        torch.randn(shape, generator=generator),
        torch.randn(shape, generator=generator),
    )


def test_keys_kept_follows_the_official_latent_counts() -> None:
    assert (keys_kept(3072), keys_kept(512), keys_kept(16), keys_kept(2)) == (1024, 256, 5, 1)


def test_select_keys_keeps_the_best_mean_scores_per_head() -> None:
    queries, keys, values = _qkv()
    kept_keys, kept_values = select_keys(queries, keys, values, stride=7)
    assert kept_keys.shape == (1, 2, 10, 4)
    for head in range(2):
        scores = (queries[0, head, ::7] @ keys[0, head].T).mean(dim=0)
        best = set(torch.argsort(scores, descending=True)[:10].tolist())
        rows = {int(torch.nonzero((keys[0, head] == k).all(dim=1))[0]) for k in kept_keys[0, head]}
        assert rows == best
        # values travel with their keys
        ranked = sorted(best, key=lambda i: -scores[i])
        assert torch.equal(kept_values[0, head], values[0, head, ranked])


def test_groups_select_their_own_keys() -> None:
    queries, keys, values = _qkv()
    grouped = selective_attention(queries, keys, values, KeySelection(3, (15, 25)))
    first = selective_attention(queries[:, :, :15], keys, values, KeySelection(3))
    second = selective_attention(queries[:, :, 15:], keys, values, KeySelection(3))
    torch.testing.assert_close(grouped, torch.cat([first, second], dim=2))
    whole = selective_attention(queries, keys, values, KeySelection(3))
    assert not torch.allclose(grouped, whole)


def test_no_selection_is_exact_attention() -> None:
    queries, keys, values = _qkv(batch=2)
    exact = F.scaled_dot_product_attention(queries, keys, values)
    torch.testing.assert_close(selective_attention(queries, keys, values, None), exact)
    assert not torch.allclose(selective_attention(queries, keys, values, KeySelection(5)), exact)


def test_groups_must_cover_the_queries() -> None:
    queries, keys, values = _qkv()
    with pytest.raises(ValueError, match="cover"):
        selective_attention(queries, keys, values, KeySelection(3, (10, 10)))
