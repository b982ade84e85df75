"""Byte-level tokenizer: the 256 byte values plus four special tokens.

Every UTF-8 string round-trips exactly (Korean, emoji, control bytes): a token is
a byte, so there is nothing to clamp and nothing unknown. The chat template is

    BOS prompt-bytes SEP response-bytes EOS

and the model learns to stop by predicting EOS. The separator is a token of its
own so that no user text can forge the prompt/response boundary.
"""
from __future__ import annotations

import torch
from torch import Tensor

BOS, EOS, PAD, SEP = 256, 257, 258, 259
VOCAB_SIZE = 260


def encode(text: str) -> list[int]:
    """UTF-8 bytes of `text`, one token each."""
    return list(text.encode("utf-8"))


def decode(tokens: list[int] | Tensor) -> str:
    """Inverse of `encode`; special tokens are dropped, broken UTF-8 is replaced."""
    if isinstance(tokens, Tensor):
        tokens = tokens.tolist()
    return bytes(t for t in tokens if t < 256).decode("utf-8", errors="replace")


def encode_prompt(prompt: str) -> list[int]:
    """BOS prompt SEP: everything the model sees before it answers."""
    return [BOS, *encode(prompt), SEP]


def encode_pair(prompt: str, response: str) -> tuple[list[int], int]:
    """Full chat sequence and the index of the first response token."""
    prefix = encode_prompt(prompt)
    return prefix + encode(response) + [EOS], len(prefix)


def left_pad(rows: list[list[int]]) -> tuple[Tensor, Tensor]:
    """Stack ragged rows, padding on the left so every row ends at the same column.

    Left padding lets a batch of prompts start generating at one shared position.
    Returns tokens (B, T) and attention_mask (B, T), True on real tokens.
    """
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        tokens[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = True
    return tokens, mask


def right_pad(rows: list[list[int]]) -> tuple[Tensor, Tensor]:
    """Stack ragged rows padded on the right: (B, T) tokens and (B, T) mask."""
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        tokens[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = True
    return tokens, mask


def right_pad_examples(encoded: list[tuple[list[int], int]]) -> tuple[Tensor, Tensor, Tensor]:
    """encode_pair's (tokens, first response index) rows, right-padded: tokens and mask (B, T),
    and answer_mask (B, T), True on the response and its EOS, the tokens an SFT loss reads."""
    tokens, mask = right_pad([t for t, _ in encoded])
    answer_mask = mask.clone()
    for i, (_, first) in enumerate(encoded):
        answer_mask[i, :first] = False                  # no loss on BOS prompt SEP
    return tokens, mask, answer_mask
