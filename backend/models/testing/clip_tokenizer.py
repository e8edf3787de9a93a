"""A byte-level CLIP BPE tokenizer written from nothing (no hub access).

The official CLIP vocabulary has 49,408 entries learnt from data. For tests we write a valid
vocabulary of the same *kind*: the 256 byte symbols, their end-of-word forms and the two
special tokens, with no merges, so every prompt tokenizes (one token per byte) through the real
``CLIPTokenizer`` / ``CLIPTokenizerFast`` code and the files sit where the hub puts them.
The byte symbols are the production table (mvdream's tokenizer builds open_clip's vocabulary
from them), so tests and serving agree on it.
"""

from __future__ import annotations

import json
from pathlib import Path

from backend.models.mvdream.tokenizer import byte_symbols

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"


def byte_level_vocab() -> dict[str, int]:
    """Token -> id: bytes, bytes + ``</w>``, then the start and end tokens (514 entries)."""
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + [START_TOKEN, END_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def write_clip_tokenizer(folder: Path, model_max_length: int = 77) -> int:
    """Write vocab.json, merges.txt and the tokenizer configs into ``folder``; return vocab size."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = byte_level_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    special = {
        "bos_token": START_TOKEN,
        "eos_token": END_TOKEN,
        "unk_token": END_TOKEN,
        "pad_token": END_TOKEN,
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "do_lower_case": True,
        **special,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return len(vocab)
