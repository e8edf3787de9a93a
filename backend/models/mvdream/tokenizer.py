"""OpenCLIP's tokenizer without the network: CLIP BPE, start/end tokens, zero padding to 77.

open_clip pads with id 0 and truncates keeping the end token; ``CLIPTokenizer`` does the same
with ``pad_token="!"`` (id 0 in the CLIP vocabulary), which is how SD 2.x ships it. The
vocabulary comes, in order, from ``<weights>/tokenizer/`` (vocab.json + merges.txt, hub
layout) or from the BPE file inside an installed open_clip package (found without importing
open_clip, whose import needs torchvision).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

from shared_protocol.errors import ErrorCode, ProtocolError

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
MERGES_USED = 49152 - 256 - 2  # open_clip's SimpleTokenizer keeps this many merges


def byte_symbols() -> list[str]:
    """The 256 one-character stand-ins byte-level BPE (GPT-2, CLIP) uses for the raw bytes.

    In vocabulary order: the bytes that are visible Latin-1 characters stand for themselves
    ("!" first, so it is id 0: the pad id open_clip and SD 2.x use), then every other byte
    (controls, space, no-break space, soft hyphen), in byte order, as U+0100 onwards."""
    visible = [b for b in range(256) if chr(b).isprintable() and not chr(b).isspace()]
    hidden = [b for b in range(256) if b not in visible]
    return [chr(b) for b in visible] + [chr(256 + index) for index in range(len(hidden))]


def _open_clip_bpe() -> Path | None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BPE_FILE
    return path if path.is_file() else None


def _write_from_bpe(bpe: Path, folder: Path) -> Path:
    """vocab.json + merges.txt equivalent to open_clip's SimpleTokenizer tables."""
    with gzip.open(bpe) as stream:
        merges = stream.read().decode("utf-8").split("\n")[1 : MERGES_USED + 1]
    pairs = [tuple(line.split()) for line in merges]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(p) for p in pairs]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in pairs))
    return folder


def load_tokenizer(weights_dir: Path | None, cache_dir: Path):
    """A ``CLIPTokenizer`` producing open_clip's token ids (77 long, zero padded)."""
    from transformers import CLIPTokenizer

    folder = weights_dir / "tokenizer" if weights_dir is not None else None
    if folder is None or not (folder / "vocab.json").is_file():
        bpe = _open_clip_bpe()
        if bpe is None:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                "mvdream: no OpenCLIP tokenizer (no tokenizer/ beside the weights and no "
                "open_clip package)",
                hint="run `pip install --no-deps open-clip-torch` in the backend environment",
            )
        folder = cache_dir / "openclip-tokenizer"
        if not (folder / "vocab.json").is_file():
            _write_from_bpe(bpe, folder)
    tokenizer = CLIPTokenizer.from_pretrained(str(folder), pad_token="!", model_max_length=77)
    if tokenizer.pad_token_id != 0:
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            f"mvdream: tokenizer in {folder} does not pad with id 0 as open_clip does",
        )
    return tokenizer


def tokenize(tokenizer, prompts: list[str]):
    """prompts -> (len(prompts), 77) int64 ids, as ``open_clip.tokenize``."""
    ids = tokenizer(prompts, padding="max_length", max_length=77, truncation=True,
                    return_tensors="pt").input_ids
    return ids
