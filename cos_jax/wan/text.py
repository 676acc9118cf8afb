"""Prompt → umT5 embedding: the official text cleaning, the tokenizer read from a checkpoint folder,
and an on-disk cache keyed by (encoder, prompt) so sweeps never re-encode (wan22.md §7)."""

from __future__ import annotations

import hashlib
import html
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from cos_jax.arrays_io import atomic_write

TEXT_LEN = 512
TOKENIZER_FILE = "tokenizer.json"


def clean_prompt(text: str) -> str:
    """The official cleaning: ftfy.fix_text, html.unescape twice, whitespace collapsed."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return re.sub(r"\s+", " ", text).strip()


class PromptTokenizer:
    """A `tokenizers` tokenizer from a folder (`google/umt5-xxl/` or diffusers' `tokenizer/`), padding
    with id 0 to `max_length`, truncating, and appending `</s>` as the folder's post-processor says."""

    def __init__(self, folder: str | os.PathLike, max_length: int = TEXT_LEN):
        from tokenizers import Tokenizer

        path = Path(folder) / TOKENIZER_FILE
        if not path.is_file():
            found = sorted(p.name for p in Path(folder).iterdir()) if Path(folder).is_dir() else "no such folder"
            raise FileNotFoundError(
                f"no {TOKENIZER_FILE} in {str(folder)!r} (found: {found}); point at the checkpoint's "
                "'google/umt5-xxl' folder or diffusers' 'tokenizer' folder, which ship it"
            )
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(length=max_length, pad_id=0)
        self.max_length = max_length

    def __call__(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, mask), both int32 [len(prompts), max_length], after `clean_prompt`."""
        encodings = self.tokenizer.encode_batch([clean_prompt(p) for p in prompts], add_special_tokens=True)
        ids = np.asarray([e.ids for e in encodings], np.int32)
        mask = np.asarray([e.attention_mask for e in encodings], np.int32)
        return ids, mask


class ByteTokenizer:
    """A download-free tokenizer: UTF-8 bytes + 3 (0 = pad, 1 = </s>, 2 = unused), `</s>` appended,
    truncated to keep `</s>`, padded with 0 — the same (ids, mask) contract as `PromptTokenizer`."""

    vocab_size = 259

    def __init__(self, max_length: int):
        self.max_length = max_length

    def __call__(self, prompts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        prompts = list(prompts)
        ids = np.zeros((len(prompts), self.max_length), np.int32)
        for i, prompt in enumerate(prompts):
            tokens = [*(b + 3 for b in clean_prompt(prompt).encode("utf-8"))][: self.max_length - 1]
            tokens.append(1)
            ids[i, : len(tokens)] = tokens
        return ids, (ids > 0).astype(np.int32)


class PromptCache:
    """Embeddings on disk, one .npy per (encoder id, cleaned prompt); writes are atomic."""

    def __init__(self, folder: str | os.PathLike, encoder_id: str):
        self.folder = Path(folder)
        self.encoder_id = encoder_id

    def path(self, prompt: str) -> Path:
        digest = hashlib.sha256(f"{self.encoder_id}\0{clean_prompt(prompt)}".encode()).hexdigest()
        return self.folder / f"{digest[:32]}.npy"

    def get_or_compute(self, prompts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """[len(prompts), T, D] embeddings; `encode` runs once, on the prompts not yet cached."""
        missing = [p for p in dict.fromkeys(prompts) if not self.path(p).is_file()]
        if missing:
            for prompt, emb in zip(missing, np.asarray(encode(missing)), strict=True):
                atomic_write(self.path(prompt), lambda tmp, emb=emb: _save_npy(tmp, emb))
        return np.stack([np.load(self.path(p)) for p in prompts])


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to another name
        np.save(f, array)
