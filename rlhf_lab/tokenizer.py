"""Tokenizers: text ↔ token ids and the chat template every stage encodes with.

The default is byte-level: the 256 byte values plus four special tokens. Every UTF-8
string round-trips exactly (Korean, emoji, control bytes): a token is a byte, so there
is nothing to clamp and nothing unknown. Its chat template is

    BOS prompt-bytes SEP response-bytes EOS

and the model learns to stop by predicting EOS. The separator is a token of its own so
that no user text can forge the prompt/response boundary.

A model carries its tokenizer (`CausalLM.tokenizer`): MiniGPT the byte one, a Hugging
Face model its own (hf.HFTokenizer, behind the same calls), so every stage encodes text
the way the model in front of it reads it.
"""
from __future__ import annotations

import torch
from torch import Tensor

BOS, EOS, PAD, SEP = 256, 257, 258, 259
VOCAB_SIZE = 260


class Tokenizer:
    """What the stages need of a tokenizer. A subclass gives `eos`, `pad`, `never_sampled`
    and `vocab_size`, and encode, decode, encode_prompt and truncate_prompt; the template
    and the padding are shared here."""

    eos: int
    pad: int
    vocab_size: int
    never_sampled: list[int]   # ids that never appear inside a response (BOS, SEP, PAD), so never sampled

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, tokens: list[int] | Tensor) -> str:
        raise NotImplementedError

    def encode_prompt(self, prompt: str) -> list[int]:
        """Everything the model sees before it answers."""
        raise NotImplementedError

    def truncate_prompt(self, prompt: str, excess: int) -> str:
        """The prompt less about `excess` tokens from its start (its oldest text)."""
        raise NotImplementedError

    def encode_pair(self, prompt: str, response: str) -> tuple[list[int], int]:
        """Full chat sequence and the index of the first response token."""
        prefix = self.encode_prompt(prompt)
        return prefix + self.encode(response) + [self.eos], len(prefix)

    def left_pad(self, rows: list[list[int]]) -> tuple[Tensor, Tensor]:
        """Stack ragged rows, padding on the left so every row ends at the same column.

        Left padding lets a batch of prompts start generating at one shared position.
        Returns tokens (B, T) and attention_mask (B, T), True on real tokens.
        """
        width = max(len(r) for r in rows)
        tokens = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, row in enumerate(rows):
            tokens[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = True
        return tokens, mask

    def right_pad(self, rows: list[list[int]]) -> tuple[Tensor, Tensor]:
        """Stack ragged rows padded on the right: (B, T) tokens and (B, T) mask."""
        width = max(len(r) for r in rows)
        tokens = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, row in enumerate(rows):
            tokens[i, :len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, :len(row)] = True
        return tokens, mask

    def right_pad_examples(self, encoded: list[tuple[list[int], int]]) -> tuple[Tensor, Tensor, Tensor]:
        """encode_pair's (tokens, first response index) rows, right-padded: tokens and mask (B, T),
        and answer_mask (B, T), True on the response and its EOS, the tokens an SFT loss reads."""
        tokens, mask = self.right_pad([t for t, _ in encoded])
        answer_mask = mask.clone()
        for i, (_, first) in enumerate(encoded):
            answer_mask[i, :first] = False                  # no loss on the prompt
        return tokens, mask, answer_mask


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes, one token each, plus BOS, EOS, PAD and SEP."""

    eos, pad, vocab_size = EOS, PAD, VOCAB_SIZE
    never_sampled = [BOS, SEP, PAD]

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, tokens: list[int] | Tensor) -> str:
        """Inverse of `encode`; special tokens are dropped, broken UTF-8 is replaced."""
        if isinstance(tokens, Tensor):
            tokens = tokens.tolist()
        return bytes(t for t in tokens if t < 256).decode("utf-8", errors="replace")

    def encode_prompt(self, prompt: str) -> list[int]:
        """BOS prompt SEP."""
        return [BOS, *self.encode(prompt), SEP]

    def truncate_prompt(self, prompt: str, excess: int) -> str:
        return prompt.encode("utf-8")[excess:].decode("utf-8", errors="ignore")   # may drop a split character

    def __eq__(self, other) -> bool:
        return isinstance(other, ByteTokenizer)


BYTES = ByteTokenizer()
