"""The OpenCLIP-compatible tokenizer: zero padding, 77 ids, and the real CLIP ids when the BPE
table of an installed open_clip package is available."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.models.mvdream.tokenizer import (
    _open_clip_bpe,
    byte_symbols,
    load_tokenizer,
    tokenize,
)
from shared_protocol.errors import ErrorCode, ProtocolError


def test_tokenizer_from_weights_folder(mvdream_dir: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(mvdream_dir, tmp_path)
    ids = tokenize(tokenizer, ["ab", ""])
    assert ids.shape == (2, 77)
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    assert ids[0, :4].tolist() == [start, ids[0, 1].item(), ids[0, 2].item(), end]
    assert ids[0, 4:].eq(0).all() and ids[1, :2].tolist() == [start, end]
    long = tokenize(tokenizer, ["x" * 200])[0]
    assert long[-1].item() == end  # truncation keeps the end token, as open_clip


@pytest.mark.skipif(_open_clip_bpe() is None, reason="open_clip's BPE table is not installed")
def test_open_clip_table_gives_clip_ids(tmp_path: Path) -> None:
    tokenizer = load_tokenizer(None, tmp_path)
    ids = tokenize(tokenizer, ["a photo of a cat"])[0]
    # open_clip.tokenize("a photo of a cat") (the CLIP vocabulary's ids)
    assert ids[:7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert ids[7:].eq(0).all()


def test_no_tokenizer_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backend.models.mvdream.tokenizer._open_clip_bpe", lambda: None)
    with pytest.raises(ProtocolError) as caught:
        load_tokenizer(tmp_path, tmp_path)
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING


def test_byte_symbols_follow_the_byte_level_bpe_convention() -> None:
    """Visible Latin-1 bytes stand for themselves, "!" first (open_clip's pad id 0); the 68
    others (controls, space, no-break space, soft hyphen) follow as U+0100.. in byte order."""
    symbols = byte_symbols()
    assert len(symbols) == len(set(symbols)) == 256 and symbols[0] == "!"
    visible = [*range(33, 127), *range(161, 173), *range(174, 256)]
    assert [ord(s) for s in symbols[: len(visible)]] == visible
    assert [ord(s) for s in symbols[len(visible) :]] == list(range(256, 256 + 68))
    assert "".join(symbols[:3]) == '!"#' and symbols[len(visible)] == chr(256)  # byte 0
